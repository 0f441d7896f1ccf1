package console

import (
	"bytes"
	"encoding/binary"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/govmm/govmm/machine/guestmem"
	"github.com/govmm/govmm/virtio"
	"github.com/govmm/govmm/virtio/virtq"
	"github.com/govmm/govmm/virtio/virtq/virtqtest"
)

type intr struct{ c chan int }

func (i intr) Queue(q int)    { i.c <- q }
func (i intr) ConfigChanged() {}
func (i intr) NeedsReset()    { panic("unexpected NEEDS_RESET") }

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type rig struct {
	t     *testing.T
	drv   []*virtqtest.Driver
	kicks []chan struct{}
	irq   intr
}

func (r *rig) kick(q int) {
	select {
	case r.kicks[q] <- struct{}{}:
	default:
	}
}

// waitUsed waits until queue q has a completion and returns it.
func (r *rig) waitUsed(q int) virtqtest.Used {
	r.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if u := r.drv[q].PollUsed(); len(u) > 0 {
			if len(u) > 1 {
				r.t.Fatalf("queue %d: %d completions at once", q, len(u))
			}
			return u[0]
		}
		select {
		case <-r.irq.c:
		case <-deadline:
			r.t.Fatalf("queue %d: no completion", q)
		}
	}
}

func ctrl(id uint32, ev, val uint16) []byte {
	return ctrlMsg(id, ev, val, nil)
}

func TestMultiport(t *testing.T) {
	inR, inW := io.Pipe()
	defer inW.Close()
	out := &syncBuf{}
	dev, err := New(Options{MaxPorts: 2, Ports: []Port{{Console: true, In: inR, Out: out}, {ID: 1, Name: "org.test.0"}}})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(dev.QueueMaxSizes()); n != 6 {
		t.Fatalf("%d queues", n)
	}
	cfg := make([]byte, 4)
	dev.ReadConfig(4, cfg)
	if binary.LittleEndian.Uint32(cfg) != 2 {
		t.Fatalf("max_nr_ports %x", cfg)
	}
	mem, _ := guestmem.New(guestmem.Region{GPA: 0, Data: make([]byte, 8<<20)})
	r := &rig{t: t, irq: intr{make(chan int, 256)}}
	var qs []*virtio.Queue
	for i := 0; i < 6; i++ {
		d := virtqtest.New(mem, uint64(i)*0x10000, 16, 1<<20+uint64(i)*0x10000, 0x10000)
		q, err := virtq.New(mem, d.Config(), virtq.FeatureEventIdx)
		if err != nil {
			t.Fatal(err)
		}
		k := make(chan struct{}, 1)
		r.drv, r.kicks = append(r.drv, d), append(r.kicks, k)
		qs = append(qs, &virtio.Queue{Queue: q, Index: i, Kick: k})
	}
	if err := dev.Activate(virtio.Activation{Mem: mem, Features: FeatureMultiport, Queues: qs, Interrupt: r.irq}); err != nil {
		t.Fatal(err)
	}
	defer dev.Reset()

	readCtrl := func() (uint32, uint16, uint16, []byte) {
		t.Helper()
		h := r.drv[2].Add([]virtqtest.Buf{{Write: true, Len: 64}})
		r.kick(2)
		u := r.waitUsed(2)
		if u.ID != uint32(h) || u.Len < ctrlLen {
			t.Fatalf("control rx used %+v", u)
		}
		b := r.drv[2].Read(r.drv[2].AddrOf[h][0], uint64(u.Len))
		return binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint16(b[4:]), binary.LittleEndian.Uint16(b[6:]), b[ctrlLen:]
	}
	sendCtrl := func(m []byte) {
		t.Helper()
		r.drv[3].Add([]virtqtest.Buf{{Data: m}})
		r.kick(3)
		r.waitUsed(3)
	}

	sendCtrl(ctrl(0, EventDeviceReady, 1))
	for want := uint32(0); want < 2; want++ {
		if id, ev, _, _ := readCtrl(); id != want || ev != EventDeviceAdd {
			t.Fatalf("got id %d event %d, want DEVICE_ADD %d", id, ev, want)
		}
	}
	sendCtrl(ctrl(0, EventPortReady, 1))
	if id, ev, v, _ := readCtrl(); id != 0 || ev != EventConsolePort || v != 1 {
		t.Fatalf("got %d %d %d, want CONSOLE_PORT", id, ev, v)
	}
	if id, ev, v, _ := readCtrl(); id != 0 || ev != EventPortOpen || v != 1 {
		t.Fatalf("got %d %d %d, want PORT_OPEN", id, ev, v)
	}
	sendCtrl(ctrl(1, EventPortReady, 1))
	if id, ev, _, name := readCtrl(); id != 1 || ev != EventPortName || string(name) != "org.test.0" {
		t.Fatalf("got %d %d %q, want PORT_NAME", id, ev, name)
	}
	if _, ev, _, _ := readCtrl(); ev != EventPortOpen {
		t.Fatalf("event %d, want PORT_OPEN", ev)
	}
	sendCtrl(ctrl(0, EventPortOpen, 1))
	if !dev.GuestOpen(0) || dev.GuestOpen(1) {
		t.Fatal("guest open state wrong")
	}
	// Garbage control messages are ignored.
	sendCtrl(ctrl(99, EventPortReady, 1))
	sendCtrl([]byte{1, 2})

	// Guest -> host on port 0's transmit queue (1).
	r.drv[1].Add([]virtqtest.Buf{{Data: []byte("hello ")}, {Data: []byte("host")}})
	r.kick(1)
	r.waitUsed(1)
	if got := out.String(); got != "hello host" {
		t.Fatalf("host got %q", got)
	}
	// Host -> guest on port 0's receive queue (0).
	h := r.drv[0].Add([]virtqtest.Buf{{Write: true, Len: 32}})
	r.kick(0)
	go inW.Write([]byte("hi guest"))
	u := r.waitUsed(0)
	if u.ID != uint32(h) || string(r.drv[0].Read(r.drv[0].AddrOf[h][0], uint64(u.Len))) != "hi guest" {
		t.Fatalf("guest got %+v", u)
	}
}

func TestSinglePort(t *testing.T) {
	out := &syncBuf{}
	dev, _ := New(Options{Ports: []Port{{Console: true, Out: out}}})
	mem, _ := guestmem.New(guestmem.Region{GPA: 0, Data: make([]byte, 4<<20)})
	r := &rig{t: t, irq: intr{make(chan int, 256)}}
	qs := make([]*virtio.Queue, len(dev.QueueMaxSizes()))
	for i := 0; i < 2; i++ {
		d := virtqtest.New(mem, uint64(i)*0x10000, 16, 1<<20+uint64(i)*0x10000, 0x10000)
		q, _ := virtq.New(mem, d.Config(), 0)
		k := make(chan struct{}, 1)
		r.drv, r.kicks = append(r.drv, d), append(r.kicks, k)
		qs[i] = &virtio.Queue{Queue: q, Index: i, Kick: k}
	}
	if err := dev.Activate(virtio.Activation{Mem: mem, Queues: qs, Interrupt: r.irq}); err != nil {
		t.Fatal(err)
	}
	r.drv[1].Add([]virtqtest.Buf{{Data: []byte("x")}})
	r.kick(1)
	r.waitUsed(1)
	dev.Reset()
	if out.String() != "x" {
		t.Fatalf("got %q", out.String())
	}
	if _, err := New(Options{MaxPorts: 2, Ports: make([]Port, 2)}); err == nil {
		t.Fatal("duplicate port accepted")
	}
	if _, err := New(Options{MaxPorts: 2, Ports: []Port{{ID: 2}}}); err == nil {
		t.Fatal("port beyond max_ports accepted")
	}
}
