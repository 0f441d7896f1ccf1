package rng

import (
	"bytes"
	"testing"
	"time"

	"github.com/govmm/govmm/machine/guestmem"
	"github.com/govmm/govmm/virtio"
	"github.com/govmm/govmm/virtio/virtq"
	"github.com/govmm/govmm/virtio/virtq/virtqtest"
)

type intr chan int

func (i intr) Queue(q int)    { i <- q }
func (i intr) ConfigChanged() {}
func (i intr) NeedsReset()    {}

func TestFill(t *testing.T) {
	mem, _ := guestmem.New(guestmem.Region{GPA: 0, Data: make([]byte, 1<<20)})
	d := virtqtest.New(mem, 0, 16, 0x10000, 0x80000)
	q, err := virtq.New(mem, d.Config(), 0)
	if err != nil {
		t.Fatal(err)
	}
	// Only 100 bytes of entropy: a 64-byte request is filled, the next
	// one gets the remaining 36.
	dev := New(bytes.NewReader(bytes.Repeat([]byte{7}, 100)))
	kick := make(chan struct{}, 1)
	irq := make(intr, 16)
	if err := dev.Activate(virtio.Activation{Mem: mem, Queues: []*virtio.Queue{{Queue: q, Kick: kick}}, Interrupt: irq}); err != nil {
		t.Fatal(err)
	}
	defer dev.Reset()
	d.Add([]virtqtest.Buf{{Write: true, Len: 64}})
	h2 := d.Add([]virtqtest.Buf{{Write: true, Len: 64}})
	kick <- struct{}{}
	var used []virtqtest.Used
	for len(used) < 2 {
		select {
		case <-irq:
			used = append(used, d.PollUsed()...)
		case <-time.After(10 * time.Second):
			t.Fatal("timeout")
		}
	}
	if used[0].Len != 64 || used[1].Len != 36 || used[1].ID != uint32(h2) {
		t.Fatalf("used %+v", used)
	}
	if got := d.Read(d.AddrOf[h2][0], 36); !bytes.Equal(got, bytes.Repeat([]byte{7}, 36)) {
		t.Fatalf("entropy %x", got)
	}
}
