// Package acpi builds the ACPI tables the x86 board places in guest memory
// (RSDP, XSDT, FADT, FACS, MADT, MCFG and a DSDT written in AML) and
// emulates the power management hardware those tables describe: the PM1
// register block of fixed-hardware ACPI (PM) or the Generic Event Device of
// hardware-reduced ACPI (GED).
//
// Table layouts follow the ACPI 6.5 specification, chapter 5.2.
package acpi

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// PowerMode selects how the guest learns of the power button and how it
// powers off.
type PowerMode int

const (
	// FixedHardware describes a PM1 event and control block at
	// Config.PMBase (emulated by PM): the power button is the fixed
	// PWRBTN event raising the SCI, and the guest powers off by writing
	// SLP_TYP|SLP_EN to PM1a_CNT. This is what QEMU's pc and q35 do.
	FixedHardware PowerMode = iota
	// HardwareReduced sets HW_REDUCED_ACPI in the FADT: the power button
	// is a control-method device notified by a Generic Event Device at
	// Config.GEDBase (emulated by GED), and the guest powers off through
	// the FADT's sleep control register. This is what QEMU's microvm does.
	HardwareReduced
)

// Board constants the tables and the devices agree on.
const (
	DefaultIOAPICAddr = 0xFEC00000
	LocalAPICAddr     = 0xFEE00000

	// SCIIRQ is the ISA IRQ (and GSI) of the SCI, and of the GED's
	// interrupt in hardware-reduced mode: level triggered, active high.
	SCIIRQ = 9

	// SlpTypS5Fixed is the SLP_TYP the DSDT's \_S5 gives for PM1a_CNT, 0
	// as on QEMU's PIIX4 and ICH9.
	SlpTypS5Fixed = 0
	// SlpTypS5Reduced is the SLP_TYP for the sleep control register, as
	// QEMU's GED uses.
	SlpTypS5Reduced = 5

	// ResetValue is written to the FADT's reset register to reset the
	// machine, in either mode.
	ResetValue = 0x42

	// MaxCPUs keeps APIC IDs in one byte with 0xFF (broadcast) left out.
	MaxCPUs = 255
)

// Config describes the board the tables describe.
type Config struct {
	CPUs       int    // processors; APIC ID and ACPI UID i for CPU i
	IOAPICAddr uint32 // 0 means DefaultIOAPICAddr
	IOAPICID   uint8

	PCI *PCI // nil: no PCI host bridge in the DSDT, no MCFG

	Serial []Serial // COM1, COM2, ... in order

	Mode    PowerMode
	PMBase  uint16 // FixedHardware: first port of the PMSize-port block emulated by PM
	GEDBase uint64 // HardwareReduced: MMIO address of the GEDSize-byte block emulated by GED

	I8042 bool // a PS/2 controller at ports 0x60/0x64 (keyboard IRQ 1, mouse IRQ 12)
	RTC   bool // an MC146818 CMOS RTC at ports 0x70/0x71, IRQ 8
}

// PCI describes the PCI host bridge \_SB.PCI0.
type PCI struct {
	// ECAMBase is where the memory-mapped configuration space of bus 0
	// would be (1 MiB per bus, as in the MCFG), so bus n is at
	// ECAMBase+n<<20. 0 means none: the bridge is then conventional PCI
	// (PNP0A03 only) and there is no MCFG.
	ECAMBase uint64
	BusStart uint8
	BusEnd   uint8 // usually 255

	MMIO32 Window // the 32-bit MMIO hole the bridge forwards; required
	MMIO64 Window // optional 64-bit window (Size 0: none)
	// IO lists the I/O port ranges the bridge forwards. Nil means QEMU's:
	// 0x0000-0x0CF7 and 0x0D00-0xFFFF. The config ports 0xCF8-0xCFF are
	// always listed as consumed by the bridge.
	IO []Window

	// Routes gives _PRT entries wiring device INTx pins on bus BusStart
	// straight to GSIs (level, active low, as ACPI's default for GSIs).
	Routes []Route
}

// Window is an address range.
type Window struct {
	Base uint64
	Size uint64
}

// Route wires one PCI device's interrupt pin to a GSI.
type Route struct {
	Device uint8 // 0-31
	Pin    uint8 // 0 = INTA# .. 3 = INTD#
	GSI    uint32
}

// Serial is one 16550 UART.
type Serial struct {
	IOBase uint16
	IRQ    uint8
}

// Tables is the result of Build.
type Tables struct {
	// Data is copied to guest physical address Base. It starts with the
	// RSDP, so RSDPAddr == Base: when Base lies in 0xE0000-0xFFFFF Linux
	// finds it by scanning; otherwise pass RSDPAddr in
	// boot_params.acpi_rsdp_addr or the PVH start info's rsdp_paddr, or
	// copy RSDP to the scan area (it holds absolute addresses only).
	Base     uint64
	Data     []byte
	RSDPAddr uint64
	RSDP     []byte
	// Addr holds each table's guest physical address by signature
	// ("XSDT", "FACP", "FACS", "APIC", "MCFG", "DSDT").
	Addr map[string]uint64
}

// Table header fields for every table.
var (
	oemID      = [6]byte{'G', 'O', 'V', 'M', 'M', ' '}
	creatorID  = [4]byte{'G', 'O', 'V', 'M'}
	oemTableID = "GOVMM"
)

const headerSize = 36

// header returns a table header for sig with the length and checksum left
// to finish.
func header(sig string, revision byte) []byte {
	h := make([]byte, headerSize)
	copy(h[0:4], sig)
	h[8] = revision
	copy(h[10:16], oemID[:])
	copy(h[16:24], fmt.Sprintf("%-5s%-3s", oemTableID, sig[:3]))
	binary.LittleEndian.PutUint32(h[24:], 1) // OEM revision
	copy(h[28:32], creatorID[:])
	binary.LittleEndian.PutUint32(h[32:], 1) // creator revision
	return h
}

// finish sets t's length and checksum fields.
func finish(t []byte) []byte {
	binary.LittleEndian.PutUint32(t[4:], uint32(len(t)))
	t[9] = 0
	t[9] = checksum(t)
	return t
}

// checksum returns the byte that makes b (with its checksum byte zero) sum
// to zero.
func checksum(b []byte) byte {
	var sum byte
	for _, v := range b {
		sum += v
	}
	return -sum
}

// Validate reports whether cfg can be built.
func (cfg *Config) Validate() error {
	if cfg.CPUs < 1 || cfg.CPUs > MaxCPUs {
		return fmt.Errorf("acpi: %d CPUs, want 1..%d", cfg.CPUs, MaxCPUs)
	}
	switch cfg.Mode {
	case FixedHardware:
		if cfg.PMBase == 0 || int(cfg.PMBase)+PMSize > 0x10000 {
			return fmt.Errorf("acpi: PM block at port %#x does not fit", cfg.PMBase)
		}
	case HardwareReduced:
		if cfg.GEDBase == 0 || !fits(Window{cfg.GEDBase, GEDSize}, 1<<64-1) {
			return fmt.Errorf("acpi: bad GED base address %#x", cfg.GEDBase)
		}
	default:
		return fmt.Errorf("acpi: unknown power mode %d", cfg.Mode)
	}
	for i, s := range cfg.Serial {
		if s.IRQ > 15 || s.IOBase > 0xFFF8 {
			return fmt.Errorf("acpi: serial port %d: bad io base %#x or irq %d", i, s.IOBase, s.IRQ)
		}
	}
	if len(cfg.Serial) > 9 {
		return errors.New("acpi: at most 9 serial ports")
	}
	if p := cfg.PCI; p != nil {
		if p.BusEnd < p.BusStart {
			return fmt.Errorf("acpi: PCI bus range %d-%d", p.BusStart, p.BusEnd)
		}
		if p.ECAMBase%(1<<20) != 0 || !fits(Window{p.ECAMBase, 256 << 20}, 1<<64-1) {
			return fmt.Errorf("acpi: bad ECAM base %#x", p.ECAMBase)
		}
		if !fits(p.MMIO32, 1<<32-1) {
			return fmt.Errorf("acpi: bad 32-bit MMIO window %#x+%#x", p.MMIO32.Base, p.MMIO32.Size)
		}
		if w := p.MMIO64; w.Size != 0 && !fits(w, 1<<64-1) {
			return fmt.Errorf("acpi: bad 64-bit MMIO window %#x+%#x", w.Base, w.Size)
		}
		for _, w := range p.IO {
			if !fits(w, 0xFFFF) {
				return fmt.Errorf("acpi: bad PCI I/O window %#x+%#x", w.Base, w.Size)
			}
		}
		for _, r := range p.Routes {
			if r.Device > 31 || r.Pin > 3 {
				return fmt.Errorf("acpi: bad PCI route %+v", r)
			}
		}
	}
	return nil
}

// fits reports whether w is non-empty and ends at or below last, without
// overflowing.
func fits(w Window, last uint64) bool {
	return w.Size != 0 && w.Base <= last && w.Size-1 <= last-w.Base
}

// Build lays out all tables in one blob for guest physical address base
// (16-byte aligned), with every pointer absolute and every checksum set.
func Build(cfg Config, base uint64) (Tables, error) {
	if cfg.IOAPICAddr == 0 {
		cfg.IOAPICAddr = DefaultIOAPICAddr
	}
	if err := cfg.Validate(); err != nil {
		return Tables{}, err
	}
	if base%16 != 0 {
		return Tables{}, fmt.Errorf("acpi: base %#x is not 16-byte aligned", base)
	}

	b := &blob{base: base, addr: map[string]uint64{}}
	rsdpOff := b.reserve(rsdpSize, 16)

	// Tables nothing else depends on first, then the ones holding
	// pointers to them.
	dsdt := b.add("DSDT", buildDSDT(&cfg), 8)
	var facs uint64
	if cfg.Mode == FixedHardware {
		facs = b.add("FACS", buildFACS(), 64) // must be 64-byte aligned
	}
	fadt := b.add("FACP", buildFADT(&cfg, dsdt, facs), 8)
	ptrs := []uint64{fadt, b.add("APIC", buildMADT(&cfg), 8)}
	if cfg.PCI != nil && cfg.PCI.ECAMBase != 0 {
		ptrs = append(ptrs, b.add("MCFG", buildMCFG(cfg.PCI), 8))
	}
	xsdt := b.add("XSDT", buildXSDT(ptrs), 8)

	rsdp := buildRSDP(xsdt)
	copy(b.data[rsdpOff:], rsdp)
	return Tables{
		Base:     base,
		Data:     b.data,
		RSDPAddr: base + uint64(rsdpOff),
		RSDP:     rsdp,
		Addr:     b.addr,
	}, nil
}

// blob accumulates tables at aligned offsets.
type blob struct {
	base uint64
	data []byte
	addr map[string]uint64
}

func (b *blob) reserve(n int, align uint64) int {
	for (b.base+uint64(len(b.data)))%align != 0 {
		b.data = append(b.data, 0)
	}
	off := len(b.data)
	b.data = append(b.data, make([]byte, n)...)
	return off
}

func (b *blob) add(sig string, t []byte, align uint64) uint64 {
	off := b.reserve(len(t), align)
	copy(b.data[off:], t)
	a := b.base + uint64(off)
	b.addr[sig] = a
	return a
}

const rsdpSize = 36

// buildRSDP returns an ACPI 2.0+ RSDP pointing at the XSDT only; the RSDT
// address is 0, which Linux and ACPICA accept when the XSDT is present.
func buildRSDP(xsdt uint64) []byte {
	r := make([]byte, rsdpSize)
	copy(r, "RSD PTR ")
	copy(r[9:15], oemID[:])
	r[15] = 2 // revision: ACPI 2.0+
	binary.LittleEndian.PutUint32(r[20:], rsdpSize)
	binary.LittleEndian.PutUint64(r[24:], xsdt)
	r[8] = checksum(r[:20])
	r[32] = checksum(r)
	return r
}

func buildXSDT(ptrs []uint64) []byte {
	t := header("XSDT", 1)
	for _, p := range ptrs {
		t = binary.LittleEndian.AppendUint64(t, p)
	}
	return finish(t)
}

// buildFACS returns the Firmware ACPI Control Structure fixed-hardware
// ACPI requires (for the global lock and waking vector, unused here). It
// has no checksum.
func buildFACS() []byte {
	f := make([]byte, 64)
	copy(f, "FACS")
	binary.LittleEndian.PutUint32(f[4:], 64)
	f[32] = 2 // version
	return f
}

// FADT flags (ACPI 6.5, table 5.10) and IA-PC boot architecture flags
// (table 5.11).
const (
	fadtWBINVD        = 1 << 0
	fadtProcC1        = 1 << 2
	fadtSlpButton     = 1 << 5 // no fixed-feature sleep button
	fadtResetRegSup   = 1 << 10
	fadtHWReducedACPI = 1 << 20

	bootLegacyDevices = 1 << 0
	boot8042          = 1 << 1
	bootNoVGA         = 1 << 2
	bootNoCMOSRTC     = 1 << 5
)

// Generic Address Structure address spaces.
const (
	gasMemory = 0
	gasIO     = 1
)

// gas encodes a Generic Address Structure; access is the access size code
// (1 byte, 2 word, 3 dword).
func gas(space, bitWidth, access byte, addr uint64) []byte {
	g := []byte{space, bitWidth, 0, access}
	return binary.LittleEndian.AppendUint64(g, addr)
}

const fadtSize = 276

// buildFADT returns a revision 6 FADT (the 276-byte layout of ACPI 6.0
// and later).
func buildFADT(cfg *Config, dsdt, facs uint64) []byte {
	t := append(header("FACP", 6), make([]byte, fadtSize-headerSize)...)
	le := binary.LittleEndian
	if facs < 1<<32 {
		le.PutUint32(t[36:], uint32(facs))
	} else {
		le.PutUint64(t[132:], facs)
	}
	if dsdt < 1<<32 {
		le.PutUint32(t[40:], uint32(dsdt))
	}
	le.PutUint64(t[140:], dsdt)
	le.PutUint16(t[46:], SCIIRQ)

	var boot uint16
	if cfg.I8042 {
		boot |= boot8042
	}
	if !cfg.RTC {
		boot |= bootNoCMOSRTC
	}
	var flags uint32 = fadtResetRegSup

	switch cfg.Mode {
	case FixedHardware:
		pm := uint32(cfg.PMBase)
		le.PutUint32(t[56:], pm+pmEvtOff) // PM1a_EVT_BLK
		le.PutUint32(t[64:], pm+pmCntOff) // PM1a_CNT_BLK
		le.PutUint32(t[76:], pm+pmTmrOff) // PM_TMR_BLK
		t[88] = 4                         // PM1_EVT_LEN
		t[89] = 2                         // PM1_CNT_LEN
		t[91] = 4                         // PM_TMR_LEN
		// No C2/C3: latencies above 100 and 1000 us disable them.
		le.PutUint16(t[96:], 101)
		le.PutUint16(t[98:], 1001)
		copy(t[148:], gas(gasIO, 32, 2, uint64(pm+pmEvtOff))) // X_PM1a_EVT_BLK
		copy(t[172:], gas(gasIO, 16, 2, uint64(pm+pmCntOff))) // X_PM1a_CNT_BLK
		copy(t[208:], gas(gasIO, 32, 3, uint64(pm+pmTmrOff))) // X_PM_TMR_BLK
		copy(t[116:], gas(gasIO, 8, 1, uint64(pm+pmResetOff)))
		flags |= fadtWBINVD | fadtProcC1 | fadtSlpButton
		boot |= bootLegacyDevices
	case HardwareReduced:
		g := cfg.GEDBase
		copy(t[116:], gas(gasMemory, 8, 1, g+gedResetOff))
		copy(t[244:], gas(gasMemory, 8, 1, g+gedSleepCtlOff)) // SLEEP_CONTROL_REG
		copy(t[256:], gas(gasMemory, 8, 1, g+gedSleepStsOff)) // SLEEP_STATUS_REG
		flags |= fadtHWReducedACPI
	}
	t[128] = ResetValue
	le.PutUint16(t[109:], boot)
	le.PutUint32(t[112:], flags)
	copy(t[268:], "GOVMM\x00\x00\x00") // hypervisor vendor identity
	return finish(t)
}

// MADT entry types.
const (
	madtLocalAPIC    = 0
	madtIOAPIC       = 1
	madtISO          = 2
	madtLocalAPICNMI = 4
)

// buildMADT returns the Multiple APIC Description Table: one enabled local
// APIC per CPU, the IOAPIC at GSI base 0, QEMU's interrupt source
// overrides and the LINT1 NMI.
func buildMADT(cfg *Config) []byte {
	t := header("APIC", 4)
	le := binary.LittleEndian
	t = le.AppendUint32(t, LocalAPICAddr)
	t = le.AppendUint32(t, 1) // PCAT_COMPAT: there are 8259s too
	for i := 0; i < cfg.CPUs; i++ {
		t = append(t, madtLocalAPIC, 8, byte(i), byte(i))
		t = le.AppendUint32(t, 1) // enabled
	}
	t = append(t, madtIOAPIC, 12, cfg.IOAPICID, 0)
	t = le.AppendUint32(t, cfg.IOAPICAddr)
	t = le.AppendUint32(t, 0) // GSI base
	// IRQ0 (the PIT) is wired to GSI 2; flags 0 conform to ISA.
	t = append(t, madtISO, 10, 0, 0)
	t = le.AppendUint32(t, 2)
	t = le.AppendUint16(t, 0)
	// The SCI is level triggered, active high (flags: polarity 01, trigger 11).
	t = append(t, madtISO, 10, 0, SCIIRQ)
	t = le.AppendUint32(t, SCIIRQ)
	t = le.AppendUint16(t, 0x000D)
	// NMI on LINT1 of all processors (UID 0xFF).
	t = append(t, madtLocalAPICNMI, 6, 0xFF, 0, 0, 1)
	return finish(t)
}

// buildMCFG returns the PCI Express memory-mapped configuration table with
// one allocation for segment 0.
func buildMCFG(p *PCI) []byte {
	t := append(header("MCFG", 1), make([]byte, 8)...)
	le := binary.LittleEndian
	t = le.AppendUint64(t, p.ECAMBase)
	t = le.AppendUint16(t, 0) // segment
	t = append(t, p.BusStart, p.BusEnd)
	t = le.AppendUint32(t, 0)
	return finish(t)
}
