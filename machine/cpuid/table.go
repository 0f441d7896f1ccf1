package cpuid

import (
	"encoding/binary"

	"github.com/govmm/govmm/kvm"
)

// Helpers over a CPUID table as KVM takes it: a flat list of entries keyed
// by (function, index).

// find returns the entry for fn/idx, or nil.
func find(t []kvm.CPUIDEntry, fn, idx uint32) *kvm.CPUIDEntry {
	for i := range t {
		if t[i].Function == fn && t[i].Index == idx {
			return &t[i]
		}
	}
	return nil
}

// reg returns one register of the entry for fn/idx (0 when absent).
func reg(t []kvm.CPUIDEntry, fn, idx uint32, r Reg) uint32 {
	e := find(t, fn, idx)
	if e == nil {
		return 0
	}
	return *regPtr(e, r)
}

func regPtr(e *kvm.CPUIDEntry, r Reg) *uint32 {
	switch r {
	case EAX:
		return &e.EAX
	case EBX:
		return &e.EBX
	case ECX:
		return &e.ECX
	default:
		return &e.EDX
	}
}

// hasSubleaves reports whether a function's output depends on ECX, so its
// entries need KVM_CPUID_FLAG_SIGNIFCANT_INDEX.
func hasSubleaves(fn uint32) bool {
	switch fn {
	case 4, 7, 0xb, 0xd, 0xf, 0x10, 0x12, 0x14, 0x17, 0x18, 0x1d, 0x1e, 0x1f, 0x8000001d:
		return true
	}
	return false
}

// entry makes an entry with the right flags for its function.
func entry(fn, idx uint32, eax, ebx, ecx, edx uint32) kvm.CPUIDEntry {
	e := kvm.CPUIDEntry{Function: fn, Index: idx, EAX: eax, EBX: ebx, ECX: ecx, EDX: edx}
	if hasSubleaves(fn) {
		e.Flags = kvm.CPUIDFlagSignificantIndex
	}
	return e
}

// setReg sets one register of the entry for fn/idx, adding the entry when
// it is missing and the value is not zero (a missing entry reads as zero).
func setReg(t []kvm.CPUIDEntry, fn, idx uint32, r Reg, v uint32) []kvm.CPUIDEntry {
	if e := find(t, fn, idx); e != nil {
		*regPtr(e, r) = v
		return t
	}
	if v == 0 {
		return t
	}
	e := entry(fn, idx, 0, 0, 0, 0)
	*regPtr(&e, r) = v
	return append(t, e)
}

// zeroFunction clears every register of every entry of fn, keeping the
// entries so the guest reads zeros rather than another leaf's data.
func zeroFunction(t []kvm.CPUIDEntry, fn uint32) {
	for i := range t {
		if t[i].Function == fn {
			t[i].EAX, t[i].EBX, t[i].ECX, t[i].EDX = 0, 0, 0, 0
		}
	}
}

// subleaves returns copies of all entries of fn, in table order.
func subleaves(t []kvm.CPUIDEntry, fn uint32) []kvm.CPUIDEntry {
	var out []kvm.CPUIDEntry
	for _, e := range t {
		if e.Function == fn {
			out = append(out, e)
		}
	}
	return out
}

// vendorRegs splits a 12-byte vendor string into EBX, EDX, ECX order.
func vendorRegs(v string) (ebx, edx, ecx uint32) {
	b := []byte(v + "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")[:12]
	return binary.LittleEndian.Uint32(b[0:]), binary.LittleEndian.Uint32(b[4:]), binary.LittleEndian.Uint32(b[8:])
}

// Vendor returns the 12-character vendor string of a CPUID table
// (leaf 0: EBX, EDX, ECX), e.g. "AuthenticAMD" or "GenuineIntel".
func Vendor(t []kvm.CPUIDEntry) string {
	e := find(t, 0, 0)
	if e == nil {
		return ""
	}
	var b [12]byte
	binary.LittleEndian.PutUint32(b[0:], e.EBX)
	binary.LittleEndian.PutUint32(b[4:], e.EDX)
	binary.LittleEndian.PutUint32(b[8:], e.ECX)
	return string(b[:])
}

// brandEntries encodes a processor brand string into leaves
// 0x80000002-0x80000004 (48 bytes, NUL padded).
func brandEntries(s string) []kvm.CPUIDEntry {
	var b [48]byte
	copy(b[:47], s)
	out := make([]kvm.CPUIDEntry, 3)
	for i := range out {
		r := b[i*16:]
		out[i] = entry(0x80000002+uint32(i), 0,
			binary.LittleEndian.Uint32(r[0:]), binary.LittleEndian.Uint32(r[4:]),
			binary.LittleEndian.Uint32(r[8:]), binary.LittleEndian.Uint32(r[12:]))
	}
	return out
}
