package disk

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLockBetweenOpeners(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "a.raw")
	writeFile(t, raw, make([]byte, 1<<20))
	d, err := Open(raw, Options{Lock: true})
	if err != nil {
		t.Fatal(err)
	}
	// OFD locks conflict within one process too.
	_, err = Open(raw, Options{Lock: true})
	var le *LockError
	if !errors.As(err, &le) || le.Msg != `Failed to get "write" lock` {
		t.Fatalf("second writer: got %v", err)
	}
	want := `Failed to get "write" lock` + "\nIs another process using the image [" + raw + "]?"
	if err.Error() != want {
		t.Fatalf("error text %q, want %q", err.Error(), want)
	}
	// A read-only opener does not share write either (as in QEMU).
	if _, err := Open(raw, Options{Lock: true, ReadOnly: true}); err == nil || !strings.Contains(err.Error(), `Failed to get shared "write" lock`) {
		t.Fatalf("reader while writing: got %v", err)
	}
	// Without locking the open succeeds.
	d2, err := Open(raw, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	d2.Close()
	d.Close()
	// Closing drops the locks; two readers share.
	r1, err := Open(raw, Options{Lock: true, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	r2, err := Open(raw, Options{Lock: true, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	r2.Close()
}

// startQemu runs a paused QEMU with the image attached to a virtio-blk
// device, which takes QEMU's write lock.
func startQemu(t *testing.T, path, format string) *exec.Cmd {
	needTool(t, "qemu-system-x86_64")
	cmd := exec.Command("qemu-system-x86_64", "-machine", "pc", "-accel", "tcg", "-S", "-nographic",
		"-nodefaults", "-monitor", "none", "-serial", "none",
		"-drive", "file="+path+",if=none,id=d0,format="+format, "-device", "virtio-blk-pci,drive=d0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

func TestLockAgainstQemu(t *testing.T) {
	needQemuImg(t)
	needTool(t, "qemu-io")
	for _, format := range []string{"raw", "qcow2"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "img")
			run(t, "qemu-img", "create", "-f", format, p, "1M")

			// QEMU holds the image: our writable open fails.
			cmd := startQemu(t, p, format)
			var err error
			for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				var d Disk
				if d, err = Open(p, Options{Lock: true, Format: format}); err != nil {
					break
				}
				d.Close()
			}
			if err == nil || !strings.HasPrefix(err.Error(), `Failed to get "write" lock`+"\nIs another process using the image [") {
				t.Fatalf("open while QEMU runs: %v", err)
			}
			cmd.Process.Kill()
			cmd.Wait()

			// We hold the image: QEMU's writers fail.
			d, err := Open(p, Options{Lock: true, Format: format})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			code, out := exitCode("qemu-io", "-f", format, "-c", "write 0 512", p)
			if code == 0 || !strings.Contains(out, `Failed to get "write" lock`) {
				t.Fatalf("qemu-io write while we hold the image: exit %d\n%s", code, out)
			}
			code, out = exitCode("qemu-system-x86_64", "-machine", "pc", "-accel", "tcg", "-S", "-nographic",
				"-nodefaults", "-monitor", "none", "-serial", "none",
				"-drive", "file="+p+",if=none,id=d0,format="+format, "-device", "virtio-blk-pci,drive=d0")
			if code == 0 || !strings.Contains(out, `Failed to get "write" lock`) {
				t.Fatalf("qemu while we hold the image: exit %d\n%s", code, out)
			}
		})
	}
}
