package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProcessAttributes checks what -name process=, -name debug-threads=on
// and -overcommit mem-lock=on do to the running process, through /proc.
func TestProcessAttributes(t *testing.T) {
	needKVM(t)
	// triplefault without -no-reboot reboots forever: a guest that stays up.
	p := start(t, nil, govmmBin, "-name", "vm1,process=govmm-vm1,debug-threads=on", "-overcommit", "mem-lock=on",
		"-M", "microvm", "-m", "64", "-display", "none", "-serial", "null", "-kernel", payloadPath(t, "triplefault"))
	pid := p.cmd.Process.Pid
	proc := "/proc/" + strconv.Itoa(pid)

	var threads []string
	ok := waitFor(10*time.Second, func() bool {
		threads = threads[:0]
		comms, _ := filepath.Glob(proc + "/task/*/comm")
		for _, c := range comms {
			if b, err := os.ReadFile(c); err == nil {
				threads = append(threads, strings.TrimSpace(string(b)))
			}
		}
		for _, th := range threads {
			if th == "CPU 0/KVM" {
				return true
			}
		}
		return false
	})
	if !ok {
		t.Errorf("no thread named \"CPU 0/KVM\" with debug-threads=on; threads %q", threads)
	}
	if b, _ := os.ReadFile(proc + "/comm"); strings.TrimSpace(string(b)) != "govmm-vm1" {
		t.Errorf("process name %q, want govmm-vm1", strings.TrimSpace(string(b)))
	}
	status, err := os.ReadFile(proc + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var locked int
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "VmLck:"); ok {
			locked, _ = strconv.Atoi(strings.Fields(v)[0])
		}
	}
	if locked < 64<<10 {
		t.Errorf("VmLck %d KiB with mem-lock=on, want at least the 64 MiB of guest RAM", locked)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if r := p.wait(t, runTimeout); r.code != 0 {
		t.Errorf("after SIGTERM: %v", r)
	}
}

// TestOvercommitCPUPM: with cpu-pm=on (HLT/MWAIT/PAUSE kept in the guest)
// a guest still runs to its end, or govmm refuses loudly where KVM cannot.
func TestOvercommitCPUPM(t *testing.T) {
	needKVM(t)
	r := runBin(t, govmmBin, "-overcommit", "cpu-pm=on", "-m", "64", "-nographic", "-no-reboot",
		"-kernel", payloadPath(t, "hello"), "-device", "isa-debug-exit")
	switch {
	case r.code == 67 && strings.Contains(r.stdout, "Hello from a govmm payload guest!"):
	case r.code == 1 && strings.Contains(r.stderr, "cpu-pm=on: KVM cannot disable idle exits"):
		t.Logf("refused on this host: %s", r.stderr)
	default:
		t.Errorf("cpu-pm=on: %v", r)
	}
}
