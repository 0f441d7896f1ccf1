package qmp_test

import (
	"context"
	"testing"
	"time"

	goqmp "github.com/digitalocean/go-qemu/qmp"
	"github.com/digitalocean/go-qemu/qmp/raw"

	"github.com/govmm/govmm/machine/hmp"
	"github.com/govmm/govmm/machine/qmp"
)

// TestGoQemuClient drives the server with DigitalOcean's go-qemu, a QMP
// client written against QEMU, through its typed (generated) API.
func TestGoQemuClient(t *testing.T) {
	m := newFake()
	m.VMName = "vm1"
	m.CPUList = []qmp.CPUInfo{{Index: 0, QOMPath: "/machine/unattached/device[0]", ThreadID: 42}}
	m.ChardevList = []qmp.ChardevInfo{{Label: "serial0", Filename: "null", FrontendOpen: true}}
	m.BlockList = []qmp.BlockInfo{{Device: "d1", Removable: true, Inserted: &qmp.BlockDeviceInfo{
		File: "/a.img", Driver: "raw", Image: qmp.ImageInfo{Filename: "/a.img", Format: "raw", VirtualSize: 1 << 20}}}}
	mon := hmp.New(m, qmp.Version{})
	_, path := startUnix(t, qmp.Config{Machine: m, HMP: mon.Execute})

	sock, err := goqmp.NewSocketMonitor("unix", path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := sock.Connect(); err != nil {
		t.Fatalf("Connect (greeting and qmp_capabilities): %v", err)
	}
	defer sock.Disconnect()
	if got := sock.Version.String(); got != "7.2.0" {
		t.Errorf("version from greeting %q", got)
	}
	events, err := sock.Events(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// go-qemu blocks its reader until an event is taken: drain them.
	seen := make(chan string, 16)
	go func() {
		for e := range events {
			seen <- e.Event + ":" + toString(e.Data["reason"])
		}
	}()
	r := raw.NewMonitor(sock)

	st, err := r.QueryStatus()
	if err != nil || st.Status != raw.RunStatePrelaunch || st.Running {
		t.Fatalf("QueryStatus = %+v, %v", st, err)
	}
	if err := r.Cont(); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, seen, "RESUME:")
	if st, _ := r.QueryStatus(); st.Status != raw.RunStateRunning || !st.Running {
		t.Errorf("after cont: %+v", st)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, seen, "STOP:")
	if err := r.SystemReset(); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, seen, "RESET:host-qmp-system-reset")

	if n, err := r.QueryName(); err != nil || n.Name == nil || *n.Name != "vm1" {
		t.Errorf("QueryName = %+v, %v", n, err)
	}
	if k, err := r.QueryKVM(); err != nil || !k.Present || k.Enabled {
		t.Errorf("QueryKVM = %+v, %v", k, err)
	}
	if v, err := r.QueryVersion(); err != nil || v.Qemu.Major != 7 || v.Qemu.Minor != 2 || v.Package != "govmm" {
		t.Errorf("QueryVersion = %+v, %v", v, err)
	}
	if cs, err := r.QueryChardev(); err != nil || len(cs) != 1 || cs[0].Label != "serial0" || !cs[0].FrontendOpen {
		t.Errorf("QueryChardev = %+v, %v", cs, err)
	}
	if bs, err := r.QueryBlock(); err != nil || len(bs) != 1 || bs[0].Inserted == nil || bs[0].Inserted.Image.VirtualSize != 1<<20 {
		t.Errorf("QueryBlock = %+v, %v", bs, err)
	}
	if cmds, err := r.QueryCommands(); err != nil || len(cmds) != 17 {
		t.Errorf("QueryCommands = %d commands, %v", len(cmds), err)
	}
	out, err := r.HumanMonitorCommand("info status", nil)
	if err != nil || out != "VM status: paused (prelaunch)\r\n" {
		t.Errorf("HumanMonitorCommand = %q, %v", out, err)
	}
	// Errors come back as errors.
	idx := int64(5)
	if _, err := r.HumanMonitorCommand("info cpus", &idx); err == nil || err.Error() != "Parameter 'cpu-index' expects a CPU number" {
		t.Errorf("bad cpu-index: %v", err)
	}
	if err := r.Quit(); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, seen, "SHUTDOWN:host-qmp-quit")
}

func toString(v any) string {
	s, _ := v.(string)
	return s
}

func expectEvent(t *testing.T, seen <-chan string, want string) {
	t.Helper()
	select {
	case got := <-seen:
		if got != want {
			t.Errorf("event %q, want %q", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("no %s event", want)
	}
}
