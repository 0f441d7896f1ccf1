package acpi

import "fmt"

// buildDSDT returns the Differentiated System Description Table. In ASL it
// reads roughly:
//
//	DefinitionBlock ("", "DSDT", 2, "GOVMM ", "GOVMMDSD", 1) {
//	    Scope (\_SB) {
//	        Device (C000) { Name (_HID, "ACPI0007") Name (_UID, 0) }  // per CPU
//	        Device (COM1) { Name (_HID, EisaId ("PNP0501")) ... }     // per serial port
//	        Device (KBD_), Device (MOU_), Device (RTC_)               // when present
//	        Device (PCI0) { _HID PNP0A08, _CID PNP0A03, _CRS, _PRT }  // with PCI
//	        Device (PDRC) { _HID PNP0C02, _CRS: the ECAM window }      // with ECAM
//	        Device (PWRB) { Name (_HID, EisaId ("PNP0C0C")) }
//	        Device (GED_) { _HID ACPI0013, _CRS IRQ 9, _EVT }          // hardware-reduced
//	    }
//	    Name (_S5, Package (4) { typ, typ, 0, 0 })
//	}
func buildDSDT(cfg *Config) []byte {
	var sb [][]byte
	for i := 0; i < cfg.CPUs; i++ {
		sb = append(sb, device(fmt.Sprintf("C%03X", i),
			name("_HID", str("ACPI0007")),
			name("_UID", integer(uint64(i)))))
	}
	for i, s := range cfg.Serial {
		sb = append(sb, device(fmt.Sprintf("COM%d", i+1),
			name("_HID", eisaID("PNP0501")),
			name("_UID", integer(uint64(i+1))),
			name("_CRS", resourceTemplate(
				ioPort(s.IOBase, s.IOBase, 0, 8),
				irqNoFlags(s.IRQ)))))
	}
	if cfg.I8042 {
		sb = append(sb,
			device("KBD",
				name("_HID", eisaID("PNP0303")),
				name("_CRS", resourceTemplate(
					ioPort(0x60, 0x60, 1, 1),
					ioPort(0x64, 0x64, 1, 1),
					irqNoFlags(1)))),
			device("MOU",
				name("_HID", eisaID("PNP0F13")),
				name("_CRS", resourceTemplate(irqNoFlags(12)))))
	}
	if cfg.RTC {
		sb = append(sb, device("RTC",
			name("_HID", eisaID("PNP0B00")),
			name("_CRS", resourceTemplate(
				ioPort(0x70, 0x70, 1, 8),
				irqNoFlags(8)))))
	}
	if cfg.PCI != nil {
		sb = append(sb, pciHostBridge(cfg.PCI))
		if cfg.PCI.ECAMBase != 0 {
			sb = append(sb, ecamReservation(cfg.PCI))
		}
	}
	// A control-method power button. In hardware-reduced mode the GED
	// notifies it; in fixed-hardware mode the button is the PM1 fixed
	// event and this device just stays quiet.
	sb = append(sb, device("PWRB",
		name("_HID", eisaID("PNP0C0C")),
		name("_UID", integer(0))))
	slpTyp := uint64(SlpTypS5Fixed)
	if cfg.Mode == HardwareReduced {
		sb = append(sb, genericEventDevice(cfg.GEDBase))
		slpTyp = SlpTypS5Reduced
	}

	body := cat(
		scope(`\_SB`, sb...),
		// SLP_TYPa, SLP_TYPb and two reserved values.
		name("_S5", pkg(integer(slpTyp), integer(slpTyp), integer(0), integer(0))),
	)
	return finish(append(header("DSDT", 2), body...)) // revision 2: 64-bit integers
}

// pciHostBridge returns \_SB.PCI0 with its bus range, I/O and memory
// windows and, when routes are given, a _PRT.
func pciHostBridge(p *PCI) []byte {
	crs := [][]byte{
		wordBusNumber(uint16(p.BusStart), uint16(p.BusEnd)),
		ioPort(0xCF8, 0xCF8, 1, 8), // config address/data ports, consumed
	}
	io := p.IO
	if io == nil {
		io = []Window{{Base: 0, Size: 0xCF8}, {Base: 0xD00, Size: 0xF300}}
	}
	for _, w := range io {
		crs = append(crs, dwordIO(uint32(w.Base), uint32(w.Base+w.Size-1)))
	}
	crs = append(crs, dwordMemory(false, uint32(p.MMIO32.Base), uint32(p.MMIO32.Base+p.MMIO32.Size-1)))
	if w := p.MMIO64; w.Size != 0 {
		crs = append(crs, qwordMemory(false, true, w.Base, w.Base+w.Size-1))
	}

	dev := [][]byte{}
	if p.ECAMBase != 0 {
		dev = append(dev,
			name("_HID", eisaID("PNP0A08")), // PCI Express
			name("_CID", eisaID("PNP0A03")))
	} else {
		dev = append(dev, name("_HID", eisaID("PNP0A03")))
	}
	dev = append(dev,
		name("_ADR", integer(0)),
		name("_SEG", integer(0)),
		name("_BBN", integer(uint64(p.BusStart))),
		name("_UID", integer(0)),
		name("_CRS", resourceTemplate(crs...)))
	if len(p.Routes) > 0 {
		var prt [][]byte
		for _, r := range p.Routes {
			// Address: device in the high word, 0xFFFF for any function;
			// source Zero means the last value is a GSI.
			prt = append(prt, pkg(
				integer(uint64(r.Device)<<16|0xFFFF),
				integer(uint64(r.Pin)),
				integer(0),
				integer(uint64(r.GSI))))
		}
		dev = append(dev, name("_PRT", pkg(prt...)))
	}
	return device("PCI0", dev...)
}

// ecamReservation returns a motherboard resource device claiming the ECAM
// window, which Linux wants to see before it uses MMCONFIG.
func ecamReservation(p *PCI) []byte {
	base := p.ECAMBase + uint64(p.BusStart)<<20
	size := uint64(int(p.BusEnd)-int(p.BusStart)+1) << 20
	var res []byte
	if base+size <= 1<<32 {
		res = memory32Fixed(uint32(base), uint32(size))
	} else {
		res = qwordMemory(true, false, base, base+size-1)
	}
	return device("PDRC",
		name("_HID", eisaID("PNP0C02")),
		name("_UID", integer(1)),
		name("_CRS", resourceTemplate(res)))
}

// genericEventDevice returns \_SB.GED_: its interrupt, the event selector
// register GED emulates at base, and an _EVT that turns the power-down
// event into a Notify of the power button.
func genericEventDevice(base uint64) []byte {
	return device("GED",
		name("_HID", str("ACPI0013")),
		name("_UID", integer(0)),
		name("_CRS", resourceTemplate(interrupt(true, false, SCIIRQ))),
		opRegion("EREG", regionSystemMemory, base+gedEvtOff, 4),
		field("EREG", accessDWord|lockNone<<4|updateWriteAsZeros, fieldUnit{"ESEL", 32}),
		method("_EVT", 1, true,
			store(nameString("ESEL"), local(0)),
			ifThen(lEqual(and(local(0), integer(GEDEventPowerDown), nil), integer(GEDEventPowerDown)),
				notify(nameString(`\_SB.PWRB`), integer(0x80)))))
}
