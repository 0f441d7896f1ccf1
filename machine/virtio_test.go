package machine

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govmm/govmm/machine/runstate"
)

// virtioPattern is what the virtio payload writes: byte i of sector s is
// (s*31 + i*7 + 0x5a) & 0xff (guest/payload/virtio/README.md).
func virtioPattern(s int64) []byte {
	b := make([]byte, 512)
	for i := range b {
		b[i] = byte(s*31 + int64(i)*7 + 0x5a)
	}
	return b
}

// checkVirtioImage checks that exactly sectors 0..255 and the last 8 hold
// the pattern and every other sector is still zero.
func checkVirtioImage(t *testing.T, img string) {
	t.Helper()
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	n := int64(len(data)) / 512
	zero := make([]byte, 512)
	bad := 0
	for s := int64(0); s < n; s++ {
		want := zero
		if s < 256 || s >= n-8 {
			want = virtioPattern(s)
		}
		if !bytes.Equal(data[s*512:(s+1)*512], want) {
			if bad < 3 {
				t.Errorf("sector %d does not hold what the guest wrote", s)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d sectors wrong", bad, n)
	}
}

func newImage(t *testing.T, size int64) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return img
}

func TestVirtioPayload(t *testing.T) {
	needKVM(t)
	img := newImage(t, 8<<20)
	drive := &DriveConfig{ID: "d0", File: img, Format: "raw", Index: -1}
	cfg := debugExitConfig(payloadPath(t, "virtio"))
	cfg.MachineType = "pc"
	cfg.Drives = []*DriveConfig{drive}
	cfg.VirtioBlk = []*VirtioBlkConfig{{Drive: drive}}
	cfg.VirtioRNG = []*VirtioRNGConfig{{Source: "/dev/urandom"}}
	r, out := runPayload(t, cfg, nil)
	if r.ExitCode != 65 || !strings.Contains(out, "virtio: all ok") {
		t.Fatalf("exit %d (%v), output:\n%s", r.ExitCode, r.Err, out)
	}
	for _, want := range []string{"virtio: blk capacity=16384", "virtio: blk write+read ok 264 sectors", "virtio: rng ok 64 bytes"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	checkVirtioImage(t, img)
}

// TestVirtioPayloadQEMU runs the same payload under QEMU as the reference:
// same result, same bytes on disk.
func TestVirtioPayloadQEMU(t *testing.T) {
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("skipping: qemu-system-x86_64 not installed (make deps installs it)")
	}
	needKVM(t)
	img := newImage(t, 8<<20)
	cmd := exec.Command(qemu, "-M", "pc", "-enable-kvm", "-m", "64", "-display", "none", "-serial", "stdio",
		"-no-reboot", "-kernel", payloadPath(t, "virtio"), "-device", "isa-debug-exit",
		"-drive", "file="+img+",if=none,id=d0,format=raw", "-device", "virtio-blk-pci,drive=d0,disable-legacy=on",
		"-device", "virtio-rng-pci,disable-legacy=on")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stdin = nil
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		t.Fatal("QEMU did not finish in 90 s")
	}
	if code := cmd.ProcessState.ExitCode(); code != 65 {
		t.Fatalf("QEMU exit %d, output:\n%s", code, stdout.String())
	}
	checkVirtioImage(t, img)
}

// TestGuestGarbageDoesNotCrashVMM: the guest's memory, rings and
// descriptors included, is overwritten with garbage while it runs I/O. The
// guest breaks; govmm must not: Run returns a guest outcome (a reset, an
// instruction nobody can emulate) and the devices keep answering.
func TestGuestGarbageDoesNotCrashVMM(t *testing.T) {
	needKVM(t)
	img := newImage(t, 64<<20)
	drive := &DriveConfig{ID: "d0", File: img, Format: "raw", Index: -1}
	cfg := debugExitConfig(payloadPath(t, "virtiobench"))
	cfg.MachineType = "pc"
	cfg.NoReboot = true
	cfg.Drives = []*DriveConfig{drive}
	cfg.VirtioBlk = []*VirtioBlkConfig{{Drive: drive}}
	out := &syncBuffer{}
	m, err := New(cfg, Options{Serial: []SerialIO{{Out: out}}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	done := make(chan Result, 1)
	go func() { done <- m.Run() }()
	for !strings.Contains(out.String(), "vbench: seqwrite start") {
		select {
		case r := <-done:
			t.Fatalf("payload ended early: %+v\n%s", r, out.String())
		case <-time.After(100 * time.Microsecond):
		}
	}
	// The payload and its rings live in the first 4 MiB.
	ram, err := m.Memory().Slice(0x100000, 0x300000)
	if err != nil {
		t.Fatal(err)
	}
	var r Result
	deadline := time.After(5 * time.Second)
scribble:
	for seed := 0; ; seed++ {
		for i := range ram {
			ram[i] = byte(i*13 + seed*7 + 1)
		}
		select {
		case r = <-done:
			break scribble
		case <-deadline:
			m.Quit(runstate.CauseHostSignal)
			r = <-done
			break scribble
		default:
		}
	}
	if strings.Contains(out.String(), "vbench: all ok") {
		t.Fatalf("guest finished its I/O despite the garbage: the test did not disturb it\n%s", out.String())
	}
	t.Logf("guest outcome: exit %d, cause %s, err %v", r.ExitCode, r.Cause, r.Err)
}
