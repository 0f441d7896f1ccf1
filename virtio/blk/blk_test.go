package blk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/govmm/govmm/machine/guestmem"
	"github.com/govmm/govmm/virtio"
	"github.com/govmm/govmm/virtio/virtq"
	"github.com/govmm/govmm/virtio/virtq/virtqtest"
)

// memDisk is an in-memory disk.Disk.
type memDisk struct {
	mu       sync.Mutex
	data     []byte
	ro       bool
	flushes  int
	discards [][2]int64
	failRead bool
}

func (d *memDisk) ReadAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failRead {
		return 0, errors.New("injected read failure")
	}
	if off < 0 || off+int64(len(p)) > int64(len(d.data)) {
		return 0, errors.New("out of range")
	}
	return copy(p, d.data[off:]), nil
}

func (d *memDisk) WriteAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off < 0 || off+int64(len(p)) > int64(len(d.data)) {
		return 0, errors.New("out of range")
	}
	return copy(d.data[off:], p), nil
}

func (d *memDisk) Size() int64    { return int64(len(d.data)) }
func (d *memDisk) ReadOnly() bool { return d.ro }
func (d *memDisk) Close() error   { return nil }
func (d *memDisk) Flush() error {
	d.mu.Lock()
	d.flushes++
	d.mu.Unlock()
	return nil
}
func (d *memDisk) Discard(off, n int64) error {
	d.mu.Lock()
	d.discards = append(d.discards, [2]int64{off, n})
	d.mu.Unlock()
	return nil
}
func (d *memDisk) WriteZeroes(off, n int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := off; i < off+n; i++ {
		d.data[i] = 0
	}
	return nil
}

// fakeIntr records interrupts.
type fakeIntr struct {
	queue      chan int
	needsReset chan struct{}
}

func newIntr() *fakeIntr {
	return &fakeIntr{queue: make(chan int, 1024), needsReset: make(chan struct{}, 16)}
}
func (f *fakeIntr) Queue(q int)    { f.queue <- q }
func (f *fakeIntr) ConfigChanged() {}
func (f *fakeIntr) NeedsReset()    { f.needsReset <- struct{}{} }

type rig struct {
	t    *testing.T
	disk *memDisk
	dev  *Device
	drv  *virtqtest.Driver
	kick chan struct{}
	intr *fakeIntr
}

func newRig(t *testing.T, d *memDisk, opts Options) *rig {
	t.Helper()
	mem, err := guestmem.New(guestmem.Region{GPA: 0, Data: make([]byte, 4<<20)})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := New(d, opts)
	if err != nil {
		t.Fatal(err)
	}
	drv := virtqtest.New(mem, 0, 256, 1<<20, 3<<20)
	q, err := virtq.New(mem, drv.Config(), virtq.FeatureIndirectDesc|virtq.FeatureEventIdx)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, disk: d, dev: dev, drv: drv, kick: make(chan struct{}, 1), intr: newIntr()}
	if err := dev.Activate(virtio.Activation{Mem: mem, Queues: []*virtio.Queue{{Queue: q, Kick: r.kick}}, Interrupt: r.intr}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dev.Reset)
	return r
}

func hdr(typ uint32, sector uint64) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint32(b, typ)
	binary.LittleEndian.PutUint64(b[8:], sector)
	return b
}

// submit adds bufs, kicks and waits for their completion.
func (r *rig) submit(bufs []virtqtest.Buf) (head uint16, used virtqtest.Used) {
	r.t.Helper()
	head = r.drv.Add(bufs)
	r.kick <- struct{}{}
	return head, r.wait(head)
}

func (r *rig) wait(head uint16) virtqtest.Used {
	r.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case <-r.intr.queue:
			for _, u := range r.drv.PollUsed() {
				if u.ID == uint32(head) {
					return u
				}
				r.t.Fatalf("unexpected completion %+v", u)
			}
		case <-deadline:
			r.t.Fatal("no completion")
		}
	}
}

// status returns the status byte of the last buffer of head.
func (r *rig) status(head uint16, bufs []virtqtest.Buf) byte {
	addrs := r.drv.AddrOf[head]
	last := len(bufs) - 1
	return r.drv.Read(addrs[last]+uint64(bufs[last].Len)-1, 1)[0]
}

func TestReadWriteFlush(t *testing.T) {
	d := &memDisk{data: make([]byte, 1<<20)}
	r := newRig(t, d, Options{Serial: "SERIAL123"})
	payload := bytes.Repeat([]byte("0123456789abcdef"), 64) // 1024 bytes
	w := []virtqtest.Buf{{Data: hdr(TypeOut, 3)}, {Data: payload[:512]}, {Data: payload[512:]}, {Write: true, Len: 1}}
	head, u := r.submit(w)
	if s := r.status(head, w); s != StatusOK || u.Len != 1 {
		t.Fatalf("write: status %d len %d", s, u.Len)
	}
	if !bytes.Equal(d.data[3*512:5*512], payload) {
		t.Fatal("disk does not hold the written data")
	}
	rd := []virtqtest.Buf{{Data: hdr(TypeIn, 3)}, {Write: true, Len: 1024}, {Write: true, Len: 1}}
	head, u = r.submit(rd)
	if s := r.status(head, rd); s != StatusOK || u.Len != 1025 {
		t.Fatalf("read: status %d len %d", s, u.Len)
	}
	if got := r.drv.Read(r.drv.AddrOf[head][1], 1024); !bytes.Equal(got, payload) {
		t.Fatal("read data differs")
	}
	fl := []virtqtest.Buf{{Data: hdr(TypeFlush, 0)}, {Write: true, Len: 1}}
	head, _ = r.submit(fl)
	if s := r.status(head, fl); s != StatusOK || d.flushes != 1 {
		t.Fatalf("flush: status %d flushes %d", s, d.flushes)
	}
	id := []virtqtest.Buf{{Data: hdr(TypeGetID, 0)}, {Write: true, Len: IDLen}, {Write: true, Len: 1}}
	head, u = r.submit(id)
	if got := r.drv.Read(r.drv.AddrOf[head][1], IDLen); string(got) != "SERIAL123\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" || u.Len != IDLen+1 {
		t.Fatalf("get-id %q len %d", got, u.Len)
	}
}

func TestErrors(t *testing.T) {
	d := &memDisk{data: make([]byte, 64*512)}
	r := newRig(t, d, Options{})
	cases := []struct {
		name string
		bufs []virtqtest.Buf
		want byte
	}{
		{"read past end", []virtqtest.Buf{{Data: hdr(TypeIn, 63)}, {Write: true, Len: 1024}, {Write: true, Len: 1}}, StatusIOErr},
		{"read sector overflow", []virtqtest.Buf{{Data: hdr(TypeIn, ^uint64(0))}, {Write: true, Len: 512}, {Write: true, Len: 1}}, StatusIOErr},
		{"write past end", []virtqtest.Buf{{Data: hdr(TypeOut, 64)}, {Data: make([]byte, 512)}, {Write: true, Len: 1}}, StatusIOErr},
		{"unaligned length", []virtqtest.Buf{{Data: hdr(TypeIn, 0)}, {Write: true, Len: 100}, {Write: true, Len: 1}}, StatusIOErr},
		{"short header", []virtqtest.Buf{{Data: []byte{0, 0, 0}}, {Write: true, Len: 1}}, StatusIOErr},
		{"unknown type", []virtqtest.Buf{{Data: hdr(99, 0)}, {Write: true, Len: 1}}, StatusUnsupp},
		{"discard with unmap", []virtqtest.Buf{{Data: hdr(TypeDiscard, 0)}, {Data: seg(0, 8, 1)}, {Write: true, Len: 1}}, StatusUnsupp},
		{"discard two segments", []virtqtest.Buf{{Data: hdr(TypeDiscard, 0)}, {Data: append(seg(0, 8, 0), seg(8, 8, 0)...)}, {Write: true, Len: 1}}, StatusUnsupp},
		{"discard past end", []virtqtest.Buf{{Data: hdr(TypeDiscard, 0)}, {Data: seg(60, 8, 0)}, {Write: true, Len: 1}}, StatusIOErr},
		{"write zeroes bad flags", []virtqtest.Buf{{Data: hdr(TypeWriteZeroes, 0)}, {Data: seg(0, 8, 2)}, {Write: true, Len: 1}}, StatusUnsupp},
	}
	for _, c := range cases {
		head, _ := r.submit(c.bufs)
		if s := r.status(head, c.bufs); s != c.want {
			t.Errorf("%s: status %d, want %d", c.name, s, c.want)
		}
	}
	d.failRead = true
	bufs := []virtqtest.Buf{{Data: hdr(TypeIn, 0)}, {Write: true, Len: 512}, {Write: true, Len: 1}}
	head, _ := r.submit(bufs)
	if s := r.status(head, bufs); s != StatusIOErr {
		t.Errorf("backend failure: status %d", s)
	}
}

func seg(sector uint64, n, flags uint32) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint64(b, sector)
	binary.LittleEndian.PutUint32(b[8:], n)
	binary.LittleEndian.PutUint32(b[12:], flags)
	return b
}

func TestDiscardWriteZeroes(t *testing.T) {
	d := &memDisk{data: bytes.Repeat([]byte{0xAA}, 64*512)}
	r := newRig(t, d, Options{})
	bufs := []virtqtest.Buf{{Data: hdr(TypeWriteZeroes, 0)}, {Data: seg(2, 3, 1)}, {Write: true, Len: 1}}
	head, _ := r.submit(bufs)
	if s := r.status(head, bufs); s != StatusOK {
		t.Fatalf("write zeroes status %d", s)
	}
	if d.data[2*512-1] != 0xAA || d.data[2*512] != 0 || d.data[5*512-1] != 0 || d.data[5*512] != 0xAA {
		t.Fatal("write zeroes hit the wrong range")
	}
	bufs = []virtqtest.Buf{{Data: hdr(TypeDiscard, 0)}, {Data: seg(10, 4, 0)}, {Write: true, Len: 1}}
	head, _ = r.submit(bufs)
	if s := r.status(head, bufs); s != StatusOK || len(d.discards) != 1 || d.discards[0] != [2]int64{5120, 2048} {
		t.Fatalf("discard status %d calls %v", s, d.discards)
	}
}

func TestReadOnly(t *testing.T) {
	d := &memDisk{data: make([]byte, 64*512), ro: true}
	r := newRig(t, d, Options{})
	if r.dev.Features()&FeatureRO == 0 {
		t.Fatal("VIRTIO_BLK_F_RO not offered")
	}
	for _, bufs := range [][]virtqtest.Buf{
		{{Data: hdr(TypeOut, 0)}, {Data: bytes.Repeat([]byte{1}, 512)}, {Write: true, Len: 1}},
		{{Data: hdr(TypeWriteZeroes, 0)}, {Data: seg(0, 1, 0)}, {Write: true, Len: 1}},
		{{Data: hdr(TypeDiscard, 0)}, {Data: seg(0, 1, 0)}, {Write: true, Len: 1}},
	} {
		head, _ := r.submit(bufs)
		if s := r.status(head, bufs); s != StatusIOErr {
			t.Errorf("type %d on read-only disk: status %d", binary.LittleEndian.Uint32(bufs[0].Data), s)
		}
	}
	if d.data[0] != 0 || len(d.discards) != 0 {
		t.Fatal("read-only disk modified")
	}
}

func TestConfig(t *testing.T) {
	d := &memDisk{data: make([]byte, 1<<20+100)}
	dev, err := New(d, Options{NumQueues: 4, QueueSize: 128})
	if err != nil {
		t.Fatal(err)
	}
	rd := func(off uint64, n int) uint64 {
		b := make([]byte, 8)
		dev.ReadConfig(off, b[:n])
		return binary.LittleEndian.Uint64(b)
	}
	if c := rd(cfgCapacity, 8); c != 2048 {
		t.Errorf("capacity %d", c)
	}
	if s := rd(cfgSegMax, 4); s != 126 {
		t.Errorf("seg_max %d", s)
	}
	if n := rd(cfgNumQueues, 2); n != 4 || dev.Features()&FeatureMQ == 0 || len(dev.QueueMaxSizes()) != 4 {
		t.Errorf("num_queues %d features %#x", n, dev.Features())
	}
	if v := rd(cfgMaxDiscardSeg, 4); v != 1 {
		t.Errorf("max_discard_seg %d", v)
	}
	if v := rd(cfgSize, 4); v != 0 {
		t.Errorf("beyond config reads %#x", v)
	}
	if _, err := New(d, Options{QueueSize: 100}); err == nil {
		t.Error("queue size 100 accepted")
	}
}

func TestConcurrentRequests(t *testing.T) {
	d := &memDisk{data: make([]byte, 1<<20)}
	r := newRig(t, d, Options{Workers: 8})
	heads := map[uint16]int{}
	for i := 0; i < 64; i++ {
		data := bytes.Repeat([]byte{byte(i)}, 512)
		h := r.drv.Add([]virtqtest.Buf{{Data: hdr(TypeOut, uint64(i))}, {Data: data}, {Write: true, Len: 1}})
		heads[h] = i
	}
	r.kick <- struct{}{}
	done := 0
	deadline := time.After(10 * time.Second)
	for done < 64 {
		select {
		case <-r.intr.queue:
			for _, u := range r.drv.PollUsed() {
				if _, ok := heads[uint16(u.ID)]; !ok {
					t.Fatalf("bad completion %+v", u)
				}
				delete(heads, uint16(u.ID))
				done++
			}
		case <-deadline:
			t.Fatalf("only %d of 64 completed", done)
		}
	}
	for i := 0; i < 64; i++ {
		if d.data[i*512] != byte(i) || d.data[i*512+511] != byte(i) {
			t.Fatalf("sector %d wrong", i)
		}
	}
}

func TestGarbageDescriptors(t *testing.T) {
	d := &memDisk{data: make([]byte, 64*512)}
	r := newRig(t, d, Options{})
	// A chain pointing outside guest RAM is returned with nothing written.
	r.drv.WriteDesc(r.drv.Desc, 200, 1<<40, 16, virtqtest.FlagNext, 201)
	r.drv.WriteDesc(r.drv.Desc, 201, 0, 1, virtqtest.FlagWrite, 0)
	r.drv.Publish(200)
	r.kick <- struct{}{}
	if u := r.wait(200); u.Len != 0 {
		t.Fatalf("bad chain completed with len %d", u.Len)
	}
	// A corrupt avail index breaks the queue: NEEDS_RESET.
	r.drv.SetAvailIdx(5000)
	r.kick <- struct{}{}
	select {
	case <-r.intr.needsReset:
	case <-time.After(10 * time.Second):
		t.Fatal("no NEEDS_RESET for a corrupt ring")
	}
}
