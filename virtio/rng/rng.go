// Package rng is the virtio entropy device (virtio spec 5.4): every
// writable buffer the driver offers is filled from an io.Reader.
package rng

import (
	"errors"
	"io"
	"os"
	"sync"

	"github.com/govmm/govmm/virtio"
	"github.com/govmm/govmm/virtio/virtq"
)

// QueueSize is the request queue's maximum size.
const QueueSize = 256

// maxPerRequest bounds how much entropy one request takes, so a guest
// offering huge buffers cannot make the device read without end.
const maxPerRequest = 64 << 10

// Device is a virtio-rng device.
type Device struct {
	src  io.Reader
	stop chan struct{}
	wg   sync.WaitGroup
}

// New returns a device reading entropy from src (nil: /dev/urandom, opened
// when first needed).
func New(src io.Reader) *Device { return &Device{src: src} }

// Type implements virtio.Device.
func (d *Device) Type() uint16 { return virtio.TypeRNG }

// Features implements virtio.Device: there are none.
func (d *Device) Features() uint64 { return 0 }

// QueueMaxSizes implements virtio.Device.
func (d *Device) QueueMaxSizes() []uint16 { return []uint16{QueueSize} }

// ReadConfig implements virtio.Device: there is no configuration.
func (d *Device) ReadConfig(off uint64, data []byte) {
	for i := range data {
		data[i] = 0
	}
}

// WriteConfig implements virtio.Device.
func (d *Device) WriteConfig(off uint64, data []byte) {}

// Activate implements virtio.Device.
func (d *Device) Activate(a virtio.Activation) error {
	if d.src == nil {
		f, err := os.Open("/dev/urandom")
		if err != nil {
			return err
		}
		d.src = f
	}
	if len(a.Queues) != 1 || a.Queues[0] == nil {
		return nil
	}
	d.stop = make(chan struct{})
	d.wg.Add(1)
	go d.serve(a.Queues[0], a.Interrupt)
	return nil
}

// Reset implements virtio.Device.
func (d *Device) Reset() {
	if d.stop != nil {
		close(d.stop)
		d.wg.Wait()
		d.stop = nil
	}
}

func (d *Device) serve(q *virtio.Queue, intr virtio.Interrupt) {
	defer d.wg.Done()
	for {
		select {
		case <-d.stop:
			return
		case <-q.Kick:
		}
		for {
			c, err := q.Pop()
			var ce *virtq.ChainError
			head, n := uint16(0), uint32(0)
			switch {
			case errors.As(err, &ce):
				head = ce.Head
			case err != nil:
				intr.NeedsReset()
				<-d.stop
				return
			case c == nil:
			default:
				head, n = c.Head, d.fill(c)
			}
			if err == nil && c == nil {
				break
			}
			if q.Push(head, n) != nil {
				intr.NeedsReset()
				<-d.stop
				return
			}
			if q.NeedInterrupt() {
				intr.Queue(q.Index)
			}
		}
	}
}

func (d *Device) fill(c *virtq.Chain) uint32 {
	var n uint32
	for _, b := range virtq.Sub(c.Writable, 0, maxPerRequest) {
		k, _ := io.ReadFull(d.src, b)
		n += uint32(k)
		if k < len(b) {
			break
		}
	}
	return n
}
