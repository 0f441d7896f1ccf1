package machine

import (
	"debug/elf"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govmm/govmm/devices/chardev"
	"github.com/govmm/govmm/guest/agent/proto"
	"github.com/govmm/govmm/machine/runstate"
)

// TestLinuxAgent boots the project's test kernel with the agent initramfs
// (make kernel initramfs; make test sets GOVMM_TEST_KERNEL and
// GOVMM_TEST_INITRAMFS) and checks every line the agent prints. On PVM
// hosts ring-0 code is emulated, so this takes minutes.
func TestLinuxAgent(t *testing.T) {
	kernel, initrd := os.Getenv("GOVMM_TEST_KERNEL"), os.Getenv("GOVMM_TEST_INITRAMFS")
	if kernel == "" || initrd == "" {
		t.Skip("skipping: GOVMM_TEST_KERNEL and GOVMM_TEST_INITRAMFS unset (make test sets them)")
	}
	needKVM(t)
	// A boot on these hosts sometimes stalls with no output (a known,
	// not yet understood issue: see the vCPU dump logged then). One retry
	// on a fresh VM; every pass is checked in full.
	for attempt := 1; ; attempt++ {
		if !bootLinuxAgent(t, kernel, initrd) {
			return
		}
		if attempt == 2 {
			t.Fatal("the Linux boot stalled twice")
		}
		t.Log("the Linux boot stalled; retrying once on a fresh VM")
	}
}

// bootLinuxAgent boots once and checks everything; it reports a stall (no
// serial output for 3 minutes) instead of failing.
func bootLinuxAgent(t *testing.T, kernel, initrd string) (stalled bool) {
	img := newImage(t, 64<<20)
	drive := &DriveConfig{ID: "d0", File: img, Format: "raw", Index: -1}
	console := &syncBuffer{}
	conSpec := &chardev.Spec{ID: "con0", Kind: chardev.Null}
	cfg := Config{
		MachineType: "pc", MemBytes: 512 << 20, CPUs: 2, Kernel: kernel, Initrd: initrd,
		// tsc=reliable: with ring-0 code emulated on PVM hosts the clocksource
		// watchdog sees TSC and PM-timer reads far apart, marks the TSC
		// unstable and moves timekeeping to acpi_pm, where every clock read
		// is a port exit and the guest crawls (seen as boots stalled in
		// acpi_pm_read). panic=-1: a panic resets at once, and -no-reboot
		// ends the run.
		// agent.exit=powerbutton: after its checks the agent waits for the
		// ACPI power button, which the test presses as system_powerdown.
		Cmdline:      "console=ttyS0 noxsave clearcpuid=308,151 tsc=reliable panic=-1 agent.checks=all agent.exit=powerbutton",
		NoReboot:     true,
		Drives:       []*DriveConfig{drive},
		VirtioBlk:    []*VirtioBlkConfig{{Drive: drive}},
		VirtioRNG:    []*VirtioRNGConfig{{Source: "/dev/urandom"}},
		VirtioSerial: []*VirtioSerialConfig{{Ports: []*VirtioSerialPort{{Console: true, Chardev: conSpec}}}},
	}
	serial := &syncBuffer{}
	noInput, _ := io.Pipe()
	m, err := New(cfg, Options{
		Serial: []SerialIO{{Out: serial}},
		Chardev: func(s *chardev.Spec) io.ReadWriter {
			if s != conSpec {
				return nil
			}
			return struct {
				io.Reader
				io.Writer
			}{noInput, console}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var events []string
	var evMu sync.Mutex
	m.Subscribe(func(ev runstate.Event) {
		evMu.Lock()
		events = append(events, ev.Kind.String()+" "+ev.Reason.String())
		evMu.Unlock()
	})
	start := time.Now()
	done := make(chan Result, 1)
	runDone := make(chan struct{})
	go func() { done <- m.Run(); close(runDone) }()
	// When the agent waits for the power button, press it as QMP's
	// system_powerdown does; the agent then powers off through ACPI S5.
	go func() {
		for !strings.Contains(serial.String(), "agent: waiting for the power button") {
			time.Sleep(200 * time.Millisecond)
			select {
			case <-runDone:
				return
			default:
			}
		}
		m.PowerButton()
	}()
	var r Result
	last, lastChange := -1, time.Now()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
wait:
	for {
		select {
		case r = <-done:
			break wait
		case <-tick.C:
			if n := len(serial.String()) + len(console.String()); n != last {
				last, lastChange = n, time.Now()
				continue
			}
			if time.Since(lastChange) < 3*time.Minute {
				continue
			}
			m.Pause()
			for i, regs := range m.DumpVCPUs() {
				t.Logf("vCPU %d after 3 minutes without output:\n%s%s", i, regs, symbolize(kernel, regs))
			}
			m.Quit(runstate.CauseHostSignal)
			<-done
			t.Logf("stalled after %v; serial output:\n%s", time.Since(start).Round(time.Second), tail(serial.String(), 2000))
			return true
		}
	}
	t.Logf("guest ended after %v: exit %d cause %s; %v", time.Since(start).Round(time.Second), r.ExitCode, r.Cause, m.EmulationCounts())
	log := serial.String()
	// The kernel's early log: our command line, the e820 map, the initrd,
	// both CPUs (as QEMU's would show them).
	for _, want := range []string{
		"Command line: console=ttyS0 noxsave", "BIOS-e820: [mem 0x0000000000100000-0x000000001fffffff] usable",
		"Unpacking initramfs", "smpboot: Allowing 2 CPUs", "smp: Brought up 1 node, 2 CPUs", "Run /init as init process",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("kernel log lacks %q", want)
		}
	}
	if t.Failed() {
		t.Fatalf("serial output:\n%s", tail(log, 4000))
	}
	if pvmSyscallFailure(log) {
		// On PVM hosts the host leaves a user-mode syscall in ring 3;
		// machine/pvmfix repairs it. This is that repair failing.
		t.Fatalf("init's first syscall did not reach the kernel (%s); pvmfix counters %v",
			strings.TrimSpace(lineWith(log, "segfault at")), m.EmulationCounts())
	}
	if r.Err != nil || r.ExitCode != 0 || r.Cause != "guest-shutdown" {
		t.Fatalf("run ended with %+v; serial output:\n%s", r, tail(log, 3000))
	}
	evMu.Lock()
	pressed := strings.Contains(strings.Join(events, ","), "POWERDOWN")
	evs := strings.Join(events, ", ")
	evMu.Unlock()
	if !pressed || !strings.Contains(log, "agent: power button pressed") || !strings.HasSuffix(evs, "SHUTDOWN guest-shutdown") {
		t.Errorf("system_powerdown did not shut the guest down through its power button: events %s\nserial output:\n%s", evs, tail(log, 1500))
	}
	results, err := proto.ReadResults(strings.NewReader(serial.String()))
	if err != nil {
		t.Fatalf("agent output: %v\n%s", err, tail(serial.String(), 3000))
	}
	byCheck := map[string]proto.Result{}
	for _, res := range results {
		byCheck[res.Check] = res
		if !res.OK || res.Skipped {
			t.Errorf("agent check %s: ok=%v skipped=%v error=%q detail=%s", res.Check, res.OK, res.Skipped, res.Error, res.Detail)
		}
	}
	var k proto.KernelDetail
	if err := byCheck[proto.CheckKernel].DecodeDetail(&k); err != nil {
		t.Fatal(err)
	}
	if k.CPUsOnline != 2 || k.MemTotalKiB < 400<<10 || !strings.Contains(k.Cmdline, "agent.checks=all") {
		t.Errorf("kernel detail %+v: want 2 CPUs, ~512 MiB and our command line", k)
	}
	var b proto.BlkDetail
	if err := byCheck[proto.CheckBlk].DecodeDetail(&b); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if b.Offset < 0 || b.Length <= 0 || b.Offset+b.Length > int64(len(data)) {
		t.Fatalf("blk detail %+v out of the image", b)
	}
	if err := proto.Verify(data[b.Offset:b.Offset+b.Length], b.Seed, b.Offset); err != nil {
		t.Errorf("the image does not hold what the guest wrote: %v", err)
	}
	if !strings.Contains(console.String(), "hello from virtio-console") {
		t.Errorf("virtio console output %q", console.String())
	}
	return false
}

// pvmSyscallFailure recognizes init killed at the kernel's syscall entry.
func pvmSyscallFailure(log string) bool {
	l := lineWith(log, "init[1]: segfault at")
	return l != "" && strings.Contains(log, "Attempted to kill init")
}

func lineWith(s, sub string) string {
	i := strings.Index(s, sub)
	if i < 0 {
		return ""
	}
	j := strings.IndexByte(s[i:], '\n')
	if j < 0 {
		return s[i:]
	}
	return s[i : i+j]
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// symbolize names the kernel function holding the RIP of a register dump,
// from the vmlinux symbol table.
func symbolize(vmlinux, regs string) string {
	i := strings.Index(regs, "RIP=")
	if i < 0 {
		return ""
	}
	rip, err := strconv.ParseUint(regs[i+4:i+20], 16, 64)
	if err != nil {
		return ""
	}
	f, err := elf.Open(vmlinux)
	if err != nil {
		return ""
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return ""
	}
	best := elf.Symbol{}
	for _, s := range syms {
		if s.Value <= rip && s.Value > best.Value && elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			best = s
		}
	}
	if best.Name == "" {
		return ""
	}
	return fmt.Sprintf("RIP is in %s+%#x\n", best.Name, rip-best.Value)
}
