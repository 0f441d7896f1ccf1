package main

import (
	"bufio"
	"debug/buildinfo"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

// Host describes the machine the numbers were taken on.
type Host struct {
	CPU       string `json:"cpu"`
	CPUs      int    `json:"cpus"`
	Kernel    string `json:"kernel"`
	KVM       string `json:"kvm"`
	LoadStart string `json:"loadavg_start"`
	LoadEnd   string `json:"loadavg_end,omitempty"`
}

func hostInfo() Host {
	h := Host{CPUs: runtime.NumCPU(), KVM: kvmFlavour(), LoadStart: loadAvg()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				h.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(b))
	}
	return h
}

// kvmFlavour names the KVM implementation behind /dev/kvm: PVM
// (pagetable-based, no hardware virtualization: CPL 0 guest code is
// emulated) changes what the numbers mean.
func kvmFlavour() string {
	for _, m := range []struct{ mod, name string }{
		{"kvm_pvm", "PVM (kvm_pvm)"},
		{"kvm_intel", "VT-x (kvm_intel)"},
		{"kvm_amd", "AMD-V (kvm_amd)"},
	} {
		if _, err := os.Stat("/sys/module/" + m.mod); err == nil {
			return m.name
		}
	}
	return "unknown"
}

func isPVM() bool {
	_, err := os.Stat("/sys/module/kvm_pvm")
	return err == nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// govmmRevision prefers the VCS stamp go build put into the binary (it
// names the code that actually ran); a binary built without one falls back
// to the checkout's HEAD, read with commands that take no git locks.
func govmmRevision(bin string) (rev string, modified bool) {
	if bi, err := buildinfo.ReadFile(bin); err == nil {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev != "" {
			return rev, modified
		}
	}
	out, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		return "unknown", false
	}
	rev = strings.TrimSpace(string(out)) + " (checkout HEAD; binary has no VCS stamp)"
	st, err := exec.Command("git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no").Output()
	return rev, err == nil && len(strings.TrimSpace(string(st))) > 0
}

func qemuVersion(qemu string) string {
	out, err := exec.Command(qemu, "-version").Output()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}
