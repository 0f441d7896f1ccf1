package main

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// virtioPhases are the rows of the virtio-blk table, in the payload's
// order: name, metric, unit, better.
var virtioPhases = []struct {
	phase, name, unit, better string
}{
	{"seqwrite", "1 MiB sequential write", "MiB/s", "higher"},
	{"flush", "flush (fdatasync of the image)", "ms", "lower"},
	{"seqread", "1 MiB sequential read", "MiB/s", "higher"},
	{"randread", "4 KiB random read, queue depth 1", "IOPS", "higher"},
	{"randread-qd4", "4 KiB random read, queue depth 4", "IOPS", "higher"},
}

// virtio runs virtiobench.elf (a virtio-blk-pci driver at CPL 3, see
// guest/payload/virtio/main.c) against a raw image on tmpfs and on disk.
// It needs PCI, so both VMMs run -M pc; the phases are timed from the
// guest's markers, so QEMU's SeaBIOS time does not count.
func (b *bench) virtio(n int) {
	elf := b.payload("virtiobench")
	if _, err := os.Stat(elf); err != nil {
		b.rep.Skipped = append(b.rep.Skipped, "virtio-blk: "+elf+" not built (guest/payload/virtio)")
		return
	}
	for _, loc := range []struct{ label, dir string }{{"tmpfs", b.cfg.shmDir}, {"disk", b.cfg.diskDir}} {
		img, err := makeImage(loc.dir, b.cfg.imageMiB)
		if err != nil {
			b.rep.Errors = append(b.rep.Errors, fmt.Sprintf("virtio-blk image in %s: %v", loc.dir, err))
			continue
		}
		if tmpfs := isTmpfs(loc.dir); tmpfs != (loc.label == "tmpfs") {
			b.rep.Notes = append(b.rep.Notes, fmt.Sprintf("virtio-blk %q image directory %s is%s tmpfs", loc.label, loc.dir, map[bool]string{true: "", false: " not"}[tmpfs]))
		}
		b.virtioAt(loc.label, img, n)
		os.Remove(img)
	}
}

func (b *bench) virtioAt(label, img string, n int) {
	sec := fmt.Sprintf("virtio-blk: virtiobench.elf, %d MiB raw image on %s, -M pc -m 128 -smp 1", b.cfg.imageMiB, label)
	var rows [][3]string
	for _, p := range virtioPhases {
		rows = append(rows, [3]string{p.name, p.unit, p.better})
	}
	metrics := b.newMetrics(sec, rows...)
	args := guestArgs("pc", 128, 1, b.payload("virtiobench"),
		"-drive", "file="+img+",if=none,id=vd0,format=raw",
		"-device", "virtio-blk-pci,drive=vd0,disable-legacy=on")
	gov, q := b.govmmInv(args), b.qemuInv(args)
	b.pairs("virtio-blk "+label, n, gov, &q, metrics, func(r *Result) ([]float64, error) {
		if _, ok := FirstLine(r.Lines, "vbench: all ok"); !ok || r.Status != 65 {
			return nil, fmt.Errorf("exit status %d and no \"vbench: all ok\" (want status 65)", r.Status)
		}
		// The image is written by the guest, not by a previous run: drop
		// its page cache so each run starts alike.
		dropCache(img)
		return VirtioValues(r.Lines)
	})
}

// VirtioValues turns virtiobench's markers into one value per row of
// virtioPhases. The sizes come from the guest's "vbench: config" line; a
// phase the guest skipped (flush without VIRTIO_BLK_F_FLUSH) is NaN, while
// missing reads are an error.
func VirtioValues(lines []Line) ([]float64, error) {
	cfg, ok := VbenchConfig(lines)
	if !ok {
		return nil, fmt.Errorf("no \"vbench: config\" line")
	}
	phases, err := VbenchPhases(lines)
	if err != nil {
		return nil, err
	}
	byName := map[string]Phase{}
	for _, p := range phases {
		byName[p.Name] = p
	}
	vals := make([]float64, len(virtioPhases))
	for i, row := range virtioPhases {
		p, ok := byName[row.phase]
		if !ok {
			if row.phase == "flush" {
				vals[i] = nan
				continue
			}
			return nil, fmt.Errorf("no vbench %s phase", row.phase)
		}
		if p.Duration <= 0 && row.unit != "ms" {
			return nil, fmt.Errorf("vbench %s: start and done came in one read, no time between them", row.phase)
		}
		switch row.unit {
		case "ms":
			// A flush faster than the pipe's read granularity reads as 0.
			vals[i] = ms(p.Duration)
		case "MiB/s":
			seq, ok := cfg["seq"]
			if !ok || p.Count < 0 {
				return nil, fmt.Errorf("vbench %s: no chunk size or count", row.phase)
			}
			vals[i] = float64(p.Count*seq[1]) / (1 << 20) / p.Duration.Seconds()
		case "IOPS":
			if p.Count < 0 {
				return nil, fmt.Errorf("vbench %s: no request count", row.phase)
			}
			vals[i] = float64(p.Count) / p.Duration.Seconds()
		}
	}
	return vals, nil
}

// makeImage writes a zero-filled raw image (allocated, not sparse, so the
// first run does not pay for block allocation the others skip).
func makeImage(dir string, mib int) (string, error) {
	f, err := os.CreateTemp(dir, "vmbench-*.img")
	if err != nil {
		return "", err
	}
	zero := make([]byte, 1<<20)
	for i := 0; i < mib; i++ {
		if _, err := f.Write(zero); err != nil {
			f.Close()
			os.Remove(f.Name())
			return "", err
		}
	}
	f.Sync()
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return filepath.Clean(f.Name()), nil
}

func dropCache(path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}

func isTmpfs(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.TMPFS_MAGIC
}
