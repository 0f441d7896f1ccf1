package disk

import (
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkDisk measures 4 KiB random and 1 MiB sequential reads and
// writes on raw, a fresh overlay (every first write allocates) and a fully
// allocated qcow2 image.
func BenchmarkDisk(b *testing.B) {
	const size = 256 << 20
	kinds := map[string]func(dir string) string{
		"raw": func(dir string) string {
			p := filepath.Join(dir, "img.raw")
			f, _ := os.Create(p)
			f.Truncate(size)
			f.Close()
			return p
		},
		"overlay": func(dir string) string {
			base := filepath.Join(dir, "base.raw")
			f, _ := os.Create(base)
			f.Truncate(size)
			f.Close()
			p := filepath.Join(dir, "ov.qcow2")
			if err := CreateOverlay(p, base, "raw", size); err != nil {
				b.Fatal(err)
			}
			return p
		},
		"allocated": func(dir string) string {
			p := filepath.Join(dir, "full.qcow2")
			if err := Create(p, size, 16); err != nil {
				b.Fatal(err)
			}
			d, _ := Open(p, Options{})
			buf := make([]byte, 1<<20)
			for off := int64(0); off < size; off += int64(len(buf)) {
				d.WriteAt(buf, off)
			}
			d.Close()
			return p
		},
	}
	for _, kind := range []string{"raw", "overlay", "allocated"} {
		for _, op := range []string{"rand4k-read", "rand4k-write", "seq1M-read", "seq1M-write"} {
			b.Run(kind+"/"+op, func(b *testing.B) {
				p := kinds[kind](b.TempDir())
				d, err := Open(p, Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer d.Close()
				n := 4096
				if op[:3] == "seq" {
					n = 1 << 20
				}
				buf := make([]byte, n)
				r := rand.New(rand.NewSource(1))
				b.SetBytes(int64(n))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					off := int64(i*n) % size
					if n == 4096 {
						off = r.Int63n(size/4096) * 4096
					}
					if op[len(op)-4:] == "read" {
						_, err = d.ReadAt(buf, off)
					} else {
						_, err = d.WriteAt(buf, off)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				if err := d.Flush(); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}
