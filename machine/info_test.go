package machine

import (
	"testing"

	"github.com/govmm/govmm/devices/disk"
)

type discardRecorder struct {
	disk.Disk
	discards int
}

func (d *discardRecorder) Discard(off, n int64) error { d.discards++; return nil }

func TestDiscardPolicy(t *testing.T) {
	for _, c := range []struct {
		ignore bool
		want   int
	}{{true, 0}, {false, 1}} {
		rec := &discardRecorder{}
		cd := &countingDisk{Disk: rec, ignoreDiscard: c.ignore}
		if err := cd.Discard(0, 4096); err != nil {
			t.Fatal(err)
		}
		if rec.discards != c.want || cd.stats().UnmapOps != 1 {
			t.Errorf("ignore=%v: backend saw %d discards (want %d), counted %d", c.ignore, rec.discards, c.want, cd.stats().UnmapOps)
		}
	}
}
