package cpuid

import (
	"os"
	"testing"

	"github.com/govmm/govmm/kvm"
)

// pvmEPYC is KVM_GET_SUPPORTED_CPUID as captured on the project's machines
// (AMD EPYC under PVM): no SSE3, SSE4, XSAVE, AVX or SVM in leaf 1 and 7,
// which is why QEMU warns about "pni" for -cpu qemu64 there.
var pvmEPYC = []kvm.CPUIDEntry{
	{Function: 0x00000000, Index: 0, Flags: 0, EAX: 0x0000001c, EBX: 0x68747541, ECX: 0x444d4163, EDX: 0x69746e65},
	{Function: 0x00000001, Index: 0, Flags: 0, EAX: 0x00a10f11, EBX: 0x01020800, ECX: 0x81202000, EDX: 0x078bfbff},
	{Function: 0x00000002, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x00000003, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x00000004, Index: 0, Flags: 1, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x00000005, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x00000006, Index: 0, Flags: 0, EAX: 0x00000004, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x00000007, Index: 0, Flags: 1, EAX: 0x00000001, EBX: 0x01800002, ECX: 0x00000104, EDX: 0x20000000},
	{Function: 0x00000007, Index: 1, Flags: 1, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x00000008, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x00000009, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x0000000a, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x0000000b, Index: 0, Flags: 1, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000001},
	{Function: 0x0000000c, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x0000000d, Index: 0, Flags: 1, EAX: 0x000000e7, EBX: 0x00000980, ECX: 0x00000980, EDX: 0x00000000},
	{Function: 0x0000000d, Index: 1, Flags: 1, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x0000000d, Index: 2, Flags: 1, EAX: 0x00000100, EBX: 0x00000240, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x0000000d, Index: 5, Flags: 1, EAX: 0x00000040, EBX: 0x00000340, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x0000000d, Index: 6, Flags: 1, EAX: 0x00000200, EBX: 0x00000380, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x0000000d, Index: 7, Flags: 1, EAX: 0x00000400, EBX: 0x00000580, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x0000000e, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x0000000f, Index: 0, Flags: 1, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x00000010, Index: 0, Flags: 1, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x00000011, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x00000012, Index: 0, Flags: 1, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x00000013, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x00000014, Index: 0, Flags: 1, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x00000015, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x00000016, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x00000017, Index: 0, Flags: 1, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x00000018, Index: 0, Flags: 1, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x00000019, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x0000001a, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x0000001b, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x0000001c, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x80000000, Index: 0, Flags: 0, EAX: 0x80000021, EBX: 0x68747541, ECX: 0x444d4163, EDX: 0x69746e65},
	{Function: 0x80000001, Index: 0, Flags: 0, EAX: 0x00a10f11, EBX: 0x40000000, ECX: 0x00400393, EDX: 0x23d3fbff},
	{Function: 0x80000002, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x80000003, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x80000004, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x80000005, Index: 0, Flags: 0, EAX: 0xff48ff40, EBX: 0xff48ff40, ECX: 0x20080140, EDX: 0x20080140},
	{Function: 0x80000006, Index: 0, Flags: 0, EAX: 0x5c002200, EBX: 0x6c004200, ECX: 0x04006140, EDX: 0x0a009140},
	{Function: 0x80000007, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000100},
	{Function: 0x80000008, Index: 0, Flags: 0, EAX: 0x00003030, EBX: 0x50020005, ECX: 0x00007001, EDX: 0x00000000},
	{Function: 0x80000009, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x8000000a, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x8000000b, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x8000000c, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x8000000d, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x8000000e, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x8000000f, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x80000010, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x80000011, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x80000012, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x80000013, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x80000014, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x80000015, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x80000016, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x80000017, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x80000018, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x80000019, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x8000001a, Index: 0, Flags: 0, EAX: 0x00000006, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x8000001b, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x8000001c, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x8000001d, Index: 0, Flags: 1, EAX: 0x00000121, EBX: 0x01c0003f, ECX: 0x0000003f, EDX: 0x00000000},
	{Function: 0x8000001d, Index: 1, Flags: 1, EAX: 0x00000122, EBX: 0x01c0003f, ECX: 0x0000003f, EDX: 0x00000000},
	{Function: 0x8000001d, Index: 2, Flags: 1, EAX: 0x00000143, EBX: 0x01c0003f, ECX: 0x000007ff, EDX: 0x00000002},
	{Function: 0x8000001d, Index: 3, Flags: 1, EAX: 0x00004163, EBX: 0x03c0003f, ECX: 0x00007fff, EDX: 0x00000001},
	{Function: 0x8000001d, Index: 4, Flags: 1, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x8000001e, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x8000001f, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x80000020, Index: 0, Flags: 0, EAX: 0x00000000, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
	{Function: 0x80000021, Index: 0, Flags: 0, EAX: 0x00000204, EBX: 0x00000000, ECX: 0x00000006, EDX: 0x00000000},
	{Function: 0x40000000, Index: 0, Flags: 0, EAX: 0x40000001, EBX: 0x4b4d564b, ECX: 0x564b4d56, EDX: 0x0000004d},
	{Function: 0x40000001, Index: 0, Flags: 0, EAX: 0x01007efb, EBX: 0x00000000, ECX: 0x00000000, EDX: 0x00000000},
}

// fakeIntel is a made-up Intel host with XSAVE/AVX/PKU and the usual
// modern features, to exercise paths the PVM table cannot.
var fakeIntel = func() []kvm.CPUIDEntry {
	vb, vd, vc := vendorRegs("GenuineIntel")
	kb, kc, kd := vendorRegs("KVMKVMKVM")
	t := []kvm.CPUIDEntry{
		{Function: 0, EAX: 0xd, EBX: vb, ECX: vc, EDX: vd},
		{Function: 1, EAX: 0x000506e3, EBX: 0x00100800,
			ECX: namedBits(w1ECX, "pni", "pclmulqdq", "ssse3", "fma", "cx16", "pcid", "sse4.1", "sse4.2",
				"x2apic", "movbe", "popcnt", "aes", "xsave", "avx", "f16c", "rdrand"),
			EDX: 0x0f8bfbff},
		{Function: 2, EAX: 0x00feff01, EDX: 0x00c30000},
		{Function: 4, Index: 0, Flags: 1, EAX: 0x1c004121, EBX: 0x01c0003f, ECX: 0x3f},
		{Function: 4, Index: 1, Flags: 1, EAX: 0x1c004122, EBX: 0x01c0003f, ECX: 0x3f},
		{Function: 5, EAX: 0x40, EBX: 0x40, ECX: 3, EDX: 0x11142120},
		{Function: 6, EAX: 4},
		{Function: 7, Index: 0, Flags: 1, EAX: 0,
			EBX: namedBits(w7_0EBX, "fsgsbase", "bmi1", "avx2", "smep", "bmi2", "erms", "invpcid",
				"rdseed", "adx", "smap", "clflushopt", "intel-pt"),
			ECX: namedBits(w7_0ECX, "umip", "pku", "la57"),
			EDX: namedBits(w7_0EDX, "md-clear", "spec-ctrl", "stibp", "arch-capabilities", "ssbd")},
		{Function: 0xb, Index: 0, Flags: 1, EAX: 1, EBX: 2, ECX: 0x100},
		{Function: 0xb, Index: 1, Flags: 1, EAX: 4, EBX: 8, ECX: 0x201},
		{Function: 0xd, Index: 0, Flags: 1, EAX: 0x207, EBX: 0x340, ECX: 0xa88},
		{Function: 0xd, Index: 1, Flags: 1, EAX: 0xf},
		{Function: 0xd, Index: 2, Flags: 1, EAX: 0x100, EBX: 0x240},
		{Function: 0xd, Index: 9, Flags: 1, EAX: 8, EBX: 0xa80},
		{Function: 0x14, Index: 0, Flags: 1, EAX: 1, EBX: 0xf, ECX: 0x80000007},
		{Function: 0x14, Index: 1, Flags: 1, EAX: 0x02490002, EBX: 0x003f3fff},
		{Function: 0x40000000, EAX: 0x40000001, EBX: kb, ECX: kc, EDX: kd},
		{Function: 0x40000001, EAX: 0x01007efb},
		{Function: 0x80000000, EAX: 0x80000008},
		{Function: 0x80000001,
			ECX: namedBits(w8000_0001ECX, "lahf-lm", "abm", "3dnowprefetch"),
			EDX: namedBits(w8000_0001EDX, "syscall", "nx", "pdpe1gb", "rdtscp", "lm")},
		{Function: 0x80000006, ECX: 0x01006040},
		{Function: 0x80000007, EDX: 0x100},
		{Function: 0x80000008, EAX: 0x3927},
	}
	return append(t, brandEntries("Intel(R) Fake CPU @ 2.00GHz")...)
}()

// namedBits ORs the bits of word w with the given QEMU names.
func namedBits(w wordID, names ...string) uint32 {
	var v uint32
	for _, n := range names {
		found := false
		for b, wn := range words[w].names {
			if wn == n {
				v |= 1 << b
				found = true
			}
		}
		if !found {
			panic("no feature " + n + " in word")
		}
	}
	return v
}

// hostSupported returns this host's KVM_GET_SUPPORTED_CPUID, skipping the
// test where /dev/kvm is missing.
func hostSupported(t *testing.T) []kvm.CPUIDEntry {
	t.Helper()
	if _, err := os.Stat(kvm.DevicePath); err != nil {
		t.Skipf("no %s: %v", kvm.DevicePath, err)
	}
	s, err := kvm.Open()
	if err != nil {
		t.Skipf("kvm: %v", err)
	}
	defer s.Close()
	ents, err := s.SupportedCPUID()
	if err != nil {
		t.Fatal(err)
	}
	return ents
}
