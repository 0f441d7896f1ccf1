package disk

import (
	"path/filepath"
	"testing"
)

// Images made by qemu-img read byte for byte like qemu-img's own raw
// conversion.
func TestReadQemuImages(t *testing.T) {
	needQemuImg(t)
	needTool(t, "qemu-io")
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	const size = 3<<20 + 12345*512
	writeFile(t, src, randData(1, size))

	convert := func(name string, args ...string) string {
		p := filepath.Join(dir, name)
		run(t, "qemu-img", append(append([]string{"convert", "-f", "raw", "-O", "qcow2"}, args...), src, p)...)
		return p
	}
	images := map[string]string{
		"v3":            convert("v3.qcow2"),
		"v2":            convert("v2.qcow2", "-o", "compat=0.10"),
		"v3-512":        convert("v3-512.qcow2", "-o", "cluster_size=512"),
		"v2-512":        convert("v2-512.qcow2", "-o", "compat=0.10,cluster_size=512"),
		"v3-2M":         convert("v3-2M.qcow2", "-o", "cluster_size=2M"),
		"compressed":    convert("c.qcow2", "-c"),
		"compressed-4k": convert("c4k.qcow2", "-c", "-o", "cluster_size=4096"),
		"refbits1":      convert("r1.qcow2", "-o", "refcount_bits=1"),
		"refbits64":     convert("r64.qcow2", "-o", "refcount_bits=64,cluster_size=1024"),
	}

	// Backing chains: raw base <- qcow2 mid <- qcow2 top (larger than its
	// backing), with writes, zeroes and discards by qemu-io at each level.
	mid := filepath.Join(dir, "mid.qcow2")
	run(t, "qemu-img", "create", "-f", "qcow2", "-b", "src.raw", "-F", "raw", mid)
	run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x11 4096 70000", "-c", "write -z 1M 128k", "-c", "discard 2M 64k", mid)
	top := filepath.Join(dir, "top.qcow2")
	run(t, "qemu-img", "create", "-f", "qcow2", "-o", "cluster_size=4096", "-b", mid, "-F", "qcow2", top, "5M")
	run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x22 60000 9000", "-c", "write -P 0x33 4500000 20000", "-c", "write -z 30000 10000", top)
	images["chain"] = top
	v2top := filepath.Join(dir, "v2top.qcow2")
	run(t, "qemu-img", "create", "-f", "qcow2", "-o", "compat=0.10", "-b", "v3.qcow2", "-F", "qcow2", v2top)
	run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x44 100000 300000", v2top)
	images["v2-over-v3"] = v2top
	probed := filepath.Join(dir, "probed.qcow2")
	run(t, "qemu-img", "create", "-f", "qcow2", "-b", "c.qcow2", "-F", "qcow2", probed)
	images["over-compressed"] = probed

	for name, p := range images {
		t.Run(name, func(t *testing.T) {
			d, err := Open(p, Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			assertSame(t, name, readAll(t, d), qemuRaw(t, p))
		})
	}
}
