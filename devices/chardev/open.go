package chardev

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Env is what Open needs from the process. The zero value means the real
// stdin/stdout and stderr.
type Env struct {
	Stdin  *os.File
	Stdout *os.File
	// Notice receives QEMU's informational lines ("char device redirected
	// to ...", on stdout in QEMU) and Info the ones QEMU prints with
	// info_report on stderr ("QEMU waiting for connection on: ...").
	Notice io.Writer
	Info   func(msg string)
}

func (e *Env) fill() {
	if e.Stdin == nil {
		e.Stdin = os.Stdin
	}
	if e.Stdout == nil {
		e.Stdout = os.Stdout
	}
	if e.Notice == nil {
		e.Notice = e.Stdout
	}
	if e.Info == nil {
		e.Info = func(msg string) { fmt.Fprintln(os.Stderr, "info: "+msg) }
	}
}

// Open opens the backend described by s with the process's real stdio.
// Everything that can fail does so here, before the guest starts, so a
// daemonizing parent can still report it.
func Open(s *Spec) (Backend, error) { return OpenEnv(s, Env{}) }

// OpenEnv is Open with an explicit environment (tests, daemonize).
func OpenEnv(s *Spec, env Env) (Backend, error) {
	env.fill()
	var b Backend
	var err error
	switch s.Kind {
	case Null:
		b = newNull()
	case Stdio:
		b, err = openStdio(env.Stdin, env.Stdout, s.Signal)
	case File:
		b, err = openFile(s)
	case Pipe:
		b, err = openPipe(s.Path)
	case Pty:
		var p *ptyBackend
		p, err = openPty()
		if err == nil {
			fmt.Fprintf(env.Notice, "char device redirected to %s (label %s)\n", p.name, s.ID)
			b = p
		}
	case Socket:
		b, err = openSocket(s, env)
	default:
		return nil, fmt.Errorf("'%s' is not a valid char driver name", s.Kind)
	}
	if err != nil {
		return nil, err
	}
	if s.Logfile != "" {
		b, err = withLog(b, s.Logfile, s.LogAppend)
	}
	return b, err
}

// Strerror renders an error the way C's strerror does ("No such file or
// directory"), which is what QEMU's messages contain.
func Strerror(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		msg := errno.Error()
		if msg == "" {
			return msg
		}
		return strings.ToUpper(msg[:1]) + msg[1:]
	}
	return err.Error()
}

// blocker is a Read that waits until Close: a backend without input.
type blocker struct {
	once sync.Once
	done chan struct{}
}

func newBlocker() blocker { return blocker{done: make(chan struct{})} }

func (b *blocker) wait() (int, error) {
	<-b.done
	return 0, io.EOF
}

func (b *blocker) close() { b.once.Do(func() { close(b.done) }) }

type nullBackend struct{ blocker }

func newNull() *nullBackend                     { return &nullBackend{newBlocker()} }
func (n *nullBackend) Read([]byte) (int, error) { return n.wait() }
func (n *nullBackend) Write(p []byte) (int, error) {
	return len(p), nil
}
func (n *nullBackend) Close() error { n.close(); return nil }

type fileBackend struct {
	blocker
	out *os.File
	in  *os.File
}

func openFile(s *Spec) (Backend, error) {
	flags := os.O_WRONLY | os.O_CREATE
	if s.Append {
		flags |= os.O_APPEND
	} else {
		flags |= os.O_TRUNC
	}
	out, err := os.OpenFile(s.Path, flags, 0o666)
	if err != nil {
		return nil, fmt.Errorf("Could not open '%s': %s", s.Path, Strerror(err))
	}
	f := &fileBackend{blocker: newBlocker(), out: out}
	if s.In != "" {
		f.in, err = os.Open(s.In)
		if err != nil {
			out.Close()
			return nil, fmt.Errorf("Could not open '%s': %s", s.In, Strerror(err))
		}
	}
	return f, nil
}

func (f *fileBackend) Read(p []byte) (int, error) {
	if f.in == nil {
		return f.wait()
	}
	return f.in.Read(p)
}

func (f *fileBackend) Write(p []byte) (int, error) { return f.out.Write(p) }

func (f *fileBackend) Close() error {
	f.close()
	if f.in != nil {
		f.in.Close()
	}
	return f.out.Close()
}

// rwFiles is a backend made of an input and an output file (pipe).
type rwFiles struct {
	in, out *os.File
}

func (r *rwFiles) Read(p []byte) (int, error)  { return r.in.Read(p) }
func (r *rwFiles) Write(p []byte) (int, error) { return r.out.Write(p) }
func (r *rwFiles) Close() error {
	err := r.out.Close()
	if r.in != r.out {
		r.in.Close()
	}
	return err
}

// openPipe follows QEMU: PATH.in and PATH.out when both can be opened,
// else PATH for both directions. O_RDWR keeps open() of a FIFO from
// blocking until the other side appears.
func openPipe(path string) (Backend, error) {
	in, errIn := os.OpenFile(path+".in", os.O_RDWR, 0)
	out, errOut := os.OpenFile(path+".out", os.O_RDWR, 0)
	if errIn == nil && errOut == nil {
		return &rwFiles{in: in, out: out}, nil
	}
	if in != nil {
		in.Close()
	}
	if out != nil {
		out.Close()
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("Could not open '%s': %s", path, Strerror(err))
	}
	return &rwFiles{in: f, out: f}, nil
}

// logged copies all output to a log file, as QEMU's logfile=.
type logged struct {
	Backend
	log *os.File
}

func withLog(b Backend, path string, appendLog bool) (Backend, error) {
	flags := os.O_WRONLY | os.O_CREATE
	if appendLog {
		flags |= os.O_APPEND
	} else {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o666)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("Could not open '%s': %s", path, Strerror(err))
	}
	return &logged{Backend: b, log: f}, nil
}

func (l *logged) Write(p []byte) (int, error) {
	l.log.Write(p)
	return l.Backend.Write(p)
}

func (l *logged) Close() error {
	l.log.Close()
	return l.Backend.Close()
}

// ptyBackend is the master side of a pseudo-terminal. Like QEMU it does not
// keep the slave open: output written while nobody has the slave open is
// dropped rather than filling the pty buffer and stalling the guest.
type ptyBackend struct {
	blocker
	master *os.File
	fd     int
	name   string
}

func openPty() (*ptyBackend, error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("Failed to create PTY: %s", Strerror(err))
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("Failed to create PTY: %s", Strerror(err))
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("Failed to create PTY: %s", Strerror(err))
	}
	name := fmt.Sprintf("/dev/pts/%d", n)
	// Put the terminal in raw mode through the slave, as QEMU does, so the
	// guest sees bytes unchanged whoever opens it later.
	sfd, err := unix.Open(name, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("Failed to create PTY: %s", Strerror(err))
	}
	if t, err := unix.IoctlGetTermios(sfd, unix.TCGETS); err == nil {
		makeRaw(t, false)
		unix.IoctlSetTermios(sfd, unix.TCSETS, t)
	}
	unix.Close(sfd)
	return &ptyBackend{blocker: newBlocker(), master: os.NewFile(uintptr(fd), "/dev/ptmx"), fd: fd, name: name}, nil
}

// Name is the slave's path, /dev/pts/N.
func (p *ptyBackend) Name() string { return p.name }

func (p *ptyBackend) Read(b []byte) (int, error) {
	for {
		n, err := p.master.Read(b)
		if n > 0 || err == nil {
			return n, nil
		}
		// EIO: no slave open. Poll, as QEMU does, until someone connects.
		select {
		case <-p.done:
			return 0, io.EOF
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *ptyBackend) Write(b []byte) (int, error) {
	// A raw non-blocking write: EAGAIN (nobody reading) drops the output.
	select {
	case <-p.done:
		return 0, os.ErrClosed
	default:
	}
	rc, err := p.master.SyscallConn()
	if err != nil {
		return 0, err
	}
	rc.Write(func(fd uintptr) bool {
		unix.Write(int(fd), b)
		return true
	})
	return len(b), nil
}

func (p *ptyBackend) Close() error {
	p.close()
	return p.master.Close()
}

// makeRaw is cfmakeraw, optionally keeping ISIG so Ctrl-C still signals.
func makeRaw(t *unix.Termios, keepSignals bool) {
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	if keepSignals {
		t.Lflag |= unix.ISIG
	}
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
}

// stdioBackend reads stdin and writes stdout; a terminal on stdin is put in
// raw mode and restored on Close.
type stdioBackend struct {
	in, out *os.File
	saved   *unix.Termios
	once    sync.Once
}

func openStdio(in, out *os.File, signals bool) (Backend, error) {
	s := &stdioBackend{in: in, out: out}
	fd := int(in.Fd())
	if t, err := unix.IoctlGetTermios(fd, unix.TCGETS); err == nil {
		saved := *t
		s.saved = &saved
		makeRaw(t, signals)
		t.Oflag |= unix.OPOST // QEMU keeps output processing: "\n" still returns the carriage
		if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
			return nil, fmt.Errorf("cannot set terminal attributes: %s", Strerror(err))
		}
	}
	return s, nil
}

func (s *stdioBackend) Read(p []byte) (int, error)  { return s.in.Read(p) }
func (s *stdioBackend) Write(p []byte) (int, error) { return s.out.Write(p) }

// Close restores the terminal; it does not close the process's stdio.
func (s *stdioBackend) Close() error {
	s.once.Do(func() {
		if s.saved != nil {
			unix.IoctlSetTermios(int(s.in.Fd()), unix.TCSETS, s.saved)
		}
	})
	return nil
}
