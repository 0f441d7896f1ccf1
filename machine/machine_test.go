package machine

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govmm/govmm/guest/payload"
	"github.com/govmm/govmm/kvm"
	"github.com/govmm/govmm/machine/runstate"
)

func needKVM(t *testing.T) {
	t.Helper()
	if err := kvm.Available(); errors.Is(err, kvm.ErrNoKVM) {
		t.Skipf("skipping: %v (this test runs a guest)", err)
	}
}

func payloadPath(t *testing.T, name string) string {
	t.Helper()
	p, err := payload.Path(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// syncBuffer is a bytes.Buffer safe for a vCPU writer and a test reader.
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

func runPayload(t *testing.T, cfg Config, in io.Reader) (Result, string) {
	t.Helper()
	out := &syncBuffer{}
	m, err := New(cfg, Options{Serial: []SerialIO{{In: in, Out: out}}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	done := make(chan Result, 1)
	go func() { done <- m.Run() }()
	select {
	case r := <-done:
		return r, out.String()
	case <-time.After(60 * time.Second):
		m.Quit(runstate.CauseHostSignal)
		<-done
		t.Fatalf("guest did not finish in 60 s; serial output so far:\n%s", out.String())
	}
	return Result{}, ""
}

func debugExitConfig(kernel string) Config {
	return Config{
		MemBytes: 64 << 20, CPUs: 1, Kernel: kernel,
		DebugExit: &DebugExitConfig{IOBase: 0x501, IOSize: 2},
	}
}

func TestHelloPayload(t *testing.T) {
	needKVM(t)
	r, out := runPayload(t, debugExitConfig(payloadPath(t, "hello")), nil)
	if r.Err != nil {
		t.Fatalf("run error: %v", r.Err)
	}
	if want := "Hello from a govmm payload guest!\n"; out != want {
		t.Errorf("serial output %q, want %q", out, want)
	}
	if r.ExitCode != 67 || r.Cause != "debug-exit" {
		t.Errorf("result %+v, want exit code 67 by debug-exit", r)
	}
}

func TestCPL3Payload(t *testing.T) {
	needKVM(t)
	r, out := runPayload(t, debugExitConfig(payloadPath(t, "cpl3")), nil)
	if r.Err != nil {
		t.Fatalf("run error: %v", r.Err)
	}
	want := "cpl3: running at CPL 3\ncpl3: xorshift64 = f94f4ba06ab784e3\n"
	if out != want {
		t.Errorf("serial output %q, want %q", out, want)
	}
	if r.ExitCode != 37 {
		t.Errorf("exit code %d, want 37", r.ExitCode)
	}
}

func TestUARTInterruptPayload(t *testing.T) {
	needKVM(t)
	pr, pw := io.Pipe()
	out := &syncBuffer{}
	cfg := debugExitConfig(payloadPath(t, "uartirq"))
	m, err := New(cfg, Options{Serial: []SerialIO{{In: pr, Out: out}}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	done := make(chan Result, 1)
	go func() { done <- m.Run() }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "transmit by THRE interrupts ok\n") {
		if time.Now().After(deadline) {
			m.Quit(runstate.CauseHostSignal)
			t.Fatalf("no THRE-driven line after 30 s; output %q", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	io.WriteString(pw, "hello there\n")
	var r Result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		m.Quit(runstate.CauseHostSignal)
		t.Fatalf("guest did not finish; output %q", out.String())
	}
	want := "uart irq: transmit by THRE interrupts ok\nuart irq: received HELLO THERE\n"
	if got := out.String(); got != want || r.ExitCode != 35 {
		t.Errorf("output %q exit %d (%v), want %q exit 35", got, r.ExitCode, r.Err, want)
	}
}

func TestQuitStopsRunningGuest(t *testing.T) {
	needKVM(t)
	// cpl3 runs for a while at CPL 3: Quit must pull the vCPU out of KVM_RUN.
	cfg := debugExitConfig(payloadPath(t, "exitbench"))
	m, err := New(cfg, Options{Serial: []SerialIO{{Out: io.Discard}}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	done := make(chan Result, 1)
	go func() { done <- m.Run() }()
	time.Sleep(20 * time.Millisecond)
	m.Quit(runstate.CauseHostSignal)
	select {
	case r := <-done:
		if r.Cause != "host-signal" && r.Cause != "debug-exit" {
			t.Errorf("cause %q", r.Cause)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Quit did not stop the machine")
	}
}

func TestBadKernels(t *testing.T) {
	cases := map[string][]byte{
		"empty":         {},
		"text":          []byte("#!/bin/sh\necho not a kernel\n"),
		"truncated ELF": []byte("\x7fELF\x02\x01\x01"),
	}
	dir := t.TempDir()
	for name, data := range cases {
		p := dir + "/" + strings.ReplaceAll(name, " ", "_")
		if err := writeFile(p, data); err != nil {
			t.Fatal(err)
		}
		cfg := Config{MemBytes: 16 << 20, CPUs: 1, Kernel: p}
		if _, err := New(cfg, Options{}); err == nil {
			t.Errorf("%s: New succeeded", name)
		} else if strings.Contains(err.Error(), "KVM") && errors.Is(err, kvm.ErrNoKVM) {
			t.Skip("no KVM")
		}
	}
	if _, err := New(Config{MemBytes: 16 << 20, Kernel: dir + "/missing"}, Options{}); err == nil ||
		!strings.Contains(err.Error(), "could not open kernel file") {
		t.Errorf("missing kernel: %v", err)
	}
}

// TestRequestAfterEnd: a host request racing with the end of the run (a
// QMP command as the guest powers off) must be answered, not hang.
func TestRequestAfterEnd(t *testing.T) {
	needKVM(t)
	r, _ := runPayload(t, debugExitConfig(payloadPath(t, "hello")), nil)
	if r.ExitCode != 67 {
		t.Fatalf("hello: %+v", r)
	}
	m, err := New(debugExitConfig(payloadPath(t, "hello")), Options{Serial: []SerialIO{{Out: io.Discard}}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.Run()
	done := make(chan error, 1)
	go func() { done <- m.Pause() }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotRunning) {
			t.Errorf("Pause after the end: %v, want ErrNotRunning", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Pause after the end of the run hangs")
	}
	m.Quit(runstate.CauseHostSignal) // must not block either
}
