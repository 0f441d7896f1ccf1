package hmp

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/govmm/govmm/machine/qmp"
	"github.com/govmm/govmm/machine/qmp/qmptest"
	"github.com/govmm/govmm/machine/runstate"
)

// Outputs below were printed by QEMU 7.2 for the same command lines.
func TestExecuteLikeQEMU(t *testing.T) {
	m := qmptest.NewMachine()
	m.KVMInfo.Present = true
	mon := New(m, qmp.Version{Major: 7, Minor: 2, Micro: 22, Package: "Debian 1:7.2+dfsg-7+deb12u18+b3"})
	for _, tc := range []struct{ in, want string }{
		{"info status", "VM status: paused (prelaunch)\r\n"},
		{"  info   status  ", "VM status: paused (prelaunch)\r\n"},
		{"info version", "7.2.22Debian 1:7.2+dfsg-7+deb12u18+b3\r\n"},
		{"foo", "unknown command: 'foo'\r\n"},
		{"info foo", "unknown command: 'info foo'\r\n"},
		{"", ""},
		{"info name", ""},
		{"info uuid", "00000000-0000-0000-0000-000000000000\r\n"},
		{"info kvm", "kvm support: disabled\r\n"},
		{"help stop", "stop|s  -- stop emulation\r\n"},
		{"help foo", "unknown command: 'foo'\r\n"},
		{"stop extra", "stop|s: extraneous characters at the end of line\r\nTry \"help stop\" for more information\r\n"},
		{"info status x", "status: extraneous characters at the end of line\r\nTry \"help info status\" for more information\r\n"},
		{"info cpus", ""},
		{"c", ""},
		{"info status", "VM status: running\r\n"},
		{"s", ""},
		{"info status", "VM status: paused\r\n"},
		{"system_reset", ""},
		{"info status", "VM status: paused (prelaunch)\r\n"},
	} {
		if got := mon.Execute(tc.in); got != tc.want {
			t.Errorf("Execute(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	help := mon.Execute("help")
	for _, want := range []string{"cont|c  -- resume emulation\r\n", "system_reset  -- reset the system\r\n", "info [subcommand] -- show various information about the system state\r\n"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}
	if info := mon.Execute("info"); !strings.HasPrefix(info, "info block [-n] [-v] [device] -- show info of one block device") ||
		!strings.Contains(info, "info status  -- show the current VM status (running|paused)\r\n") {
		t.Errorf("info listing:\n%s", info)
	}
}

func TestInventory(t *testing.T) {
	m := qmptest.NewMachine()
	m.VMName = "myvm"
	m.VMUUID = "12345678-1234-1234-1234-123456789abc"
	m.CPUList = []qmp.CPUInfo{{Index: 0, ThreadID: 7954}, {Index: 1, ThreadID: 7955}}
	m.ChardevList = []qmp.ChardevInfo{{Label: "compat_monitor0", Filename: "unix:/tmp/mgmt/q2.sock,server=on"}, {Label: "serial0", Filename: "null"}}
	m.BlockList = []qmp.BlockInfo{
		{Device: "disk0", QDev: "/machine/peripheral-anon/device[0]/virtio-backend", IOStatus: "ok",
			Inserted: &qmp.BlockDeviceInfo{File: "/tmp/mgmt/d.qcow2", NodeName: "#block107", Driver: "qcow2", Cache: qmp.BlockCache{Writeback: true}}},
		{Device: "d1", Removable: true,
			Inserted: &qmp.BlockDeviceInfo{File: "/tmp/mgmt/r.img", NodeName: "#block351", Driver: "raw", Cache: qmp.BlockCache{Writeback: true}}},
		{Device: "cd", Removable: true, TrayOpen: true, Locked: true},
	}
	mon := New(m, qmp.Version{})
	for _, tc := range []struct{ in, want string }{
		{"info name", "myvm\r\n"},
		{"info uuid", "12345678-1234-1234-1234-123456789abc\r\n"},
		{"info cpus", "* CPU #0: thread_id=7954\r\n  CPU #1: thread_id=7955\r\n"},
		{"info chardev", "compat_monitor0: filename=unix:/tmp/mgmt/q2.sock,server=on\r\nserial0: filename=null\r\n"},
		{"info block d1", "d1 (#block351): /tmp/mgmt/r.img (raw)\r\n    Removable device: not locked, tray closed\r\n    Cache mode:       writeback\r\n"},
		{"info block", "disk0 (#block107): /tmp/mgmt/d.qcow2 (qcow2)\r\n    Attached to:      /machine/peripheral-anon/device[0]/virtio-backend\r\n    Cache mode:       writeback\r\n\r\n" +
			"d1 (#block351): /tmp/mgmt/r.img (raw)\r\n    Removable device: not locked, tray closed\r\n    Cache mode:       writeback\r\n\r\n" +
			"cd: [not inserted]\r\n    Removable device: locked, tray open\r\n"},
	} {
		if got := mon.Execute(tc.in); got != tc.want {
			t.Errorf("Execute(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func TestContNeedsReset(t *testing.T) {
	m := qmptest.NewMachine()
	m.Start()
	m.Shutdown(runstate.CauseGuestShutdown, true)
	if got := New(m, qmp.Version{}).Execute("cont"); got != "Error: Resetting the Virtual Machine is required\r\n" {
		t.Errorf("cont in shutdown: %q", got)
	}
}

// rw joins a reader of scripted input and a buffer of output.
type rw struct {
	in  io.Reader
	out bytes.Buffer
}

func (c *rw) Read(p []byte) (int, error)  { return c.in.Read(p) }
func (c *rw) Write(p []byte) (int, error) { return c.out.Write(p) }
func (c *rw) String() string              { return c.out.String() }

// session is the input of the interactive tests, and what QEMU 7.2 printed
// for it on -monitor stdio (its escape sequences included).
const session = "info status\nfoo\n\nstop x\nc\ninfo status\nquit\n"

func TestServeSession(t *testing.T) {
	m := qmptest.NewMachine()
	var conn rw
	conn.in = strings.NewReader(session + "info status\n")
	if err := New(m, qmp.Version{Major: 7, Minor: 2, Micro: 22}).Serve(&conn); err != nil {
		t.Fatal(err)
	}
	got := conn.String()
	if !strings.HasPrefix(got, "QEMU 7.2.22 monitor - type 'help' for more information\r\n(qemu) i\033[K\033[Din\033[K\033[D\033[Dinf\033[K") {
		t.Errorf("start of session: %q", got[:min(len(got), 120)])
	}
	plain := regexp.MustCompile("\033\\[[KD]").ReplaceAllString(got, "")
	for _, want := range []string{
		"statuinfo status\r\nVM status: paused (prelaunch)\r\n(qemu) ",
		"foo\r\nunknown command: 'foo'\r\n(qemu) \r\n(qemu) ",
		"stop x\r\nstop|s: extraneous characters at the end of line\r\nTry \"help stop\" for more information\r\n(qemu) ",
		"VM status: running\r\n(qemu) ",
	} {
		if !strings.Contains(plain, want) {
			t.Errorf("session lacks %q:\n%q", want, plain)
		}
	}
	if !strings.HasSuffix(plain, "quiquit\r\n") {
		t.Errorf("session after quit: %q", plain[max(0, len(plain)-40):])
	}
	select {
	case <-m.QuitRequested:
	default:
		t.Error("quit did not reach the machine")
	}
	ed := editor{}
	for _, b := range []byte("ab\x7f\033[Dc") {
		ed.feed(b)
	}
	if _, line, _ := ed.feed('\n'); line != "ac" {
		t.Errorf("line editing gave %q, want \"ac\"", line)
	}
}

// TestServeMatchesQEMU runs the same session through real QEMU's
// -monitor stdio and compares the bytes, version aside.
func TestServeMatchesQEMU(t *testing.T) {
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	if testing.Short() {
		t.Skip("starts QEMU")
	}
	cmd := exec.Command(qemu, "-machine", "none", "-S", "-display", "none", "-nodefaults", "-monitor", "stdio")
	pr, pw := io.Pipe()
	cmd.Stdin = pr
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// QEMU reads its monitor only once its main loop runs; feed slowly.
	go func() {
		time.Sleep(300 * time.Millisecond)
		for _, l := range strings.SplitAfter(session, "\n") {
			pw.Write([]byte(l))
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
		pw.Close() // cmd.Wait waits for the end of stdin
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("QEMU did not quit")
	}
	want := regexp.MustCompile(`QEMU \d+\.\d+\.\d+ monitor`).ReplaceAllString(out.String(), "QEMU 7.2.0 monitor")

	var conn rw
	conn.in = strings.NewReader(session)
	if err := New(qmptest.NewMachine(), qmp.Version{}).Serve(&conn); err != nil {
		t.Fatal(err)
	}
	if got := conn.String(); got != want {
		t.Errorf("monitor session differs from QEMU's\n got %q\nwant %q", got, want)
	}
}

type emuMachine struct {
	qmp.Machine
	counts map[string]uint64
}

func (e emuMachine) EmulationCounts() map[string]uint64 { return e.counts }

func TestInfoEmulation(t *testing.T) {
	base := qmptest.NewMachine()
	mon := New(emuMachine{base, map[string]uint64{"int3": 2, "popcnt": 7, "cmpxchg16b": 2}}, qmp.Version{})
	want := "emulated instructions: 11\r\n  popcnt: 7\r\n  cmpxchg16b: 2\r\n  int3: 2\r\n"
	if got := mon.Execute("info emulation"); got != want {
		t.Errorf("info emulation = %q, want %q", got, want)
	}
	if got := New(base, qmp.Version{}).Execute("info emulation"); !strings.Contains(got, "no instruction emulation") {
		t.Errorf("without counters: %q", got)
	}
}
