package emulate

import (
	"sync/atomic"
	"unsafe"
)

// hostCAS64 compares-and-swaps the 8 bytes of guest memory b with a locked
// host instruction. done is false when b is not 8-byte aligned on the host,
// where the caller falls back to a non-atomic sequence.
func hostCAS64(b []byte, old, nw uint64) (cur uint64, swapped, done bool) {
	if len(b) < 8 || uintptr(unsafe.Pointer(&b[0]))%8 != 0 {
		return 0, false, false
	}
	p := (*uint64)(unsafe.Pointer(&b[0]))
	for {
		cur = atomic.LoadUint64(p)
		if cur != old {
			return cur, false, true
		}
		if atomic.CompareAndSwapUint64(p, old, nw) {
			return old, true, true
		}
	}
}

// hostCAS128 is hostCAS64 for 16 bytes (lock cmpxchg16b on the host); b
// must be 16-byte aligned on the host.
func hostCAS128(b []byte, old, nw [2]uint64) (cur [2]uint64, swapped, done bool) {
	if len(b) < 16 || uintptr(unsafe.Pointer(&b[0]))%16 != 0 || !haveCAS128 {
		return cur, false, false
	}
	p := (*[2]uint64)(unsafe.Pointer(&b[0]))
	cur[0], cur[1], swapped = cas128(p, old[0], old[1], nw[0], nw[1])
	return cur, swapped, true
}

// atomicOr sets bits in the 4- or 8-byte little-endian value b with a
// locked host operation, so that a concurrent update of the same page-table
// entry by another vCPU is not lost. It reports false when b is not
// naturally aligned on the host.
func atomicOr(b []byte, bits uint64) bool {
	switch {
	case len(b) == 8 && uintptr(unsafe.Pointer(&b[0]))%8 == 0:
		atomic.OrUint64((*uint64)(unsafe.Pointer(&b[0])), bits)
		return true
	case len(b) == 4 && uintptr(unsafe.Pointer(&b[0]))%4 == 0:
		atomic.OrUint32((*uint32)(unsafe.Pointer(&b[0])), uint32(bits))
		return true
	}
	return false
}
