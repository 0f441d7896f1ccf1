package virtq_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/govmm/govmm/machine/guestmem"
	"github.com/govmm/govmm/virtio/virtq"
	"github.com/govmm/govmm/virtio/virtq/virtqtest"
)

const (
	memBase  = 0x10000
	memSize  = 1 << 20
	ringBase = memBase
	dataBase = memBase + 0x40000
)

func newMem(t testing.TB) *guestmem.Memory {
	t.Helper()
	m, err := guestmem.New(guestmem.Region{GPA: memBase, Data: make([]byte, memSize)})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func setup(t testing.TB, size uint16, features uint64) (*virtqtest.Driver, *virtq.Queue) {
	t.Helper()
	m := newMem(t)
	d := virtqtest.New(m, ringBase, size, dataBase, memBase+memSize-dataBase)
	q, err := virtq.New(m, d.Config(), features)
	if err != nil {
		t.Fatal(err)
	}
	return d, q
}

func TestPopPush(t *testing.T) {
	for _, indirect := range []bool{false, true} {
		d, q := setup(t, 8, virtq.FeatureIndirectDesc)
		if c, err := q.Pop(); c != nil || err != nil {
			t.Fatalf("empty queue: Pop = %v, %v", c, err)
		}
		bufs := []virtqtest.Buf{{Data: []byte("hello ")}, {Data: []byte("world")}, {Write: true, Len: 3}, {Write: true, Len: 5}}
		var head uint16
		if indirect {
			head = d.AddIndirect(bufs)
		} else {
			head = d.Add(bufs)
		}
		c, err := q.Pop()
		if err != nil || c == nil {
			t.Fatalf("Pop = %v, %v", c, err)
		}
		if c.Head != head || c.ReadableLen() != 11 || c.WritableLen() != 8 {
			t.Fatalf("chain head %d readable %d writable %d", c.Head, c.ReadableLen(), c.WritableLen())
		}
		got := make([]byte, 11)
		if n := c.CopyFrom(got, 0); n != 11 || string(got) != "hello world" {
			t.Fatalf("CopyFrom = %d %q", n, got)
		}
		if n := c.CopyTo([]byte("ABCDEFGHIJ"), 1); n != 7 {
			t.Fatalf("CopyTo copied %d", n)
		}
		addrs := d.AddrOf[head]
		if got := string(d.Read(addrs[2], 3)) + string(d.Read(addrs[3], 5)); got != "\x00ABCDEFG" {
			t.Fatalf("guest sees %q", got)
		}
		if err := q.Push(c.Head, 8); err != nil {
			t.Fatal(err)
		}
		used := d.PollUsed()
		if len(used) != 1 || used[0] != (virtqtest.Used{ID: uint32(head), Len: 8}) {
			t.Fatalf("used = %+v", used)
		}
		if !q.NeedInterrupt() {
			t.Error("NeedInterrupt false after a push")
		}
		if q.NeedInterrupt() {
			t.Error("NeedInterrupt true twice for one push")
		}
		if c, err := q.Pop(); c != nil || err != nil {
			t.Fatalf("drained queue: Pop = %v, %v", c, err)
		}
	}
}

func TestSub(t *testing.T) {
	bufs := [][]byte{[]byte("abc"), []byte("defg"), []byte("h")}
	got := virtq.Sub(bufs, 2, 4)
	if len(got) != 2 || string(got[0]) != "c" || string(got[1]) != "def" {
		t.Fatalf("Sub = %q", got)
	}
	if got := virtq.Sub(bufs, 7, 10); len(got) != 1 || string(got[0]) != "h" {
		t.Fatalf("Sub past end = %q", got)
	}
}

func TestWrapAround(t *testing.T) {
	d, q := setup(t, 4, 0)
	for i := 0; i < 70000; i++ { // crosses the 16-bit index wrap
		d.Add([]virtqtest.Buf{{Data: []byte{byte(i)}}})
		c, err := q.Pop()
		if err != nil || c == nil {
			t.Fatalf("iteration %d: Pop = %v, %v", i, c, err)
		}
		var b [1]byte
		c.CopyFrom(b[:], 0)
		if b[0] != byte(i) {
			t.Fatalf("iteration %d: got %d", i, b[0])
		}
		if err := q.Push(c.Head, 0); err != nil {
			t.Fatal(err)
		}
		if len(d.PollUsed()) != 1 {
			t.Fatalf("iteration %d: no used element", i)
		}
		if i%5000 == 0 {
			d.AddrOf = map[uint16][]uint64{}
		}
		d.ResetData()
	}
}

func TestMalformedChains(t *testing.T) {
	type mk func(d *virtqtest.Driver) uint16
	buf := func(d *virtqtest.Driver) uint64 { return d.Alloc(64) }
	cases := []struct {
		name     string
		features uint64
		build    mk
	}{
		{"loop", 0, func(d *virtqtest.Driver) uint16 {
			a := buf(d)
			d.WriteDesc(d.Desc, 0, a, 8, virtqtest.FlagNext, 1)
			d.WriteDesc(d.Desc, 1, a, 8, virtqtest.FlagNext, 0)
			return 0
		}},
		{"self loop", 0, func(d *virtqtest.Driver) uint16 {
			d.WriteDesc(d.Desc, 3, buf(d), 8, virtqtest.FlagNext, 3)
			return 3
		}},
		{"next out of range", 0, func(d *virtqtest.Driver) uint16 {
			d.WriteDesc(d.Desc, 0, buf(d), 8, virtqtest.FlagNext, 8)
			return 0
		}},
		{"address outside RAM", 0, func(d *virtqtest.Driver) uint16 {
			d.WriteDesc(d.Desc, 0, memBase+memSize-4, 8, 0, 0)
			return 0
		}},
		{"address wraps", 0, func(d *virtqtest.Driver) uint16 {
			d.WriteDesc(d.Desc, 0, ^uint64(0)-2, 8, 0, 0)
			return 0
		}},
		{"readable after writable", 0, func(d *virtqtest.Driver) uint16 {
			d.WriteDesc(d.Desc, 0, buf(d), 8, virtqtest.FlagNext|virtqtest.FlagWrite, 1)
			d.WriteDesc(d.Desc, 1, buf(d), 8, 0, 0)
			return 0
		}},
		{"indirect not negotiated", 0, func(d *virtqtest.Driver) uint16 {
			tab := buf(d)
			d.WriteDesc(tab, 0, buf(d), 8, 0, 0)
			d.WriteDesc(d.Desc, 0, tab, 16, virtqtest.FlagIndirect, 0)
			return 0
		}},
		{"indirect in indirect", virtq.FeatureIndirectDesc, func(d *virtqtest.Driver) uint16 {
			tab := buf(d)
			d.WriteDesc(tab, 0, tab, 16, virtqtest.FlagIndirect, 0)
			d.WriteDesc(d.Desc, 0, tab, 16, virtqtest.FlagIndirect, 0)
			return 0
		}},
		{"indirect with next", virtq.FeatureIndirectDesc, func(d *virtqtest.Driver) uint16 {
			tab := buf(d)
			d.WriteDesc(tab, 0, buf(d), 8, 0, 0)
			d.WriteDesc(d.Desc, 0, tab, 16, virtqtest.FlagIndirect|virtqtest.FlagNext, 1)
			d.WriteDesc(d.Desc, 1, buf(d), 8, 0, 0)
			return 0
		}},
		{"indirect bad length", virtq.FeatureIndirectDesc, func(d *virtqtest.Driver) uint16 {
			d.WriteDesc(d.Desc, 0, buf(d), 24, virtqtest.FlagIndirect, 0)
			return 0
		}},
		{"indirect loop", virtq.FeatureIndirectDesc, func(d *virtqtest.Driver) uint16 {
			tab := buf(d)
			d.WriteDesc(tab, 0, buf(d), 8, virtqtest.FlagNext, 1)
			d.WriteDesc(tab, 1, buf(d), 8, virtqtest.FlagNext, 0)
			d.WriteDesc(d.Desc, 0, tab, 32, virtqtest.FlagIndirect, 0)
			return 0
		}},
		{"indirect next out of table", virtq.FeatureIndirectDesc, func(d *virtqtest.Driver) uint16 {
			tab := buf(d)
			d.WriteDesc(tab, 0, buf(d), 8, virtqtest.FlagNext, 2)
			d.WriteDesc(d.Desc, 0, tab, 32, virtqtest.FlagIndirect, 0)
			return 0
		}},
		{"length past RAM", 0, func(d *virtqtest.Driver) uint16 {
			d.WriteDesc(d.Desc, 0, memBase, 0xFFFFFFFF, 0, 0)
			return 0
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, q := setup(t, 8, tc.features)
			head := tc.build(d)
			d.Publish(head)
			c, err := q.Pop()
			var ce *virtq.ChainError
			if !errors.As(err, &ce) || c != nil {
				t.Fatalf("Pop = %v, %v; want ChainError", c, err)
			}
			if ce.Head != head {
				t.Fatalf("ChainError head %d, want %d", ce.Head, head)
			}
			// The queue stays usable: return the bad one, then
			// a good request goes through.
			if err := q.Push(ce.Head, 0); err != nil {
				t.Fatal(err)
			}
			d.Add([]virtqtest.Buf{{Data: []byte("ok")}})
			if c, err := q.Pop(); err != nil || c == nil || c.ReadableLen() != 2 {
				t.Fatalf("after bad chain: Pop = %v, %v", c, err)
			}
		})
	}
}

func TestLengthOverflow(t *testing.T) {
	// An indirect table whose descriptors all point at one 1 MiB buffer,
	// so the total exceeds 2^32 without needing that much RAM.
	const big = 1 << 20
	m, err := guestmem.New(guestmem.Region{GPA: 0, Data: make([]byte, 8<<20)})
	if err != nil {
		t.Fatal(err)
	}
	d := virtqtest.New(m, 0, 4, 1<<20, 7<<20)
	n := uint16(4097) // 4097 MiB > 4 GiB
	tab := d.Alloc(16 * uint64(n))
	for i := uint16(0); i < n; i++ {
		d.WriteDesc(tab, i, 2<<20, big, virtqtest.FlagNext, i+1)
	}
	d.WriteDesc(tab, n-1, 2<<20, big, 0, 0)
	d.WriteDesc(d.Desc, 0, tab, 16*uint32(n), virtqtest.FlagIndirect, 0)
	d.Publish(0)
	q, err := virtq.New(m, d.Config(), virtq.FeatureIndirectDesc)
	if err != nil {
		t.Fatal(err)
	}
	var ce *virtq.ChainError
	if _, err := q.Pop(); !errors.As(err, &ce) {
		t.Fatalf("Pop error = %v, want ChainError", err)
	}
}

func TestBrokenRing(t *testing.T) {
	d, q := setup(t, 8, 0)
	if err := d.Mem.PutUint16(d.Avail+2, 9); err != nil { // 9 > size ahead
		t.Fatal(err)
	}
	if _, err := q.Pop(); !errors.Is(err, virtq.ErrBroken) {
		t.Fatalf("Pop = %v, want ErrBroken", err)
	}
	if _, err := q.Pop(); !errors.Is(err, virtq.ErrBroken) {
		t.Fatal("queue recovered by itself")
	}

	d, q = setup(t, 8, 0)
	if err := d.Mem.PutUint16(d.Avail+4, 8); err != nil { // head 8 out of range
		t.Fatal(err)
	}
	if err := d.Mem.PutUint16(d.Avail+2, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Pop(); !errors.Is(err, virtq.ErrBroken) {
		t.Fatalf("Pop = %v, want ErrBroken", err)
	}
}

func TestNewValidates(t *testing.T) {
	m := newMem(t)
	for _, cfg := range []virtq.Config{
		{Size: 0, DescAddr: memBase, DriverAddr: memBase + 0x1000, DeviceAddr: memBase + 0x2000},
		{Size: 3, DescAddr: memBase, DriverAddr: memBase + 0x1000, DeviceAddr: memBase + 0x2000},
		{Size: 8, DescAddr: memBase + 8, DriverAddr: memBase + 0x1000, DeviceAddr: memBase + 0x2000},
		{Size: 8, DescAddr: memBase, DriverAddr: memBase + 0x1001, DeviceAddr: memBase + 0x2000},
		{Size: 8, DescAddr: memBase, DriverAddr: memBase + 0x1000, DeviceAddr: memBase + 0x2002},
		{Size: 256, DescAddr: memBase + memSize - 16, DriverAddr: memBase + 0x1000, DeviceAddr: memBase + 0x2000},
		{Size: 256, DescAddr: memBase, DriverAddr: memBase + 0x1000, DeviceAddr: memBase + memSize - 8},
	} {
		if _, err := virtq.New(m, cfg, 0); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	if _, err := virtq.New(m, virtq.Config{Size: 32768, DescAddr: memBase, DriverAddr: memBase + 0x80000, DeviceAddr: memBase + 0x90000}, 0); err != nil {
		t.Errorf("max size queue: %v", err)
	}
}

func TestEventIdx(t *testing.T) {
	d, q := setup(t, 8, virtq.FeatureEventIdx)
	// Empty Pop publishes avail_event = last_avail.
	if c, _ := q.Pop(); c != nil {
		t.Fatal("unexpected chain")
	}
	if ev := d.AvailEvent(); ev != 0 {
		t.Fatalf("avail_event = %d, want 0", ev)
	}
	for i := 0; i < 3; i++ {
		d.Add([]virtqtest.Buf{{Data: []byte{1}}})
	}
	// Driver wants an interrupt only once used.idx passes 2 (used_event=2).
	d.SetUsedEvent(2)
	for i := 0; i < 3; i++ {
		c, err := q.Pop()
		if err != nil || c == nil {
			t.Fatal(c, err)
		}
		if err := q.Push(c.Head, 0); err != nil {
			t.Fatal(err)
		}
		need := q.NeedInterrupt()
		if want := i == 2; need != want { // used idx goes 1,2,3; 3 passes event 2
			t.Fatalf("push %d: NeedInterrupt = %v, want %v", i, need, want)
		}
	}
	if c, _ := q.Pop(); c != nil {
		t.Fatal("unexpected chain")
	}
	if ev := d.AvailEvent(); ev != 3 {
		t.Fatalf("avail_event = %d, want 3", ev)
	}
}

func TestFlagSuppression(t *testing.T) {
	d, q := setup(t, 8, 0)
	d.Add([]virtqtest.Buf{{Data: []byte{1}}})
	d.Add([]virtqtest.Buf{{Data: []byte{2}}})
	c, _ := q.Pop()
	if d.UsedFlags()&1 == 0 {
		t.Error("device did not set NO_NOTIFY while busy")
	}
	q.Push(c.Head, 0)
	c, _ = q.Pop()
	q.Push(c.Head, 0)
	if c, _ := q.Pop(); c != nil {
		t.Fatal("unexpected chain")
	}
	if d.UsedFlags()&1 != 0 {
		t.Error("device left NO_NOTIFY set when idle")
	}
	d.SetAvailFlags(1)
	if q.NeedInterrupt() {
		t.Error("interrupt despite VIRTQ_AVAIL_F_NO_INTERRUPT")
	}
	d.SetAvailFlags(0)
	if !q.NeedInterrupt() {
		t.Error("no interrupt once the driver cleared NO_INTERRUPT")
	}
}

func TestNeedEvent(t *testing.T) {
	cases := []struct {
		event, new, old uint16
		want            bool
	}{
		{0, 1, 0, true},
		{1, 1, 0, false},
		{5, 10, 0, true},
		{10, 10, 0, false},
		{65535, 0, 65535, true}, // across the wrap
		{0, 0, 65535, false},
		{3, 3, 3, false},
	}
	for _, c := range cases {
		if got := virtq.NeedEvent(c.event, c.new, c.old); got != c.want {
			t.Errorf("NeedEvent(%d,%d,%d) = %v", c.event, c.new, c.old, got)
		}
	}
}

func TestCopyIsolation(t *testing.T) {
	// The chain's buffers alias guest memory: a guest change after Pop is
	// visible, which is why devices copy headers before validating them.
	d, q := setup(t, 8, 0)
	head := d.Add([]virtqtest.Buf{{Data: []byte("abcd")}})
	c, _ := q.Pop()
	if err := d.Mem.WriteAt([]byte("X"), d.AddrOf[head][0]); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.Readable[0], []byte("Xbcd")) {
		t.Fatalf("buffer = %q", c.Readable[0])
	}
}

func BenchmarkPopPush(b *testing.B) {
	d, q := setup(b, 256, virtq.FeatureIndirectDesc|virtq.FeatureEventIdx)
	// Three-descriptor requests like virtio-blk's, reused in place.
	hdr, data, st := d.Alloc(16), d.Alloc(4096), d.Alloc(1)
	for i := uint16(0); i < 256; i += 4 {
		d.WriteDesc(d.Desc, i, hdr, 16, virtqtest.FlagNext, i+1)
		d.WriteDesc(d.Desc, i+1, data, 4096, virtqtest.FlagNext|virtqtest.FlagWrite, i+2)
		d.WriteDesc(d.Desc, i+2, st, 1, virtqtest.FlagWrite, 0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d.Publish(uint16(i%64) * 4)
		c, err := q.Pop()
		if err != nil || c == nil {
			b.Fatal(c, err)
		}
		if err := q.Push(c.Head, 4097); err != nil {
			b.Fatal(err)
		}
		q.NeedInterrupt()
		d.PollUsed()
	}
}
