package main

// End-to-end tests of the process life cycle: reboots and terminating
// signals, -daemonize and -pidfile. Helpers are in e2e_test.go.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRebootThenSignal runs triplefault without -no-reboot: the guest
// reboots again and again until a signal ends the VMM, which reports the
// signal and its sender as QEMU does and exits 0.
func TestRebootThenSignal(t *testing.T) {
	needKVM(t)
	t.Parallel()
	kernel := payloadPath(t, "triplefault")
	args := []string{"-m", "64", "-nographic", "-kernel", kernel}
	const line = "triplefault: booted\n"
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		t.Run(unix.SignalName(sig), func(t *testing.T) {
			t.Parallel()
			try := func(bin string, args ...string) result {
				p := start(t, nil, bin, args...)
				if !waitFor(20*time.Second, func() bool { return strings.Count(withoutBanner(p.stdout.String()), line) >= 2 }) {
					p.cmd.Process.Kill()
					t.Fatalf("%s: the guest did not reboot: %v", bin, p.wait(t, 5*time.Second))
				}
				if err := p.cmd.Process.Signal(sig); err != nil {
					t.Fatal(err)
				}
				return p.wait(t, 10*time.Second)
			}
			r := try(asQEMU, args...)
			r.stdout = stripStartBanner(t, r.stdout)
			// The sender is this test process: QEMU names it by its argv[0].
			want := fmt.Sprintf("%s: terminating on signal %d from pid %d (%s)\n", qemuName, sig, os.Getpid(), argv0(t))
			if r.code != 0 || r.stderr != want {
				t.Errorf("govmm: want exit 0 and stderr %q\n%v", want, r)
			}
			if got := strings.ReplaceAll(r.stdout, line, ""); got != "" && !strings.HasPrefix(line, got) {
				t.Errorf("govmm: stdout has more than the payload's lines (and a part of one at the end): %q", clip(got))
			}
			if realQEMU == "" {
				return
			}
			q := try(realQEMU, append([]string{"-M", "microvm"}, args...)...)
			if q.code != r.code || normStderr(q.stderr) != normStderr(r.stderr) {
				t.Errorf("govmm and QEMU differ\ngovmm: %v\nQEMU:  %v", r, q)
			}
		})
	}
}

// argv0 is this process's argv[0] as /proc shows it to others.
func argv0(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	s, _, _ := bytes.Cut(b, []byte{0})
	return string(s)
}

// gone reports whether pid has ended (a zombie counts: a daemon's parent is
// init or a subreaper, which reaps it in its own time).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the parenthesized command name.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] == 'Z' || b[i+2] == 'X'
	}
	return false
}

// readPID reads a pid file.
func readPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Fatalf("pid file holds %q", b)
	}
	return pid
}

// daemon is a -daemonize run whose command returned.
type daemon struct {
	r       result
	elapsed time.Duration
	pid     int // from the pid file
}

// startDaemon runs bin with args in dir and waits for the command to
// return; the daemon is killed when the test ends if it still runs.
func startDaemon(t *testing.T, dir, pidfile, bin string, args ...string) daemon {
	t.Helper()
	t0 := time.Now()
	// Stdout and stderr are pipes: the command only returns once the
	// daemon has let go of them too.
	r := start(t, func(c *exec.Cmd) { c.Dir = dir }, bin, args...).wait(t, runTimeout)
	d := daemon{r: r, elapsed: time.Since(t0)}
	if r.code != 0 {
		t.Fatalf("%s -daemonize: %v", bin, r)
	}
	if !filepath.IsAbs(pidfile) {
		pidfile = filepath.Join(dir, pidfile)
	}
	d.pid = readPID(t, pidfile)
	t.Cleanup(func() {
		if !gone(d.pid) {
			unix.Kill(d.pid, unix.SIGKILL)
		}
	})
	return d
}

// stop sends SIGTERM to the daemon and waits for it to end.
func (d daemon) stop(t *testing.T) {
	t.Helper()
	if err := unix.Kill(d.pid, unix.SIGTERM); err != nil {
		t.Fatalf("kill %d: %v", d.pid, err)
	}
	if !waitFor(10*time.Second, func() bool { return gone(d.pid) }) {
		t.Fatalf("daemon %d still runs 10 s after SIGTERM", d.pid)
	}
}

func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

func TestDaemonize(t *testing.T) {
	needKVM(t)
	t.Parallel()
	// uartirq prints a line, then idles waiting for serial input.
	kernel := payloadPath(t, "uartirq")
	const uartLine = "uart irq: transmit by THRE interrupts ok\n"

	vmms := []struct {
		name, bin string
		pre       []string
	}{
		{"govmm", asQEMU, nil},
		{"QEMU", realQEMU, []string{"-M", "microvm"}},
	}
	for _, v := range vmms {
		t.Run(v.name, func(t *testing.T) {
			if v.bin == "" {
				t.Skip("QEMU is not installed")
			}
			t.Parallel()
			dir := t.TempDir()
			pidfile := filepath.Join(dir, "vm.pid")
			serial := filepath.Join(dir, "serial.log")
			args := append(append([]string{}, v.pre...), "-m", "64", "-daemonize", "-pidfile", pidfile,
				"-serial", "file:"+serial, "-display", "none", "-kernel", kernel)
			d := startDaemon(t, dir, pidfile, v.bin, args...)
			if d.r.stdout != "" || d.r.stderr != "" {
				t.Errorf("-daemonize printed something: %v", d.r)
			}
			if d.elapsed > 10*time.Second {
				t.Errorf("-daemonize took %v to return", d.elapsed)
			}
			if gone(d.pid) {
				t.Fatalf("the pid file names %d, which is not running", d.pid)
			}
			exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", d.pid))
			want := v.bin
			if v.name == "govmm" {
				want = govmmBin
			}
			if !sameFile(exe, want) {
				t.Errorf("pid %d runs %q, want %q", d.pid, exe, want)
			}
			if v.name == "govmm" {
				if !waitFor(10*time.Second, func() bool { b, _ := os.ReadFile(serial); return string(b) == uartLine }) {
					b, _ := os.ReadFile(serial)
					t.Errorf("serial log %q, want %q", b, uartLine)
				}
			}
			d.stop(t)
			if _, err := os.Stat(pidfile); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("pid file still there after SIGTERM (%v)", err)
			}
			// QEMU's daemon runs with umask 027: what it creates is not
			// readable by others, whatever the caller's umask.
			st, err := os.Stat(serial)
			if err != nil {
				t.Fatal(err)
			}
			if v.name == "govmm" {
				knownBug(t, st.Mode().Perm()&0o027 != 0,
					fmt.Sprintf("the daemon's -serial file has mode %v; QEMU's daemon sets umask 027 and gets 0640", st.Mode().Perm()))
			}
			if st.Mode().Perm()&0o027 != 0 {
				t.Errorf("the daemon's -serial file has mode %v, want none of 0027", st.Mode().Perm())
			}
		})
	}

	// A relative -pidfile names a file in the directory QEMU was started
	// in, although the daemon moves to /.
	t.Run("relative-pidfile", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		d := startDaemon(t, dir, "vm.pid", asQEMU, "-m", "64", "-daemonize", "-pidfile", "vm.pid",
			"-serial", "file:serial.log", "-display", "none", "-kernel", kernel)
		if _, err := os.Stat(filepath.Join(dir, "serial.log")); err != nil {
			t.Errorf("relative -serial file: %v", err)
		}
		d.stop(t)
		_, err := os.Stat(filepath.Join(dir, "vm.pid"))
		knownBug(t, err == nil, "a relative -pidfile is not removed at exit after -daemonize: the daemon chdirs to / and removes ./vm.pid there")
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pid file still there after SIGTERM (%v)", err)
		}
	})

	// Refusals come from the command line check, before any daemon runs.
	refused := []struct {
		name string
		args []string
		want string
	}{
		{"nographic", []string{"-nographic"}, "PROG: -nographic cannot be used with -daemonize\n"},
		{"serial-stdio", []string{"-display", "none", "-serial", "stdio"}, "PROG: -serial stdio: cannot use stdio with -daemonize\n" +
			"PROG: -serial stdio: could not connect serial device to character backend 'stdio'\n"},
		{"missing-kernel", []string{"-display", "none", "-serial", "null", "-kernel", "/nonexistent/vm.elf"}, ""},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			pidfile := filepath.Join(dir, "vm.pid")
			args := append([]string{"-m", "64", "-daemonize", "-pidfile", pidfile, "-kernel", kernel}, c.args...)
			r := runBin(t, asQEMU, args...)
			if r.code != 1 || r.stdout != "" || (c.want != "" && normStderr(r.stderr) != c.want) {
				t.Errorf("want exit 1 and stderr %q\n%v", c.want, r)
			}
			if c.want == "" && !strings.HasPrefix(r.stderr, "qemu: could not open kernel file '/nonexistent/vm.elf'") {
				t.Errorf("want the kernel file error\n%v", r)
			}
			if _, err := os.Stat(pidfile); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("pid file left behind (%v)", err)
			}
			if q, ok := qemu(t, "microvm", args...); ok {
				if _, err := os.Stat(pidfile); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("QEMU left a pid file (%v)", err)
				}
				if c.want == "" { // the errno text is checked in TestKernelFileErrors
					q.stderr, r.stderr = strings.ToLower(q.stderr), strings.ToLower(r.stderr)
				}
				sameAsQEMU(t, r, q)
			}
		})
	}
}

func TestPIDFile(t *testing.T) {
	needKVM(t)
	t.Parallel()

	// Without -daemonize the file is there while the VM runs and removed
	// at every kind of exit.
	t.Run("removed-at-exit", func(t *testing.T) {
		t.Parallel()
		for _, name := range []string{"hello", "triplefault"} {
			dir := t.TempDir()
			pidfile := filepath.Join(dir, "vm.pid")
			args := guestArgs(payloadPath(t, name), "-pidfile", pidfile)
			r := runBin(t, asQEMU, args...)
			r.stdout = stripStartBanner(t, r.stdout)
			if r.code != map[string]int{"hello": 67, "triplefault": 0}[name] || r.stderr != "" {
				t.Errorf("%s: %v", name, r)
			}
			if _, err := os.Stat(pidfile); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: pid file left behind (%v)", name, err)
			}
			if q, ok := qemu(t, "microvm", args...); ok {
				sameAsQEMU(t, r, q)
				if _, err := os.Stat(pidfile); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s: QEMU left its pid file (%v)", name, err)
				}
			}
		}
	})

	// A pid file in use by a running govmm is refused by a second govmm
	// and by QEMU, with QEMU's message: the locks of the two conflict.
	t.Run("locked", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		pidfile := filepath.Join(dir, "vm.pid")
		d := startDaemon(t, dir, pidfile, asQEMU, "-m", "64", "-daemonize", "-pidfile", pidfile,
			"-serial", "null", "-display", "none", "-kernel", payloadPath(t, "uartirq"))
		args := guestArgs(payloadPath(t, "hello"), "-pidfile", pidfile)
		r := runBin(t, asQEMU, args...)
		const want = "PROG: cannot create PID file: Cannot lock pid file: Resource temporarily unavailable\n"
		if r.code != 1 || r.stdout != "" || normStderr(r.stderr) != want {
			t.Errorf("second govmm: want exit 1 and %q\n%v", want, r)
		}
		if q, ok := qemu(t, "microvm", args...); ok {
			sameAsQEMU(t, r, q)
		}
		if got := readPID(t, pidfile); got != d.pid {
			t.Errorf("the pid file now holds %d, want %d", got, d.pid)
		}
		d.stop(t)
	})
}

// TestNoRebootNoShutdown: with -no-reboot a guest reset is a shutdown, and
// with -no-shutdown a shutdown stops the VM instead of ending QEMU: the
// process stays until something (here a signal) ends it.
func TestNoRebootNoShutdown(t *testing.T) {
	needKVM(t)
	t.Parallel()
	args := []string{"-m", "64", "-nographic", "-no-reboot", "-no-shutdown", "-kernel", payloadPath(t, "triplefault")}
	const line = "triplefault: booted\n"
	try := func(bin string, args ...string) (r result, early bool) {
		p := start(t, nil, bin, args...)
		if !waitFor(20*time.Second, func() bool { return strings.Contains(withoutBanner(p.stdout.String()), line) }) {
			t.Fatalf("%s: the guest did not boot: %v", bin, p.wait(t, 5*time.Second))
		}
		select {
		case <-p.done:
			return p.wait(t, time.Second), true
		case <-time.After(1500 * time.Millisecond):
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		return p.wait(t, 10*time.Second), false
	}
	var q result
	if realQEMU != "" {
		var early bool
		q, early = try(realQEMU, append([]string{"-M", "microvm"}, args...)...)
		if early {
			t.Fatalf("QEMU ended without a signal: %v", q)
		}
	}
	r, early := try(asQEMU, args...)
	r.stdout = stripStartBanner(t, r.stdout)
	knownBug(t, early && r.code == 0, "with -no-reboot -no-shutdown a triple fault ends govmm (exit 0); QEMU stops the VM and keeps running")
	want := fmt.Sprintf("%s: terminating on signal 15 from pid %d (%s)\n", qemuName, os.Getpid(), argv0(t))
	if early || r.code != 0 || r.stdout != line || r.stderr != want {
		t.Errorf("want one line, still running, then exit 0 on SIGTERM with %q\n%v", want, r)
	}
	if realQEMU != "" {
		sameAsQEMU(t, r, q)
	}
}
