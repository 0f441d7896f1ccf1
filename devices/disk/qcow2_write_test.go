package disk

import (
	"bytes"
	"math/rand"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// workload applies random writes, discards and write-zeroes to d and to
// a byte-slice model, checking reads along the way.
func workload(t *testing.T, d Disk, model []byte, seed int64, ops int, maxLen int) {
	t.Helper()
	r := rand.New(rand.NewSource(seed))
	size := int64(len(model))
	for i := 0; i < ops; i++ {
		off := r.Int63n(size)
		n := min(size-off, 1+r.Int63n(int64(maxLen)))
		if r.Intn(3) == 0 { // sector aligned half of the time, like a guest
			off &^= 511
			n = min(size-off, (n+511)&^511)
		}
		switch r.Intn(10) {
		case 0, 1, 2, 3, 4, 5:
			buf := make([]byte, n)
			r.Read(buf)
			if _, err := d.WriteAt(buf, off); err != nil {
				t.Fatalf("op %d WriteAt(%d, %d): %v", i, off, n, err)
			}
			copy(model[off:], buf)
		case 6:
			if err := d.WriteZeroes(off, n); err != nil {
				t.Fatalf("op %d WriteZeroes(%d, %d): %v", i, off, n, err)
			}
			clear(model[off : off+n])
		case 7:
			// Discard may leave old data; the model follows the image.
			if err := d.Discard(off, n); err != nil {
				t.Fatalf("op %d Discard(%d, %d): %v", i, off, n, err)
			}
			got := make([]byte, n)
			if _, err := d.ReadAt(got, off); err != nil {
				t.Fatal(err)
			}
			for j := range got {
				if got[j] != 0 && got[j] != model[off+int64(j)] {
					t.Fatalf("op %d: after Discard(%d, %d) byte %d is neither old nor zero", i, off, n, off+int64(j))
				}
			}
			copy(model[off:], got)
		case 8:
			if err := d.Flush(); err != nil {
				t.Fatal(err)
			}
		case 9:
			got := make([]byte, n)
			if _, err := d.ReadAt(got, off); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, model[off:off+n]) {
				t.Fatalf("op %d: ReadAt(%d, %d) differs at %d", i, off, n, off+int64(firstDiff(got, model[off:off+n])))
			}
		}
	}
}

// After random workloads through the package, qemu-img check is clean and
// qemu-img compare finds the image equal to a raw file with the same writes.
func TestWriteWorkloadQemuCheck(t *testing.T) {
	needQemuImg(t)
	type tc struct {
		name  string
		make  func(t *testing.T, dir string) (path string, base []byte)
		size  int64
		cache string
	}
	const size = 4 << 20
	qcreate := func(opts string) func(t *testing.T, dir string) (string, []byte) {
		return func(t *testing.T, dir string) (string, []byte) {
			p := filepath.Join(dir, "img.qcow2")
			run(t, "qemu-img", "create", "-f", "qcow2", "-o", opts, p, "4M")
			return p, make([]byte, size)
		}
	}
	ours := func(bits int) func(t *testing.T, dir string) (string, []byte) {
		return func(t *testing.T, dir string) (string, []byte) {
			p := filepath.Join(dir, "img.qcow2")
			if err := Create(p, size, bits); err != nil {
				t.Fatal(err)
			}
			qemuCheck(t, p, false)
			return p, make([]byte, size)
		}
	}
	overlay := func(fmt string, v2 bool) func(t *testing.T, dir string) (string, []byte) {
		return func(t *testing.T, dir string) (string, []byte) {
			base := randData(7, size-1<<20) // overlay larger than its base
			writeFile(t, filepath.Join(dir, "base.raw"), base)
			bp := "base.raw"
			if fmt == "qcow2" {
				run(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-c", filepath.Join(dir, "base.raw"), filepath.Join(dir, "base.qcow2"))
				bp = "base.qcow2"
			}
			p := filepath.Join(dir, "img.qcow2")
			if v2 {
				run(t, "qemu-img", "create", "-f", "qcow2", "-o", "compat=0.10", "-b", bp, "-F", fmt, p, "4M")
			} else if err := CreateOverlay(p, bp, fmt, size); err != nil {
				t.Fatal(err)
			}
			model := make([]byte, size)
			copy(model, base)
			return p, model
		}
	}
	cases := []tc{
		{name: "ours-64k", make: ours(16)},
		{name: "ours-512", make: ours(9)},
		{name: "ours-2M", make: ours(21)},
		{name: "v3-default", make: qcreate("compat=1.1")},
		{name: "v2-512", make: qcreate("compat=0.10,cluster_size=512")},
		// 1-bit refcounts with 512-byte clusters: many refcount blocks
		// and a refcount table that must grow.
		{name: "refbits1-512", make: qcreate("refcount_bits=1,cluster_size=512")},
		{name: "refbits64-512", make: qcreate("refcount_bits=64,cluster_size=512")},
		{name: "refbits8-lazy", make: qcreate("refcount_bits=8,cluster_size=4096,lazy_refcounts=on")},
		{name: "overlay-raw", make: overlay("raw", false)},
		{name: "overlay-compressed", make: overlay("qcow2", false)},
		{name: "v2-overlay", make: overlay("raw", true)},
		{name: "cache-none", make: ours(12), cache: "none"},
		{name: "cache-writethrough", make: ours(16), cache: "writethrough"},
		{name: "cache-unsafe", make: ours(16), cache: "unsafe"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			p, model := c.make(t, dir)
			for round := 0; round < 2; round++ { // reopen once in between
				d, err := Open(p, Options{Cache: c.cache, Lock: true})
				if err != nil {
					t.Fatal(err)
				}
				ops := 400
				if testing.Short() {
					ops = 100
				}
				workload(t, d, model, int64(i*10+round), ops, 200000)
				if err := d.Close(); err != nil {
					t.Fatal(err)
				}
				qemuCheck(t, p, false)
			}
			raw := filepath.Join(dir, "model.raw")
			writeFile(t, raw, model)
			if code, out := exitCode("qemu-img", "compare", "-f", "qcow2", "-F", "raw", p, raw); code != 0 {
				t.Fatalf("qemu-img compare: exit %d\n%s", code, out)
			}
		})
	}
}

// Many goroutines writing disjoint ranges at once: the result is exactly
// what each wrote (run with -race).
func TestConcurrentWrites(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.qcow2")
	if err := Create(p, 8<<20, 12); err != nil {
		t.Fatal(err)
	}
	d, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := bytes.Repeat([]byte{byte(g + 1)}, 3000)
			for i := 0; i < 40; i++ {
				off := int64(g)<<20 + int64(i)*3000
				if _, err := d.WriteAt(buf, off); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got := readAll(t, d)
	for g := 0; g < 8; g++ {
		for i := int64(0); i < 40*3000; i++ {
			if got[int64(g)<<20+i] != byte(g+1) {
				t.Fatalf("byte %d = %d, want %d", int64(g)<<20+i, got[int64(g)<<20+i], g+1)
			}
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("qemu-img"); err == nil {
		qemuCheck(t, p, false)
	}
}
