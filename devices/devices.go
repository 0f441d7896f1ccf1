// Package devices holds the small interfaces that every emulated device and
// the machine's I/O bus agree on. A device sees only offsets within the range
// it was mapped at, and raises interrupts through IRQLine or MSI; it never
// knows which VMM object owns it, so it can be tested with a fake bus.
package devices

// Device is something mapped at a port-I/O or MMIO range. Offsets are
// relative to the start of the range; len(data) is the access size (1, 2, 4
// or 8). Read fills data; Write consumes it. Accesses the device does not
// implement read as all ones (Read) or are ignored (Write), as on real
// hardware: a guest must never be able to make a device fail the VMM.
type Device interface {
	Read(offset uint64, data []byte)
	Write(offset uint64, data []byte)
}

// IRQLine is one interrupt line into the interrupt controller (an ISA IRQ or
// a GSI). SetLevel(true) asserts it and SetLevel(false) deasserts it; an
// edge-triggered consumer sees the rising edge.
type IRQLine interface {
	SetLevel(high bool)
}

// MSISender delivers a message-signalled interrupt.
type MSISender interface {
	SendMSI(addr uint64, data uint32) error
}

// IRQFunc adapts a function to IRQLine.
type IRQFunc func(high bool)

// SetLevel calls f.
func (f IRQFunc) SetLevel(high bool) { f(high) }

// NoIRQ is an IRQLine that goes nowhere.
var NoIRQ IRQLine = IRQFunc(func(bool) {})
