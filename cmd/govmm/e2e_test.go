package main

// End-to-end tests of the govmm binary as a process: exit codes, stdout and
// stderr, signals, -daemonize and -pidfile, checked against the real
// qemu-system-x86_64 where it is installed (same command line, same payload
// guest) and against fixed expectations taken from QEMU 7.2 otherwise.
//
// TestMain builds the binary once and installs it a second time as
// qemu-system-x86_64 (a symlink), so that messages can be compared with
// QEMU's byte for byte and so that the tests see the invoked name used.

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govmm/govmm/guest/payload"
	"github.com/govmm/govmm/kvm"
)

const qemuName = "qemu-system-x86_64"

var (
	govmmBin string // the built binary, named govmm
	asQEMU   string // the same binary through a symlink named qemu-system-x86_64
	realQEMU string // the real QEMU, or "" when not installed
	kvmErr   error  // why /dev/kvm cannot be used, or nil
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	flag.Parse()
	if f := flag.Lookup("test.list"); f != nil && f.Value.String() != "" {
		return m.Run() // listing tests needs no binary
	}
	dir, err := os.MkdirTemp("", "govmm-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	govmmBin = filepath.Join(dir, "govmm")
	asQEMU = filepath.Join(dir, qemuName)
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	build := exec.Command(goTool, "build", "-o", govmmBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // as the Makefile builds it
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building govmm: %v\n%s", err, out)
		return 1
	}
	if err := os.Symlink("govmm", asQEMU); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	realQEMU = findQEMU()
	kvmErr = kvm.Available()
	return m.Run()
}

// findQEMU returns the real QEMU on PATH, unless what is there is govmm
// installed under QEMU's name.
func findQEMU() string {
	p, err := exec.LookPath(qemuName)
	if err != nil {
		return ""
	}
	out, err := exec.Command(p, "-version").Output()
	if err != nil || bytes.Contains(out, []byte("govmm")) {
		return ""
	}
	return p
}

func needKVM(t *testing.T) {
	t.Helper()
	if kvmErr != nil {
		t.Skipf("KVM is not usable here (%v): guest tests skipped", kvmErr)
	}
}

// payloadPath returns a payload guest's ELF, building the payloads if needed.
func payloadPath(t *testing.T, name string) string {
	t.Helper()
	p, err := payload.Path(name)
	if err != nil {
		t.Skipf("payload %s: %v", name, err)
	}
	return p
}

// knownBug skips t while the behaviour of a bug reported to the lead is
// still seen; once it is fixed the test checks the right behaviour itself.
func knownBug(t *testing.T, seen bool, what string) {
	t.Helper()
	if seen {
		t.Skip("BUG: " + what)
	}
}

// syncBuffer is a bytes.Buffer that a process writes while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// result is how a process ended.
type result struct {
	stdout, stderr string
	code           int            // exit status; -1 when killed by a signal
	signal         syscall.Signal // the signal that killed it
}

func (r result) String() string {
	how := fmt.Sprintf("exit %d", r.code)
	if r.code < 0 {
		how = "killed by " + r.signal.String()
	}
	return fmt.Sprintf("%s\nstdout: %q\nstderr: %q", how, clip(r.stdout), clip(r.stderr))
}

func clip(s string) string {
	if len(s) > 600 {
		return s[:300] + " ... " + s[len(s)-300:]
	}
	return s
}

// proc is a started VMM process.
type proc struct {
	cmd    *exec.Cmd
	stdout syncBuffer
	stderr syncBuffer
	done   chan struct{}
}

// start runs bin with args; stdin is /dev/null unless the caller sets up
// the command with prepare. The process is killed when the test ends.
func start(t *testing.T, prepare func(*exec.Cmd), bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	if prepare != nil {
		prepare(p.cmd)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits up to timeout for the process to end.
func (p *proc) wait(t *testing.T, timeout time.Duration) result {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s %q still running after %v; killed\nstdout: %q\nstderr: %q",
			p.cmd.Path, p.cmd.Args[1:], timeout, clip(p.stdout.String()), clip(p.stderr.String()))
	}
	r := result{stdout: p.stdout.String(), stderr: dropCPUIDWarnings(p.stderr.String()), code: p.cmd.ProcessState.ExitCode()}
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		r.signal = ws.Signal()
	}
	return r
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const runTimeout = 30 * time.Second

// runBin runs bin to completion.
func runBin(t *testing.T, bin string, args ...string) result {
	t.Helper()
	return start(t, nil, bin, args...).wait(t, runTimeout)
}

// qemu runs the real QEMU with the machine type mt (none: as given), or
// returns false when QEMU is not installed.
func qemu(t *testing.T, mt string, args ...string) (result, bool) {
	t.Helper()
	if realQEMU == "" {
		return result{}, false
	}
	if mt != "" {
		args = append([]string{"-M", mt}, args...)
	}
	return runBin(t, realQEMU, args...), true
}

var fromPID = regexp.MustCompile(`from pid \d+`)

// dropCPUIDWarnings removes the warnings both VMMs print for -cpu features
// this host lacks (machine/cpuid checks them against QEMU's); they depend
// on the host, not on what these tests look at.
func dropCPUIDWarnings(s string) string {
	var out []string
	for _, l := range strings.SplitAfter(s, "\n") {
		if !strings.Contains(l, "host doesn't support requested feature") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

// normStderr makes two VMMs' stderr comparable: the program name becomes
// PROG, sender pids N, and QEMU's warnings about CPUID features this host
// lacks go away.
func normStderr(s string) string {
	var out []string
	for _, l := range strings.SplitAfter(s, "\n") {
		if strings.Contains(l, "host doesn't support requested feature") {
			continue
		}
		for _, p := range []string{qemuName + ": ", "govmm: "} {
			if strings.HasPrefix(l, p) {
				l = "PROG: " + l[len(p):]
			}
		}
		out = append(out, l)
	}
	return fromPID.ReplaceAllString(strings.Join(out, ""), "from pid N")
}

// sameAsQEMU compares govmm's result with QEMU's: exit status, stdout bytes
// and normalized stderr.
func sameAsQEMU(t *testing.T, got, want result) {
	t.Helper()
	if got.code != want.code || got.stdout != want.stdout || normStderr(got.stderr) != normStderr(want.stderr) {
		t.Errorf("govmm and QEMU differ\ngovmm: %v\nQEMU:  %v", got, want)
	}
}

func TestVersionAndHelp(t *testing.T) {
	t.Parallel()
	if realQEMU != "" {
		t.Logf("comparing with the real QEMU at %s", realQEMU)
	} else {
		t.Logf("%s is not installed: fixed expectations only", qemuName)
	}
	versionRE := regexp.MustCompile(`^QEMU emulator version (\d+)\.(\d+)`)
	for _, bin := range []string{govmmBin, asQEMU} {
		name := filepath.Base(bin)
		r := runBin(t, bin, "-version")
		if r.code != 0 || !versionRE.MatchString(r.stdout) || r.stderr != "" {
			t.Errorf("%s -version: want exit 0 and a QEMU version line\n%v", name, r)
		}
		for _, h := range []string{"-h", "-help", "--help"} {
			r := runBin(t, bin, h)
			if r.code != 0 || r.stderr != "" {
				t.Errorf("%s %s: want exit 0, nothing on stderr\n%v", name, h, r)
			}
			// QEMU names the program as it was invoked in its usage line.
			if !strings.Contains(r.stdout, "\nusage: "+name+" [options]") {
				t.Errorf("%s %s: no line %q\n%v", name, h, "usage: "+name+" [options]", r)
			}
		}
	}
	if q, ok := qemu(t, "", "-version"); ok {
		if q.code != 0 || !versionRE.MatchString(q.stdout) {
			t.Errorf("QEMU's own -version does not match the pattern: %v", q)
		}
	}
}

func TestCommandLineErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args []string
		want string // stderr with PROG for the program name
	}{
		{[]string{"-nosuchopt"}, "PROG: -nosuchopt: invalid option\n"},
		{[]string{"-m", "12Q", "-display", "none"}, "PROG: -m 12Q: Parameter 'size' expects a non-negative number below 2^64\n" +
			"Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.\n"},
		{[]string{"-m", "foo", "-display", "none"}, "PROG: -m foo: Parameter 'size' expects a non-negative number below 2^64\n" +
			"Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.\n"},
		{[]string{"-smp", "cpus=2,sockets=2,cores=2,threads=1", "-display", "none"}, "PROG: Invalid CPU topology: product of the hierarchy must match maxcpus: " +
			"sockets (2) * dies (1) * cores (2) * threads (1) != maxcpus (2)\n"},
		{[]string{"-smp", "foo", "-display", "none"}, ""},
		{[]string{"-kernel"}, "PROG: -kernel: requires an argument\n"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			t.Parallel()
			for _, bin := range []string{govmmBin, asQEMU} {
				r := runBin(t, bin, c.args...)
				prefix := filepath.Base(bin) + ": "
				if r.code != 1 || r.stdout != "" || !strings.HasPrefix(r.stderr, prefix) {
					t.Errorf("%s: want exit 1 and a message starting %q\n%v", filepath.Base(bin), prefix, r)
				}
				if c.want != "" && normStderr(r.stderr) != c.want {
					t.Errorf("%s: stderr %q, want %q", filepath.Base(bin), r.stderr, c.want)
				}
			}
			if q, ok := qemu(t, "", c.args...); ok {
				sameAsQEMU(t, runBin(t, asQEMU, c.args...), q)
			}
		})
	}
}

// guestArgs is the command line of the payload tests: the one `make run` uses.
func guestArgs(kernel string, extra ...string) []string {
	args := []string{"-m", "64", "-nographic", "-no-reboot", "-kernel", kernel,
		"-device", "isa-debug-exit,iobase=0x501,iosize=2"}
	return append(args, extra...)
}

// afterSeaBIOS is what a payload printed under QEMU -M pc: SeaBIOS and
// iPXE print their banners on the serial port first.
func afterSeaBIOS(t *testing.T, out string) string {
	t.Helper()
	const marker = "Booting from ROM.."
	i := strings.Index(out, marker)
	if i < 0 {
		t.Fatalf("QEMU -M pc output has no %q: %q", marker, clip(out))
	}
	return out[i+len(marker):]
}

func TestPayloadGuests(t *testing.T) {
	needKVM(t)
	t.Parallel()
	cases := []struct {
		name   string
		qemuMT string // the QEMU machine to compare with
		stdout string
		code   int
	}{
		{"hello", "microvm", "Hello from a govmm payload guest!\n", 67},
		{"cpl3", "microvm", "cpl3: running at CPL 3\ncpl3: xorshift64 = f94f4ba06ab784e3\n", 37},
		// A triple fault is a reset; with -no-reboot the VMM exits 0.
		{"triplefault", "microvm", "triplefault: booted\n", 0},
		// microvm has no i8042, so its reset line is checked against pc.
		{"kbdreset", "pc", "kbdreset: booted\n", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			args := guestArgs(payloadPath(t, c.name))
			r := runBin(t, asQEMU, args...)
			r.stdout = stripStartBanner(t, r.stdout)
			if r.code != c.code || r.stdout != c.stdout || r.stderr != "" {
				t.Errorf("govmm: want exit %d, stdout %q, empty stderr\n%v", c.code, c.stdout, r)
			}
			q, ok := qemu(t, c.qemuMT, args...)
			if !ok {
				return
			}
			if c.qemuMT == "pc" {
				q.stdout = afterSeaBIOS(t, q.stdout)
			}
			sameAsQEMU(t, r, q)
		})
	}
}

func TestSerialBackends(t *testing.T) {
	needKVM(t)
	t.Parallel()
	kernel := payloadPath(t, "cpl3")
	const want = "cpl3: running at CPL 3\ncpl3: xorshift64 = f94f4ba06ab784e3\n"
	base := []string{"-m", "64", "-no-reboot", "-kernel", kernel, "-device", "isa-debug-exit"}

	t.Run("file", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		for _, v := range []struct {
			name string
			run  func(args ...string) (result, bool)
		}{
			{"govmm", func(args ...string) (result, bool) { return runBin(t, asQEMU, args...), true }},
			{"QEMU", func(args ...string) (result, bool) { return qemu(t, "microvm", args...) }},
		} {
			path := filepath.Join(dir, v.name+".log")
			// An existing file is truncated, as QEMU does.
			if err := os.WriteFile(path, []byte(strings.Repeat("old contents\n", 10)), 0o644); err != nil {
				t.Fatal(err)
			}
			r, ok := v.run(append(base, "-display", "none", "-serial", "file:"+path)...)
			if !ok {
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%s: %v", v.name, err)
			}
			if r.code != 37 || r.stdout != "" || r.stderr != "" || string(got) != want {
				t.Errorf("%s -serial file: want exit 37, nothing on stdout/stderr, file %q\n%v\nfile: %q", v.name, want, r, got)
			}
		}
	})
	t.Run("null", func(t *testing.T) {
		t.Parallel()
		args := append(base, "-display", "none", "-serial", "null")
		r := runBin(t, asQEMU, args...)
		if r.code != 37 || r.stdout != "" || r.stderr != "" {
			t.Errorf("govmm -serial null: want exit 37 and no output\n%v", r)
		}
		if q, ok := qemu(t, "microvm", args...); ok {
			sameAsQEMU(t, r, q)
		}
	})
	t.Run("stdio", func(t *testing.T) {
		t.Parallel()
		args := append(base, "-display", "none", "-serial", "stdio")
		r := runBin(t, asQEMU, args...)
		if r.code != 37 || r.stdout != want || r.stderr != "" {
			t.Errorf("govmm -serial stdio: want exit 37, stdout %q\n%v", want, r)
		}
		if q, ok := qemu(t, "microvm", args...); ok {
			sameAsQEMU(t, r, q)
		}
	})
	t.Run("file-missing-dir", func(t *testing.T) {
		t.Parallel()
		args := append(base, "-display", "none", "-serial", "file:/nonexistent-dir/serial.log")
		r := runBin(t, asQEMU, args...)
		wantErr := "PROG: -serial file:/nonexistent-dir/serial.log: Could not open '/nonexistent-dir/serial.log': No such file or directory\n" +
			"PROG: -serial file:/nonexistent-dir/serial.log: could not connect serial device to character backend 'file:/nonexistent-dir/serial.log'\n"
		if r.code != 1 || normStderr(r.stderr) != wantErr {
			t.Errorf("govmm: want exit 1 and stderr %q\n%v", wantErr, r)
		}
		if q, ok := qemu(t, "microvm", args...); ok {
			sameAsQEMU(t, r, q)
		}
		// Errors found at run time name the program as invoked too.
		if g := runBin(t, govmmBin, args...); g.code != 1 || g.stderr != strings.ReplaceAll(wantErr, "PROG: ", "govmm: ") {
			t.Errorf("invoked as govmm: want exit 1 and the same message with \"govmm: \"\n%v", g)
		}
	})
	// QEMU ignores SIGPIPE: a reader that went away does not kill the VM.
	t.Run("stdout-closed", func(t *testing.T) {
		t.Parallel()
		args := append(base, "-display", "none", "-serial", "stdio")
		closedPipe := func(c *exec.Cmd) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			r.Close()
			c.Stdout = w
			t.Cleanup(func() { w.Close() })
		}
		r := start(t, closedPipe, asQEMU, args...).wait(t, runTimeout)
		if realQEMU != "" {
			q := start(t, closedPipe, realQEMU, append([]string{"-M", "microvm"}, args...)...).wait(t, runTimeout)
			if q.code != 37 {
				t.Fatalf("QEMU with a closed stdout: %v", q)
			}
		}
		knownBug(t, r.signal == syscall.SIGPIPE, "govmm dies of SIGPIPE when its stdout is a closed pipe; QEMU ignores SIGPIPE and goes on (exit 37 here)")
		if r.code != 37 {
			t.Errorf("govmm with a closed stdout: want exit 37 as QEMU\n%v", r)
		}
	})
}

func TestKernelFileErrors(t *testing.T) {
	needKVM(t)
	t.Parallel()
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.elf")
	text := filepath.Join(dir, "text.elf")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(text, []byte("this is not a kernel\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.elf")

	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		args := guestArgs(missing)
		r := runBin(t, asQEMU, args...)
		want := "qemu: could not open kernel file '" + missing + "': No such file or directory\n"
		if q, ok := qemu(t, "microvm", args...); ok && (q.code != 1 || q.stderr != want) {
			t.Fatalf("QEMU's message changed: %v", q)
		}
		knownBug(t, r.stderr == strings.Replace(want, "No such", "no such", 1),
			"the missing-kernel message has Go's lower-case errno text; QEMU prints strerror's \"No such file or directory\"")
		if r.code != 1 || r.stdout != "" || r.stderr != want {
			t.Errorf("want exit 1 and stderr %q\n%v", want, r)
		}
	})
	for _, k := range []string{empty, text} {
		t.Run(filepath.Base(k), func(t *testing.T) {
			t.Parallel()
			args := guestArgs(k)
			// QEMU's messages here are its loaders' ("invalid kernel
			// header", "could not load kernel 'X': Success"): only their
			// shape is common ground, one line starting "qemu: ".
			shape := regexp.MustCompile(`^qemu: [^\n]+\n$`)
			r := runBin(t, asQEMU, args...)
			if r.code != 1 || r.stdout != "" || !shape.MatchString(r.stderr) {
				t.Errorf("govmm: want exit 1 and one line \"qemu: ...\"\n%v", r)
			}
			if q, ok := qemu(t, "microvm", args...); ok && (q.code != 1 || !shape.MatchString(q.stderr)) {
				t.Errorf("QEMU's message has another shape now: %v", q)
			}
		})
	}
}

// The human monitor's greeting, as QEMU prints it when a monitor starts.
var monitorBanner = regexp.MustCompile(`QEMU \d+\.\d+\.\d+ monitor - type 'help' for more information\r\n\(qemu\) `)

// stripStartBanner removes a monitor banner printed at start on the
// -nographic mux, which QEMU does not print there (see
// TestNographicMonitorBanner), so that other tests check what they are
// about. It can land in the middle of the guest's first line.
func stripStartBanner(t *testing.T, out string) string {
	t.Helper()
	if monitorBanner.MatchString(out) {
		t.Logf("ignoring the monitor banner govmm printed at start (BUG, see TestNographicMonitorBanner)")
	}
	return withoutBanner(out)
}

func withoutBanner(out string) string {
	if loc := monitorBanner.FindStringIndex(out); loc != nil {
		return out[:loc[0]] + out[loc[1]:]
	}
	return out
}

// TestNographicMonitorBanner: with -nographic the serial port and the
// monitor share stdio and the serial port has the focus; QEMU prints the
// monitor's banner only when C-a c gives the monitor the focus.
func TestNographicMonitorBanner(t *testing.T) {
	needKVM(t)
	t.Parallel()
	r := runBin(t, asQEMU, guestArgs(payloadPath(t, "hello"))...)
	knownBug(t, monitorBanner.MatchString(r.stdout),
		"with -nographic govmm prints the monitor banner and prompt at start; QEMU prints them only when C-a c switches to the monitor")
	if r.code != 67 || r.stdout != "Hello from a govmm payload guest!\n" {
		t.Errorf("want exit 67 and only the guest's line\n%v", r)
	}
}

// muxSession runs bin with -nographic, waits until ready says the guest is
// up, types each of keys on stdin (each time waiting until the output stops
// changing), and returns how the process ended. stdin stays open: the keys
// alone must end the process.
func muxSession(t *testing.T, ready func(*proc) bool, keys []string, bin string, args ...string) (r result, beforeKeys string) {
	t.Helper()
	var stdin *os.File
	p := start(t, func(c *exec.Cmd) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		c.Stdin = r
		stdin = w
		t.Cleanup(func() { r.Close(); w.Close() })
	}, bin, args...)
	if !waitFor(20*time.Second, func() bool { return ready(p) }) {
		t.Fatalf("%s did not start: %q %q", bin, p.stdout.String(), p.stderr.String())
	}
	beforeKeys = p.stdout.String()
	for _, k := range keys {
		stdin.Write([]byte(k))
		last, since := p.stdout.String(), time.Now()
		waitFor(5*time.Second, func() bool {
			if now := p.stdout.String(); now != last {
				last, since = now, time.Now()
			}
			return time.Since(since) > 300*time.Millisecond
		})
	}
	return p.wait(t, 10*time.Second), beforeKeys
}

// TestNographicCtrlA checks the -nographic mux's commands: C-a h prints
// QEMU's help, C-a c switches between the serial port and the monitor, and
// C-a x prints "QEMU: Terminated" and ends the process with exit 0.
func TestNographicCtrlA(t *testing.T) {
	needKVM(t)
	t.Parallel()
	// uartirq prints a line, then waits for serial input with hlt. It
	// prints nothing under QEMU's microvm (no THRE interrupt there), so
	// its line is taken out of govmm's output before comparing.
	const guestLine = "uart irq: transmit by THRE interrupts ok\n"
	args := []string{"-m", "64", "-nographic", "-kernel", payloadPath(t, "uartirq")}
	const help = "\n\rC-a h    print this help\n" +
		"\rC-a x    exit emulator\n" +
		"\rC-a s    save disk data back to file (if -snapshot)\n" +
		"\rC-a t    toggle console timestamps\n" +
		"\rC-a b    send break (magic sysrq)\n" +
		"\rC-a c    switch between console and monitor\n" +
		"\rC-a C-a  sends C-a\n\r"
	const terminated = "QEMU: Terminated\n\r"
	const banner = "QEMU 7.2.0 monitor - type 'help' for more information\r\n(qemu) "
	cases := []struct {
		name string
		keys []string
		want string // stdout without the guest's line, as QEMU 7.2 prints it
	}{
		{"help-exit", []string{"\x01h", "\x01x"}, help + terminated},
		{"exit", []string{"\x01x"}, terminated},
		{"monitor-and-back", []string{"\x01c", "\x01c", "\x01x"}, banner + "\r\n" + terminated},
	}
	version := regexp.MustCompile(`QEMU \d+\.\d+\.\d+ monitor`)
	norm := func(s string) string { return version.ReplaceAllString(s, "QEMU 7.2.0 monitor") }
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r, pre := muxSession(t, func(p *proc) bool { return strings.Contains(withoutBanner(p.stdout.String()), guestLine) }, c.keys, asQEMU, args...)
			got := r.stdout
			if c.name == "monitor-and-back" {
				knownBug(t, monitorBanner.MatchString(pre),
					"the -nographic monitor printed its banner at start, not on C-a c")
			} else {
				got = stripStartBanner(t, got)
			}
			got = strings.Replace(got, guestLine, "", 1)
			if r.code != 0 || r.stderr != "" || norm(got) != c.want {
				t.Errorf("govmm: want exit 0, no stderr, stdout %q\n%v", c.want, r)
			}
			if realQEMU == "" {
				return
			}
			t0 := time.Now()
			q, _ := muxSession(t, func(*proc) bool { return time.Since(t0) > time.Second }, c.keys, realQEMU, append([]string{"-M", "microvm"}, args...)...)
			if q.code != 0 || q.stderr != "" || norm(q.stdout) != c.want {
				t.Errorf("QEMU does not do what this test expects: %v", q)
			}
		})
	}
}

// TestRefusedOptions checks that what the machine cannot do yet is refused
// by name, not accepted and ignored. The list in unsupported.go shrinks as
// features land, so an option that is accepted must then work.
func TestRefusedOptions(t *testing.T) {
	t.Parallel()
	// -netdev stays refused: there is no network device.
	t.Run("netdev", func(t *testing.T) {
		t.Parallel()
		r := runBin(t, asQEMU, "-m", "64", "-display", "none", "-kernel", "/nonexistent.elf", "-netdev", "user,id=n0")
		lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
		last := lines[len(lines)-1]
		if r.code != 1 || !strings.HasPrefix(last, qemuName+": -netdev") {
			t.Errorf("want exit 1 and a last line naming -netdev\n%v", r)
		}
	})

	needKVM(t)
	kernel := payloadPath(t, "hello")
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	const hello = "Hello from a govmm payload guest!\n"
	cases := []struct {
		name  string // what the refusal must mention
		extra []string
		// works checks the run once the option is accepted.
		works func(r result) bool
	}{
		// Accepted, -S must hold the guest: the test ends it with SIGTERM.
		{"-S", []string{"-S"}, func(r result) bool { return r.code == 0 && !strings.Contains(r.stdout, hello) }},
		{"-qmp", []string{"-qmp", "unix:" + filepath.Join(dir, "qmp.sock") + ",server=on,wait=off"},
			func(r result) bool { return r.code == 67 && r.stdout == hello }},
		{"-monitor", []string{"-monitor", "unix:" + filepath.Join(dir, "mon.sock") + ",server=on,wait=off"},
			func(r result) bool { return r.code == 67 && r.stdout == hello }},
		// -nographic with -serial puts the human monitor alone on stdio.
		{"-monitor", []string{"-serial", "null"},
			func(r result) bool {
				return r.code == 67 && monitorBanner.FindString(r.stdout) == r.stdout && strings.HasPrefix(r.stdout, "QEMU ")
			}},
		{"-drive", []string{"-drive", "file=" + img + ",if=virtio,format=raw"},
			func(r result) bool { return r.code == 67 && r.stdout == hello }},
		{"virtio-rng-pci", []string{"-device", "virtio-rng-pci"},
			func(r result) bool { return r.code == 67 && r.stdout == hello }},
		{"virtio-serial-pci", []string{"-device", "virtio-serial-pci"},
			func(r result) bool { return r.code == 67 && r.stdout == hello }},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.extra, " "), func(t *testing.T) {
			t.Parallel()
			p := start(t, nil, asQEMU, guestArgs(kernel, c.extra...)...)
			if c.name == "-S" {
				select {
				case <-p.done:
				case <-time.After(2 * time.Second):
					p.cmd.Process.Signal(syscall.SIGTERM)
				}
			}
			r := p.wait(t, runTimeout)
			if r.code == 1 {
				if strings.Contains(r.stderr, "panic") || !strings.Contains(r.stderr, c.name) {
					t.Errorf("refused without naming %s\n%v", c.name, r)
				}
				return
			}
			if c.extra[0] != "-serial" {
				r.stdout = stripStartBanner(t, r.stdout)
			}
			if !c.works(r) {
				t.Errorf("accepted, but the guest did not run as it should\n%v", r)
			}
		})
	}
}
