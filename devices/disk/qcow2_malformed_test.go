package disk

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// patch overwrites bytes of a file.
func patch(t testing.TB, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func header(t testing.TB, path string) *qcowHeader {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := parseQcowHeader(b[:min(len(b), 1<<21)], int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestMalformedImages(t *testing.T) {
	needQemuImg(t)
	needTool(t, "qemu-io")
	dir := t.TempDir()
	fresh := func(name string, opts ...string) string {
		p := filepath.Join(dir, name)
		run(t, "qemu-img", append(append([]string{"create", "-f", "qcow2"}, opts...), p, "1M")...)
		return p
	}
	cases := []struct {
		name     string
		path     func() string
		opts     Options
		wantText string
	}{
		{"bad magic", func() string {
			p := filepath.Join(dir, "junk")
			writeFile(t, p, bytes.Repeat([]byte("junk"), 1000))
			return p
		}, Options{Format: "qcow2"}, "bad magic"},
		{"named incompatible feature", func() string {
			p := fresh("ext-l2.qcow2")
			patch(t, p, 72, u64(incompatExtendedL2))
			return p
		}, Options{}, "Unsupported qcow2 feature(s): extended L2 entries"},
		{"unnamed incompatible feature", func() string {
			p := fresh("bit40.qcow2")
			patch(t, p, 72, u64(1<<40))
			return p
		}, Options{}, "Unknown incompatible feature: 10000000000"},
		{"L1 beyond end of file", func() string {
			p := fresh("l1.qcow2")
			patch(t, p, 40, u64(1<<40))
			return p
		}, Options{}, "Active L1 table lies beyond the end of the file"},
		{"refcount width", func() string {
			p := fresh("order.qcow2")
			patch(t, p, 96, []byte{0, 0, 0, 7})
			return p
		}, Options{}, "may not exceed 64 bits"},
		{"refcount overflow", func() string {
			// Two L2 entries share a cluster in a 1-bit refcount image
			// left dirty: the repair on open cannot count to 2.
			p := fresh("overflow.qcow2", "-o", "refcount_bits=1")
			run(t, "qemu-io", "-c", "write 0 128k", p)
			h := header(t, p)
			b, _ := os.ReadFile(p)
			l2 := binary.BigEndian.Uint64(b[h.l1Offset:]) & offsetMask
			first := binary.BigEndian.Uint64(b[l2:])
			patch(t, p, int64(l2)+8, u64(first))
			patch(t, p, 72, u64(incompatDirty))
			return p
		}, Options{}, "refcount overflow"},
		{"backing loop", func() string {
			a, b := filepath.Join(dir, "loop-a.qcow2"), filepath.Join(dir, "loop-b.qcow2")
			if err := CreateOverlay(a, "loop-b.qcow2", "qcow2", 1<<20); err != nil {
				t.Fatal(err)
			}
			if err := CreateOverlay(b, "loop-a.qcow2", "qcow2", 1<<20); err != nil {
				t.Fatal(err)
			}
			return a
		}, Options{}, "Backing file loop detected: " + filepath.Join(dir, "loop-a.qcow2") + " -> " + filepath.Join(dir, "loop-b.qcow2") + " -> "},
		{"missing backing", func() string {
			p := filepath.Join(dir, "orphan.qcow2")
			if err := CreateOverlay(p, "nonexistent.raw", "raw", 1<<20); err != nil {
				t.Fatal(err)
			}
			return p
		}, Options{}, "Could not open backing file: Could not open '" + filepath.Join(dir, "nonexistent.raw") + "': No such file or directory"},
		{"corrupt bit, writable", func() string {
			p := fresh("corrupt.qcow2")
			patch(t, p, 72, u64(incompatCorrupt))
			return p
		}, Options{}, "Image is corrupt; cannot be opened read/write"},
		{"unknown format", func() string { return fresh("x.qcow2") }, Options{Format: "vmdk"}, "Unknown driver 'vmdk'"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := Open(c.path(), c.opts)
			if err == nil {
				d.Close()
				t.Fatalf("opened; want error containing %q", c.wantText)
			}
			if !strings.Contains(err.Error(), c.wantText) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q: want one line containing %q", err, c.wantText)
			}
		})
	}
	// A corrupt image still opens read-only, as in QEMU.
	d, err := Open(filepath.Join(dir, "corrupt.qcow2"), Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("corrupt image read-only: %v", err)
	}
	d.Close()
}

func TestZstdRefused(t *testing.T) {
	needQemuImg(t)
	p := filepath.Join(t.TempDir(), "z.qcow2")
	if code, out := exitCode("qemu-img", "create", "-f", "qcow2", "-o", "compression_type=zstd", p, "1M"); code != 0 {
		t.Skipf("qemu-img without zstd: %s", out)
	}
	_, err := Open(p, Options{ReadOnly: true})
	if err == nil || !strings.Contains(err.Error(), "zstd") {
		t.Fatalf("got %v, want an error naming zstd", err)
	}
}

// An image QEMU left dirty (lazy refcounts, then abort) gets its refcounts
// rebuilt when opened writable; the data survives and the image is clean.
func TestDirtyImageRepaired(t *testing.T) {
	needQemuImg(t)
	needTool(t, "qemu-io")
	p := filepath.Join(t.TempDir(), "dirty.qcow2")
	run(t, "qemu-img", "create", "-f", "qcow2", "-o", "lazy_refcounts=on,cluster_size=4096", p, "4M")
	exitCode("qemu-io", "-c", "write -P 0x5a 8192 300000", "-c", "write -P 0x33 2M 5000", "-c", "abort", p)
	if header(t, p).incompat&incompatDirty == 0 {
		t.Fatal("qemu-io abort did not leave the image dirty")
	}
	if code, _ := exitCode("qemu-img", "check", "-r", "none", p); code == 0 {
		t.Log("note: qemu-img check found the dirty image consistent")
	}
	d, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, d)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if header(t, p).incompat&incompatDirty != 0 {
		t.Fatal("dirty bit still set after repair")
	}
	qemuCheck(t, p, false)
	want := make([]byte, 4<<20)
	copy(want[8192:], bytes.Repeat([]byte{0x5a}, 300000))
	copy(want[2<<20:], bytes.Repeat([]byte{0x33}, 5000))
	assertSame(t, "repaired image", got, want)
	// And it stays writable and clean afterwards.
	d, err = Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	workload(t, d, want, 3, 200, 100000)
	d.Close()
	qemuCheck(t, p, false)
}

// The refcount table grows (moves) when the image outgrows it.
func TestRefcountTableGrows(t *testing.T) {
	needQemuImg(t)
	p := filepath.Join(t.TempDir(), "grow.qcow2")
	run(t, "qemu-img", "create", "-f", "qcow2", "-o", "cluster_size=512,refcount_bits=64", p, "16M")
	before := header(t, p)
	d, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	model := make([]byte, 16<<20)
	buf := randData(5, 16<<20)
	for off := 0; off < len(buf); off += 1 << 20 {
		if _, err := d.WriteAt(buf[off:off+1<<20], int64(off)); err != nil {
			t.Fatal(err)
		}
	}
	copy(model, buf)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	after := header(t, p)
	if after.refTableCluster <= before.refTableCluster || after.refTableOffset == before.refTableOffset {
		t.Fatalf("refcount table did not grow: %d clusters at %#x -> %d at %#x",
			before.refTableCluster, before.refTableOffset, after.refTableCluster, after.refTableOffset)
	}
	qemuCheck(t, p, false)
	assertSame(t, "grown image", qemuRaw(t, p), model)
}
