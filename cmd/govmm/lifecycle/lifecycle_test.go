package lifecycle

import (
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

func TestPIDFileLockedAndRemoved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vm.pid")
	p, err := CreatePIDFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("pid file holds %q, %v", b, err)
	}
	// POSIX locks are per process: check from another process, as a
	// second QEMU would.
	if os.Getenv("GOVMM_PIDFILE_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPIDFileHelper$")
		cmd.Env = append(os.Environ(), "GOVMM_PIDFILE_CHILD="+path)
		out, _ := cmd.CombinedOutput()
		if !strings.Contains(string(out), "cannot create PID file: Cannot lock pid file: Resource temporarily unavailable") {
			t.Fatalf("second instance: %s", out)
		}
	}
	if err := p.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("pid file still there: %v", err)
	}
}

func TestPIDFileHelper(t *testing.T) {
	path := os.Getenv("GOVMM_PIDFILE_CHILD")
	if path == "" {
		t.Skip("helper")
	}
	_, err := CreatePIDFile(path)
	if err == nil {
		t.Fatal("locked pid file was taken")
	}
	t.Log(err)
	os.Stdout.WriteString(err.Error() + "\n")
}

func TestPIDFileBadPath(t *testing.T) {
	_, err := CreatePIDFile("/nonexist/x")
	want := "cannot create PID file: Could not create '/nonexist/x': No such file or directory"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

func TestSignalSenderPID(t *testing.T) {
	ch, err := NotifyTermination()
	if err != nil {
		t.Fatal(err)
	}
	// A child process sends SIGTERM to us: its pid must be reported.
	cmd := exec.Command("kill", "-TERM", strconv.Itoa(os.Getpid()))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	cmd.Wait()
	select {
	case si := <-ch:
		if si.Signo != int(syscall.SIGTERM) || si.PID != pid {
			t.Fatalf("got %+v, want signo 15 from pid %d", si, pid)
		}
		if si.UID != os.Getuid() {
			t.Errorf("uid %d, want %d", si.UID, os.Getuid())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no signal reported")
	}
	// A signal from ourselves, to check repeated delivery works.
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	select {
	case si := <-ch:
		if si.Signo != int(syscall.SIGHUP) || si.PID != os.Getpid() {
			t.Fatalf("got %+v", si)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no SIGHUP reported")
	}
}

func TestTerminationMessage(t *testing.T) {
	got := TerminationMessage("qemu-system-x86_64", SignalInfo{Signo: 15, PID: os.Getpid()})
	name, _ := os.ReadFile("/proc/self/cmdline")
	argv0 := strings.SplitN(string(name), "\x00", 2)[0]
	want := "qemu-system-x86_64: terminating on signal 15 from pid " + strconv.Itoa(os.Getpid()) + " (" + argv0 + ")"
	if got != want {
		t.Fatalf("got %q want %q", got, want)
	}
	if got := TerminationMessage("q", SignalInfo{Signo: 2}); got != "q: terminated by signal 2" {
		t.Fatal(got)
	}
	if got := TerminationMessage("q", SignalInfo{Signo: 2, PID: 1 << 30}); !strings.HasSuffix(got, "(<unknown process>)") {
		t.Fatal(got)
	}
}

// TestDaemonize runs a helper that daemonizes: the parent must exit 0 only
// once the child is ready, and the child must be in its own session.
func TestDaemonize(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDaemonHelper$")
	cmd.Env = append(os.Environ(), "GOVMM_DAEMON_TEST="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("parent: %v: %s", err, out)
	}
	// The parent exited after Ready; the child wrote its sid before that.
	b, err := os.ReadFile(filepath.Join(dir, "sid"))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 || f[0] != f[1] {
		t.Fatalf("child not a session leader: pid/sid %q", b)
	}
	// Failure before Ready: the parent exits with the child's status.
	cmd = exec.Command(os.Args[0], "-test.run=^TestDaemonHelper$")
	cmd.Env = append(os.Environ(), "GOVMM_DAEMON_TEST="+dir, "GOVMM_DAEMON_FAIL=1")
	out, err = cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || !strings.Contains(string(out), "child failed") {
		t.Fatalf("failing child: %v %s", err, out)
	}
}

func TestDaemonHelper(t *testing.T) {
	dir := os.Getenv("GOVMM_DAEMON_TEST")
	if dir == "" {
		t.Skip("helper")
	}
	d, err := Daemonize(os.Exit)
	if err != nil {
		os.Exit(2)
	}
	if os.Getenv("GOVMM_DAEMON_FAIL") != "" {
		os.Stderr.WriteString("child failed\n")
		os.Exit(3)
	}
	sid, _ := unix.Getsid(0)
	os.WriteFile(filepath.Join(dir, "sid"), []byte(strconv.Itoa(os.Getpid())+" "+strconv.Itoa(sid)), 0o644)
	if err := d.Ready(); err != nil {
		os.Exit(4)
	}
	os.Exit(0)
}
