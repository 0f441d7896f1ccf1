package main

import (
	"bufio"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// qmpSession is a line-oriented QMP client that records everything the
// server sends.
type qmpSession struct {
	t    *testing.T
	conn net.Conn
	in   *bufio.Reader
	got  []string
}

func dialQMP(t *testing.T, sock string) *qmpSession {
	t.Helper()
	var conn net.Conn
	if !waitFor(20*time.Second, func() bool {
		c, err := net.Dial("unix", sock)
		conn = c
		return err == nil
	}) {
		t.Fatalf("no QMP socket at %s", sock)
	}
	s := &qmpSession{t: t, conn: conn, in: bufio.NewReader(conn)}
	s.read() // greeting
	return s
}

func (s *qmpSession) read() string {
	s.t.Helper()
	s.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := s.in.ReadString('\n')
	if err != nil {
		s.t.Fatalf("QMP read: %v (so far: %q)", err, s.got)
	}
	s.got = append(s.got, line)
	return line
}

// send writes one command and reads until its reply (events before it
// are recorded in order).
func (s *qmpSession) send(cmd string) {
	s.t.Helper()
	if _, err := s.conn.Write([]byte(cmd + "\n")); err != nil {
		s.t.Fatal(err)
	}
	for {
		if l := s.read(); strings.Contains(l, `"return"`) || strings.Contains(l, `"error"`) {
			return
		}
	}
}

// readUntil reads events until one contains sub, unless one already did.
func (s *qmpSession) readUntil(sub string) {
	s.t.Helper()
	for _, l := range s.got {
		if strings.Contains(l, sub) {
			return
		}
	}
	for !strings.Contains(s.read(), sub) {
	}
}

var (
	qmpTimestamp = regexp.MustCompile(`"seconds": \d+, "microseconds": \d+`)
	qmpVersionRE = regexp.MustCompile(`"qemu": \{[^}]*\}, "package": "[^"]*"`)
	qmpThreadID  = regexp.MustCompile(`"thread-id": \d+`)
)

func normQMP(lines []string) string {
	s := strings.Join(lines, "")
	s = qmpTimestamp.ReplaceAllString(s, `"seconds": S, "microseconds": U`)
	s = qmpVersionRE.ReplaceAllString(s, `"qemu": V, "package": P`)
	s = qmpThreadID.ReplaceAllString(s, `"thread-id": T`)
	return s
}

// qmpConversation drives a VMM started with -S through QEMU's documented
// life cycle: negotiation, prelaunch, cont, the guest powering off through
// ACPI. It returns what the server sent, the serial output and the exit.
func qmpConversation(t *testing.T, bin string) (string, result) {
	sock := filepath.Join(t.TempDir(), "qmp.sock")
	p := start(t, nil, bin, "-M", "pc", "-enable-kvm", "-m", "64", "-display", "none", "-serial", "stdio",
		"-S", "-qmp", "unix:"+sock+",server=on,wait=off", "-kernel", payloadPath(t, "poweroff"))
	s := dialQMP(t, sock)
	s.send(`{"execute":"query-status"}`)
	s.send(`{"execute":"qmp_capabilities","id":1}`)
	s.send(`{"execute":"qmp_capabilities"}`)
	s.send(`{"execute":"query-status","id":"two"}`)
	s.send(`{"execute":"query-name"}`)
	s.send(`{"execute":"query-kvm"}`)
	s.send(`{"execute":"no-such-command","id":8}`)
	s.send(`{"execute":"stop"}`)
	s.send(`{"execute":"cont","id":[1,2]}`)
	s.readUntil(`"SHUTDOWN"`)
	return normQMP(s.got), p.wait(t, runTimeout)
}

func TestQMPConversationAgainstQEMU(t *testing.T) {
	needKVM(t)
	got, gr := qmpConversation(t, govmmBin)
	for _, want := range []string{
		`{"return": {"status": "prelaunch", "singlestep": false, "running": false}, "id": "two"}`,
		`"event": "RESUME"}`,
		`{"return": {}, "id": [1, 2]}`,
		`"event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}}`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("govmm's QMP conversation lacks %s:\n%s", want, got)
		}
	}
	if gr.code != 0 || !strings.Contains(gr.stdout, "poweroff: powering off through ACPI") {
		t.Errorf("govmm: %v", gr)
	}
	if realQEMU == "" {
		t.Skip("qemu-system-x86_64 not installed: no differential comparison")
	}
	want, qr := qmpConversation(t, realQEMU)
	if got != want {
		t.Errorf("QMP conversations differ\ngovmm:\n%s\nQEMU:\n%s", got, want)
	}
	if gr.code != qr.code {
		t.Errorf("exit status: govmm %d, QEMU %d", gr.code, qr.code)
	}
}

func TestQMPQuitAgainstQEMU(t *testing.T) {
	needKVM(t)
	run := func(bin string) (string, result) {
		sock := filepath.Join(t.TempDir(), "qmp.sock")
		p := start(t, nil, bin, "-M", "pc", "-enable-kvm", "-m", "64", "-display", "none", "-serial", "null",
			"-S", "-qmp", "unix:"+sock+",server=on,wait=off", "-kernel", payloadPath(t, "hello"))
		s := dialQMP(t, sock)
		s.send(`{"execute":"qmp_capabilities"}`)
		s.send(`{"execute":"quit"}`)
		return normQMP(s.got), p.wait(t, runTimeout)
	}
	got, gr := run(govmmBin)
	if !strings.Contains(got, `"event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}`+"\r\n"+`{"return": {}}`) {
		t.Errorf("quit: want SHUTDOWN host-qmp-quit before the reply:\n%s", got)
	}
	if gr.code != 0 {
		t.Errorf("govmm after quit: %v", gr)
	}
	if realQEMU == "" {
		t.Skip("qemu-system-x86_64 not installed: no differential comparison")
	}
	want, qr := run(realQEMU)
	if got != want || gr.code != qr.code {
		t.Errorf("quit differs\ngovmm (%d):\n%s\nQEMU (%d):\n%s", gr.code, got, qr.code, want)
	}
}
