//go:build linux && amd64

package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A filter cannot be removed, so each case runs in a child: the test
// binary re-executed with childEnv naming the scenario and optsEnv the
// options. The child prints progress lines; the parent checks them and how
// the child ended.
const (
	childEnv = "GOVMM_SANDBOX_TEST_CHILD"
	optsEnv  = "GOVMM_SANDBOX_TEST_OPTS" // obsolete,elevateprivileges,spawn,resourcecontrol[;...]
	nrEnv    = "GOVMM_SANDBOX_TEST_NR"
	trapEnv  = "GOVMM_SANDBOX_TEST_TRAP" // act as a kernel without KILL_PROCESS
)

func TestMain(m *testing.M) {
	if sc := os.Getenv(childEnv); sc != "" {
		os.Exit(runChild(sc))
	}
	os.Exit(m.Run())
}

// childOptions gives one Options per -sandbox, as several may be given.
func childOptions() []Options {
	var all []Options
	for _, s := range strings.Split(os.Getenv(optsEnv), ";") {
		f := strings.Split(s+",,,", ",")
		all = append(all, Options{Obsolete: f[0], ElevatePrivileges: f[1], Spawn: f[2], ResourceControl: f[3]})
	}
	return all
}

func runChild(scenario string) int {
	// Some threads exist before the filter: TSYNC must reach them too.
	early := make(chan func())
	go func() {
		runtime.LockOSThread()
		for fn := range early {
			fn()
		}
	}()
	if os.Getenv(trapEnv) != "" {
		killOnce.Do(func() { killOnce.action = unix.SECCOMP_RET_TRAP })
	}
	for _, o := range childOptions() {
		if err := Install(o); err != nil {
			fmt.Println("install:", err)
			return 3
		}
	}
	fmt.Println("installed")
	switch scenario {
	case "syscall":
		// A raw system call with no arguments that could do harm.
		nr, _ := strconv.Atoi(os.Getenv(nrEnv))
		_, _, errno := unix.RawSyscall6(uintptr(nr), 0, 0, 0, 0, 0, 0)
		fmt.Printf("survived errno=%d\n", errno)
	case "syscall-early-thread":
		// The same from a thread that existed before Install.
		nr, _ := strconv.Atoi(os.Getenv(nrEnv))
		done := make(chan unix.Errno)
		early <- func() {
			_, _, errno := unix.RawSyscall6(uintptr(nr), 0, 0, 0, 0, 0, 0)
			done <- errno
		}
		fmt.Printf("survived errno=%d\n", <-done)
	case "spawn":
		n, err := manyThreads(16)
		if err != nil {
			fmt.Println("threads:", err)
			return 4
		}
		fmt.Printf("threads ok, %d new\n", n)
		if _, _, errno := unix.RawSyscall(unix.SYS_CLONE3, 0, 0, 0); errno == unix.ENOSYS {
			fmt.Println("clone3 ENOSYS")
		}
		os.Stdout.Sync()
		err = exec.Command("/bin/true").Run()
		fmt.Println("exec returned:", err)
	case "execve":
		err := unix.Exec("/bin/true", []string{"true"}, nil)
		fmt.Println("exec returned:", err)
	case "workload":
		if err := workload(); err != nil {
			fmt.Println("workload:", err)
			return 5
		}
		fmt.Println("workload ok")
	default:
		fmt.Println("unknown scenario", scenario)
		return 6
	}
	return 0
}

// manyThreads makes the runtime run n goroutines locked to distinct OS
// threads at once, at least n minus the threads already there being new
// ones (clone with the runtime's flags), and returns how many were new.
// The goroutines exit locked, so their threads end with them.
func manyThreads(n int) (int, error) {
	before := map[int]bool{}
	ents, _ := os.ReadDir("/proc/self/task")
	for _, e := range ents {
		tid, _ := strconv.Atoi(e.Name())
		before[tid] = true
	}
	release := make(chan struct{})
	tids := make(chan int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			tids <- unix.Gettid()
			<-release
		}()
	}
	seen := map[int]bool{}
	fresh := 0
	for i := 0; i < n; i++ {
		tid := <-tids
		seen[tid] = true
		if !before[tid] {
			fresh++
		}
	}
	close(release)
	wg.Wait()
	if len(seen) != n || fresh < n-len(before) {
		return fresh, fmt.Errorf("%d goroutines on %d threads, %d new (had %d)", n, len(seen), fresh, len(before))
	}
	return fresh, nil
}

// workload is what a VMM does all day; none of it may trip the filter.
func workload() error {
	// Timers and goroutines.
	var wg sync.WaitGroup
	results := make(chan int, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			time.Sleep(time.Millisecond)
			results <- i
		}(i)
	}
	wg.Wait()
	if len(results) != 100 {
		return errors.New("goroutines lost")
	}
	tk := time.NewTicker(time.Millisecond)
	for i := 0; i < 3; i++ {
		<-tk.C
	}
	tk.Stop()
	runtime.GC()
	if _, err := manyThreads(16); err != nil {
		return err
	}

	// Files.
	dir, err := os.MkdirTemp("", "sandbox")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("hello"), 0o600); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt([]byte("J"), 0); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	f.Close()
	if err := os.Rename(p, p+"2"); err != nil {
		return err
	}
	if b, err := os.ReadFile(p + "2"); err != nil || string(b) != "Jello" {
		return fmt.Errorf("file: %q %v", b, err)
	}

	// Sockets: TCP on loopback and a unix socket pair.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.Copy(c, c)
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return err
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		return fmt.Errorf("tcp echo: %q %v", buf, err)
	}
	c.Close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	unix.Write(fds[0], []byte("x"))
	if n, err := unix.Read(fds[1], buf); err != nil || n != 1 {
		return fmt.Errorf("socketpair: %d %v", n, err)
	}
	unix.Close(fds[0])
	unix.Close(fds[1])

	// Memory mappings, as for guest RAM.
	mem, err := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return err
	}
	mem[4095] = 1
	if err := unix.Madvise(mem, unix.MADV_DONTNEED); err != nil {
		return err
	}
	if err := unix.Munmap(mem); err != nil {
		return err
	}

	// ioctl: on /dev/null (not a tty) and, where present, /dev/kvm.
	nul, err := os.OpenFile("/dev/null", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if _, err := unix.IoctlGetTermios(int(nul.Fd()), unix.TCGETS); err != unix.ENOTTY {
		return fmt.Errorf("TCGETS on /dev/null: %v", err)
	}
	nul.Close()
	if kvm, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err == nil {
		const kvmGetAPIVersion = 0xae00
		v, _, errno := unix.Syscall(unix.SYS_IOCTL, kvm.Fd(), kvmGetAPIVersion, 0)
		kvm.Close()
		if errno != 0 || v != 12 {
			return fmt.Errorf("KVM_GET_API_VERSION: %d %v", v, errno)
		}
	}

	// Signals, delivered to one of many threads.
	sc := make(chan os.Signal, 1)
	signal.Notify(sc, syscall.SIGUSR1)
	unix.Kill(os.Getpid(), syscall.SIGUSR1)
	select {
	case <-sc:
	case <-time.After(5 * time.Second):
		return errors.New("SIGUSR1 not delivered")
	}
	signal.Stop(sc)

	// Every thread carries the filter and no_new_privs.
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		st, err := os.ReadFile("/proc/self/task/" + t.Name() + "/status")
		if err != nil {
			continue // the thread just ended
		}
		if !bytes.Contains(st, []byte("\nSeccomp:\t2\n")) || !bytes.Contains(st, []byte("\nNoNewPrivs:\t1\n")) {
			return fmt.Errorf("thread %s not filtered:\n%s", t.Name(), st)
		}
	}
	return nil
}

type childResult struct {
	stdout, stderr string
	killedBySIGSYS bool
	exitCode       int
}

func runTestChild(t *testing.T, scenario, opts string, nr int) childResult {
	t.Helper()
	return runTestChildBinary(t, os.Args[0], scenario, opts, nr)
}

func runTestChildBinary(t *testing.T, bin, scenario, opts string, nr int) childResult {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), childEnv+"="+scenario, optsEnv+"="+opts, nrEnv+"="+strconv.Itoa(nr))
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errb
	err := cmd.Run()
	r := childResult{stdout: out.String(), stderr: errb.String(), exitCode: cmd.ProcessState.ExitCode()}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGSYS {
		r.killedBySIGSYS = true
	}
	if !strings.Contains(r.stdout, "installed\n") {
		t.Fatalf("child did not install the filter: %v\nstdout:\n%s\nstderr:\n%s", err, r.stdout, r.stderr)
	}
	return r
}

// killed reports whether the child died of the filter's kill action:
// SIGSYS from SECCOMP_RET_KILL_PROCESS, or, on kernels without it, the Go
// runtime's crash on SECCOMP_RET_TRAP's SIGSYS.
func (r childResult) killed() bool {
	if killAction() == unix.SECCOMP_RET_KILL_PROCESS {
		return r.killedBySIGSYS
	}
	return r.exitCode == 2 && strings.Contains(r.stderr, "SIGSYS")
}

func requireSeccomp(t *testing.T) {
	t.Helper()
	if err := unix.Prctl(unix.PR_GET_SECCOMP, 0, 0, 0, 0); err == unix.EINVAL {
		t.Skip("kernel without seccomp")
	}
	if testing.Short() {
		t.Skip("child processes in -short")
	}
}

func TestSpawnDenyKillsExecButKeepsThreads(t *testing.T) {
	requireSeccomp(t)
	r := runTestChild(t, "spawn", ",,deny,", 0)
	if !strings.Contains(r.stdout, "threads ok") {
		t.Fatalf("threads failed under spawn=deny:\n%s\n%s", r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "clone3 ENOSYS") {
		t.Errorf("clone3 did not get ENOSYS:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, "exec returned") || !r.killed() {
		t.Errorf("os/exec of /bin/true not killed (exit %d):\n%s\n%s", r.exitCode, r.stdout, r.stderr)
	}

	r = runTestChild(t, "execve", ",,deny,", 0)
	if strings.Contains(r.stdout, "exec returned") || !r.killed() {
		t.Errorf("execve not killed (exit %d):\n%s\n%s", r.exitCode, r.stdout, r.stderr)
	}
}

// A cgo-linked test binary (as under -race) starts threads with glibc's
// pthread_create; govmm is built with CGO_ENABLED=0, where the Go runtime
// calls clone itself with other flags. Check that path with a pure Go
// build of this test.
func TestSpawnDenyKeepsPureGoThreads(t *testing.T) {
	requireSeccomp(t)
	bin := os.Args[0]
	if cgoEnabled() {
		goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
		bin = filepath.Join(t.TempDir(), "sandbox.test")
		cmd := exec.Command(goTool, "test", "-c", "-o", bin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Skipf("cannot build a pure Go test binary: %v\n%s", err, out)
		}
	}
	r := runTestChildBinary(t, bin, "spawn", ",,deny,", 0)
	if !strings.Contains(r.stdout, "threads ok") {
		t.Fatalf("threads failed under spawn=deny:\n%s\n%s", r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout, "exec returned") || !r.killed() {
		t.Errorf("os/exec of /bin/true not killed (exit %d):\n%s\n%s", r.exitCode, r.stdout, r.stderr)
	}
	r = runTestChildBinary(t, bin, "workload", "deny,deny,deny,deny", 0)
	if r.exitCode != 0 || !strings.Contains(r.stdout, "workload ok") {
		t.Errorf("workload failed (exit %d):\n%s\n%s", r.exitCode, r.stdout, r.stderr)
	}
}

func cgoEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return true
	}
	for _, s := range bi.Settings {
		if s.Key == "CGO_ENABLED" {
			return s.Value != "0"
		}
	}
	return true
}

func TestSpawnAllowedByDefault(t *testing.T) {
	requireSeccomp(t)
	r := runTestChild(t, "spawn", "", 0)
	if r.exitCode != 0 || !strings.Contains(r.stdout, "exec returned: <nil>") {
		t.Errorf("exec under default sandbox (exit %d):\n%s\n%s", r.exitCode, r.stdout, r.stderr)
	}
}

func TestSyscallsUnderFilter(t *testing.T) {
	requireSeccomp(t)
	tests := []struct {
		name  string
		opts  string
		nr    int
		kill  bool
		errno unix.Errno // when not killed; 0 means any
	}{
		{"uselib", "", unix.SYS_USELIB, true, 0},
		{"ustat", "", unix.SYS_USTAT, true, 0},
		{"sysfs", "", unix.SYS_SYSFS, true, 0},
		{"_sysctl", "", unix.SYS__SYSCTL, true, 0},
		{"ustat obsolete=allow", "allow,,,", unix.SYS_USTAT, false, 0},
		{"reboot obsolete=allow", "allow,,,", unix.SYS_REBOOT, true, 0},
		{"setuid", ",deny,,", unix.SYS_SETUID, true, 0},
		{"setuid children", ",children,,", unix.SYS_SETUID, true, 0},
		{"setuid allowed", "", unix.SYS_SETUID, false, 0},
		{"setpriority", ",,,deny", unix.SYS_SETPRIORITY, false, unix.EPERM},
		{"sched_setaffinity", ",,,deny", unix.SYS_SCHED_SETAFFINITY, false, unix.EPERM},
		{"unshare", ",,deny,", unix.SYS_UNSHARE, true, 0},
		// Two -sandbox options stack: each filter denies its own groups.
		{"two filters: setuid", "allow,,,;allow,deny,,", unix.SYS_SETUID, true, 0},
		{"two filters: ustat", "allow,,,;allow,deny,,", unix.SYS_USTAT, false, 0},
		{"two filters: setpriority", ",,,deny;,deny,,", unix.SYS_SETPRIORITY, false, unix.EPERM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runTestChild(t, "syscall", tt.opts, tt.nr)
			if tt.kill {
				if !r.killed() || strings.Contains(r.stdout, "survived") {
					t.Errorf("not killed (exit %d):\n%s\n%s", r.exitCode, r.stdout, r.stderr)
				}
				return
			}
			if r.exitCode != 0 || !strings.Contains(r.stdout, "survived") {
				t.Fatalf("died (exit %d):\n%s\n%s", r.exitCode, r.stdout, r.stderr)
			}
			if tt.errno != 0 && !strings.Contains(r.stdout, fmt.Sprintf("errno=%d\n", tt.errno)) {
				t.Errorf("want errno %d:\n%s", tt.errno, r.stdout)
			}
		})
	}
}

// On a kernel without SECCOMP_RET_KILL_PROCESS QEMU traps instead; in Go
// the SIGSYS crashes the process with a traceback.
func TestTrapFallbackCrashes(t *testing.T) {
	requireSeccomp(t)
	t.Setenv(trapEnv, "1")
	r := runTestChild(t, "syscall", "", unix.SYS_USELIB)
	if r.exitCode != 2 || !strings.Contains(r.stderr, "SIGSYS: bad system call") || strings.Contains(r.stdout, "survived") {
		t.Errorf("exit %d:\n%s\n%s", r.exitCode, r.stdout, r.stderr)
	}
}

func TestThreadStartedBeforeInstallIsFiltered(t *testing.T) {
	requireSeccomp(t)
	r := runTestChild(t, "syscall-early-thread", "", unix.SYS_USELIB)
	if !r.killed() || strings.Contains(r.stdout, "survived") {
		t.Errorf("uselib on an early thread not killed (exit %d):\n%s\n%s", r.exitCode, r.stdout, r.stderr)
	}
}

func TestWorkloadUnderStrictestFilter(t *testing.T) {
	requireSeccomp(t)
	r := runTestChild(t, "workload", "deny,deny,deny,deny", 0)
	if r.exitCode != 0 || !strings.Contains(r.stdout, "workload ok") {
		t.Errorf("workload failed (exit %d):\n%s\n%s", r.exitCode, r.stdout, r.stderr)
	}
}

func TestInstallRejectsBadOptions(t *testing.T) {
	// Fails before touching the process, so it can run here.
	err := Install(Options{Spawn: "maybe"})
	if err == nil || err.Error() != "invalid argument for spawn" {
		t.Fatalf("got %v", err)
	}
	if st, _ := os.ReadFile("/proc/self/status"); bytes.Contains(st, []byte("\nSeccomp:\t2\n")) {
		t.Fatal("a filter was installed anyway")
	}
}
