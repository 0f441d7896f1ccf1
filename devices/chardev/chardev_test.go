package chardev

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func readN(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	buf := make([]byte, n)
	done := make(chan error, 1)
	go func() { _, err := io.ReadFull(r, buf); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("read: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read timed out")
	}
	return string(buf)
}

func TestFileBackend(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.log")
	os.WriteFile(path, []byte("old\n"), 0o644)
	b, err := Open(&Spec{ID: "f", Kind: File, Path: path, Append: true, FD: -1})
	if err != nil {
		t.Fatal(err)
	}
	b.Write([]byte("new\n"))
	b.Close()
	if got, _ := os.ReadFile(path); string(got) != "old\nnew\n" {
		t.Fatalf("append: %q", got)
	}
	b, _ = Open(&Spec{ID: "f", Kind: File, Path: path, FD: -1})
	b.Write([]byte("x"))
	b.Close()
	if got, _ := os.ReadFile(path); string(got) != "x" {
		t.Fatalf("truncate: %q", got)
	}
	_, err = Open(&Spec{ID: "f", Kind: File, Path: "/nonexist/x", FD: -1})
	if err == nil || err.Error() != "Could not open '/nonexist/x': No such file or directory" {
		t.Fatalf("error %v", err)
	}
}

func TestNullReadBlocksUntilClose(t *testing.T) {
	b, _ := Open(&Spec{Kind: Null, FD: -1})
	if n, err := b.Write([]byte("abc")); n != 3 || err != nil {
		t.Fatal(n, err)
	}
	done := make(chan error)
	go func() { _, err := b.Read(make([]byte, 1)); done <- err }()
	select {
	case <-done:
		t.Fatal("null read returned before close")
	case <-time.After(50 * time.Millisecond):
	}
	b.Close()
	if err := <-done; err != io.EOF {
		t.Fatal(err)
	}
}

func TestPipeInOut(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "p")
	for _, s := range []string{".in", ".out"} {
		if err := unix.Mkfifo(base+s, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b, err := Open(&Spec{Kind: Pipe, Path: base, FD: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	in, _ := os.OpenFile(base+".in", os.O_WRONLY, 0)
	out, _ := os.OpenFile(base+".out", os.O_RDONLY, 0)
	defer in.Close()
	defer out.Close()
	in.Write([]byte("hi"))
	if got := readN(t, b, 2); got != "hi" {
		t.Fatal(got)
	}
	b.Write([]byte("yo"))
	if got := readN(t, out, 2); got != "yo" {
		t.Fatal(got)
	}
}

func TestPty(t *testing.T) {
	var notice bytes.Buffer
	b, err := OpenEnv(&Spec{ID: "serial0", Kind: Pty, FD: -1}, Env{Notice: &notice})
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer b.Close()
	m := regexp.MustCompile(`^char device redirected to (/dev/pts/\d+) \(label serial0\)\n$`).FindStringSubmatch(notice.String())
	if m == nil {
		t.Fatalf("notice %q", notice.String())
	}
	slave, err := os.OpenFile(m[1], os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	// Raw mode: "\n" is not turned into "\r\n".
	b.Write([]byte("a\nb"))
	if got := readN(t, slave, 3); got != "a\nb" {
		t.Fatalf("slave read %q", got)
	}
	slave.Write([]byte("\r\x03"))
	if got := readN(t, b, 2); got != "\r\x03" {
		t.Fatalf("master read %q", got)
	}
}

func TestUnixServerNoWait(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	b, err := Open(&Spec{Kind: Socket, Path: path, Server: true, FD: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// Output with no client is dropped, not blocked.
	if n, err := b.Write([]byte("lost")); n != 4 || err != nil {
		t.Fatal(n, err)
	}
	c1, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c1.Write([]byte("one"))
	if got := readN(t, b, 3); got != "one" {
		t.Fatal(got)
	}
	b.Write([]byte("to1"))
	if got := readN(t, c1, 3); got != "to1" {
		t.Fatal(got)
	}
	// A second client waits (as in QEMU) until the first goes away.
	c2, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.Write([]byte("two"))
	c2.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	b.Write([]byte("still1"))
	if got := readN(t, c1, 6); got != "still1" {
		t.Fatal(got)
	}
	c1.Close()
	if got := readN(t, b, 3); got != "two" {
		t.Fatalf("second client's data %q", got)
	}
	c2.SetReadDeadline(time.Time{})
	b.Write([]byte("to2"))
	if got := readN(t, c2, 3); got != "to2" {
		t.Fatal(got)
	}
}

func TestTCPServerWaitAndClient(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ln.Close()
	ps := strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:")
	var info string
	opened := make(chan Backend)
	go func() {
		b, err := OpenEnv(&Spec{Kind: Socket, Host: "127.0.0.1", Port: ps, Server: true, Wait: true, FD: -1},
			Env{Info: func(s string) { info = s }})
		if err != nil {
			t.Error(err)
		}
		opened <- b
	}()
	// wait=on: Open blocks until a client connects.
	var client Backend
	deadline := time.Now().Add(5 * time.Second)
	for {
		var err error
		client, err = Open(&Spec{Kind: Socket, Host: "127.0.0.1", Port: ps, FD: -1})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer client.Close()
	server := <-opened
	defer server.Close()
	if info != "QEMU waiting for connection on: disconnected:tcp:127.0.0.1:"+ps+",server=on" {
		t.Errorf("info %q", info)
	}
	client.Write([]byte("ping"))
	if got := readN(t, server, 4); got != "ping" {
		t.Fatal(got)
	}
	server.Write([]byte("pong"))
	if got := readN(t, client, 4); got != "pong" {
		t.Fatal(got)
	}
}

func TestClientConnectError(t *testing.T) {
	_, err := Open(&Spec{Kind: Socket, Path: "/nonexist/x", FD: -1})
	if err == nil || err.Error() != "Failed to connect to '/nonexist/x': No such file or directory" {
		t.Fatalf("%v", err)
	}
}

// fakeBackend is an in-memory backend for the mux.
type fakeBackend struct {
	out bytes.Buffer
	blocker
}

func (f *fakeBackend) Read(p []byte) (int, error)  { return f.wait() }
func (f *fakeBackend) Write(p []byte) (int, error) { return f.out.Write(p) }
func (f *fakeBackend) Close() error                { f.close(); return nil }

func TestMux(t *testing.T) {
	be := &fakeBackend{blocker: newBlocker()}
	quit := 0
	m := NewMux(be, func() { quit++ })
	mon := m.Add()
	ser := m.Add()
	if m.Focus() != 1 {
		t.Fatalf("focus %d, want the serial port (last added)", m.Focus())
	}
	m.Input([]byte("ls\x01\x01x"))
	if got := readN(t, ser, 4); got != "ls\x01x" {
		t.Fatalf("serial got %q", got)
	}
	m.Input([]byte("\x01cinfo"))
	if got := readN(t, mon, 4); got != "info" {
		t.Fatalf("monitor got %q", got)
	}
	m.Input([]byte("\x01"))
	m.Input([]byte("c")) // escape split across reads
	m.Input([]byte("z"))
	if got := readN(t, ser, 1); got != "z" {
		t.Fatalf("serial got %q", got)
	}
	m.Input([]byte("\x01h"))
	if !strings.Contains(be.out.String(), "C-a c    switch between console and monitor\n\r") {
		t.Fatalf("help: %q", be.out.String())
	}
	ser.Write([]byte("guest"))
	mon.Write([]byte("(qemu) "))
	if !strings.HasSuffix(be.out.String(), "guest(qemu) ") {
		t.Fatalf("output %q", be.out.String())
	}
	m.Input([]byte("\x01x"))
	if quit != 1 || !strings.HasSuffix(be.out.String(), "QEMU: Terminated\n\r") {
		t.Fatalf("quit=%d out=%q", quit, be.out.String())
	}
}

func TestStdioNotTTY(t *testing.T) {
	r, w, _ := os.Pipe()
	or, ow, _ := os.Pipe()
	b, err := OpenEnv(&Spec{Kind: Stdio, Signal: true, FD: -1}, Env{Stdin: r, Stdout: ow})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("in"))
	if got := readN(t, b, 2); got != "in" {
		t.Fatal(got)
	}
	b.Write([]byte("out"))
	if got := readN(t, or, 3); got != "out" {
		t.Fatal(got)
	}
	b.Close()
}

func TestStdioRawAndRestore(t *testing.T) {
	p, err := openPty()
	if err != nil {
		t.Skip(err)
	}
	defer p.Close()
	tty, err := os.OpenFile(p.Name(), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	// Start cooked, as a terminal would be.
	orig, _ := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	orig.Lflag |= unix.ICANON | unix.ECHO | unix.ISIG
	unix.IoctlSetTermios(int(tty.Fd()), unix.TCSETS, orig)
	b, err := OpenEnv(&Spec{Kind: Stdio, Signal: false, FD: -1}, Env{Stdin: tty, Stdout: tty})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if raw.Lflag&(unix.ICANON|unix.ECHO|unix.ISIG) != 0 {
		t.Fatalf("not raw: lflag %#x", raw.Lflag)
	}
	b.Close()
	back, _ := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if back.Lflag != orig.Lflag {
		t.Fatalf("not restored: %#x vs %#x", back.Lflag, orig.Lflag)
	}
}
