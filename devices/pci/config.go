// Package pci is the PCI side of the machine: configuration space with
// read-only/writable masks, BARs, capabilities, MSI-X and INTx for endpoint
// functions, a bus of 32 slots x 8 functions, and the two ways the guest
// reaches configuration space: configuration mechanism #1 (ports 0xCF8 and
// 0xCFC) and a PCIe ECAM window.
//
// The guest programs BARs and the command register; the machine learns
// where to map a function's BAR regions through ConfigSpace.OnBARChange.
package pci

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/govmm/govmm/devices"
)

// Function is one PCI function's configuration space as the bus sees it.
// off is within 0..4095 (0..255 for conventional PCI) and len(data) is 1, 2
// or 4; reads beyond what the function implements return zeros, writes are
// dropped.
type Function interface {
	ReadConfig(off uint16, data []byte)
	WriteConfig(off uint16, data []byte)
}

// Standard configuration header registers (type 0).
const (
	RegVendorID      = 0x00
	RegDeviceID      = 0x02
	RegCommand       = 0x04
	RegStatus        = 0x06
	RegRevision      = 0x08
	RegClass         = 0x09 // prog-if, subclass, base class
	RegCacheLine     = 0x0C
	RegLatency       = 0x0D
	RegHeaderType    = 0x0E
	RegBAR0          = 0x10
	RegSubsysVendor  = 0x2C
	RegSubsysID      = 0x2E
	RegCapPtr        = 0x34
	RegInterruptLine = 0x3C
	RegInterruptPin  = 0x3D
)

// Command register bits.
const (
	CmdIO           = 1 << 0
	CmdMemory       = 1 << 1
	CmdBusMaster    = 1 << 2
	CmdParity       = 1 << 6
	CmdSERR         = 1 << 8
	CmdINTxDisable  = 1 << 10
	cmdWritableMask = CmdIO | CmdMemory | CmdBusMaster | CmdParity | CmdSERR | CmdINTxDisable
)

// Status register bits.
const (
	StatusINTx    = 1 << 3
	StatusCapList = 1 << 4
	statusW1C     = 0xF900 // error bits the guest clears by writing 1
)

// Capability IDs.
const (
	CapIDMSIX   = 0x11
	CapIDVendor = 0x09
)

// Header is the identity of a type 0 function.
type Header struct {
	VendorID, DeviceID   uint16
	Revision             uint8
	Class                uint32 // base<<16 | sub<<8 | prog-if
	SubsysVendor, Subsys uint16
	// InterruptPin is 1..4 for INTA..INTD, 0 for none.
	InterruptPin uint8
	// Express selects a 4 KiB (PCIe) configuration space instead of 256 bytes.
	Express bool
}

// BARKind is what a BAR decodes.
type BARKind int

// BAR kinds.
const (
	BARUnused BARKind = iota
	BARMem32
	BARMem64 // takes two BAR slots
	BARIO
)

// BAR describes one base address register.
type BAR struct {
	Kind         BARKind
	Size         uint64 // power of two; >= 16 for memory, >= 4 for I/O
	Prefetchable bool
}

// BARMapping is where a BAR currently decodes. Enabled is false when the
// command register has its decode off or the address is not yet programmed.
type BARMapping struct {
	Index   int
	Kind    BARKind
	Addr    uint64
	Size    uint64
	Enabled bool
}

func (m BARMapping) String() string {
	return fmt.Sprintf("BAR%d %#x+%#x enabled=%v", m.Index, m.Addr, m.Size, m.Enabled)
}

type capHook struct {
	start, end int // [start, end) within config space
	onWrite    func()
}

// ConfigSpace is a type 0 configuration space with write masks. It is safe
// for concurrent use. Functions embed or wrap it and add behaviour through
// capability write hooks.
type ConfigSpace struct {
	mu    sync.Mutex
	size  int
	data  [4096]byte
	wmask [4096]byte // bits the guest may change
	w1c   [4096]byte // bits the guest clears by writing 1
	bars  [6]BAR
	maps  [6]BARMapping
	hooks []capHook

	capEnd  int // next free byte for a capability
	lastCap int // offset of the last capability's next pointer, 0 if none

	intxLevel bool
	irq       devices.IRQLine

	// OnBARChange, if set, is called (without locks held) whenever the
	// guest moves a BAR or switches its decoding on or off. old and new
	// differ; the machine unmaps old and maps new.
	OnBARChange func(old, new BARMapping)
}

// NewConfigSpace returns a type 0 configuration space for h.
func NewConfigSpace(h Header) *ConfigSpace {
	c := &ConfigSpace{size: 256, capEnd: 0x40, irq: devices.NoIRQ}
	if h.Express {
		c.size = 4096
	}
	c.put16(RegVendorID, h.VendorID)
	c.put16(RegDeviceID, h.DeviceID)
	c.data[RegRevision] = h.Revision
	c.data[RegClass] = byte(h.Class)
	c.data[RegClass+1] = byte(h.Class >> 8)
	c.data[RegClass+2] = byte(h.Class >> 16)
	c.put16(RegSubsysVendor, h.SubsysVendor)
	c.put16(RegSubsysID, h.Subsys)
	c.data[RegInterruptPin] = h.InterruptPin
	c.setMask16(RegCommand, cmdWritableMask)
	c.w1c[RegStatus] = byte(statusW1C & 0xFF)
	c.w1c[RegStatus+1] = byte(statusW1C >> 8)
	c.wmask[RegCacheLine] = 0xFF
	c.wmask[RegLatency] = 0xFF
	c.wmask[RegInterruptLine] = 0xFF
	for i := range c.maps {
		c.maps[i].Index = i
	}
	return c
}

func (c *ConfigSpace) put16(off int, v uint16) { binary.LittleEndian.PutUint16(c.data[off:], v) }
func (c *ConfigSpace) put32(off int, v uint32) { binary.LittleEndian.PutUint32(c.data[off:], v) }
func (c *ConfigSpace) get16(off int) uint16    { return binary.LittleEndian.Uint16(c.data[off:]) }
func (c *ConfigSpace) get32(off int) uint32    { return binary.LittleEndian.Uint32(c.data[off:]) }

func (c *ConfigSpace) setMask16(off int, m uint16) {
	binary.LittleEndian.PutUint16(c.wmask[off:], m)
}

func (c *ConfigSpace) setMask32(off int, m uint32) {
	binary.LittleEndian.PutUint32(c.wmask[off:], m)
}

// SetBAR declares BAR i. A 64-bit BAR also occupies i+1. Call before the
// guest runs.
func (c *ConfigSpace) SetBAR(i int, b BAR) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < 0 || i > 5 || (b.Kind == BARMem64 && i > 4) {
		return fmt.Errorf("pci: BAR index %d invalid for kind %d", i, b.Kind)
	}
	min := uint64(16)
	if b.Kind == BARIO {
		min = 4
	}
	if b.Size < min || b.Size&(b.Size-1) != 0 || (b.Kind != BARMem64 && b.Size > 1<<31) {
		return fmt.Errorf("pci: BAR%d size %#x invalid", i, b.Size)
	}
	off := RegBAR0 + 4*i
	mask := ^(b.Size - 1)
	switch b.Kind {
	case BARIO:
		c.put32(off, 1)
		c.setMask32(off, uint32(mask)&^3)
	case BARMem32:
		flags := uint32(0)
		if b.Prefetchable {
			flags |= 8
		}
		c.put32(off, flags)
		c.setMask32(off, uint32(mask)&^0xF)
	case BARMem64:
		flags := uint32(4)
		if b.Prefetchable {
			flags |= 8
		}
		c.put32(off, flags)
		c.setMask32(off, uint32(mask)&^0xF)
		c.put32(off+4, 0)
		c.setMask32(off+4, uint32(mask>>32))
		c.bars[i+1] = BAR{} // upper half
	default:
		return fmt.Errorf("pci: BAR%d kind %d", i, b.Kind)
	}
	c.bars[i] = b
	c.maps[i].Kind = b.Kind
	c.maps[i].Size = b.Size
	return nil
}

// BAR returns BAR i's declaration.
func (c *ConfigSpace) BAR(i int) BAR {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < 0 || i > 5 {
		return BAR{}
	}
	return c.bars[i]
}

// Mapping returns where BAR i decodes now.
func (c *ConfigSpace) Mapping(i int) BARMapping {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < 0 || i > 5 {
		return BARMapping{Index: i}
	}
	return c.mapping(i)
}

// mapping computes BAR i's current decode from the registers.
func (c *ConfigSpace) mapping(i int) BARMapping {
	b := c.bars[i]
	m := BARMapping{Index: i, Kind: b.Kind, Size: b.Size}
	off := RegBAR0 + 4*i
	cmd := c.get16(RegCommand)
	switch b.Kind {
	case BARIO:
		m.Addr = uint64(c.get32(off) &^ 3)
		m.Enabled = cmd&CmdIO != 0
	case BARMem32:
		m.Addr = uint64(c.get32(off) &^ 0xF)
		m.Enabled = cmd&CmdMemory != 0
	case BARMem64:
		m.Addr = uint64(c.get32(off)&^0xF) | uint64(c.get32(off+4))<<32
		m.Enabled = cmd&CmdMemory != 0
	default:
		return m
	}
	// Address 0 is "not programmed" (firmware and Linux never place a BAR
	// there), and a region that would wrap cannot be decoded.
	if m.Addr == 0 || m.Addr+m.Size < m.Addr {
		m.Enabled = false
	}
	return m
}

// SetBARAddress programs BAR i as firmware would (the machine's BAR
// placement before boot). It does not change the command register.
func (c *ConfigSpace) SetBARAddress(i int, addr uint64) error {
	c.mu.Lock()
	if i < 0 || i > 5 || c.bars[i].Kind == BARUnused {
		c.mu.Unlock()
		return fmt.Errorf("pci: BAR%d not declared", i)
	}
	b := c.bars[i]
	if addr%b.Size != 0 {
		c.mu.Unlock()
		return fmt.Errorf("pci: BAR%d address %#x not aligned to its size %#x", i, addr, b.Size)
	}
	if b.Kind != BARMem64 && addr > 0xFFFFFFFF {
		c.mu.Unlock()
		return fmt.Errorf("pci: 32-bit BAR%d address %#x above 4 GiB", i, addr)
	}
	before := c.snapshot()
	off := RegBAR0 + 4*i
	c.put32(off, uint32(addr)|c.get32(off)&^c.maskAt32(off))
	if b.Kind == BARMem64 {
		c.put32(off+4, uint32(addr>>32))
	}
	c.finish(before)
	return nil
}

func (c *ConfigSpace) maskAt32(off int) uint32 { return binary.LittleEndian.Uint32(c.wmask[off:]) }

// SetCommand sets command register bits (as firmware enabling decode).
func (c *ConfigSpace) SetCommand(bits uint16) {
	c.mu.Lock()
	before := c.snapshot()
	c.put16(RegCommand, c.get16(RegCommand)|bits&cmdWritableMask)
	c.updateINTx()
	c.finish(before)
}

// Command returns the command register.
func (c *ConfigSpace) Command() uint16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.get16(RegCommand)
}

func (c *ConfigSpace) snapshot() [6]BARMapping {
	var s [6]BARMapping
	for i := range s {
		s[i] = c.mapping(i)
	}
	return s
}

// finish unlocks c and reports BAR changes since before.
func (c *ConfigSpace) finish(before [6]BARMapping) {
	after := c.snapshot()
	cb := c.OnBARChange
	c.mu.Unlock()
	if cb == nil {
		return
	}
	for i := range after {
		if after[i].Kind == BARUnused {
			continue
		}
		if before[i] != after[i] && (before[i].Enabled || after[i].Enabled) {
			cb(before[i], after[i])
		}
	}
}

// AddCapability appends a capability with the given ID and body (the bytes
// after the ID and next pointer) and returns its offset. wmask marks bits of
// the body the guest may write (nil: none); onWrite, if set, runs after any
// guest write that touches the capability, without locks held.
func (c *ConfigSpace) AddCapability(id byte, body, wmask []byte, onWrite func()) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 2 + len(body)
	off := (c.capEnd + 3) &^ 3
	if off+n > 256 {
		return 0, fmt.Errorf("pci: no room for a %d-byte capability", n)
	}
	c.data[off] = id
	c.data[off+1] = 0
	copy(c.data[off+2:], body)
	copy(c.wmask[off+2:off+n], wmask)
	if c.lastCap == 0 {
		c.data[RegCapPtr] = byte(off)
		c.data[RegStatus] |= StatusCapList
	} else {
		c.data[c.lastCap] = byte(off)
	}
	c.lastCap = off + 1
	c.capEnd = off + n
	if onWrite != nil {
		c.hooks = append(c.hooks, capHook{start: off, end: off + n, onWrite: onWrite})
	}
	return off, nil
}

// Capabilities walks the capability list and returns (id, offset) pairs.
// It stops on a loop or an out-of-range pointer.
func (c *ConfigSpace) Capabilities() [][2]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out [][2]int
	p := int(c.data[RegCapPtr]) &^ 3
	for seen := 0; p >= 0x40 && p < 256 && seen < 48; seen++ {
		out = append(out, [2]int{int(c.data[p]), p})
		p = int(c.data[p+1]) &^ 3
	}
	return out
}

// Bytes copies n bytes of configuration space at off (for device models
// reading their own capability registers).
func (c *ConfigSpace) Bytes(off, n int) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]byte, n)
	if off >= 0 && off < c.size {
		copy(out, c.data[off:c.size])
	}
	return out
}

// SetBytes stores device-owned bytes (ignoring write masks), e.g. a
// capability register the device updates.
func (c *ConfigSpace) SetBytes(off int, p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if off >= 0 && off < c.size {
		copy(c.data[off:c.size], p)
	}
}

// ReadConfig implements Function.
func (c *ConfigSpace) ReadConfig(off uint16, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range data {
		o := int(off) + i
		if o < c.size {
			data[i] = c.data[o]
		} else {
			data[i] = 0
		}
	}
}

// WriteConfig implements Function: each byte changes only where the write
// mask allows; write-1-to-clear bits clear.
func (c *ConfigSpace) WriteConfig(off uint16, data []byte) {
	c.mu.Lock()
	before := c.snapshot()
	var hooks []func()
	for i, v := range data {
		o := int(off) + i
		if o >= c.size {
			break
		}
		c.data[o] = c.data[o]&^c.wmask[o] | v&c.wmask[o]
		c.data[o] &^= v & c.w1c[o]
	}
	end := int(off) + len(data)
	for _, h := range c.hooks {
		if int(off) < h.end && h.start < end {
			hooks = append(hooks, h.onWrite)
		}
	}
	if int(off) < RegCommand+2 && RegCommand < end {
		c.updateINTx()
	}
	c.finish(before)
	for _, h := range hooks {
		h()
	}
}

// SetIRQ connects the function's INTx pin to an interrupt line.
func (c *ConfigSpace) SetIRQ(l devices.IRQLine) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l == nil {
		l = devices.NoIRQ
	}
	c.irq = l
	c.updateINTx()
}

// SetINTx sets the level of the function's INTx pin. The status register
// shows it; the line is asserted unless the guest set INTx Disable.
func (c *ConfigSpace) SetINTx(level bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.intxLevel = level
	c.updateINTx()
}

func (c *ConfigSpace) updateINTx() {
	if c.intxLevel {
		c.data[RegStatus] |= StatusINTx
	} else {
		c.data[RegStatus] &^= StatusINTx
	}
	c.irq.SetLevel(c.intxLevel && c.get16(RegCommand)&CmdINTxDisable == 0)
}

// SetMultiFunction sets or clears the multi-function bit of the header type.
func (c *ConfigSpace) SetMultiFunction(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if on {
		c.data[RegHeaderType] |= 0x80
	} else {
		c.data[RegHeaderType] &^= 0x80
	}
}
