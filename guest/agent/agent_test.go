package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govmm/govmm/guest/agent/proto"
)

// fakeGuest builds a directory that looks like a guest's /proc, /sys and
// /dev to the checks: 2 CPUs, 256 MiB, one virtio-blk and one virtio-rng
// PCI device, a 1 MiB "disk", an RNG and a virtio console (regular files).
func fakeGuest(t *testing.T) fsRoot {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"proc/cmdline":                            "console=ttyS0 agent.checks=all\n",
		"proc/cpuinfo":                            "processor\t: 0\nvendor_id\t: GenuineIntel\n\nprocessor\t: 1\nvendor_id\t: GenuineIntel\n",
		"proc/meminfo":                            "MemTotal:         262144 kB\nMemFree:          200000 kB\n",
		"sys/devices/system/cpu/online":           "0-1\n",
		"sys/bus/pci/devices/0000:00:00.0/vendor": "0x8086\n",
		"sys/bus/pci/devices/0000:00:00.0/device": "0x29c0\n",
		"sys/bus/pci/devices/0000:00:00.0/class":  "0x060000\n",
		"sys/bus/pci/devices/0000:00:02.0/vendor": "0x1af4\n",
		"sys/bus/pci/devices/0000:00:02.0/device": "0x1042\n",
		"sys/bus/pci/devices/0000:00:02.0/class":  "0x010000\n",
		"sys/bus/virtio/devices/virtio10/device":  "0x0004\n",
		"sys/bus/virtio/devices/virtio10/vendor":  "0x1af4\n",
		"sys/bus/virtio/devices/virtio2/device":   "0x0002\n",
		"sys/bus/virtio/devices/virtio2/vendor":   "0x1af4\n",
		"sys/class/misc/hw_random/rng_current":    "virtio_rng.0\n",
		"dev/hwrng":                               "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"dev/hvc0":                                "",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../../../bus/pci/drivers/virtio-pci", filepath.Join(dir, "sys/bus/pci/devices/0000:00:02.0/driver")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../bus/virtio/drivers/virtio_blk", filepath.Join(dir, "sys/bus/virtio/devices/virtio2/driver")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "dev/vda"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	return fsRoot(dir)
}

func fakeUname() (string, string, error) { return "6.1.192", "#1 SMP", nil }

func runAgent(t *testing.T, root fsRoot, cmdline string) (bool, []proto.Result) {
	t.Helper()
	cfg, _ := parseConfig(cmdline)
	return runAgentResults(t, root, cmdline, len(cfg.checks)+1)
}

// runAgentResults runs the agent and expects n result lines.
func runAgentResults(t *testing.T, root fsRoot, cmdline string, n int) (bool, []proto.Result) {
	t.Helper()
	cfg, errs := parseConfig(cmdline)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var out bytes.Buffer
	a := &agent{root: root, cfg: cfg, out: &out, uname: fakeUname}
	ok := a.run()
	rs, err := proto.ReadResults(&out)
	if err != nil {
		t.Fatalf("agent output %q: %v", out.String(), err)
	}
	if len(rs) != n {
		t.Fatalf("got %d results, want %d:\n%s", len(rs), n, out.String())
	}
	return ok, rs
}

func byCheck(rs []proto.Result) map[string]proto.Result {
	m := map[string]proto.Result{}
	for _, r := range rs {
		m[r.Check] = r
	}
	return m
}

func TestAgentAllChecksPass(t *testing.T) {
	root := fakeGuest(t)
	ok, rs := runAgent(t, root, "agent.blk.offset=8192 agent.blk.length=16384 agent.blk.seed=99")
	m := byCheck(rs)
	if !ok {
		t.Fatalf("agent failed: %+v", rs)
	}
	for _, r := range rs {
		if !r.OK || r.Skipped {
			t.Errorf("%s: ok=%v skipped=%v error=%q", r.Check, r.OK, r.Skipped, r.Error)
		}
	}

	var k proto.KernelDetail
	if err := m["kernel"].DecodeDetail(&k); err != nil {
		t.Fatal(err)
	}
	if k.Release != "6.1.192" || k.CPUsOnline != 2 || k.CPUsInfo != 2 || k.MemTotalKiB != 262144 || k.Cmdline != "console=ttyS0 agent.checks=all" {
		t.Errorf("kernel detail %+v", k)
	}

	var pci []proto.PCIDevice
	if err := m["pci"].DecodeDetail(&pci); err != nil {
		t.Fatal(err)
	}
	if len(pci) != 2 || pci[1] != (proto.PCIDevice{Slot: "0000:00:02.0", Vendor: 0x1af4, Device: 0x1042, Class: 0x010000, Driver: "virtio-pci"}) {
		t.Errorf("pci detail %+v", pci)
	}

	var vio []proto.VirtioDevice
	if err := m["virtio"].DecodeDetail(&vio); err != nil {
		t.Fatal(err)
	}
	if len(vio) != 2 || vio[0] != (proto.VirtioDevice{Name: "virtio2", Device: 2, Vendor: 0x1af4, Driver: "virtio_blk"}) || vio[1].Name != "virtio10" {
		t.Errorf("virtio detail %+v (want numeric order)", vio)
	}

	// The pattern is on the disk where the detail says, and nowhere else.
	var blk proto.BlkDetail
	if err := m["blk"].DecodeDetail(&blk); err != nil {
		t.Fatal(err)
	}
	if blk != (proto.BlkDetail{Device: "/dev/vda", Size: 1 << 20, Offset: 8192, Length: 16384, Seed: 99}) {
		t.Errorf("blk detail %+v", blk)
	}
	disk, err := os.ReadFile(root.path("dev/vda"))
	if err != nil {
		t.Fatal(err)
	}
	if err := proto.Verify(disk[8192:8192+16384], 99, 8192); err != nil {
		t.Error(err)
	}
	if !allZero(disk[:8192]) || !allZero(disk[8192+16384:]) {
		t.Error("blk check wrote outside its range")
	}

	var rng proto.RNGDetail
	if err := m["rng"].DecodeDetail(&rng); err != nil {
		t.Fatal(err)
	}
	if rng.Current != "virtio_rng.0" || rng.Bytes != 64 || !strings.HasPrefix(rng.Hex, "30313233") {
		t.Errorf("rng detail %+v", rng)
	}

	hvc, err := os.ReadFile(root.path("dev/hvc0"))
	if err != nil {
		t.Fatal(err)
	}
	if string(hvc) != "govmm-agent: hello from virtio-console\n" {
		t.Errorf("hvc0 got %q", hvc)
	}

	var done proto.DoneDetail
	if err := m["done"].DecodeDetail(&done); err != nil || done.Passed != 6 || len(done.Failed) != 0 {
		t.Errorf("done detail %+v, %v", done, err)
	}
}

func TestAgentFailures(t *testing.T) {
	root := fakeGuest(t)
	// A short RNG and a disk smaller than the requested range.
	if err := os.WriteFile(root.path("dev/hwrng"), []byte("short"), 0o644); err != nil {
		t.Fatal(err)
	}
	ok, rs := runAgent(t, root, "agent.checks=kernel,blk,rng agent.blk.offset=1048576")
	if ok {
		t.Fatal("agent passed with a broken rng and disk")
	}
	m := byCheck(rs)
	if !m["kernel"].OK {
		t.Errorf("kernel: %+v", m["kernel"])
	}
	if m["blk"].OK || !strings.Contains(m["blk"].Error, "beyond the end") {
		t.Errorf("blk: %+v", m["blk"])
	}
	if m["rng"].OK || !strings.Contains(m["rng"].Error, "unexpected EOF") {
		t.Errorf("rng: %+v", m["rng"])
	}
	var done proto.DoneDetail
	if err := m["done"].DecodeDetail(&done); err != nil || done.Passed != 1 || strings.Join(done.Failed, ",") != "blk,rng" {
		t.Errorf("done detail %+v, %v", done, err)
	}
}

func TestAgentMissingDevices(t *testing.T) {
	root := fakeGuest(t)
	for _, p := range []string{"dev/vda", "dev/hvc0", "sys/class/misc/hw_random", "sys/bus/virtio", "sys/bus/pci/devices"} {
		if err := os.RemoveAll(root.path(p)); err != nil {
			t.Fatal(err)
		}
	}
	// Default check list: missing devices are skipped, the run passes.
	ok, rs := runAgent(t, root, "agent.timeout=2")
	if !ok {
		t.Errorf("default checks failed on missing devices: %+v", rs)
	}
	for _, c := range []string{"pci", "virtio", "blk", "rng", "console"} {
		if r := byCheck(rs)[c]; !r.OK || !r.Skipped || r.Detail != nil {
			t.Errorf("%s: %+v, want skipped", c, r)
		}
	}
	// Named checks: a missing device is a failure.
	ok, rs = runAgent(t, root, "agent.checks=console,virtio,pci agent.timeout=2")
	if ok {
		t.Error("explicit checks passed without devices")
	}
	for _, r := range rs[:3] {
		if r.OK || r.Skipped {
			t.Errorf("%s: %+v, want failure", r.Check, r)
		}
	}
}

func TestAgentTimeout(t *testing.T) {
	root := fakeGuest(t)
	// A FIFO with no writer: opening /dev/hwrng blocks like a dead device.
	if err := os.Remove(root.path("dev/hwrng")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(root.path("dev/hwrng"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Release the abandoned reader at the end by opening the write side.
	t.Cleanup(func() {
		if fd, err := unix.Open(root.path("dev/hwrng"), unix.O_RDWR|unix.O_NONBLOCK, 0); err == nil {
			unix.Close(fd)
		}
	})
	start := time.Now()
	ok, rs := runAgent(t, root, "agent.checks=rng agent.timeout=1")
	if ok || rs[0].OK || !strings.Contains(rs[0].Error, "timed out") {
		t.Errorf("got %+v", rs)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("time-out took %v", time.Since(start))
	}
}

func TestCountCPUList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		err  bool
	}{
		{"0", 1, false}, {"0-7", 8, false}, {"0-1,3,5-6\n", 5, false}, {"", 0, false},
		{"3-1", 0, true}, {"a", 0, true}, {"0-", 0, true}, {"-1", 0, true}, {"0-99999999999", 0, true},
	} {
		got, err := countCPUList(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("countCPUList(%q) = %d, %v; want %d, err=%v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestModules(t *testing.T) {
	root := fakeGuest(t)
	dir := root.path("lib/modules/6.1.0/kernel/drivers/virtio")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"virtio-pci.ko", "virtio_blk.ko.xz", "README"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("not an ELF"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	found, err := root.findModules()
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 || found["virtio_pci"] != filepath.Join(dir, "virtio-pci.ko") || found["virtio_blk"] == "" {
		t.Errorf("findModules = %v", found)
	}
	if _, c, _ := moduleName("a.ko.zst"); !c {
		t.Error("a.ko.zst not seen as compressed")
	}
	// A module that is neither in the initramfs nor built in is an error
	// naming it; one under /sys/module counts as already there.
	if err := os.MkdirAll(root.path("sys/module/virtio"), 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := root.loadModules([]string{"virtio", "nosuch"})
	if err == nil || !strings.Contains(err.Error(), "nosuch") || len(d.Already) != 1 {
		t.Errorf("loadModules: %+v, %v", d, err)
	}

	// Without agent.modules=, the agent loads /etc/agent.modules; with
	// agent.modules= (even empty) it does not.
	if err := os.MkdirAll(root.path("etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root.path("etc/agent.modules"), []byte("virtio,nosuch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, rs := runAgentResults(t, root, "agent.checks=kernel", 3)
	if rs[0].Check != "modules" || rs[0].OK || !strings.Contains(rs[0].Error, "nosuch") {
		t.Errorf("default module list: %+v", rs[0])
	}
	_, rs = runAgentResults(t, root, "agent.checks=kernel agent.modules=", 2)
	if rs[0].Check != "kernel" {
		t.Errorf("agent.modules= did not override /etc/agent.modules: %+v", rs)
	}
}

func TestBuiltinShell(t *testing.T) {
	root := fakeGuest(t)
	cfg, _ := parseConfig("")
	var out bytes.Buffer
	a := &agent{root: root, cfg: cfg, out: &out, uname: fakeUname}
	a.report("config", nil, errors.New("earlier failure")) // cleared by "checks"
	in := strings.NewReader("echo hi there\ncat " + root.path("proc/meminfo") + "\nchecks kernel\nbogus\nexit\nnot reached\n")
	builtinShell(a, in)
	s := out.String()
	for _, want := range []string{"hi there\n", "MemTotal:", `{"check":"kernel","ok":true`, `{"check":"done","ok":true`, `unknown command "bogus"`} {
		if !strings.Contains(s, want) {
			t.Errorf("shell output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "not reached") {
		t.Error("shell ran past exit")
	}
}
