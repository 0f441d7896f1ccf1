package cpuid

import (
	"bytes"
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// qemuWarnings starts qemu-system-x86_64 with -cpu spec, stopped before
// the guest runs, quits it through the monitor, and returns its warning
// lines without the "qemu-system-x86_64: warning: " prefix.
func qemuWarnings(t *testing.T, spec string) []string {
	t.Helper()
	bin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// -M pc: full in-kernel irqchip, as govmm uses (microvm's is split).
	cmd := exec.CommandContext(ctx, bin, "-M", "pc", "-enable-kvm", "-cpu", spec,
		"-display", "none", "-nodefaults", "-S", "-monitor", "stdio")
	cmd.Stdin = strings.NewReader("quit\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// -cpu host and max abort on PVM hosts after CPU setup ("failed to
	// set MSR 0x10a"), but the warnings come before that.
	if err := cmd.Run(); err != nil && !strings.Contains(stderr.String(), "failed to set MSR") {
		t.Fatalf("qemu -cpu %s: %v\n%s", spec, err, stderr.String())
	}
	var out []string
	for _, l := range strings.Split(stderr.String(), "\n") {
		if w, ok := strings.CutPrefix(l, "qemu-system-x86_64: warning: "); ok {
			out = append(out, w)
		}
	}
	return out
}

// TestWarningsMatchQEMU compares Apply's warnings for this host's KVM
// with what QEMU 7.2 prints for the same -cpu on the same host.
func TestWarningsMatchQEMU(t *testing.T) {
	if testing.Short() {
		t.Skip("starts QEMU")
	}
	sup := hostSupported(t)

	var all []string
	for n := range byName {
		all = append(all, n)
	}
	slices.Sort(all)
	allPlus := make([]Feature, len(all))
	for i, n := range all {
		allPlus[i] = plus(n)
	}

	mixed := []Feature{minus("pni"), off("kvmclock"), plus("avx2"), on("sse4_2"), off("lahf_lm"), plus("kvm-mmu"), minus("x2apic")}
	tests := []struct {
		name  string
		model string
		feats []Feature
	}{
		{"qemu64", ModelQEMU64, nil},
		{"every flag", ModelQEMU64, allPlus},
		{"mixed", ModelQEMU64, mixed},
		{"aliases", ModelQEMU64, []Feature{plus("sse4_1"), plus("pclmuldq"), minus("sse3"), plus("ffxsr"), minus("xd")}},
		{"xsave components", ModelQEMU64, []Feature{plus("xsave"), plus("avx"), plus("avx512f"), plus("mpx"), plus("pku"), plus("amx-tile"), plus("arch-lbr")}},
		{"dependencies", ModelQEMU64, []Feature{plus("npt"), plus("intel-pt-lip"), plus("sgxlc"), plus("sgx1")}},
		{"max", ModelMax, nil},
		{"max mixed", ModelMax, mixed},
		{"host every flag", ModelHost, allPlus},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.model
			for _, f := range tc.feats {
				switch {
				case f.Legacy && f.On:
					spec += ",+" + f.Name
				case f.Legacy:
					spec += ",-" + f.Name
				case f.On:
					spec += "," + f.Name + "=on"
				default:
					spec += "," + f.Name + "=off"
				}
			}
			want := qemuWarnings(t, spec)
			_, got, err := Apply(sup, tc.model, tc.feats)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("-cpu %s: warnings (-qemu +govmm):\n%s", spec, diff)
			}
		})
	}
}
