package lifecycle

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// daemonEnv marks the re-executed child and names its status pipe's fd.
const daemonEnv = "GOVMM_DAEMONIZE_FD"

// Daemon is the child side of -daemonize.
type Daemon struct {
	status *os.File
}

// IsDaemonChild reports whether this process is the re-executed child.
func IsDaemonChild() bool { return os.Getenv(daemonEnv) != "" }

// Daemonize implements -daemonize without fork (unsafe in Go): the parent
// re-executes itself with the same arguments in a new session and a status
// pipe, waits until the child reports that it runs, then exits 0. If the
// child exits first (after printing its error on the still-shared stderr)
// the parent exits with the child's status. In the child, Daemonize returns
// a Daemon on which to call Ready once everything is set up.
//
// Call it after the command line is validated and before opening anything.
// exit is os.Exit in real use.
func Daemonize(exit func(int)) (*Daemon, error) {
	if v := os.Getenv(daemonEnv); v != "" {
		fd, err := strconv.Atoi(v)
		if err != nil {
			return nil, errors.New("bad " + daemonEnv)
		}
		os.Unsetenv(daemonEnv)
		unix.Umask(0o027) // as QEMU's daemon: files it creates are 0640
		unix.CloseOnExec(fd)
		return &Daemon{status: os.NewFile(uintptr(fd), "daemon-status")}, nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		self = "/proc/self/exe"
	}
	cmd := &exec.Cmd{
		Path:        self,
		Args:        os.Args, // keep argv[0]: it names the program in messages
		Env:         append(os.Environ(), daemonEnv+"=3"),
		Stdin:       os.Stdin,
		Stdout:      os.Stdout,
		Stderr:      os.Stderr,
		ExtraFiles:  []*os.File{w},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	w.Close()
	var b [1]byte
	n, _ := io.ReadFull(r, b[:])
	if n == 1 && b[0] == 0 {
		exit(0)
		return nil, nil
	}
	// The child failed before becoming ready.
	err = cmd.Wait()
	code := 1
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() > 0 {
		code = ee.ExitCode()
	}
	exit(code)
	return nil, nil
}

// Ready tells the parent the VM is running: stdio goes to /dev/null, the
// working directory to /, as QEMU does, and the parent exits 0.
func (d *Daemon) Ready() error {
	if d == nil || d.status == nil {
		return nil
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	null, err := unix.Open(os.DevNull, unix.O_RDWR, 0)
	if err != nil {
		return err
	}
	for fd := 0; fd <= 2; fd++ {
		if err := unix.Dup3(null, fd, 0); err != nil {
			return err
		}
	}
	unix.Close(null)
	_, err = d.status.Write([]byte{0})
	d.status.Close()
	d.status = nil
	return err
}
