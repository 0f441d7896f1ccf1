package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/govmm/govmm/guest/agent/proto"
)

// moduleDir is where guest/initramfs puts kernel modules, and
// moduleListFile the default load order it writes (for -kmod/-load).
const (
	moduleDir      = "lib/modules"
	moduleListFile = "etc/agent.modules"
)

// defaultModules returns the list in /etc/agent.modules, or nil.
func (r fsRoot) defaultModules() ([]string, error) {
	s, err := r.readTrim(moduleListFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return splitList(s), nil
}

// moduleName returns the module name of a file such as "virtio-blk.ko.xz"
// ("virtio_blk") and whether the file is compressed; ok is false for files
// that are not modules.
func moduleName(file string) (name string, compressed, ok bool) {
	base := filepath.Base(file)
	for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if strings.HasSuffix(base, ext) {
			name = strings.ReplaceAll(strings.TrimSuffix(base, ext), "-", "_")
			return name, ext != ".ko", name != ""
		}
	}
	return "", false, false
}

// findModules maps module names to files under root/lib/modules.
func (r fsRoot) findModules() (map[string]string, error) {
	found := map[string]string{}
	err := filepath.WalkDir(r.path(moduleDir), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name, _, ok := moduleName(p); ok && d.Type().IsRegular() {
			if _, dup := found[name]; !dup {
				found[name] = p
			}
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return found, nil
	}
	return found, err
}

// loadModules loads the named modules in order with finit_module. The
// caller lists dependencies first (e.g. virtio_ring,virtio,virtio_pci);
// there is no modules.dep resolution. A module that is already loaded or
// built in counts as success.
func (r fsRoot) loadModules(names []string) (proto.ModulesDetail, error) {
	d := proto.ModulesDetail{Loaded: []string{}}
	files, err := r.findModules()
	if err != nil {
		return d, err
	}
	for _, raw := range names {
		name := strings.ReplaceAll(raw, "-", "_")
		file, ok := files[name]
		if !ok {
			if _, err := os.Stat(r.path("sys/module/" + name)); err == nil {
				d.Already = append(d.Already, name) // built into the kernel
				continue
			}
			return d, fmt.Errorf("module %s: not in /%s", name, moduleDir)
		}
		if err := finitModule(file); errors.Is(err, unix.EEXIST) {
			d.Already = append(d.Already, name)
		} else if err != nil {
			return d, fmt.Errorf("module %s (%s): %w", name, file, err)
		} else {
			d.Loaded = append(d.Loaded, name)
		}
	}
	return d, nil
}

func finitModule(file string) error {
	_, compressed, _ := moduleName(file)
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	flags := 0
	if compressed {
		// The kernel decompresses (CONFIG_MODULE_DECOMPRESS, in Debian's kernels).
		flags |= unix.MODULE_INIT_COMPRESSED_FILE
	}
	return unix.FinitModule(int(f.Fd()), "", flags)
}
