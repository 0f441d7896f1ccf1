package cpuid

import (
	"encoding/binary"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/govmm/govmm/kvm"
)

func mustApply(t *testing.T, sup []kvm.CPUIDEntry, model string, feats ...Feature) ([]kvm.CPUIDEntry, []string) {
	t.Helper()
	out, warns, err := Apply(sup, model, feats)
	if err != nil {
		t.Fatalf("Apply(%s, %v): %v", model, feats, err)
	}
	return out, warns
}

func get(t *testing.T, tab []kvm.CPUIDEntry, fn, idx uint32) kvm.CPUIDEntry {
	t.Helper()
	e := find(tab, fn, idx)
	if e == nil {
		t.Fatalf("no CPUID entry %#x.%d", fn, idx)
	}
	return *e
}

// plus, minus and on build feature lists as the CLI does.
func plus(n string) Feature  { return Feature{Name: n, On: true, Legacy: true} }
func minus(n string) Feature { return Feature{Name: n, On: false, Legacy: true} }
func on(n string) Feature    { return Feature{Name: n, On: true} }
func off(n string) Feature   { return Feature{Name: n, On: false} }

func warning(desc string) string { return "host doesn't support requested feature: " + desc }

func TestQEMU64Identity(t *testing.T) {
	for name, sup := range map[string][]kvm.CPUIDEntry{"pvm": pvmEPYC, "intel": fakeIntel} {
		t.Run(name, func(t *testing.T) {
			out, _ := mustApply(t, sup, ModelQEMU64)
			if v := Vendor(out); v != "AuthenticAMD" {
				t.Errorf("vendor %q, want AuthenticAMD", v)
			}
			if l := get(t, out, 0, 0).EAX; l != 0xd {
				t.Errorf("max leaf %#x, want 0xd", l)
			}
			l1 := get(t, out, 1, 0)
			if l1.EAX != 0x00060fb1 {
				t.Errorf("leaf 1 EAX %#x, want 0x00060fb1", l1.EAX)
			}
			// Decode as a guest does: family 15 (+ext 0), model 0x6<<4|0xb.
			fam := (l1.EAX >> 8) & 0xf
			if fam == 0xf {
				fam += (l1.EAX >> 20) & 0xff
			}
			model := (l1.EAX>>4)&0xf | (l1.EAX>>16)&0xf<<4
			if fam != 15 || model != 107 || l1.EAX&0xf != 1 {
				t.Errorf("family/model/stepping %d/%d/%d, want 15/107/1", fam, model, l1.EAX&0xf)
			}
			if l1.EBX != 0x800 {
				t.Errorf("leaf 1 EBX %#x, want CLFLUSH size 8 only", l1.EBX)
			}
			ext := get(t, out, 0x80000000, 0)
			if ext.EAX != 0x8000000a {
				t.Errorf("max extended leaf %#x", ext.EAX)
			}
			if ext.EBX != l0(out).EBX || ext.ECX != l0(out).ECX || ext.EDX != l0(out).EDX {
				t.Errorf("0x80000000 vendor differs from leaf 0")
			}
			if e := get(t, out, 0x80000001, 0); e.EAX != 0x00060fb1 {
				t.Errorf("0x80000001 EAX %#x", e.EAX)
			}
			if b := brand(t, out); b != "QEMU Virtual CPU version 2.5+" {
				t.Errorf("brand %q", b)
			}
			for _, e := range out {
				if e.Function > 0xd && e.Function < 0x40000000 || e.Function > 0x8000000a {
					t.Errorf("leaf %#x beyond the model's levels", e.Function)
				}
			}
		})
	}
}

func l0(tab []kvm.CPUIDEntry) kvm.CPUIDEntry { return *find(tab, 0, 0) }

func brand(t *testing.T, tab []kvm.CPUIDEntry) string {
	var b []byte
	for fn := uint32(0x80000002); fn <= 0x80000004; fn++ {
		e := get(t, tab, fn, 0)
		for _, r := range []uint32{e.EAX, e.EBX, e.ECX, e.EDX} {
			b = binary.LittleEndian.AppendUint32(b, r)
		}
	}
	s, _, _ := strings.Cut(string(b), "\x00")
	return s
}

// The values a real QEMU 7.2 guest reads under -M pc -cpu qemu64 on the
// project's machines, for the leaves PVM does not leak host bits into.
func TestQEMU64MatchesQEMUGuest(t *testing.T) {
	out, _ := mustApply(t, pvmEPYC, ModelQEMU64)
	want := map[[2]uint32][4]uint32{
		{0, 0}:          {0xd, 0x68747541, 0x444d4163, 0x69746e65},
		{2, 0}:          {0, 0, 0, 0},
		{4, 0}:          {0, 0, 0, 0},
		{5, 0}:          {0, 0, 3, 0},
		{6, 0}:          {0, 0, 0, 0},
		{0x40000000, 0}: {0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d},
		{0x40000001, 0}: {0x0100007b, 0, 0, 0},
		{0x80000000, 0}: {0x8000000a, 0x68747541, 0x444d4163, 0x69746e65},
		{0x80000001, 0}: {0x00060fb1, 0, 0x00000001, 0x2193fbfd},
		{0x80000002, 0}: {0x554d4551, 0x72695620, 0x6c617574, 0x55504320},
		{0x80000003, 0}: {0x72657620, 0x6e6f6973, 0x352e3220, 0x0000002b},
		{0x80000004, 0}: {0, 0, 0, 0},
		{0x80000005, 0}: {0x01ff01ff, 0x01ff01ff, 0x40020140, 0x40020140},
		{0x80000006, 0}: {0, 0x42004200, 0x02008140, 0x00808140},
		{0x80000007, 0}: {0, 0, 0, 0},
		{0x80000008, 0}: {0x00003028, 0, 0, 0},
		{0x8000000a, 0}: {0, 0, 0, 0},
	}
	for k, w := range want {
		e := get(t, out, k[0], k[1])
		if got := [4]uint32{e.EAX, e.EBX, e.ECX, e.EDX}; got != w {
			t.Errorf("leaf %#x.%d = %08x, want %08x", k[0], k[1], got, w)
		}
	}
	// Leaf 1 features: PVM leaks host bits into what the guest reads, so
	// check against QEMU's definition instead.
	l1 := get(t, out, 1, 0)
	if l1.EDX != 0x078bfbfd {
		t.Errorf("leaf 1 EDX %#x, want 0x078bfbfd (PPRO|MTRR|CLFLUSH|MCA|PSE36)", l1.EDX)
	}
	if l1.ECX != bitCX16|bitX2APIC|bitHV { // pni dropped: PVM's KVM lacks it
		t.Errorf("leaf 1 ECX %#x", l1.ECX)
	}
}

func TestQEMU64WarningsOnPVM(t *testing.T) {
	_, warns := mustApply(t, pvmEPYC, ModelQEMU64)
	want := []string{warning("CPUID.01H:ECX.pni [bit 0]")}
	if diff := cmp.Diff(want, warns); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

func TestQEMU64MasksHostFeatures(t *testing.T) {
	out, warns := mustApply(t, fakeIntel, ModelQEMU64)
	if len(warns) != 0 {
		t.Errorf("warnings on a host with everything: %q", warns)
	}
	l1 := get(t, out, 1, 0)
	if want := uint32(bitPNI | bitCX16 | bitX2APIC | bitHV); l1.ECX != want {
		t.Errorf("leaf 1 ECX %#x, want %#x (no avx, aes, ... though KVM has them)", l1.ECX, want)
	}
	l7 := get(t, out, 7, 0)
	if l7.EAX|l7.EBX|l7.ECX|l7.EDX != 0 {
		t.Errorf("leaf 7 not empty: %+v", l7)
	}
	if e := get(t, out, 0xd, 0); e.EAX|e.EBX|e.ECX|e.EDX != 0 {
		t.Errorf("leaf 0xd without xsave: %+v", e)
	}
	if e := get(t, out, 0x80000001, 0); e.ECX != bitLAHF {
		t.Errorf("0x80000001 ECX %#x: svm is off by default under KVM, abm not in the model", e.ECX)
	}
	if e := get(t, out, 0x80000007, 0); e.EDX != 0 {
		t.Errorf("invtsc leaked: %#x", e.EDX)
	}
	if find(out, 0x14, 0) != nil {
		t.Errorf("leaf 0x14 present above the model's level")
	}
}

func TestOverrides(t *testing.T) {
	bit := func(tab []kvm.CPUIDEntry, name string) bool {
		fn, idx, r, b, ok := Lookup(name)
		if !ok {
			t.Fatalf("Lookup(%q) failed", name)
		}
		return reg(tab, fn, idx, r)&(1<<b) != 0
	}
	tests := []struct {
		name  string
		sup   []kvm.CPUIDEntry
		model string
		feats []Feature
		set   []string
		clear []string
		warns []string
	}{
		{"plus supported", fakeIntel, ModelQEMU64, []Feature{plus("avx2"), plus("smep"), on("aes")},
			[]string{"avx2", "smep", "aes"}, nil, nil},
		{"plus unsupported", pvmEPYC, ModelQEMU64, []Feature{plus("avx2"), plus("smep"), plus("vmx")},
			nil, []string{"avx2", "smep", "vmx"}, []string{
				warning("CPUID.01H:ECX.pni [bit 0]"),
				warning("CPUID.01H:ECX.vmx [bit 5]"),
				warning("CPUID.07H:EBX.avx2 [bit 5]"),
				warning("CPUID.07H:EBX.smep [bit 7]"),
			}},
		{"minus", fakeIntel, ModelQEMU64, []Feature{minus("lm"), off("nx"), minus("x2apic"), minus("hypervisor")},
			nil, []string{"lm", "nx", "x2apic", "hypervisor"}, nil},
		{"minus on host", fakeIntel, ModelHost, []Feature{minus("avx2"), off("sse4.2")},
			[]string{"avx", "hypervisor", "tsc-deadline", "arat"}, []string{"avx2", "sse4.2"}, nil},
		{"alias sse3", pvmEPYC, ModelQEMU64, []Feature{off("sse3")}, nil, []string{"pni"}, nil},
		{"aliases underscore", fakeIntel, ModelQEMU64, []Feature{plus("sse4_1"), plus("sse4-2"), minus("lahf_lm"), plus("pclmuldq"), minus("i64"), minus("xd")},
			[]string{"sse4.1", "sse4.2", "pclmulqdq"}, []string{"lahf-lm", "lm", "nx"}, nil},
		{"legacy plus beats property", fakeIntel, ModelQEMU64, []Feature{plus("avx2"), off("avx2")},
			[]string{"avx2"}, nil, nil},
		{"legacy minus beats plus", fakeIntel, ModelQEMU64, []Feature{minus("avx2"), plus("avx2")},
			nil, []string{"avx2"}, nil},
		{"properties: last wins", fakeIntel, ModelQEMU64, []Feature{on("avx2"), off("avx2"), on("smep"), off("smep"), on("smep")},
			[]string{"smep"}, []string{"avx2"}, nil},
		{"kvm pv", pvmEPYC, ModelQEMU64, []Feature{plus("kvm-pv-ipi"), minus("kvm-steal-time"), plus("kvm-mmu")},
			[]string{"kvm-pv-ipi", "kvmclock"}, []string{"kvm-steal-time", "kvm-mmu"},
			[]string{warning("CPUID.01H:ECX.pni [bit 0]"), warning("CPUID.40000001H:EAX.kvm-mmu [bit 2]")}},
		{"invtsc", fakeIntel, ModelQEMU64, []Feature{plus("invtsc")}, []string{"invtsc"}, nil, nil},
		{"msr feature ignored", fakeIntel, ModelQEMU64, []Feature{plus("vmx-ept"), off("tsx-ctrl")}, nil, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, warns := mustApply(t, tc.sup, tc.model, tc.feats...)
			for _, n := range tc.set {
				if !bit(out, n) {
					t.Errorf("%s not set", n)
				}
			}
			for _, n := range tc.clear {
				if bit(out, n) {
					t.Errorf("%s not cleared", n)
				}
			}
			if diff := cmp.Diff(tc.warns, warns); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKVMClockIsTwoBits(t *testing.T) {
	out, _ := mustApply(t, fakeIntel, ModelQEMU64)
	if e := get(t, out, 0x40000001, 0); e.EAX&0b1001 != 0b1001 {
		t.Fatalf("kvmclock bits not both on by default: %#x", e.EAX)
	}
	out, _ = mustApply(t, fakeIntel, ModelQEMU64, minus("kvmclock"))
	if e := get(t, out, 0x40000001, 0); e.EAX&0b1001 != 0 {
		t.Errorf("-kvmclock left %#x", e.EAX)
	}
}

func TestDependencyWarnings(t *testing.T) {
	// Seen from QEMU 7.2 on the project's machines.
	_, warns := mustApply(t, pvmEPYC, ModelQEMU64, plus("npt"))
	want := []string{
		"This feature depends on other features that were not requested: CPUID.8000000AH:EDX.npt [bit 0]",
		warning("CPUID.01H:ECX.pni [bit 0]"),
	}
	if diff := cmp.Diff(want, warns); diff != "" {
		t.Errorf("+npt (-want +got):\n%s", diff)
	}
	_, warns = mustApply(t, pvmEPYC, ModelQEMU64, plus("svm"), plus("npt"))
	want = []string{
		warning("CPUID.01H:ECX.pni [bit 0]"),
		warning("CPUID.80000001H:ECX.svm [bit 2]"),
		warning("CPUID.8000000AH:EDX.npt [bit 0]"),
	}
	if diff := cmp.Diff(want, warns); diff != "" {
		t.Errorf("+svm,+npt (-want +got):\n%s", diff)
	}
}

func TestSVMLeaf(t *testing.T) {
	sup := slices.Clone(fakeIntel)
	find(sup, 0x80000001, 0).ECX |= bitSVM
	sup = append(sup, kvm.CPUIDEntry{Function: 0x8000000a, EAX: 1, EBX: 0x8000, EDX: namedBits(wSVM, "npt", "nrip-save")})
	out, warns := mustApply(t, sup, ModelQEMU64, plus("svm"), plus("npt"), plus("avic"))
	if diff := cmp.Diff([]string{warning("CPUID.8000000AH:EDX.avic [bit 13]")}, warns); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	e := get(t, out, 0x8000000a, 0)
	if want := (kvm.CPUIDEntry{Function: 0x8000000a, EAX: 1, EBX: 0x10, EDX: 1}); e != want {
		t.Errorf("SVM leaf %+v, want %+v", e, want)
	}
	out, _ = mustApply(t, sup, ModelHost, minus("svm"))
	if e := get(t, out, 0x8000000a, 0); e.EAX|e.EBX|e.ECX|e.EDX != 0 {
		t.Errorf("host -svm: SVM leaf not cleared: %+v", e)
	}
}

func TestXSAVE(t *testing.T) {
	t.Run("host -xsave clears leaf 0xd", func(t *testing.T) {
		out, _ := mustApply(t, fakeIntel, ModelHost, minus("xsave"))
		for _, e := range out {
			if e.Function == 0xd && e.EAX|e.EBX|e.ECX|e.EDX != 0 {
				t.Errorf("leaf 0xd.%d not cleared: %+v", e.Index, e)
			}
		}
	})
	t.Run("host -avx drops the YMM component", func(t *testing.T) {
		out, _ := mustApply(t, fakeIntel, ModelHost, minus("avx"))
		e := get(t, out, 0xd, 0)
		if e.EAX != 0x203 { // x87, SSE, PKRU
			t.Errorf("XCR0 mask %#x, want 0x203", e.EAX)
		}
		if e.ECX != 0xa88 { // PKRU ends at 0xa80+8
			t.Errorf("XSAVE size %#x, want 0xa88", e.ECX)
		}
		if y := get(t, out, 0xd, 2); y.EAX != 0 {
			t.Errorf("YMM sub-leaf kept: %+v", y)
		}
		if p := get(t, out, 0xd, 9); p.EAX != 8 {
			t.Errorf("PKRU sub-leaf lost: %+v", p)
		}
	})
	t.Run("host as is", func(t *testing.T) {
		out, _ := mustApply(t, fakeIntel, ModelHost)
		if e := get(t, out, 0xd, 0); e.EAX != 0x207 || e.ECX != 0xa88 {
			t.Errorf("leaf 0xd.0 %+v", e)
		}
	})
	t.Run("qemu64 +xsave,+avx", func(t *testing.T) {
		out, warns := mustApply(t, fakeIntel, ModelQEMU64, plus("xsave"), plus("avx"), plus("xsaveopt"))
		if len(warns) != 0 {
			t.Errorf("warnings: %q", warns)
		}
		e0, e1 := get(t, out, 0xd, 0), get(t, out, 0xd, 1)
		if e0.EAX != 0x7 || e0.EBX != 0x340 || e0.ECX != 0x340 || e0.EDX != 0 {
			t.Errorf("leaf 0xd.0 %+v, want x87|SSE|YMM, 0x340 bytes", e0)
		}
		if e1.EAX != 1 {
			t.Errorf("leaf 0xd.1 EAX %#x, want xsaveopt", e1.EAX)
		}
		if y := get(t, out, 0xd, 2); y.EAX != 0x100 || y.EBX != 0x240 {
			t.Errorf("YMM sub-leaf %+v", y)
		}
		if find(out, 0xd, 9) != nil {
			t.Errorf("PKRU sub-leaf present without pku")
		}
	})
	t.Run("components KVM lacks warn as QEMU does", func(t *testing.T) {
		// On PVM, QEMU 7.2 prints these for +xsave,+mpx,+pku.
		_, warns := mustApply(t, pvmEPYC, ModelQEMU64, plus("xsave"), plus("mpx"), plus("pku"))
		want := []string{
			warning("CPUID.01H:ECX.pni [bit 0]"),
			warning("CPUID.01H:ECX.xsave [bit 26]"),
			warning("CPUID.07H:EBX.mpx [bit 14]"),
			warning("CPUID.07H:ECX.pku [bit 3]"),
			warning("CPUID.0DH:EAX [bit 3]"),
			warning("CPUID.0DH:EAX [bit 4]"),
			warning("CPUID.0DH:EAX [bit 9]"),
		}
		if diff := cmp.Diff(want, warns); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}

func TestHostKeepsTable(t *testing.T) {
	in := slices.Clone(fakeIntel)
	out, warns := mustApply(t, in, ModelMax)
	if len(warns) != 0 {
		t.Errorf("warnings: %q", warns)
	}
	if diff := cmp.Diff(fakeIntel, in); diff != "" {
		t.Fatalf("input modified:\n%s", diff)
	}
	// Everything but the bits QEMU adds for -cpu host and the XSAVE area
	// sizes QEMU computes (for all enabled components, standard and
	// compacted) is KVM's.
	want := slices.Clone(fakeIntel)
	find(want, 1, 0).ECX |= bitHV | bitTSCDL
	find(want, 0xd, 0).EBX = 0xa88
	find(want, 0xd, 1).EBX = 0x240 + 0x100 + 8
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("host table (-want +got):\n%s", diff)
	}
}

func TestLA57OffNarrowsLinearAddresses(t *testing.T) {
	out, _ := mustApply(t, fakeIntel, ModelHost, minus("la57"))
	if e := get(t, out, 0x80000008, 0); e.EAX != 0x3027 {
		t.Errorf("0x80000008 EAX %#x, want 0x3027", e.EAX)
	}
	out, _ = mustApply(t, fakeIntel, ModelQEMU64, plus("la57"))
	if e := get(t, out, 0x80000008, 0); e.EAX != 0x3928 {
		t.Errorf("qemu64,+la57: 0x80000008 EAX %#x, want 0x3928", e.EAX)
	}
	out, _ = mustApply(t, fakeIntel, ModelQEMU64, minus("lm"))
	if e := get(t, out, 0x80000008, 0); e.EAX != 36 {
		t.Errorf("qemu64,-lm: 0x80000008 EAX %#x, want 36 (seen in QEMU)", e.EAX)
	}
}

func TestIntelPTRaisesLevel(t *testing.T) {
	out, warns := mustApply(t, fakeIntel, ModelQEMU64, plus("intel-pt"))
	if len(warns) != 0 {
		t.Errorf("warnings %q", warns)
	}
	if l := get(t, out, 0, 0).EAX; l != 0x14 {
		t.Errorf("level %#x, want 0x14", l)
	}
	if e := get(t, out, 0x14, 1); e.EAX != 0x02490002 {
		t.Errorf("leaf 0x14.1 %+v", e)
	}
	// intel-pt-lip needs intel-pt (QEMU's warning, seen on PVM).
	_, warns = mustApply(t, pvmEPYC, ModelQEMU64, plus("intel-pt-lip"))
	want := []string{
		"This feature depends on other features that were not requested: CPUID.14H:ECX.intel-pt-lip [bit 31]",
		warning("CPUID.01H:ECX.pni [bit 0]"),
	}
	if diff := cmp.Diff(want, warns); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestErrors(t *testing.T) {
	if _, _, err := Apply(fakeIntel, "qemu64", []Feature{plus("nosuchfeat")}); err == nil {
		t.Error("unknown feature accepted")
	}
	if _, _, err := Apply(fakeIntel, "vmx-", nil); err == nil {
		t.Error("unknown model accepted")
	}
	if _, _, err := Apply(fakeIntel, "qemu64", []Feature{plus("vmx-nosuch")}); err == nil {
		t.Error("unknown vmx- feature accepted")
	}
	if _, _, err := Apply(nil, "host", nil); err != nil {
		t.Errorf("empty table: %v", err)
	}
}

func TestLookup(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   uint32
		idx  uint32
		reg  Reg
		bit  uint
	}{
		{"sse4_1", 1, 0, ECX, 19}, {"sse4-1", 1, 0, ECX, 19}, {"sse3", 1, 0, ECX, 0},
		{"lahf_lm", 0x80000001, 0, ECX, 0}, {"pdpe1gb", 0x80000001, 0, EDX, 26},
		{"kvm-pv-ipi", 0x40000001, 0, EAX, 11}, {"kvm_asyncpf_int", 0x40000001, 0, EAX, 14},
		{"sha-ni", 7, 0, EBX, 29}, {"la57", 7, 0, ECX, 16}, {"arch-capabilities", 7, 0, EDX, 29},
		{"avx512-bf16", 7, 1, EAX, 5}, {"xsaves", 0xd, 1, EAX, 3}, {"invtsc", 0x80000007, 0, EDX, 8},
		{"amd-ssbd", 0x80000008, 0, EBX, 24}, {"npt", 0x8000000a, 0, EDX, 0}, {"xstore", 0xc0000001, 0, EDX, 2},
	} {
		fn, idx, r, b, ok := Lookup(tc.name)
		if !ok || fn != tc.fn || idx != tc.idx || r != tc.reg || b != tc.bit {
			t.Errorf("Lookup(%q) = %#x.%d %v bit %d (%v), want %#x.%d %v bit %d",
				tc.name, fn, idx, r, b, ok, tc.fn, tc.idx, tc.reg, tc.bit)
		}
	}
	if _, _, _, _, ok := Lookup("vmx-ept"); ok {
		t.Error("MSR feature found as CPUID")
	}
}

// Every flag the CLI accepts (QEMU 7.2's "-cpu help" list) must be known
// here, and every name here must be one QEMU 7.2 has.
func TestNamesMatchCLI(t *testing.T) {
	src, err := os.ReadFile("../../cmd/govmm/cli/cpuflags.go")
	if err != nil {
		t.Skipf("CLI flag table: %v", err)
	}
	cli := map[string]bool{}
	for _, m := range regexp.MustCompile(`"([a-z0-9._-]+)":\s+true`).FindAllStringSubmatch(string(src), -1) {
		cli[m[1]] = true
	}
	if len(cli) < 300 {
		t.Fatalf("parsed only %d CLI names", len(cli))
	}
	for n := range cli {
		if !Known(n) {
			t.Errorf("CLI flag %q unknown to cpuid", n)
		}
	}
	for n := range byName {
		if !cli[n] {
			t.Errorf("cpuid name %q not in QEMU 7.2's list", n)
		}
	}
	for n := range msrFeatures {
		if !cli[n] {
			t.Errorf("MSR name %q not in QEMU 7.2's list", n)
		}
	}
}

// On this host's real KVM table (skipped without /dev/kvm).
func TestRealHostTable(t *testing.T) {
	sup := hostSupported(t)
	for _, m := range []string{ModelHost, ModelMax, ModelQEMU64} {
		out, warns, err := Apply(sup, m, []Feature{plus("kvm-pv-eoi"), minus("x2apic")})
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		wantVendor := Vendor(sup)
		if m == ModelQEMU64 {
			wantVendor = "AuthenticAMD"
			if b := brand(t, out); b != "QEMU Virtual CPU version 2.5+" {
				t.Errorf("brand %q", b)
			}
		}
		if v := Vendor(out); v != wantVendor {
			t.Errorf("%s: vendor %q, want %q", m, v, wantVendor)
		}
		if e := get(t, out, 1, 0); e.ECX&bitX2APIC != 0 || e.ECX&bitHV == 0 {
			t.Errorf("%s: leaf 1 ECX %#x: want x2apic off, hypervisor on", m, e.ECX)
		}
		for _, w := range warns {
			if !strings.HasPrefix(w, "host doesn't support requested feature: CPUID.") {
				t.Errorf("%s: odd warning %q", m, w)
			}
		}
	}
}
