package machine

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/govmm/govmm/devices/chardev"
	"github.com/govmm/govmm/guest/agent/proto"
	"github.com/govmm/govmm/machine/runstate"
)

// TestLinuxAgent boots the project's test kernel with the agent initramfs
// (make kernel initramfs; make test sets GOVMM_TEST_KERNEL and
// GOVMM_TEST_INITRAMFS) and checks every line the agent prints. On PVM
// hosts ring-0 code is emulated, so this takes minutes.
func TestLinuxAgent(t *testing.T) {
	kernel, initrd := os.Getenv("GOVMM_TEST_KERNEL"), os.Getenv("GOVMM_TEST_INITRAMFS")
	if kernel == "" || initrd == "" {
		t.Skip("skipping: GOVMM_TEST_KERNEL and GOVMM_TEST_INITRAMFS unset (make test sets them)")
	}
	needKVM(t)
	img := newImage(t, 64<<20)
	drive := &DriveConfig{ID: "d0", File: img, Format: "raw", Index: -1}
	console := &syncBuffer{}
	conSpec := &chardev.Spec{ID: "con0", Kind: chardev.Null}
	cfg := Config{
		MachineType: "pc", MemBytes: 512 << 20, CPUs: 2, Kernel: kernel, Initrd: initrd,
		Cmdline:      "console=ttyS0 noxsave clearcpuid=308,151 agent.checks=all",
		Drives:       []*DriveConfig{drive},
		VirtioBlk:    []*VirtioBlkConfig{{Drive: drive}},
		VirtioRNG:    []*VirtioRNGConfig{{Source: "/dev/urandom"}},
		VirtioSerial: []*VirtioSerialConfig{{Ports: []*VirtioSerialPort{{Console: true, Chardev: conSpec}}}},
	}
	serial := &syncBuffer{}
	noInput, _ := io.Pipe()
	m, err := New(cfg, Options{
		Serial: []SerialIO{{Out: serial}},
		Chardev: func(s *chardev.Spec) io.ReadWriter {
			if s != conSpec {
				return nil
			}
			return struct {
				io.Reader
				io.Writer
			}{noInput, console}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	start := time.Now()
	done := make(chan Result, 1)
	go func() { done <- m.Run() }()
	var r Result
	select {
	case r = <-done:
	case <-time.After(15 * time.Minute):
		m.Quit(runstate.CauseHostSignal)
		<-done
		t.Fatalf("no power-off after 15 minutes; serial output:\n%s", tail(serial.String(), 3000))
	}
	t.Logf("guest powered off after %v: exit %d cause %s", time.Since(start).Round(time.Second), r.ExitCode, r.Cause)
	if r.Err != nil || r.ExitCode != 0 || r.Cause != "guest-shutdown" {
		t.Fatalf("run ended with %+v; serial output:\n%s", r, tail(serial.String(), 3000))
	}
	results, err := proto.ReadResults(strings.NewReader(serial.String()))
	if err != nil {
		t.Fatalf("agent output: %v\n%s", err, tail(serial.String(), 3000))
	}
	byCheck := map[string]proto.Result{}
	for _, res := range results {
		byCheck[res.Check] = res
		if !res.OK || res.Skipped {
			t.Errorf("agent check %s: ok=%v skipped=%v error=%q detail=%s", res.Check, res.OK, res.Skipped, res.Error, res.Detail)
		}
	}
	var k proto.KernelDetail
	if err := byCheck[proto.CheckKernel].DecodeDetail(&k); err != nil {
		t.Fatal(err)
	}
	if k.CPUsOnline != 2 || k.MemTotalKiB < 400<<10 || !strings.Contains(k.Cmdline, "agent.checks=all") {
		t.Errorf("kernel detail %+v: want 2 CPUs, ~512 MiB and our command line", k)
	}
	var b proto.BlkDetail
	if err := byCheck[proto.CheckBlk].DecodeDetail(&b); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if b.Offset < 0 || b.Length <= 0 || b.Offset+b.Length > int64(len(data)) {
		t.Fatalf("blk detail %+v out of the image", b)
	}
	if err := proto.Verify(data[b.Offset:b.Offset+b.Length], b.Seed, b.Offset); err != nil {
		t.Errorf("the image does not hold what the guest wrote: %v", err)
	}
	if !strings.Contains(console.String(), "hello from virtio-console") {
		t.Errorf("virtio console output %q", console.String())
	}
	for _, want := range []string{"Command line: console=ttyS0", "smpboot: Allowing 2 CPUs", "Unpacking initramfs", "BIOS-e820:"} {
		if !strings.Contains(serial.String(), want) {
			t.Errorf("kernel log lacks %q", want)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
