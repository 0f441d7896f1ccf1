package disk

import (
	"os"
	"path/filepath"
	"testing"
)

// seedImages returns small valid images made by this package, as fuzz
// seeds (no qemu-img needed).
func seedImages(f *testing.F) [][]byte {
	dir := f.TempDir()
	var seeds [][]byte
	add := func(p string) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	for i, bits := range []int{9, 12} { // small clusters keep inputs small
		p := filepath.Join(dir, "s"+string(rune('a'+i)))
		if err := Create(p, 1<<20, bits); err != nil {
			f.Fatal(err)
		}
		d, err := Open(p, Options{})
		if err != nil {
			f.Fatal(err)
		}
		d.WriteAt([]byte("hello, qcow2"), 5000)
		d.WriteZeroes(0, 1<<bits)
		d.Close()
		add(p)
	}
	raw := filepath.Join(dir, "base.raw")
	os.WriteFile(raw, make([]byte, 4096), 0o644)
	ov := filepath.Join(dir, "ov.qcow2")
	if err := create(ov, 1<<20, 9, raw, "raw"); err != nil {
		f.Fatal(err)
	}
	add(ov)
	return seeds
}

func FuzzQcow2Header(f *testing.F) {
	for _, s := range seedImages(f) {
		f.Add(s[:min(len(s), 4096)])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseQcowHeader(b, int64(len(b)))
		if err == nil && h.clusterBits < minClusterBits {
			t.Fatal("accepted a bad cluster size")
		}
	})
}

// FuzzQcow2Image opens a hostile image and walks its tables through reads,
// writes and discards: errors are fine, panics and runaway growth are not.
func FuzzQcow2Image(f *testing.F) {
	for _, s := range seedImages(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<20 {
			return
		}
		p := filepath.Join(t.TempDir(), "img")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, ro := range []bool{true, false} {
			d, err := Open(p, Options{Format: "qcow2", ReadOnly: ro, Cache: "unsafe"})
			if err != nil {
				continue
			}
			size := d.Size()
			buf := make([]byte, 70000)
			for _, off := range []int64{0, size / 3, size - 1} {
				if off < 0 {
					continue
				}
				n := min(int64(len(buf)), size-off)
				d.ReadAt(buf[:n], off)
				if !ro {
					d.WriteAt(buf[:n], off)
					d.Discard(off, n)
					d.WriteZeroes(off, n/2)
				}
			}
			d.Close()
			st, err := os.Stat(p)
			if err == nil && st.Size() > int64(len(b))+64<<20 {
				t.Fatalf("image grew from %d to %d bytes", len(b), st.Size())
			}
		}
	})
}
