package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"
)

// builder collects the files of an initramfs. The archive always holds the
// mount points the agent uses and /dev/console: the kernel opens
// /dev/console for /init before any devtmpfs is mounted.
type builder struct {
	files map[string]cpio.Record // by archive path, without a leading "/"
}

func (b *builder) add(r cpio.Record) error {
	if b.files == nil {
		b.files = map[string]cpio.Record{}
	}
	name := cpio.Normalize(r.Name)
	if name == "" || name == "." || strings.HasPrefix(name, "../") || name == ".." {
		return fmt.Errorf("bad archive path %q", r.Name)
	}
	if _, dup := b.files[name]; dup {
		return fmt.Errorf("%s added twice", name)
	}
	r.Name = name
	b.files[name] = r
	return nil
}

func (b *builder) addHostFile(src, dst string, perm uint64) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return b.add(cpio.StaticRecord(data, cpio.Info{Name: dst, Mode: cpio.S_IFREG | perm&0o7777}))
}

// isModule reports whether a file name is a kernel module, compressed or not.
func isModule(name string) bool {
	for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// addModules adds one module file, or every module file under a directory
// (keeping the layout below it), to /lib/modules.
func (b *builder) addModules(src string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		if !isModule(src) {
			return fmt.Errorf("%s is not a kernel module (.ko, .ko.xz, .ko.zst, .ko.gz)", src)
		}
		return b.addHostFile(src, path.Join("lib/modules", filepath.Base(src)), 0o644)
	}
	n := 0
	err = filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || !isModule(p) {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		n++
		return b.addHostFile(p, path.Join("lib/modules", filepath.ToSlash(rel)), 0o644)
	})
	if err == nil && n == 0 {
		err = fmt.Errorf("no kernel modules under %s", src)
	}
	return err
}

// addResolvedModules adds the named modules and their dependencies from a
// kernel's module tree and returns the names in load order (dependencies
// first).
func (b *builder) addResolvedModules(kmod string, names []string) ([]string, error) {
	f, err := os.Open(filepath.Join(kmod, "modules.dep"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dep, err := parseModulesDep(f)
	if err != nil {
		return nil, err
	}
	files, err := resolveModules(dep, names)
	if err != nil {
		return nil, err
	}
	var order []string
	for _, rel := range files {
		if err := b.addHostFile(filepath.Join(kmod, rel), path.Join("lib/modules", rel), 0o644); err != nil {
			return nil, err
		}
		order = append(order, moduleNameOf(rel))
	}
	return order, nil
}

// moduleNameOf turns "kernel/drivers/block/virtio-blk.ko.xz" into "virtio_blk".
func moduleNameOf(file string) string {
	base := path.Base(file)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// parseModulesDep reads modules.dep ("path: dep-path dep-path ...") into a
// map from module path to its dependencies' paths.
func parseModulesDep(r io.Reader) (map[string][]string, error) {
	dep := map[string][]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		mod, deps, ok := strings.Cut(text, ":")
		mod = strings.TrimSpace(mod)
		if !ok || mod == "" || !isModule(mod) || strings.Contains(mod, "..") {
			return nil, fmt.Errorf("modules.dep line %d: bad entry %q", line, text)
		}
		list := strings.Fields(deps)
		for _, d := range list {
			if !isModule(d) || strings.Contains(d, "..") {
				return nil, fmt.Errorf("modules.dep line %d: bad dependency %q", line, d)
			}
		}
		dep[mod] = list
	}
	return dep, sc.Err()
}

// resolveModules returns the module files needed to load names, every
// dependency before the modules that need it.
func resolveModules(dep map[string][]string, names []string) ([]string, error) {
	byName := map[string]string{}
	for mod := range dep {
		byName[moduleNameOf(mod)] = mod
	}
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(mod string) error
	visit = func(mod string) error {
		switch state[mod] {
		case 1:
			return fmt.Errorf("dependency cycle through %s", mod)
		case 2:
			return nil
		}
		state[mod] = 1
		deps, ok := dep[mod]
		if !ok {
			return fmt.Errorf("%s is listed as a dependency but has no modules.dep entry", mod)
		}
		// modules.dep lists the closest dependencies first; load the far ones first.
		for i := len(deps) - 1; i >= 0; i-- {
			if err := visit(deps[i]); err != nil {
				return err
			}
		}
		state[mod] = 2
		order = append(order, mod)
		return nil
	}
	for _, n := range names {
		n = strings.ReplaceAll(strings.TrimSpace(n), "-", "_")
		if n == "" {
			continue
		}
		mod, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("module %s is not in modules.dep (built in?)", n)
		}
		if err := visit(mod); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// records returns every record of the archive, parents before children.
func (b *builder) records() []cpio.Record {
	all := map[string]cpio.Record{
		"dev":         cpio.Directory("dev", 0o755),
		"dev/console": cpio.CharDev("dev/console", 0o600, 5, 1),
		"proc":        cpio.Directory("proc", 0o755),
		"sys":         cpio.Directory("sys", 0o755),
	}
	for name, r := range b.files {
		all[name] = r
		// The kernel's unpacker does not create missing parent directories.
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			if _, ok := all[d]; !ok {
				all[d] = cpio.Directory(d, 0o755)
			}
		}
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names) // a parent sorts before everything below it
	out := make([]cpio.Record, 0, len(names))
	for i, n := range names {
		r := cpio.MakeReproducible(all[n])
		r.Ino = uint64(i + 1)
		r.NLink = 1
		out = append(out, r)
	}
	return out
}

// write writes the archive in newc format, trailer included.
func (b *builder) write(w io.Writer) error {
	rw := cpio.Newc.Writer(w)
	if err := cpio.WriteRecords(rw, b.records()); err != nil {
		return err
	}
	return cpio.WriteTrailer(rw)
}
