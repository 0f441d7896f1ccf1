package pci

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/govmm/govmm/devices"
)

// MSI-X message control bits.
const (
	msixEnable       = 1 << 15
	msixFunctionMask = 1 << 14
	msixEntrySize    = 16
	msixVectorMasked = 1
)

// MSIX is an MSI-X capability with its table and pending-bit array living in
// a BAR. A vector that fires while masked (per-vector or function mask) sets
// its pending bit and is delivered when unmasked.
type MSIX struct {
	cs     *ConfigSpace
	capOff int
	sender devices.MSISender
	bar    int
	tabOff uint64
	pbaOff uint64

	mu      sync.Mutex
	table   []byte // n entries of 16 bytes
	pba     []uint64
	enabled bool
	fmask   bool
}

// NewMSIX adds an MSI-X capability for n vectors (1..2048) to cs, with the
// table at tableOff and the PBA at pbaOff within BAR bar (both 8-byte
// aligned, not overlapping). Interrupts go to sender.
func NewMSIX(cs *ConfigSpace, n int, bar int, tableOff, pbaOff uint64, sender devices.MSISender) (*MSIX, error) {
	if n < 1 || n > 2048 {
		return nil, fmt.Errorf("pci: %d MSI-X vectors out of range", n)
	}
	if bar < 0 || bar > 5 || tableOff%8 != 0 || pbaOff%8 != 0 {
		return nil, fmt.Errorf("pci: MSI-X table/PBA placement invalid")
	}
	tabEnd := tableOff + uint64(n)*msixEntrySize
	pbaEnd := pbaOff + uint64((n+63)/64)*8
	if tableOff < pbaEnd && pbaOff < tabEnd {
		return nil, fmt.Errorf("pci: MSI-X table and PBA overlap")
	}
	m := &MSIX{
		cs: cs, sender: sender, bar: bar, tabOff: tableOff, pbaOff: pbaOff,
		table: make([]byte, n*msixEntrySize),
		pba:   make([]uint64, (n+63)/64),
	}
	for i := 0; i < n; i++ {
		m.table[i*msixEntrySize+12] = msixVectorMasked // masked at reset
	}
	body := make([]byte, 10)
	binary.LittleEndian.PutUint16(body[0:], uint16(n-1))
	binary.LittleEndian.PutUint32(body[2:], uint32(tableOff)|uint32(bar))
	binary.LittleEndian.PutUint32(body[6:], uint32(pbaOff)|uint32(bar))
	wmask := []byte{0, 0xC0}
	off, err := cs.AddCapability(CapIDMSIX, body, wmask, m.controlWritten)
	if err != nil {
		return nil, err
	}
	m.capOff = off
	return m, nil
}

// Vectors is the table size.
func (m *MSIX) Vectors() int { return len(m.table) / msixEntrySize }

// BARIndex is the BAR holding the table and PBA.
func (m *MSIX) BARIndex() int { return m.bar }

// Enabled reports whether the guest turned MSI-X on (then INTx is off).
func (m *MSIX) Enabled() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.enabled
}

// controlWritten runs after the guest wrote the capability.
func (m *MSIX) controlWritten() {
	ctl := binary.LittleEndian.Uint16(m.cs.Bytes(m.capOff+2, 2))
	m.mu.Lock()
	defer m.mu.Unlock()
	m.enabled = ctl&msixEnable != 0
	m.fmask = ctl&msixFunctionMask != 0
	m.deliverPending()
}

// Reset returns the capability to its power-on state (disabled, every
// vector masked, nothing pending).
func (m *MSIX) Reset() {
	ctl := m.cs.Bytes(m.capOff+2, 2)
	ctl[1] &^= 0xC0
	m.cs.SetBytes(m.capOff+2, ctl)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.enabled, m.fmask = false, false
	for i := range m.table {
		m.table[i] = 0
	}
	for i := 0; i < m.Vectors(); i++ {
		m.table[i*msixEntrySize+12] = msixVectorMasked
	}
	for i := range m.pba {
		m.pba[i] = 0
	}
}

func (m *MSIX) masked(v int) bool {
	return m.fmask || m.table[v*msixEntrySize+12]&msixVectorMasked != 0
}

func (m *MSIX) send(v int) {
	e := m.table[v*msixEntrySize:]
	addr := binary.LittleEndian.Uint64(e[0:])
	data := binary.LittleEndian.Uint32(e[8:])
	// A delivery failure is the machine's problem to log; the device
	// model has nobody to report it to.
	_ = m.sender.SendMSI(addr, data)
}

func (m *MSIX) deliverPending() {
	if !m.enabled {
		return
	}
	for v := 0; v < m.Vectors(); v++ {
		if m.pba[v/64]&(1<<(v%64)) != 0 && !m.masked(v) {
			m.pba[v/64] &^= 1 << (v % 64)
			m.send(v)
		}
	}
}

// Notify fires vector v: delivered now if unmasked, else left pending. It
// returns false when MSI-X is disabled or v is out of range (the caller then
// falls back to INTx or drops the interrupt).
func (m *MSIX) Notify(v int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.enabled || v < 0 || v >= m.Vectors() {
		return false
	}
	if m.masked(v) {
		m.pba[v/64] |= 1 << (v % 64)
		return true
	}
	m.send(v)
	return true
}

// Pending reports vector v's pending bit.
func (m *MSIX) Pending(v int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return v >= 0 && v < m.Vectors() && m.pba[v/64]&(1<<(v%64)) != 0
}

// Device returns the MMIO device for the MSI-X BAR region (table and PBA at
// their offsets; everything else reads as zero).
func (m *MSIX) Device() devices.Device { return msixBAR{m} }

type msixBAR struct{ m *MSIX }

func (b msixBAR) Read(off uint64, data []byte) {
	m := b.m
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range data {
		data[i] = 0
	}
	if o, ok := within(off, len(data), m.tabOff, uint64(len(m.table))); ok {
		copy(data, m.table[o:])
		return
	}
	pbaBytes := make([]byte, 8*len(m.pba))
	for i, w := range m.pba {
		binary.LittleEndian.PutUint64(pbaBytes[8*i:], w)
	}
	if o, ok := within(off, len(data), m.pbaOff, uint64(len(pbaBytes))); ok {
		copy(data, pbaBytes[o:])
	}
}

func (b msixBAR) Write(off uint64, data []byte) {
	m := b.m
	o, ok := within(off, len(data), m.tabOff, uint64(len(m.table)))
	if !ok {
		return // the PBA is read-only
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	copy(m.table[o:], data)
	// Only bit 0 of vector control is defined; keep the rest zero.
	v := int(o) / msixEntrySize
	m.table[v*msixEntrySize+12] &= msixVectorMasked
	for i := 13; i < 16; i++ {
		m.table[v*msixEntrySize+i] = 0
	}
	m.deliverPending()
}

// within maps an access [off, off+n) onto a region [start, start+size) and
// returns the offset inside it when the access lies entirely inside.
func within(off uint64, n int, start, size uint64) (uint64, bool) {
	if off < start || off-start >= size || uint64(n) > size-(off-start) {
		return 0, false
	}
	return off - start, true
}
