package cpuid

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/govmm/govmm/kvm"
)

// FuzzApply feeds arbitrary supported tables and feature lists: Apply must
// never panic, must return either an error or a table, and must leave its
// input alone.
func FuzzApply(f *testing.F) {
	enc := func(t []kvm.CPUIDEntry) []byte {
		var b []byte
		for _, e := range t {
			for _, v := range []uint32{e.Function, e.Index, e.Flags, e.EAX, e.EBX, e.ECX, e.EDX} {
				b = binary.LittleEndian.AppendUint32(b, v)
			}
		}
		return b
	}
	f.Add(enc(pvmEPYC), uint8(2), "+avx2,-pni,sse4_1=on,kvmclock=off")
	f.Add(enc(fakeIntel), uint8(0), "-xsave,-avx,+svm,+npt,-la57")
	f.Add(enc(fakeIntel), uint8(1), "+intel-pt,+intel-pt-lip,+sgx,+xstore,+vmx-ept")
	f.Add([]byte{}, uint8(2), "+nosuch")
	f.Fuzz(func(t *testing.T, raw []byte, m uint8, feats string) {
		var sup []kvm.CPUIDEntry
		for len(raw) >= 28 && len(sup) < 300 {
			u := func(i int) uint32 { return binary.LittleEndian.Uint32(raw[4*i:]) }
			sup = append(sup, kvm.CPUIDEntry{Function: u(0), Index: u(1), Flags: u(2), EAX: u(3), EBX: u(4), ECX: u(5), EDX: u(6)})
			raw = raw[28:]
		}
		var fs []Feature
		for _, s := range strings.Split(feats, ",") {
			switch {
			case strings.HasPrefix(s, "+"):
				fs = append(fs, Feature{Name: s[1:], On: true, Legacy: true})
			case strings.HasPrefix(s, "-"):
				fs = append(fs, Feature{Name: s[1:], Legacy: true})
			default:
				n, v, _ := strings.Cut(s, "=")
				fs = append(fs, Feature{Name: n, On: v != "off"})
			}
		}
		before := append([]kvm.CPUIDEntry(nil), sup...)
		model := []string{ModelHost, ModelMax, ModelQEMU64}[int(m)%3]
		out, _, err := Apply(sup, model, fs)
		if err == nil && out == nil && model == ModelQEMU64 {
			t.Fatal("no table and no error")
		}
		for i := range sup {
			if sup[i] != before[i] {
				t.Fatalf("input entry %d modified", i)
			}
		}
	})
}
