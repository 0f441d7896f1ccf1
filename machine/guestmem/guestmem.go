// Package guestmem is guest physical memory as the VMM sees it: a set of
// host mappings at guest-physical addresses, with bounds-checked accessors.
// Device code never does pointer arithmetic on guest addresses; a bad guest
// address is an error for that request, never a crash of the VMM.
package guestmem

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// ErrOutOfRange is returned (wrapped) when a guest address range is not
// entirely backed by guest RAM.
var ErrOutOfRange = errors.New("guest address out of range")

// Region is one contiguous block of guest RAM.
type Region struct {
	GPA  uint64 // guest-physical start
	Data []byte // host backing; len(Data) is the size
}

// Memory is the guest's RAM: non-overlapping regions sorted by GPA.
// Its methods are safe for concurrent use as long as no region is added
// concurrently (regions are fixed once the machine runs).
type Memory struct {
	regions []Region
}

// New returns a Memory over the given regions. Overlapping or empty regions
// are refused.
func New(regions ...Region) (*Memory, error) {
	m := &Memory{}
	for _, r := range regions {
		if err := m.Add(r); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Add inserts one region.
func (m *Memory) Add(r Region) error {
	if len(r.Data) == 0 {
		return fmt.Errorf("guestmem: empty region at %#x", r.GPA)
	}
	end := r.GPA + uint64(len(r.Data))
	if end < r.GPA {
		return fmt.Errorf("guestmem: region at %#x wraps", r.GPA)
	}
	for _, o := range m.regions {
		oend := o.GPA + uint64(len(o.Data))
		if r.GPA < oend && o.GPA < end {
			return fmt.Errorf("guestmem: region [%#x,%#x) overlaps [%#x,%#x)", r.GPA, end, o.GPA, oend)
		}
	}
	m.regions = append(m.regions, r)
	sort.Slice(m.regions, func(i, j int) bool { return m.regions[i].GPA < m.regions[j].GPA })
	return nil
}

// Regions returns the regions, sorted by address. The caller must not modify the slice.
func (m *Memory) Regions() []Region { return m.regions }

// Size is the total RAM in bytes.
func (m *Memory) Size() uint64 {
	var n uint64
	for _, r := range m.regions {
		n += uint64(len(r.Data))
	}
	return n
}

// Slice returns the host bytes backing [gpa, gpa+n). The range must lie
// within one region. The returned slice aliases guest memory: the guest may
// change it at any time, so callers copy what they validate.
func (m *Memory) Slice(gpa, n uint64) ([]byte, error) {
	if gpa+n < gpa {
		return nil, fmt.Errorf("%w: [%#x,+%#x) wraps", ErrOutOfRange, gpa, n)
	}
	// Binary search for the last region starting at or below gpa.
	i := sort.Search(len(m.regions), func(i int) bool { return m.regions[i].GPA > gpa }) - 1
	if i >= 0 {
		r := m.regions[i]
		off := gpa - r.GPA
		if off <= uint64(len(r.Data)) && n <= uint64(len(r.Data))-off {
			return r.Data[off : off+n : off+n], nil
		}
	}
	return nil, fmt.Errorf("%w: [%#x,+%#x)", ErrOutOfRange, gpa, n)
}

// ReadAt copies guest memory at gpa into p.
func (m *Memory) ReadAt(p []byte, gpa uint64) error {
	s, err := m.Slice(gpa, uint64(len(p)))
	if err != nil {
		return err
	}
	copy(p, s)
	return nil
}

// WriteAt copies p into guest memory at gpa.
func (m *Memory) WriteAt(p []byte, gpa uint64) error {
	s, err := m.Slice(gpa, uint64(len(p)))
	if err != nil {
		return err
	}
	copy(s, p)
	return nil
}

// Uint16 reads a little-endian 16-bit value.
func (m *Memory) Uint16(gpa uint64) (uint16, error) {
	s, err := m.Slice(gpa, 2)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(s), nil
}

// Uint32 reads a little-endian 32-bit value.
func (m *Memory) Uint32(gpa uint64) (uint32, error) {
	s, err := m.Slice(gpa, 4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(s), nil
}

// Uint64 reads a little-endian 64-bit value.
func (m *Memory) Uint64(gpa uint64) (uint64, error) {
	s, err := m.Slice(gpa, 8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(s), nil
}

// PutUint16 writes a little-endian 16-bit value.
func (m *Memory) PutUint16(gpa uint64, v uint16) error {
	s, err := m.Slice(gpa, 2)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint16(s, v)
	return nil
}

// PutUint32 writes a little-endian 32-bit value.
func (m *Memory) PutUint32(gpa uint64, v uint32) error {
	s, err := m.Slice(gpa, 4)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(s, v)
	return nil
}

// PutUint64 writes a little-endian 64-bit value.
func (m *Memory) PutUint64(gpa uint64, v uint64) error {
	s, err := m.Slice(gpa, 8)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(s, v)
	return nil
}
