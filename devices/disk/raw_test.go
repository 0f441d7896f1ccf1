package disk

import (
	"path/filepath"
	"strings"
	"testing"
)

// Raw images under every cache mode, including O_DIRECT with unaligned
// requests (bounce buffers), behave like a byte slice.
func TestRawWorkload(t *testing.T) {
	for _, cache := range []string{"writeback", "writethrough", "none", "directsync", "unsafe"} {
		t.Run(cache, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "img.raw")
			model := randData(9, 3<<20+4321) // not a multiple of the block size
			writeFile(t, p, model)
			d, err := OpenRaw(p, Options{Cache: cache, Lock: true})
			if err != nil {
				if strings.Contains(err.Error(), "Invalid argument") && (cache == "none" || cache == "directsync") {
					t.Skipf("filesystem without O_DIRECT: %v", err)
				}
				t.Fatal(err)
			}
			workload(t, d, model, 4, 300, 100000)
			if d.Size() != int64(len(model)) {
				t.Fatalf("size changed: %d", d.Size())
			}
			assertSame(t, "raw", readAll(t, d), model)
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRawReadOnlyAndBadCache(t *testing.T) {
	p := filepath.Join(t.TempDir(), "img.raw")
	writeFile(t, p, make([]byte, 4096))
	d, err := Open(p, Options{ReadOnly: true, Format: "raw"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !d.ReadOnly() {
		t.Fatal("ReadOnly() = false")
	}
	if _, err := d.WriteAt([]byte{1}, 0); err == nil {
		t.Fatal("write to read-only image succeeded")
	}
	if err := d.Discard(0, 512); err == nil {
		t.Fatal("discard on read-only image succeeded")
	}
	if _, err := OpenRaw(p, Options{Cache: "bogus"}); err == nil {
		t.Fatal("bad cache mode accepted")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing"), Options{}); err == nil ||
		!strings.Contains(err.Error(), "Could not open '") || !strings.HasSuffix(err.Error(), "No such file or directory") {
		t.Fatalf("missing file: %v", err)
	}
}

// A qcow2 image opened with Format "" is probed; the same file forced to
// raw shows the qcow2 bytes.
func TestProbe(t *testing.T) {
	p := filepath.Join(t.TempDir(), "img")
	if err := Create(p, 1<<20, 16); err != nil {
		t.Fatal(err)
	}
	d, err := Open(p, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := d.(*Qcow2); !ok || d.Size() != 1<<20 {
		t.Fatalf("probed %T size %d", d, d.Size())
	}
	d.Close()
	d, err = Open(p, Options{ReadOnly: true, Format: "raw"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, ok := d.(*Raw); !ok {
		t.Fatalf("format raw gave %T", d)
	}
}
