// Package mptable builds an Intel MultiProcessor Specification 1.4 table: the
// "_MP_" floating pointer structure followed by the "PCMP" configuration
// table. Linux reads it when ACPI is off (or absent) to find the CPUs, the
// IOAPIC and how ISA interrupts are wired to it.
//
// The result is plain bytes holding absolute guest physical addresses, to be
// copied at the address given to Build. Linux scans the first KiB of the
// EBDA, the last KiB of base memory and 0xF0000-0xFFFFF on 16-byte
// boundaries for the floating pointer, so the 0xF0000 BIOS area is the usual
// place.
package mptable

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Defaults for a PC-compatible board.
const (
	DefaultIOAPICAddr = 0xFEC00000
	LocalAPICAddr     = 0xFEE00000

	// IOAPICVersion is what KVM's in-kernel IOAPIC reports (82093AA).
	IOAPICVersion = 0x11
	// LocalAPICVersion is an integrated local APIC (as KVM's).
	LocalAPICVersion = 0x14

	// MaxCPUs keeps every APIC ID and the IOAPIC ID in one byte with 0xFF
	// left free: the IOAPIC takes the ID after the last CPU.
	MaxCPUs = 254
)

// Entry types and sizes (MP spec 1.4, section 4.3).
const (
	entryProcessor = 0
	entryBus       = 1
	entryIOAPIC    = 2
	entryIOInt     = 3
	entryLocalInt  = 4

	floatingSize  = 16
	headerSize    = 44
	processorSize = 20
	otherSize     = 8
)

// Interrupt types of I/O and local interrupt entries.
const (
	intINT    = 0
	intNMI    = 1
	intExtINT = 3
)

// Config says what the table describes. The zero value of the optional
// fields gives a PC without PCI.
type Config struct {
	CPUs       int    // APIC IDs 0..CPUs-1; the first is the bootstrap processor
	IOAPICAddr uint32 // 0 means DefaultIOAPICAddr
	PCI        bool   // add a PCI bus (bus 0; ISA becomes bus 1)
	// PCIRoutes wires PCI INTx pins on bus 0 to IOAPIC pins.
	PCIRoutes []PCIRoute
}

// PCIRoute wires one device's interrupt pin to an IOAPIC input.
type PCIRoute struct {
	Device    uint8 // PCI device number, 0-31
	Pin       uint8 // 0 = INTA# .. 3 = INTD#
	IOAPICPin uint8
}

// Build returns the floating pointer and configuration table for cpus
// processors, to be copied at guest physical address base.
func Build(cpus int, base uint64) ([]byte, error) {
	return BuildConfig(Config{CPUs: cpus}, base)
}

// BuildConfig is Build with the optional parts.
func BuildConfig(cfg Config, base uint64) ([]byte, error) {
	if cfg.CPUs < 1 || cfg.CPUs > MaxCPUs {
		return nil, fmt.Errorf("mptable: %d CPUs, want 1..%d", cfg.CPUs, MaxCPUs)
	}
	if base%16 != 0 {
		return nil, fmt.Errorf("mptable: base %#x is not 16-byte aligned", base)
	}
	ioapicAddr := cfg.IOAPICAddr
	if ioapicAddr == 0 {
		ioapicAddr = DefaultIOAPICAddr
	}
	if cfg.PCIRoutes != nil && !cfg.PCI {
		return nil, errors.New("mptable: PCI routes without a PCI bus")
	}
	for _, r := range cfg.PCIRoutes {
		if r.Device > 31 || r.Pin > 3 {
			return nil, fmt.Errorf("mptable: bad PCI route %+v", r)
		}
	}
	ioapicID := uint8(cfg.CPUs) // first ID after the last CPU

	// Bus IDs: PCI bus numbers first, ISA after them, as SeaBIOS does.
	isaBus := uint8(0)
	if cfg.PCI {
		isaBus = 1
	}

	var entries []byte
	count := 0
	add := func(e []byte) {
		entries = append(entries, e...)
		count++
	}

	// Entries must be sorted by type (MP spec 4.3).
	for i := 0; i < cfg.CPUs; i++ {
		e := make([]byte, processorSize)
		e[0] = entryProcessor
		e[1] = uint8(i) // local APIC ID
		e[2] = LocalAPICVersion
		flags := uint8(1) // EN
		if i == 0 {
			flags |= 2 // BP
		}
		e[3] = flags
		// Signature: family 6, model 0, stepping 0; features: FPU and APIC.
		binary.LittleEndian.PutUint32(e[4:], 6<<8)
		binary.LittleEndian.PutUint32(e[8:], 1<<0|1<<9)
		add(e)
	}
	if cfg.PCI {
		add(busEntry(0, "PCI"))
	}
	add(busEntry(isaBus, "ISA"))

	e := make([]byte, otherSize)
	e[0] = entryIOAPIC
	e[1] = ioapicID
	e[2] = IOAPICVersion
	e[3] = 1 // EN
	binary.LittleEndian.PutUint32(e[4:], ioapicAddr)
	add(e)

	// ISA IRQs 0-15. IRQ0 (the PIT) arrives at IOAPIC pin 2, as on QEMU
	// and real chipsets; pin 2 is then not also given to IRQ2, which is
	// the PIC cascade and never raised.
	for irq := uint8(0); irq < 16; irq++ {
		pin := irq
		switch irq {
		case 0:
			pin = 2
		case 2:
			continue
		}
		// Flags 0: polarity and trigger conform to the ISA bus (edge, high).
		add(intEntry(entryIOInt, intINT, 0, isaBus, irq, ioapicID, pin))
	}
	for _, r := range cfg.PCIRoutes {
		// Source IRQ for PCI is device<<2 | pin; PCI INTx is level, active low.
		const levelLow = 3<<2 | 3
		add(intEntry(entryIOInt, intINT, levelLow, 0, r.Device<<2|r.Pin, ioapicID, r.IOAPICPin))
	}

	// The 8259 output reaches the BSP's LINT0 (virtual wire mode); NMI goes
	// to LINT1 of every processor.
	add(intEntry(entryLocalInt, intExtINT, 0, isaBus, 0, 0, 0))
	add(intEntry(entryLocalInt, intNMI, 0, isaBus, 0, 0xFF, 1))

	tableLen := headerSize + len(entries)
	out := make([]byte, floatingSize+tableLen)

	// Floating pointer structure (MP spec 4.1).
	fp := out[:floatingSize]
	copy(fp, "_MP_")
	binary.LittleEndian.PutUint32(fp[4:], uint32(base+floatingSize))
	fp[8] = 1 // length in 16-byte units
	fp[9] = 4 // spec revision 1.4
	// fp[11] feature byte 1 = 0: a configuration table is present.
	fp[12] = 1 << 7 // IMCR present: PIC mode is possible
	fp[10] = checksum(fp)

	// Configuration table header (MP spec 4.2).
	t := out[floatingSize:]
	copy(t, "PCMP")
	binary.LittleEndian.PutUint16(t[4:], uint16(tableLen))
	t[6] = 4 // spec revision 1.4
	copy(t[8:16], "GOVMM   ")
	copy(t[16:28], "GOVMM PC    ")
	binary.LittleEndian.PutUint16(t[34:], uint16(count))
	binary.LittleEndian.PutUint32(t[36:], LocalAPICAddr)
	copy(t[headerSize:], entries)
	t[7] = checksum(t)

	if base+uint64(len(out)) > 1<<32 {
		return nil, fmt.Errorf("mptable: table at %#x does not fit below 4 GiB", base)
	}
	return out, nil
}

func busEntry(id uint8, typ string) []byte {
	e := make([]byte, otherSize)
	e[0] = entryBus
	e[1] = id
	copy(e[2:8], typ+"      ") // space padded to 6
	return e
}

func intEntry(kind, intType uint8, flags uint16, bus, busIRQ, apic, pin uint8) []byte {
	e := make([]byte, otherSize)
	e[0] = kind
	e[1] = intType
	binary.LittleEndian.PutUint16(e[2:], flags)
	e[4] = bus
	e[5] = busIRQ
	e[6] = apic
	e[7] = pin
	return e
}

// checksum returns the byte that makes b sum to zero, with b's checksum
// byte still zero.
func checksum(b []byte) uint8 {
	var sum uint8
	for _, v := range b {
		sum += v
	}
	return -sum
}
