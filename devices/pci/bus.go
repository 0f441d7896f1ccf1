package pci

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/govmm/govmm/devices"
)

// Slots and functions per bus.
const (
	NumSlots = 32
	NumFuncs = 8
)

// Bus is PCI bus 0: 32 device slots of 8 functions each.
type Bus struct {
	mu    sync.RWMutex
	funcs [NumSlots][NumFuncs]Function
}

// Add plugs f in at slot.fn.
func (b *Bus) Add(slot, fn int, f Function) error {
	if slot < 0 || slot >= NumSlots || fn < 0 || fn >= NumFuncs {
		return fmt.Errorf("pci: address %02x.%d out of range", slot, fn)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.funcs[slot][fn] != nil {
		return fmt.Errorf("pci: slot %02x.%d already in use", slot, fn)
	}
	b.funcs[slot][fn] = f
	return nil
}

// Function returns what is at slot.fn, or nil.
func (b *Bus) Function(slot, fn int) Function {
	if slot < 0 || slot >= NumSlots || fn < 0 || fn >= NumFuncs {
		return nil
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.funcs[slot][fn]
}

// SlotUsed reports whether any function of slot is present.
func (b *Bus) SlotUsed(slot int) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, f := range b.funcs[slot] {
		if f != nil {
			return true
		}
	}
	return false
}

// ReadConfig reads configuration space of slot.fn; an empty function reads
// as all ones, which is how the guest learns nothing is there. Function 0's
// header type shows the multi-function bit when other functions exist.
func (b *Bus) ReadConfig(slot, fn int, off uint16, data []byte) {
	f := b.Function(slot, fn)
	if f == nil {
		fill(data, 0xFF)
		return
	}
	f.ReadConfig(off, data)
	if fn == 0 && off <= RegHeaderType && int(off)+len(data) > RegHeaderType {
		for i := 1; i < NumFuncs; i++ {
			if b.Function(slot, i) != nil {
				data[RegHeaderType-int(off)] |= 0x80
				break
			}
		}
	}
}

// WriteConfig writes configuration space of slot.fn; writes to an empty
// function are dropped.
func (b *Bus) WriteConfig(slot, fn int, off uint16, data []byte) {
	if f := b.Function(slot, fn); f != nil {
		f.WriteConfig(off, data)
	}
}

func fill(data []byte, v byte) {
	for i := range data {
		data[i] = v
	}
}

// Root is the host side of the PCI hierarchy: bus 0 behind a host bridge,
// reached through configuration mechanism #1 and an ECAM window covering
// buses 0..NumBuses-1 (buses above 0 have no devices: there are no bridges).
type Root struct {
	Bus0     *Bus
	NumBuses int

	mu      sync.Mutex
	address uint32 // the 0xCF8 register

	// OnResetControl, if set, receives byte writes to 0xCF9 (the PIIX3 /
	// ICH9 reset control register), which sits inside the 0xCF8 dword.
	OnResetControl func(v byte)
}

// NewRoot returns a root with an empty bus 0 and an ECAM window of numBuses
// buses (1..256).
func NewRoot(numBuses int) (*Root, error) {
	if numBuses < 1 || numBuses > 256 {
		return nil, fmt.Errorf("pci: %d buses out of range 1..256", numBuses)
	}
	return &Root{Bus0: &Bus{}, NumBuses: numBuses}, nil
}

func (r *Root) read(bus, slot, fn int, off uint16, data []byte) {
	if bus != 0 {
		fill(data, 0xFF)
		return
	}
	r.Bus0.ReadConfig(slot, fn, off, data)
}

func (r *Root) write(bus, slot, fn int, off uint16, data []byte) {
	if bus == 0 {
		r.Bus0.WriteConfig(slot, fn, off, data)
	}
}

// AddressPort is the device for I/O ports 0xCF8..0xCFB (map it with length 4).
func (r *Root) AddressPort() devices.Device { return addressPort{r} }

// DataPort is the device for I/O ports 0xCFC..0xCFF (map it with length 4).
func (r *Root) DataPort() devices.Device { return dataPort{r} }

type addressPort struct{ r *Root }

func (p addressPort) Read(off uint64, data []byte) {
	if off == 0 && len(data) == 4 {
		p.r.mu.Lock()
		a := p.r.address
		p.r.mu.Unlock()
		for i := range data {
			data[i] = byte(a >> (8 * i))
		}
		return
	}
	fill(data, 0xFF)
}

func (p addressPort) Write(off uint64, data []byte) {
	switch {
	case off == 0 && len(data) == 4:
		var a uint32
		for i := range data {
			a |= uint32(data[i]) << (8 * i)
		}
		// Bits 1:0 are reserved and read as zero.
		p.r.mu.Lock()
		p.r.address = a &^ 3
		p.r.mu.Unlock()
	case off == 1 && len(data) == 1 && p.r.OnResetControl != nil:
		p.r.OnResetControl(data[0])
	}
}

type dataPort struct{ r *Root }

// target decodes the 0xCF8 register for an access at byte off of 0xCFC.
func (p dataPort) target(off uint64, n int) (bus, slot, fn int, reg uint16, ok bool) {
	p.r.mu.Lock()
	a := p.r.address
	p.r.mu.Unlock()
	if a&0x80000000 == 0 || off+uint64(n) > 4 {
		return 0, 0, 0, 0, false
	}
	bus = int(a>>16) & 0xFF
	slot = int(a>>11) & 0x1F
	fn = int(a>>8) & 7
	reg = uint16(a&0xFC) + uint16(off)
	return bus, slot, fn, reg, true
}

func (p dataPort) Read(off uint64, data []byte) {
	bus, slot, fn, reg, ok := p.target(off, len(data))
	if !ok {
		fill(data, 0xFF)
		return
	}
	p.r.read(bus, slot, fn, reg, data)
}

func (p dataPort) Write(off uint64, data []byte) {
	if bus, slot, fn, reg, ok := p.target(off, len(data)); ok {
		p.r.write(bus, slot, fn, reg, data)
	}
}

// ECAMSize is the size of an ECAM window for numBuses buses (1 MiB each).
func ECAMSize(numBuses int) uint64 { return uint64(numBuses) << 20 }

// ECAM is the MMIO device for the PCIe enhanced configuration window; map it
// with length ECAMSize(r.NumBuses). offset = bus<<20 | slot<<15 | fn<<12 | reg.
func (r *Root) ECAM() devices.Device { return ecam{r} }

type ecam struct{ r *Root }

func (e ecam) decode(off uint64, n int) (bus, slot, fn int, reg uint16, ok bool) {
	bus = int(off >> 20)
	reg = uint16(off & 0xFFF)
	// An access must stay within one function's 4 KiB and be naturally
	// aligned, as on real root complexes.
	if bus >= e.r.NumBuses || n > 4 || int(reg)%n != 0 {
		return 0, 0, 0, 0, false
	}
	return bus, int(off>>15) & 0x1F, int(off>>12) & 7, reg, true
}

func (e ecam) Read(off uint64, data []byte) {
	bus, slot, fn, reg, ok := e.decode(off, len(data))
	if !ok {
		fill(data, 0xFF)
		return
	}
	e.r.read(bus, slot, fn, reg, data)
}

func (e ecam) Write(off uint64, data []byte) {
	if bus, slot, fn, reg, ok := e.decode(off, len(data)); ok {
		e.r.write(bus, slot, fn, reg, data)
	}
}

// Host bridge identities.
const (
	HostBridgeI440FX = 0x1237 // QEMU -M pc
	HostBridgeQ35    = 0x29c0 // QEMU -M q35
)

// NewHostBridge returns the host bridge function for slot 0 (class 0x0600,
// Intel vendor) with the given device ID.
func NewHostBridge(deviceID uint16) *ConfigSpace {
	return NewConfigSpace(Header{
		VendorID:     0x8086,
		DeviceID:     deviceID,
		Class:        0x060000,
		SubsysVendor: 0x1af4,
		Subsys:       0x1100,
		Express:      deviceID == HostBridgeQ35,
	})
}

// DevFn is a device address on bus 0.
type DevFn struct{ Slot, Fn int }

func (d DevFn) String() string { return fmt.Sprintf("%02x.%d", d.Slot, d.Fn) }

// ParseDevFn parses QEMU's addr= property: "SLOT[.FN]" with SLOT and FN in
// hex, with or without a 0x prefix ("04.0", "4", "0x4", "1f.7").
func ParseDevFn(s string) (DevFn, error) {
	slotStr, fnStr, hasFn := strings.Cut(s, ".")
	parse := func(v string, max uint64) (int, bool) {
		v = strings.TrimPrefix(strings.TrimPrefix(v, "0x"), "0X")
		if v == "" {
			return 0, false
		}
		n, err := strconv.ParseUint(v, 16, 8)
		if err != nil || n > max {
			return 0, false
		}
		return int(n), true
	}
	slot, ok := parse(slotStr, NumSlots-1)
	fn := 0
	if ok && hasFn {
		fn, ok = parse(fnStr, NumFuncs-1)
	}
	if !ok {
		return DevFn{}, fmt.Errorf("Property 'addr' doesn't take value '%s'", s)
	}
	return DevFn{Slot: slot, Fn: fn}, nil
}

// SlotAllocator hands out bus 0 addresses as QEMU's pc machine does: the
// host bridge at 00.0, slot 1 reserved (the ISA bridge), then the first free
// slot from 2 upward, in command-line order, unless addr= names one.
type SlotAllocator struct {
	used [NumSlots][NumFuncs]bool
}

// NewSlotAllocator returns an allocator with the given slots reserved
// entirely (pass 0 and 1 for the pc layout).
func NewSlotAllocator(reserved ...int) *SlotAllocator {
	a := &SlotAllocator{}
	for _, s := range reserved {
		if s >= 0 && s < NumSlots {
			for f := range a.used[s] {
				a.used[s][f] = true
			}
		}
	}
	return a
}

// Assign returns the address for the next device: want if non-nil (it must
// be free), otherwise function 0 of the first slot with no function in use.
func (a *SlotAllocator) Assign(want *DevFn) (DevFn, error) {
	if want != nil {
		if want.Slot < 0 || want.Slot >= NumSlots || want.Fn < 0 || want.Fn >= NumFuncs {
			return DevFn{}, fmt.Errorf("PCI: address %v out of range", *want)
		}
		if a.used[want.Slot][want.Fn] {
			return DevFn{}, fmt.Errorf("PCI: slot %d function %d not available", want.Slot, want.Fn)
		}
		a.used[want.Slot][want.Fn] = true
		return *want, nil
	}
	for s := 0; s < NumSlots; s++ {
		free := true
		for _, u := range a.used[s] {
			free = free && !u
		}
		if free {
			a.used[s][0] = true
			return DevFn{Slot: s}, nil
		}
	}
	return DevFn{}, fmt.Errorf("PCI: no slot/function available, all 32 slots are in use")
}

// Allocator places BARs in an address window, each naturally aligned.
type Allocator struct {
	next, end uint64
}

// NewAllocator returns an allocator over [base, base+size).
func NewAllocator(base, size uint64) *Allocator {
	return &Allocator{next: base, end: base + size}
}

// Alloc returns a size-aligned address for a region of size bytes (a power
// of two).
func (a *Allocator) Alloc(size uint64) (uint64, error) {
	if size == 0 || size&(size-1) != 0 {
		return 0, fmt.Errorf("pci: region size %#x is not a power of two", size)
	}
	addr := (a.next + size - 1) &^ (size - 1)
	if addr < a.next || addr+size < addr || addr+size > a.end {
		return 0, fmt.Errorf("pci: no room for %#x bytes in window ending %#x", size, a.end)
	}
	a.next = addr + size
	return addr, nil
}

// AssignBARs places every declared BAR of c (as firmware would): I/O BARs
// from io, 32-bit memory BARs from mem32, 64-bit memory BARs from mem64
// (or mem32 when mem64 is nil), largest first to waste little alignment
// padding, then enables I/O and memory decoding and bus mastering.
func AssignBARs(c *ConfigSpace, io, mem32, mem64 *Allocator) error {
	order := []int{}
	for i := 0; i < 6; i++ {
		if c.BAR(i).Kind != BARUnused {
			order = append(order, i)
		}
	}
	for x := 1; x < len(order); x++ { // insertion sort by size, descending
		for y := x; y > 0 && c.BAR(order[y]).Size > c.BAR(order[y-1]).Size; y-- {
			order[y], order[y-1] = order[y-1], order[y]
		}
	}
	for _, i := range order {
		b := c.BAR(i)
		var al *Allocator
		switch b.Kind {
		case BARIO:
			al = io
		case BARMem32:
			al = mem32
		case BARMem64:
			al = mem64
			if al == nil {
				al = mem32
			}
		}
		if al == nil {
			return fmt.Errorf("pci: no window for BAR%d", i)
		}
		addr, err := al.Alloc(b.Size)
		if err != nil {
			return fmt.Errorf("pci: BAR%d: %w", i, err)
		}
		if err := c.SetBARAddress(i, addr); err != nil {
			return err
		}
	}
	c.SetCommand(CmdIO | CmdMemory | CmdBusMaster)
	return nil
}
