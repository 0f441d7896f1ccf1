package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/govmm/govmm/guest/agent/proto"
)

// fsRoot is where /proc and /sys are read from: "/" in the guest, a
// temporary directory with fake files in tests.
type fsRoot string

func (r fsRoot) path(p string) string { return filepath.Join(string(r), p) }

func (r fsRoot) readTrim(p string) (string, error) {
	b, err := os.ReadFile(r.path(p))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// countCPUList counts the CPUs in a sysfs CPU list such as "0-3,6,8-9".
func countCPUList(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	n := 0
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return 0, fmt.Errorf("bad CPU list %q", s)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return 0, fmt.Errorf("bad CPU list %q", s)
			}
		}
		if b-a >= 1<<20 {
			return 0, fmt.Errorf("bad CPU list %q", s)
		}
		n += b - a + 1
	}
	return n, nil
}

// countProcessors counts the "processor : N" stanzas of /proc/cpuinfo.
func countProcessors(cpuinfo []byte) int {
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		k, _, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "processor" {
			n++
		}
	}
	return n
}

// memTotalKiB returns MemTotal from /proc/meminfo contents.
func memTotalKiB(meminfo []byte) (uint64, error) {
	sc := bufio.NewScanner(bytes.NewReader(meminfo))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			return strconv.ParseUint(f[1], 10, 64)
		}
	}
	return 0, fmt.Errorf("no MemTotal in meminfo")
}

// kernelInfo gathers the "kernel" check's detail. release and version come
// from uname (passed in so tests need no syscalls).
func (r fsRoot) kernelInfo(release, version string) (proto.KernelDetail, error) {
	d := proto.KernelDetail{Release: release, Version: version}
	var errs []string
	if s, err := r.readTrim("sys/devices/system/cpu/online"); err != nil {
		errs = append(errs, err.Error())
	} else if d.CPUsOnline, err = countCPUList(s); err != nil {
		errs = append(errs, err.Error())
	}
	if b, err := os.ReadFile(r.path("proc/cpuinfo")); err != nil {
		errs = append(errs, err.Error())
	} else {
		d.CPUsInfo = countProcessors(b)
	}
	if b, err := os.ReadFile(r.path("proc/meminfo")); err != nil {
		errs = append(errs, err.Error())
	} else if d.MemTotalKiB, err = memTotalKiB(b); err != nil {
		errs = append(errs, err.Error())
	}
	if s, err := r.readTrim("proc/cmdline"); err != nil {
		errs = append(errs, err.Error())
	} else {
		d.Cmdline = s
	}
	if len(errs) > 0 {
		return d, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return d, nil
}

func parseHex(s string, bits int) (uint64, error) {
	return strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(s), "0x"), 16, bits)
}

// driverName is the base name of a device's "driver" symlink, or "".
func driverName(dev string) string {
	t, err := os.Readlink(filepath.Join(dev, "driver"))
	if err != nil {
		return ""
	}
	return filepath.Base(t)
}

// pciDevices lists /sys/bus/pci/devices, sorted by slot.
func (r fsRoot) pciDevices() ([]proto.PCIDevice, error) {
	dir := r.path("sys/bus/pci/devices")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := []proto.PCIDevice{}
	for _, e := range ents {
		dev := filepath.Join(dir, e.Name())
		d := proto.PCIDevice{Slot: e.Name(), Driver: driverName(dev)}
		for _, f := range []struct {
			name string
			bits int
			set  func(uint64)
		}{
			{"vendor", 16, func(v uint64) { d.Vendor = uint16(v) }},
			{"device", 16, func(v uint64) { d.Device = uint16(v) }},
			{"class", 24, func(v uint64) { d.Class = uint32(v) }},
		} {
			b, err := os.ReadFile(filepath.Join(dev, f.name))
			if err != nil {
				return nil, err
			}
			v, err := parseHex(string(b), f.bits)
			if err != nil {
				return nil, fmt.Errorf("%s/%s: %w", dev, f.name, err)
			}
			f.set(v)
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Slot < out[j].Slot })
	return out, nil
}

// virtioDevices lists /sys/bus/virtio/devices, sorted by name. The bus
// directory only exists when the virtio core is built in or loaded.
func (r fsRoot) virtioDevices() ([]proto.VirtioDevice, error) {
	dir := r.path("sys/bus/virtio/devices")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := []proto.VirtioDevice{}
	for _, e := range ents {
		dev := filepath.Join(dir, e.Name())
		d := proto.VirtioDevice{Name: e.Name(), Driver: driverName(dev)}
		for _, f := range []struct {
			name string
			dst  *uint32
		}{{"device", &d.Device}, {"vendor", &d.Vendor}} {
			b, err := os.ReadFile(filepath.Join(dev, f.name))
			if err != nil {
				return nil, err
			}
			v, err := parseHex(string(b), 32)
			if err != nil {
				return nil, fmt.Errorf("%s/%s: %w", dev, f.name, err)
			}
			*f.dst = uint32(v)
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool {
		return len(out[i].Name) < len(out[j].Name) || len(out[i].Name) == len(out[j].Name) && out[i].Name < out[j].Name
	})
	return out, nil
}
