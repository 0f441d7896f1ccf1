package disk

import (
	"bytes"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// needQemuImg skips the test when qemu-img (the oracle) is missing.
func needQemuImg(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed (apt-get install qemu-utils): it is the oracle for these tests")
	}
}

func needTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed (apt-get install qemu-utils qemu-system-x86)", name)
	}
}

// run runs a command and fails the test on error.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// exitCode runs a command and returns its exit status and output.
func exitCode(name string, args ...string) (int, string) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		return -1, err.Error()
	}
	return 0, string(out)
}

// qemuCheck asserts qemu-img check reports the image clean (or, with
// leaksOK, leaked clusters only).
func qemuCheck(t testing.TB, path string, leaksOK bool) {
	t.Helper()
	code, out := exitCode("qemu-img", "check", path)
	if code == 0 || (leaksOK && code == 3) {
		return
	}
	t.Fatalf("qemu-img check %s: exit %d\n%s", path, code, out)
}

// randData makes deterministic test content with some zero runs, so
// qemu-img convert leaves holes.
func randData(seed int64, n int) []byte {
	r := rand.New(rand.NewSource(seed))
	b := make([]byte, n)
	r.Read(b)
	for i := 0; i < 8; i++ {
		off := r.Intn(n)
		l := min(n-off, r.Intn(200000))
		clear(b[off : off+l])
	}
	return b
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// readAll reads a whole Disk.
func readAll(t testing.TB, d Disk) []byte {
	t.Helper()
	b := make([]byte, d.Size())
	// Read in odd-sized pieces to cross cluster boundaries unevenly.
	for off := 0; off < len(b); {
		n := min(len(b)-off, 77777)
		if _, err := d.ReadAt(b[off:off+n], int64(off)); err != nil {
			t.Fatalf("ReadAt(%d, %d): %v", off, n, err)
		}
		off += n
	}
	return b
}

// qemuRaw converts an image to raw with qemu-img and returns the bytes.
func qemuRaw(t testing.TB, path string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "oracle.raw")
	run(t, "qemu-img", "convert", "-O", "raw", path, out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

func assertSame(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: content differs from oracle at byte %d (len %d vs %d)", what, firstDiff(got, want), len(got), len(want))
	}
}
