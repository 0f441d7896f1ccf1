package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/u-root/u-root/pkg/cpio"
)

const modulesDep = `kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
`

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// readArchive returns name -> record info and contents.
func readArchive(t *testing.T, r io.ReaderAt) (map[string]cpio.Info, map[string]string, []string) {
	t.Helper()
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(r))
	if err != nil {
		t.Fatal(err)
	}
	infos, contents := map[string]cpio.Info{}, map[string]string{}
	var order []string
	for _, rec := range recs {
		b, err := io.ReadAll(io.NewSectionReader(rec.ReaderAt, 0, int64(rec.FileSize)))
		if err != nil {
			t.Fatal(err)
		}
		infos[rec.Name], contents[rec.Name] = rec.Info, string(b)
		order = append(order, rec.Name)
	}
	return infos, contents, order
}

func TestBuildArchive(t *testing.T) {
	dir := t.TempDir()
	kmod := filepath.Join(dir, "kmod")
	writeFiles(t, dir, map[string]string{
		"agent":             "\x7fELF agent",
		"extra/x.ko":        "module x",
		"extra/sub/y.ko.xz": "module y",
		"extra/notes.txt":   "not a module",
		"busybox":           "sh",
	})
	mods := map[string]string{"modules.dep": modulesDep}
	for _, l := range strings.Split(modulesDep, "\n") {
		if f, _, ok := strings.Cut(l, ":"); ok {
			mods[f] = "content of " + f
		}
	}
	writeFiles(t, kmod, mods)

	out := filepath.Join(dir, "out", "initramfs.cpio")
	err := run(out, filepath.Join(dir, "agent"), false,
		[]string{filepath.Join(dir, "extra")}, []string{filepath.Join(dir, "busybox") + "=bin/sh"},
		kmod, "virtio_blk,virtio-pci")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	infos, contents, order := readArchive(t, f)

	if contents["init"] != "\x7fELF agent" || infos["init"].Mode != cpio.S_IFREG|0o755 {
		t.Errorf("init: %v %q", infos["init"], contents["init"])
	}
	if c := infos["dev/console"]; c.Mode != cpio.S_IFCHR|0o600 || c.Rmajor != 5 || c.Rminor != 1 {
		t.Errorf("dev/console: %v", c)
	}
	for _, want := range []string{"lib/modules/x.ko", "lib/modules/sub/y.ko.xz",
		"lib/modules/kernel/drivers/virtio/virtio_pci.ko", "lib/modules/kernel/drivers/block/virtio_blk.ko.xz", "bin/sh"} {
		if _, ok := contents[want]; !ok {
			t.Errorf("%s missing from %v", want, order)
		}
	}
	for _, unwanted := range []string{"lib/modules/notes.txt", "lib/modules/kernel/drivers/char/hw_random/virtio-rng.ko"} {
		if _, ok := contents[unwanted]; ok {
			t.Errorf("%s should not be in the archive", unwanted)
		}
	}
	if got, want := contents["etc/agent.modules"], "virtio,virtio_ring,virtio_blk,virtio_pci_modern_dev,virtio_pci\n"; got != want {
		t.Errorf("etc/agent.modules = %q, want %q", got, want)
	}
	if contents["lib/modules/kernel/drivers/virtio/virtio.ko"] != "content of kernel/drivers/virtio/virtio.ko" {
		t.Error("module contents not copied")
	}
	// Every parent directory is in the archive before its children, as
	// the kernel's unpacker needs.
	seen := map[string]bool{}
	for _, n := range order {
		if n == cpio.Trailer {
			continue
		}
		if d := filepath.Dir(n); d != "." && !seen[d] {
			t.Errorf("%s comes before its directory %s", n, d)
		}
		if infos[n].Mode&cpio.S_IFMT == cpio.S_IFDIR {
			seen[n] = true
		}
		if infos[n].MTime != 0 || infos[n].UID != 0 {
			t.Errorf("%s is not reproducible: %v", n, infos[n])
		}
	}

	// The same inputs give the same bytes, also gzipped.
	out2 := filepath.Join(dir, "out", "initramfs2.cpio.gz")
	if err := run(out2, filepath.Join(dir, "agent"), true,
		[]string{filepath.Join(dir, "extra")}, []string{filepath.Join(dir, "busybox") + "=bin/sh"},
		kmod, "virtio_blk,virtio-pci"); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(out)
	zf, _ := os.Open(out2)
	defer zf.Close()
	zr, err := gzip.NewReader(zf)
	if err != nil {
		t.Fatal(err)
	}
	unz, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, unz) {
		t.Error("gzip output does not decompress to the same archive")
	}
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"agent": "a", "notmod.txt": "x", "empty/readme": "x"})
	agent := filepath.Join(dir, "agent")
	out := filepath.Join(dir, "out.cpio")
	for _, tc := range []struct {
		name          string
		modules, file []string
		kmod, load    string
		want          string
	}{
		{"not a module", []string{filepath.Join(dir, "notmod.txt")}, nil, "", "", "not a kernel module"},
		{"no modules in dir", []string{filepath.Join(dir, "empty")}, nil, "", "", "no kernel modules"},
		{"bad file flag", nil, []string{"nosep"}, "", "", "host-path=guest-path"},
		{"escaping path", nil, []string{agent + "=../../etc/x"}, "", "", "bad archive path"},
		{"duplicate", nil, []string{agent + "=init"}, "", "", "added twice"},
		{"kmod without load", nil, nil, dir, "", "go together"},
	} {
		err := run(out, agent, false, tc.modules, tc.file, tc.kmod, tc.load)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Error("a failed build left an output file")
	}
}

func TestResolveModules(t *testing.T) {
	dep, err := parseModulesDep(strings.NewReader(modulesDep))
	if err != nil {
		t.Fatal(err)
	}
	got, err := resolveModules(dep, []string{"virtio_pci", "virtio_blk", "virtio-rng"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"kernel/drivers/virtio/virtio.ko",
		"kernel/drivers/virtio/virtio_ring.ko",
		"kernel/drivers/virtio/virtio_pci_modern_dev.ko",
		"kernel/drivers/virtio/virtio_pci.ko",
		"kernel/drivers/block/virtio_blk.ko.xz",
		"kernel/drivers/char/hw_random/virtio-rng.ko",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := resolveModules(dep, []string{"ext4"}); err == nil {
		t.Error("unknown module resolved")
	}
	cyc, _ := parseModulesDep(strings.NewReader("a.ko: b.ko\nb.ko: a.ko\n"))
	if _, err := resolveModules(cyc, []string{"a"}); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle: %v", err)
	}
	dangling, _ := parseModulesDep(strings.NewReader("a.ko: gone.ko\n"))
	if _, err := resolveModules(dangling, []string{"a"}); err == nil {
		t.Error("dangling dependency resolved")
	}
	if _, err := parseModulesDep(strings.NewReader("no colon here\n")); err == nil {
		t.Error("bad modules.dep parsed")
	}
}

func FuzzModulesDep(f *testing.F) {
	f.Add(modulesDep, "virtio_pci,virtio_blk")
	f.Add("a.ko: b.ko\nb.ko: a.ko\n", "a")
	f.Add("x.ko.zst:\n# comment\n\n", "x")
	f.Fuzz(func(t *testing.T, depText, names string) {
		dep, err := parseModulesDep(strings.NewReader(depText))
		if err != nil {
			return
		}
		order, err := resolveModules(dep, strings.Split(names, ","))
		if err != nil {
			return
		}
		// Every module comes after all of its dependencies.
		pos := map[string]int{}
		for i, m := range order {
			if _, dup := pos[m]; dup {
				t.Fatalf("%s listed twice in %v", m, order)
			}
			pos[m] = i
		}
		for _, m := range order {
			for _, d := range dep[m] {
				if p, ok := pos[d]; !ok || p > pos[m] {
					t.Fatalf("%s before its dependency %s in %v", m, d, order)
				}
			}
		}
	})
}
