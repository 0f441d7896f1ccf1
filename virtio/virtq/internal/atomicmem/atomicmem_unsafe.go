// Package atomicmem reads and writes the 16-bit ring indices and flags that
// the driver and the device share, with atomic 32-bit operations on the
// containing aligned word. That keeps the compiler from tearing or
// reordering them, and gives the (release, acquire) ordering the virtio
// memory model needs: buffers and ring entries written before an index
// store are visible to whoever loads that index. Where the word cannot be
// used atomically (odd address, word outside RAM, misaligned host memory)
// it falls back to a plain access.
package atomicmem

import (
	"sync/atomic"
	"unsafe"

	"github.com/govmm/govmm/machine/guestmem"
)

func word(mem *guestmem.Memory, gpa uint64) (*uint32, uint, bool) {
	if gpa%2 != 0 {
		return nil, 0, false
	}
	s, err := mem.Slice(gpa&^3, 4)
	if err != nil {
		return nil, 0, false
	}
	p := unsafe.Pointer(&s[0])
	if uintptr(p)%4 != 0 {
		return nil, 0, false
	}
	// Guest memory is little-endian, as is every host this runs on.
	return (*uint32)(p), uint(gpa&3) * 8, true
}

// Load16 atomically loads the little-endian uint16 at gpa.
func Load16(mem *guestmem.Memory, gpa uint64) (uint16, error) {
	p, shift, ok := word(mem, gpa)
	if !ok {
		return mem.Uint16(gpa)
	}
	return uint16(atomic.LoadUint32(p) >> shift), nil
}

// Store16 atomically stores v as the little-endian uint16 at gpa, leaving
// the other half of the word as it is.
func Store16(mem *guestmem.Memory, gpa uint64, v uint16) error {
	p, shift, ok := word(mem, gpa)
	if !ok {
		return mem.PutUint16(gpa, v)
	}
	for {
		old := atomic.LoadUint32(p)
		nw := old&^(0xFFFF<<shift) | uint32(v)<<shift
		if atomic.CompareAndSwapUint32(p, old, nw) {
			return nil
		}
	}
}
