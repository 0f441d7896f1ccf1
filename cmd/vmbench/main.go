// Command vmbench runs the same payload guests under govmm and under
// qemu-system-x86_64 -enable-kvm, alternating the two, and reports start-up
// time, CPU time, peak RSS, exit round-trip rates, virtio-blk throughput
// and (optionally) Linux time to first log line, side by side.
//
// It never fails because govmm is slower; it exits non-zero only when a
// prerequisite is missing or a guest does not produce its expected output
// or exit status. See testdata/bench/README.md for how to read the report.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/govmm/govmm/guest/payload"
)

type config struct {
	govmm, qemu, goTool string
	payloadDir          string
	out                 string
	only                string
	runs, pcRuns        int
	exitRuns, exitCount int
	virtioRuns          int
	linuxRuns           int
	goBench             bool
	timeout             time.Duration
	linuxTimeout        time.Duration
	linuxAppend         string
	shmDir, diskDir     string
	imageMiB            int
}

var sections = []string{"startup", "memory", "exits", "virtio", "linux"}

func main() {
	var c config
	flag.StringVar(&c.govmm, "govmm", "bin/govmm", "govmm binary (make builds it)")
	flag.StringVar(&c.qemu, "qemu", "qemu-system-x86_64", "QEMU binary, looked up in PATH")
	flag.StringVar(&c.goTool, "go", "go", "go tool, for -gobench")
	flag.StringVar(&c.payloadDir, "payloads", "", "directory with hello.elf, exitbench.elf, ... (default: build guest/payload with make)")
	flag.StringVar(&c.out, "out", "testdata/bench", "directory for latest.json and latest.md; empty: stdout only")
	flag.StringVar(&c.only, "only", strings.Join(sections, ","), "comma-separated measurements to run: "+strings.Join(sections, ", "))
	flag.IntVar(&c.runs, "runs", 10, "runs per VMM for -M microvm start-up and memory")
	flag.IntVar(&c.pcRuns, "pc-runs", 3, "runs per VMM for -M pc start-up (QEMU spends ~3-5 s in SeaBIOS per run)")
	flag.IntVar(&c.exitRuns, "exit-runs", 3, "runs per VMM and -smp value of exitbench (~15-20 s per run on PVM)")
	flag.IntVar(&c.exitCount, "exit-count", 200000, "exits per phase in exitbench.elf (COUNT in guest/payload/exitbench.S)")
	flag.IntVar(&c.virtioRuns, "virtio-runs", 3, "runs per VMM and image location of the virtio-blk payload")
	flag.IntVar(&c.linuxRuns, "linux-runs", 1, "runs of the Linux boot (needs GOVMM_BENCH_KERNEL)")
	flag.BoolVar(&c.goBench, "gobench", false, "also run the Go micro-benchmarks of "+strings.Join(goBenchPkgs, " "))
	flag.DurationVar(&c.timeout, "timeout", 2*time.Minute, "time limit for one payload run")
	flag.DurationVar(&c.linuxTimeout, "linux-timeout", 5*time.Minute, "time limit for one Linux boot to its first log line")
	flag.StringVar(&c.linuxAppend, "linux-append", "console=ttyS0 earlyprintk=ttyS0 noxsave clearcpuid=308,151 tsc=reliable", "kernel command line for the Linux boot")
	flag.StringVar(&c.shmDir, "shm-dir", "/dev/shm", "tmpfs directory for the virtio-blk image")
	flag.StringVar(&c.diskDir, "disk-dir", "/var/tmp", "disk-backed directory for the virtio-blk image")
	flag.IntVar(&c.imageMiB, "image-mib", 64, "size of the virtio-blk image")
	flag.Parse()

	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "vmbench:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	began := time.Now()
	only := map[string]bool{}
	for _, s := range strings.Split(c.only, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !contains(sections, s) {
			return fmt.Errorf("-only: unknown measurement %q (have %s)", s, strings.Join(sections, ", "))
		}
		only[s] = true
	}
	if c.runs < 1 || c.pcRuns < 0 || c.exitRuns < 0 || c.virtioRuns < 0 || c.linuxRuns < 0 || c.exitCount < 1 {
		return errors.New("run counts must be positive (-runs at least 1)")
	}

	b, err := newBench(c)
	if err != nil {
		return err
	}
	r := b.rep
	r.Date = began.UTC().Format(time.RFC3339)
	r.Command = strings.Join(os.Args, " ")

	if only["startup"] || only["memory"] {
		b.startup("microvm", c.runs)
		if c.pcRuns > 0 && only["startup"] {
			b.startup("pc", c.pcRuns)
		}
	}
	if only["memory"] {
		b.memory(c.runs)
	}
	if only["exits"] && c.exitRuns > 0 {
		for _, smp := range []int{1, 2} {
			b.exits(smp, c.exitRuns)
		}
	}
	if only["virtio"] && c.virtioRuns > 0 {
		b.virtio(c.virtioRuns)
	}
	if only["linux"] && c.linuxRuns > 0 {
		b.linux(c.linuxRuns)
		b.linuxUserspace(c.linuxRuns)
	}
	if c.goBench {
		fmt.Fprintln(os.Stderr, "go micro-benchmarks:", strings.Join(goBenchPkgs, " "))
		res, err := runGoBench(c.goTool)
		r.GoBench = res
		if err != nil {
			// The packages belong to other work in progress; a broken
			// benchmark there is reported, not a harness failure.
			r.GoBenchError = err.Error()
		}
	}
	b.floor()

	for _, m := range r.Metrics {
		m.finish()
	}
	r.Host.LoadEnd = loadAvg()
	r.DurationSec = time.Since(began).Seconds()
	md := RenderMarkdown(r)
	fmt.Print(md)

	if len(r.Errors) > 0 {
		return fmt.Errorf("%d harness error(s); %s not updated:\n  %s", len(r.Errors), c.out, strings.Join(r.Errors, "\n  "))
	}
	if c.out == "" {
		return nil
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.out, "latest.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.out, "latest.md"), []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s and %s\n", filepath.Join(c.out, "latest.json"), filepath.Join(c.out, "latest.md"))
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// checkPrereqs lists everything missing at once, with how to get it.
func checkPrereqs(c *config) error {
	var missing []string
	if p, err := exec.LookPath(c.qemu); err != nil {
		missing = append(missing, fmt.Sprintf("%s not found: apt-get install qemu-system-x86 (or make deps)", c.qemu))
	} else {
		c.qemu = p
	}
	if st, err := os.Stat(c.govmm); err != nil || st.IsDir() {
		missing = append(missing, fmt.Sprintf("govmm binary %s not found: run make (go build -o bin/govmm ./cmd/govmm) or pass -govmm", c.govmm))
	} else if abs, err := filepath.Abs(c.govmm); err == nil {
		c.govmm = abs
	}
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err != nil {
		missing = append(missing, fmt.Sprintf("/dev/kvm not usable: %v", err))
	} else {
		f.Close()
	}
	if c.payloadDir == "" {
		if _, err := exec.LookPath("gcc"); err != nil {
			missing = append(missing, "gcc not found: needed to build the payload guests (make deps)")
		} else if p, err := payload.Path("hello"); err == nil {
			c.payloadDir = filepath.Dir(p)
		} else if dir := filepath.Join(payload.Dir(), "build"); fileExists(filepath.Join(dir, "hello.elf")) {
			// One payload failing to build (work in progress on another)
			// should not stop the benchmarks of those that exist.
			fmt.Fprintf(os.Stderr, "vmbench: warning: rebuilding payloads failed, using what is in %s: %v\n", dir, err)
			c.payloadDir = dir
		} else {
			missing = append(missing, fmt.Sprintf("payload guests: %v", err))
		}
	}
	if c.payloadDir != "" {
		for _, name := range []string{"hello", "exitbench"} {
			if _, err := os.Stat(filepath.Join(c.payloadDir, name+".elf")); err != nil {
				missing = append(missing, fmt.Sprintf("payload %s.elf not in %s: make -C guest/payload", name, c.payloadDir))
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing prerequisites:\n  %s", strings.Join(missing, "\n  "))
	}
	return nil
}
