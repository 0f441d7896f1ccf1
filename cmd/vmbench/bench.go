package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// bench holds the configuration and the report being filled in.
type bench struct {
	cfg config
	rep *Report
	pvm bool
}

func newBench(c config) (*bench, error) {
	if err := checkPrereqs(&c); err != nil {
		return nil, err
	}
	rev, mod := govmmRevision(c.govmm)
	return &bench{
		cfg: c,
		pvm: isPVM(),
		rep: &Report{
			Host:          hostInfo(),
			GovmmPath:     c.govmm,
			GovmmRevision: rev,
			GovmmModified: mod,
			QEMUPath:      c.qemu,
			QEMUVersion:   qemuVersion(c.qemu),
			Invocations:   map[string]string{},
		},
	}, nil
}

// guestArgs is the command line both VMMs get: the devices the payloads
// expect and nothing else, so both build the same machine.
func guestArgs(machine string, memMiB, smp int, kernel string, extra ...string) []string {
	args := []string{
		"-M", machine, "-m", strconv.Itoa(memMiB), "-smp", strconv.Itoa(smp),
		"-nographic", "-no-reboot",
		"-device", "isa-debug-exit,iobase=0x501,iosize=2",
		"-kernel", kernel,
	}
	return append(args, extra...)
}

func (b *bench) govmmInv(args []string) Invocation {
	return Invocation{Path: b.cfg.govmm, Args: args, Timeout: b.cfg.timeout}
}

func (b *bench) qemuInv(args []string) Invocation {
	return Invocation{Path: b.cfg.qemu, Args: append([]string{"-enable-kvm"}, args...), Timeout: b.cfg.timeout}
}

func (b *bench) payload(name string) string {
	return filepath.Join(b.cfg.payloadDir, name+".elf")
}

// newMetrics adds rows for one section to the report; values returned by
// a check function fill them in the same order.
func (b *bench) newMetrics(section string, rows ...[3]string) []*Metric {
	var ms []*Metric
	for _, r := range rows {
		m := &Metric{Section: section, Name: r[0], Unit: r[1], Better: r[2]}
		ms = append(ms, m)
		b.rep.Metrics = append(b.rep.Metrics, m)
	}
	return ms
}

// pairs runs govmm then QEMU, n times over, so that drift in the host's
// load hits both alike. check validates a run and returns one value per
// metric; a run that fails it is a harness error and ends the section.
// A nil qemu runs govmm alone.
func (b *bench) pairs(label string, n int, gov Invocation, qemu *Invocation, metrics []*Metric, check func(*Result) ([]float64, error)) bool {
	b.rep.Invocations[label+" (govmm)"] = gov.String()
	if qemu != nil {
		b.rep.Invocations[label+" (QEMU)"] = qemu.String()
	}
	type side struct {
		name string
		inv  *Invocation
		add  func(m *Metric, v float64)
	}
	sides := []side{{"govmm", &gov, func(m *Metric, v float64) { m.Govmm = append(m.Govmm, v) }}}
	if qemu != nil {
		sides = append(sides, side{"QEMU", qemu, func(m *Metric, v float64) { m.QEMU = append(m.QEMU, v) }})
	}
	for i := 0; i < n; i++ {
		var progress []string
		for _, s := range sides {
			res, err := Run(*s.inv)
			var vals []float64
			if err == nil {
				vals, err = check(res)
			}
			if err != nil {
				msg := fmt.Sprintf("%s, %s run %d: %v", label, s.name, i+1, err)
				if res != nil && strings.TrimSpace(res.Stderr) != "" {
					msg += "; stderr: " + strings.TrimSpace(lastLines(res.Stderr, 5))
				}
				if res != nil {
					msg += "; output: " + strings.TrimSpace(lastLines(joinLines(res.Lines), 5))
				}
				b.rep.Errors = append(b.rep.Errors, msg)
				fmt.Fprintln(os.Stderr, "error:", msg)
				return false
			}
			for j, m := range metrics {
				s.add(m, vals[j])
			}
			progress = append(progress, fmt.Sprintf("%s %s %s", s.name, formatNum(vals[0]), metrics[0].Unit))
		}
		fmt.Fprintf(os.Stderr, "%s: run %d/%d: %s\n", label, i+1, n, strings.Join(progress, ", "))
	}
	return true
}

func joinLines(ls []Line) string {
	var s []string
	for _, l := range ls {
		s = append(s, l.Text)
	}
	return strings.Join(s, "\n")
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, " | ")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(kib int64) float64 { return float64(kib) / 1024 }

func wantStatus(r *Result, status int) error {
	if r.Status != status {
		return fmt.Errorf("exit status %d, want %d", r.Status, status)
	}
	return nil
}

// helloCheck: hello.elf prints one line and writes 0x21 to isa-debug-exit.
func helloCheck(r *Result) ([]float64, error) {
	if err := wantStatus(r, 67); err != nil {
		return nil, err
	}
	l, ok := FirstLine(r.Lines, "Hello from")
	if !ok {
		return nil, fmt.Errorf("no \"Hello from\" line in the guest's output")
	}
	return []float64{ms(r.FirstByte), ms(l.End), ms(r.Exit), ms(r.CPU), mib(r.MaxRSSKiB)}, nil
}

// startup boots hello.elf at -m 128 -smp 1 under both VMMs.
func (b *bench) startup(machine string, n int) {
	sec := fmt.Sprintf("Start-up: hello.elf, -M %s -m 128 -smp 1", machine)
	metrics := b.newMetrics(sec,
		[3]string{"start to first serial byte", "ms", "lower"},
		[3]string{"start to guest's line (\"Hello from\")", "ms", "lower"},
		[3]string{"start to process exit", "ms", "lower"},
		[3]string{"CPU time (user+sys)", "ms", "lower"},
		[3]string{"peak RSS", "MiB", "lower"},
	)
	args := guestArgs(machine, 128, 1, b.payload("hello"))
	q := b.qemuInv(args)
	b.pairs("startup -M "+machine, n, b.govmmInv(args), &q, metrics, helloCheck)
}

// memory boots hello.elf with 4 GiB of guest RAM: the guest touches a few
// pages, so the peak RSS is the VMM's own overhead plus whatever it
// touches or pins up front for the larger memory.
func (b *bench) memory(n int) {
	sec := "Memory: peak RSS of the VMM process, hello.elf, -M microvm -smp 1"
	m := b.newMetrics(sec,
		[3]string{"peak RSS, -m 128", "MiB", "lower"},
		[3]string{"peak RSS, -m 4096", "MiB", "lower"},
	)
	// -m 128 comes from the microvm start-up runs (the same runs as the
	// start-up table), if they ran.
	for _, x := range b.rep.Metrics {
		if x.Section == "Start-up: hello.elf, -M microvm -m 128 -smp 1" && x.Name == "peak RSS" {
			m[0].Govmm, m[0].QEMU = x.Govmm, x.QEMU
		}
	}
	args := guestArgs("microvm", 4096, 1, b.payload("hello"))
	q := b.qemuInv(args)
	b.pairs("memory -m 4096", n, b.govmmInv(args), &q, m[1:], func(r *Result) ([]float64, error) {
		v, err := helloCheck(r)
		if err != nil {
			return nil, err
		}
		return v[4:], nil
	})
}

// exits runs exitbench.elf: every port or MMIO write at CPL 3 is one exit
// to the VMM and back, so the rate is the VMM's round-trip rate.
func (b *bench) exits(smp, n int) {
	sec := fmt.Sprintf("Exit handling: exitbench.elf, -M microvm -m 128 -smp %d", smp)
	metrics := b.newMetrics(sec,
		[3]string{"PIO write round trips (port 0x80)", "exits/s", "higher"},
		[3]string{"MMIO write round trips (unassigned 0xd0000000)", "exits/s", "higher"},
		[3]string{"CPU time (user+sys)", "s", "lower"},
	)
	args := guestArgs("microvm", 128, smp, b.payload("exitbench"))
	q := b.qemuInv(args)
	b.pairs(fmt.Sprintf("exits -smp %d", smp), n, b.govmmInv(args), &q, metrics, func(r *Result) ([]float64, error) {
		if err := wantStatus(r, 39); err != nil {
			return nil, err
		}
		pio, mmio, err := ExitRates(r.Lines, b.cfg.exitCount)
		if err != nil {
			return nil, err
		}
		return []float64{pio, mmio, r.CPU.Seconds()}, nil
	})
}

// linux boots the kernel named by GOVMM_BENCH_KERNEL until its first log
// line and kills it there: the time is dominated by how fast early boot
// code runs, which on a PVM host is KVM's instruction emulator.
func (b *bench) linux(n int) {
	kernel := os.Getenv("GOVMM_BENCH_KERNEL")
	if kernel == "" {
		b.rep.Skipped = append(b.rep.Skipped, "Linux boot: GOVMM_BENCH_KERNEL is not set (an ELF vmlinux with a PVH note, or a bzImage)")
		return
	}
	if _, err := os.Stat(kernel); err != nil {
		b.rep.Errors = append(b.rep.Errors, fmt.Sprintf("GOVMM_BENCH_KERNEL: %v", err))
		return
	}
	sec := "Linux boot: $GOVMM_BENCH_KERNEL, -M pc -m 512 -smp 1"
	metrics := b.newMetrics(sec,
		[3]string{"start to first kernel log line (\"Linux version\")", "ms", "lower"},
		[3]string{"CPU time to that line", "ms", "lower"},
	)
	args := []string{"-M", "pc", "-m", "512", "-smp", "1", "-nographic", "-no-reboot",
		"-kernel", kernel, "-append", b.cfg.linuxAppend}
	gov := b.govmmInv(args)
	gov.Timeout, gov.StopAt = b.cfg.linuxTimeout, "Linux version"
	var qemu *Invocation
	if b.pvm {
		// QEMU hits the same emulation failures as govmm's unhandled
		// cases on PVM and never boots a stock kernel there.
		const why = "QEMU cannot boot a stock Linux kernel on a PVM host: its KVM instruction emulator fails the same way (see /work/shared/ENVIRONMENT.md)"
		for _, m := range metrics {
			m.QEMUNA = why
		}
		b.rep.Notes = append(b.rep.Notes, "Linux boot, QEMU n/a: "+why)
	} else {
		q := b.qemuInv(args)
		q.Timeout, q.StopAt = b.cfg.linuxTimeout, "Linux version"
		qemu = &q
	}
	b.pairs("linux", n, gov, qemu, metrics, func(r *Result) ([]float64, error) {
		l, ok := FirstLine(r.Lines, "Linux version")
		if !ok {
			return nil, fmt.Errorf("no \"Linux version\" line (exit status %d)", r.Status)
		}
		return []float64{ms(l.End), ms(r.CPU)}, nil
	})
}

// linuxUserspace boots GOVMM_BENCH_KERNEL with GOVMM_BENCH_INITRAMFS (the
// guest agent, which runs its kernel check and powers off) under govmm:
// time to "Run /init", time to power-off, and how many instructions govmm
// emulated and syscall entries it repaired on the way (counted with -d,
// which logs the counters at exit).
func (b *bench) linuxUserspace(n int) {
	kernel, initrd := os.Getenv("GOVMM_BENCH_KERNEL"), os.Getenv("GOVMM_BENCH_INITRAMFS")
	if kernel == "" || initrd == "" {
		b.rep.Skipped = append(b.rep.Skipped, "Linux to userspace: GOVMM_BENCH_KERNEL and GOVMM_BENCH_INITRAMFS (the agent initramfs, make initramfs) are not both set")
		return
	}
	sec := "Linux to userspace: $GOVMM_BENCH_KERNEL + agent initramfs, -M pc -m 512 -smp 2"
	metrics := b.newMetrics(sec,
		[3]string{"start to \"Run /init as init process\"", "s", "lower"},
		[3]string{"start to power-off (agent done)", "s", "lower"},
		[3]string{"instructions emulated after KVM emulation failures", "count", "lower"},
		[3]string{"user-mode syscall entries repaired (PVM)", "count", "lower"},
	)
	args := []string{"-M", "pc", "-m", "512", "-smp", "2", "-nographic", "-no-reboot", "-d", "unimp",
		"-kernel", kernel, "-initrd", initrd,
		"-append", b.cfg.linuxAppend + " panic=-1 agent.checks=kernel"}
	gov := b.govmmInv(args)
	gov.Timeout = 3 * b.cfg.linuxTimeout
	const why = "QEMU cannot boot a stock Linux kernel on this host"
	for _, m := range metrics {
		m.QEMUNA = why
	}
	b.pairs("linux-userspace", n, gov, nil, metrics, func(r *Result) ([]float64, error) {
		l, ok := FirstLine(r.Lines, "Run /init as init process")
		if !ok || r.Status != 0 {
			return nil, fmt.Errorf("no \"Run /init\" line or no clean power-off (exit status %d)", r.Status)
		}
		return []float64{l.End.Seconds(), r.Exit.Seconds(),
			float64(counterValue(r.Stderr, "emulated instructions: ")),
			float64(counterValue(r.Stderr, "pvm-syscall-fixup: "))}, nil
	})
}

// counterValue reads the number after prefix in govmm's exit-time
// counter lines ("emulated instructions: 1370", "  pvm-syscall-fixup: 2567").
func counterValue(s, prefix string) int64 {
	i := strings.Index(s, prefix)
	if i < 0 {
		return 0
	}
	var v int64
	for _, c := range s[i+len(prefix):] {
		if c < '0' || c > '9' {
			break
		}
		v = v*10 + int64(c-'0')
	}
	return v
}

// floor measures the harness's own contribution to child maxrss (see
// resetPeakRSS) by starting /bin/true the same way the VMMs are started.
func (b *bench) floor() {
	t, err := exec.LookPath("true")
	if err != nil {
		return
	}
	if r, err := Run(Invocation{Path: t, Timeout: 10 * time.Second}); err == nil {
		b.rep.HarnessFloorKiB = r.MaxRSSKiB
	}
}

// nan marks a sample a run could not measure; Summarize skips it.
var nan = math.NaN()
