package machine

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

type recDevice struct {
	reads, writes []uint64
	val           byte
}

func (d *recDevice) Read(off uint64, data []byte) {
	d.reads = append(d.reads, off)
	for i := range data {
		data[i] = d.val
	}
}
func (d *recDevice) Write(off uint64, data []byte) { d.writes = append(d.writes, off) }

func TestBusDispatchAndOverlap(t *testing.T) {
	b := NewBus("pio", 0xff)
	a, c := &recDevice{val: 1}, &recDevice{val: 2}
	if err := b.Register(0x3f8, 8, a, "com1"); err != nil {
		t.Fatal(err)
	}
	if err := b.Register(0x2f8, 8, c, "com2"); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ base, size uint64 }{{0x3f8, 1}, {0x3f0, 9}, {0x3ff, 4}, {0x2f0, 0x200}} {
		if err := b.Register(r.base, r.size, &recDevice{}, "x"); err == nil {
			t.Errorf("Register(%#x, %d) overlapping com1/com2 accepted", r.base, r.size)
		}
	}
	if err := b.Register(0x400, 0, &recDevice{}, "empty"); err == nil {
		t.Error("empty range accepted")
	}
	if err := b.Register(^uint64(0), 2, &recDevice{}, "wrap"); err == nil {
		t.Error("wrapping range accepted")
	}
	buf := []byte{0}
	if !b.Read(0x3fd, buf) || buf[0] != 1 {
		t.Errorf("read com1+5 = %v", buf)
	}
	if !b.Write(0x2f8, buf) {
		t.Error("write com2 not dispatched")
	}
	if b.Read(0x3f7, buf) || buf[0] != 0xff {
		t.Errorf("read of an unmapped port = %#x, want 0xff and false", buf[0])
	}
	if b.Write(0x400, buf) {
		t.Error("write to unmapped port reported as taken")
	}
	if diff := cmp.Diff([]uint64{5}, a.reads); diff != "" {
		t.Errorf("com1 read offsets (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]uint64{0}, c.writes); diff != "" {
		t.Errorf("com2 write offsets (-want +got):\n%s", diff)
	}
	if err := b.Unregister(0x3f8); err != nil {
		t.Fatal(err)
	}
	if b.Read(0x3f8, buf) {
		t.Error("read after Unregister still dispatched")
	}
	want := []Mapping{{0x2f8, 8, "com2"}}
	if diff := cmp.Diff(want, b.Mappings()); diff != "" {
		t.Errorf("Mappings (-want +got):\n%s", diff)
	}
}

func BenchmarkBusRead(b *testing.B) {
	bus := NewBus("pio", 0xff)
	for i := uint64(0); i < 16; i++ {
		bus.Register(0x100+i*0x10, 8, &recDevice{}, "d")
	}
	d := &recDevice{}
	bus.Register(0x3f8, 8, devNop{d}, "com1")
	buf := []byte{0}
	b.ReportAllocs()
	for b.Loop() {
		bus.Read(0x3fd, buf)
	}
}

type devNop struct{ *recDevice }

func (devNop) Read(uint64, []byte)  {}
func (devNop) Write(uint64, []byte) {}
