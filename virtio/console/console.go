// Package console is the virtio console device (virtio spec 5.3) as QEMU's
// virtio-serial-pci: with VIRTIO_CONSOLE_F_MULTIPORT, a control queue pair
// announces ports (DEVICE_ADD, CONSOLE_PORT, PORT_NAME, PORT_OPEN) and each
// port has its own receive/transmit queues. Ports are backed by an
// io.Reader (host to guest) and an io.Writer (guest to host); a
// virtconsole is a port flagged Console, normally port 0.
package console

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/govmm/govmm/virtio"
	"github.com/govmm/govmm/virtio/virtq"
)

// Feature bits.
const (
	FeatureSize      = uint64(1) << 0
	FeatureMultiport = uint64(1) << 1
)

// Control message events (struct virtio_console_control).
const (
	EventDeviceReady  = 0
	EventDeviceAdd    = 1
	EventDeviceRemove = 2
	EventPortReady    = 3
	EventConsolePort  = 4
	EventResize       = 5
	EventPortOpen     = 6
	EventPortName     = 7
)

// QueueSize is each queue's maximum size.
const QueueSize = 128

// DefaultMaxPorts is QEMU's max_ports default for virtio-serial.
const DefaultMaxPorts = 31

const ctrlLen = 8

// Port is one serial port.
type Port struct {
	ID      int       // port number (QEMU's nr): 0 is the virtconsole's by convention
	Name    string    // announced with PORT_NAME when set (virtserialport name=)
	Console bool      // a virtconsole (hvc) port
	In      io.Reader // host-to-guest data; nil for none
	Out     io.Writer // guest-to-host data; nil discards
}

// Options configure the device.
type Options struct {
	// MaxPorts is max_nr_ports; 0 means DefaultMaxPorts. Port IDs must be
	// distinct and below it.
	MaxPorts int
	Ports    []Port
}

// Device is a virtio-serial device.
type Device struct {
	maxPorts int
	ports    []*port // by ID; nil where no port exists
	config   [12]byte

	mu        sync.Mutex
	stop      chan struct{}
	wg        sync.WaitGroup
	multiport bool
	outbox    [][]byte // control messages waiting for a driver buffer
}

type port struct {
	Port
	id        int
	startRead sync.Once
	data      chan []byte // chunks read from In

	mu        sync.Mutex
	guestOpen bool
}

// New returns a virtio-serial device with the given ports.
func New(opts Options) (*Device, error) {
	max := opts.MaxPorts
	if max == 0 {
		max = DefaultMaxPorts
	}
	if max < 1 || max > 511 {
		return nil, fmt.Errorf("virtio-serial: max_ports %d out of range", max)
	}
	d := &Device{maxPorts: max, ports: make([]*port, max)}
	for _, p := range opts.Ports {
		if p.ID < 0 || p.ID >= max {
			return nil, fmt.Errorf("virtio-serial: port %d out of range 0..%d", p.ID, max-1)
		}
		if d.ports[p.ID] != nil {
			return nil, fmt.Errorf("virtio-serial: port %d used twice", p.ID)
		}
		d.ports[p.ID] = &port{Port: p, id: p.ID, data: make(chan []byte)}
	}
	binary.LittleEndian.PutUint32(d.config[4:], uint32(max))
	return d, nil
}

// GuestOpen reports whether the guest has port id open.
func (d *Device) GuestOpen(id int) bool {
	if id < 0 || id >= len(d.ports) || d.ports[id] == nil {
		return false
	}
	p := d.ports[id]
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.guestOpen
}

// Type implements virtio.Device.
func (d *Device) Type() uint16 { return virtio.TypeConsole }

// Features implements virtio.Device.
func (d *Device) Features() uint64 { return FeatureMultiport }

// QueueMaxSizes implements virtio.Device: rx/tx for port 0, the control
// pair, then rx/tx for ports 1..max-1.
func (d *Device) QueueMaxSizes() []uint16 {
	s := make([]uint16, 2*(d.maxPorts+1))
	for i := range s {
		s[i] = QueueSize
	}
	return s
}

// ReadConfig implements virtio.Device (cols, rows, max_nr_ports, emerg_wr).
func (d *Device) ReadConfig(off uint64, data []byte) {
	for i := range data {
		data[i] = 0
	}
	if off < uint64(len(d.config)) {
		copy(data, d.config[off:])
	}
}

// WriteConfig implements virtio.Device; emergency writes are not offered.
func (d *Device) WriteConfig(off uint64, data []byte) {}

func rxQueue(id int) int {
	if id == 0 {
		return 0
	}
	return 2 * (id + 1)
}

// Activate implements virtio.Device.
func (d *Device) Activate(a virtio.Activation) error {
	if len(a.Queues) != 2*(d.maxPorts+1) {
		return fmt.Errorf("virtio-serial: %d queues, want %d", len(a.Queues), 2*(d.maxPorts+1))
	}
	d.mu.Lock()
	d.stop = make(chan struct{})
	d.multiport = a.Features&FeatureMultiport != 0
	d.outbox = nil
	d.mu.Unlock()
	for i, p := range d.ports {
		// Without MULTIPORT only port 0 exists.
		if p == nil || (!d.multiport && i > 0) {
			continue
		}
		p.mu.Lock()
		p.guestOpen = false
		p.mu.Unlock()
		rx, tx := a.Queues[rxQueue(p.id)], a.Queues[rxQueue(p.id)+1]
		if p.In != nil && rx != nil {
			p.startRead.Do(func() { go p.readLoop() })
			d.wg.Add(1)
			go d.receive(p, rx, a.Interrupt)
		}
		if tx != nil {
			d.wg.Add(1)
			go d.transmit(p, tx, a.Interrupt)
		}
	}
	if d.multiport && a.Queues[2] != nil && a.Queues[3] != nil {
		d.wg.Add(1)
		go d.control(a.Queues[2], a.Queues[3], a.Interrupt)
	}
	return nil
}

// Reset implements virtio.Device. Host-side readers blocked in In.Read
// stay blocked (an io.Reader cannot be interrupted); what they read next is
// delivered after the next activation.
func (d *Device) Reset() {
	d.mu.Lock()
	stop := d.stop
	d.stop = nil
	d.mu.Unlock()
	if stop != nil {
		close(stop)
		d.wg.Wait()
	}
}

func (p *port) readLoop() {
	for {
		buf := make([]byte, 4096)
		n, err := p.In.Read(buf)
		if n > 0 {
			p.data <- buf[:n]
		}
		if err != nil {
			return
		}
	}
}

// complete pushes a used buffer and interrupts if the driver wants it. It
// returns false when the queue is broken.
func complete(q *virtio.Queue, intr virtio.Interrupt, head uint16, n uint32) bool {
	if q.Push(head, n) != nil {
		intr.NeedsReset()
		return false
	}
	if q.NeedInterrupt() {
		intr.Queue(q.Index)
	}
	return true
}

// pop returns the next chain; a malformed one is completed empty and
// skipped. ok is false when the queue is broken.
func pop(q *virtio.Queue, intr virtio.Interrupt) (c *virtq.Chain, ok bool) {
	for {
		c, err := q.Pop()
		var ce *virtq.ChainError
		if errors.As(err, &ce) {
			if !complete(q, intr, ce.Head, 0) {
				return nil, false
			}
			continue
		}
		if err != nil {
			intr.NeedsReset()
			return nil, false
		}
		return c, true
	}
}

// receive moves host data into the port's receive queue.
func (d *Device) receive(p *port, q *virtio.Queue, intr virtio.Interrupt) {
	defer d.wg.Done()
	stop := d.stopChan()
	var pending []byte
	for {
		if len(pending) == 0 {
			select {
			case <-stop:
				return
			case pending = <-p.data:
			}
		}
		c, ok := pop(q, intr)
		if !ok {
			<-stop
			return
		}
		if c == nil {
			select {
			case <-stop:
				// Keep undelivered bytes for the next activation.
				go func(b []byte) { p.data <- b }(pending)
				return
			case <-q.Kick:
			}
			continue
		}
		n := c.CopyTo(pending, 0)
		pending = pending[n:]
		if !complete(q, intr, c.Head, uint32(n)) {
			<-stop
			return
		}
	}
}

// transmit writes what the guest sends on the port to Out.
func (d *Device) transmit(p *port, q *virtio.Queue, intr virtio.Interrupt) {
	defer d.wg.Done()
	stop := d.stopChan()
	for {
		select {
		case <-stop:
			return
		case <-q.Kick:
		}
		for {
			c, ok := pop(q, intr)
			if !ok {
				<-stop
				return
			}
			if c == nil {
				break
			}
			if p.Out != nil {
				for _, b := range c.Readable {
					// A failing backend loses the data, as
					// a disconnected chardev does.
					if _, err := p.Out.Write(b); err != nil {
						break
					}
				}
			}
			if !complete(q, intr, c.Head, 0) {
				<-stop
				return
			}
		}
	}
}

func (d *Device) stopChan() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stop
}

func ctrlMsg(id uint32, event, value uint16, extra []byte) []byte {
	b := make([]byte, ctrlLen, ctrlLen+len(extra))
	binary.LittleEndian.PutUint32(b[0:], id)
	binary.LittleEndian.PutUint16(b[4:], event)
	binary.LittleEndian.PutUint16(b[6:], value)
	return append(b, extra...)
}

func (d *Device) send(msg []byte) {
	d.mu.Lock()
	d.outbox = append(d.outbox, msg)
	d.mu.Unlock()
}

// control serves the control queues: messages from the driver on ctx, and
// the device's own messages out through crx as the driver gives buffers.
func (d *Device) control(crx, ctx *virtio.Queue, intr virtio.Interrupt) {
	defer d.wg.Done()
	stop := d.stopChan()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Kick:
		case <-crx.Kick:
		}
		for {
			c, ok := pop(ctx, intr)
			if !ok {
				<-stop
				return
			}
			if c == nil {
				break
			}
			var m [ctrlLen]byte
			if c.CopyFrom(m[:], 0) == ctrlLen { // copy before acting on it
				d.handleControl(binary.LittleEndian.Uint32(m[0:]), binary.LittleEndian.Uint16(m[4:]), binary.LittleEndian.Uint16(m[6:]))
			}
			if !complete(ctx, intr, c.Head, 0) {
				<-stop
				return
			}
		}
		if !d.flushOutbox(crx, intr) {
			<-stop
			return
		}
	}
}

func (d *Device) handleControl(id uint32, event, value uint16) {
	switch event {
	case EventDeviceReady:
		if value != 1 {
			return
		}
		for _, p := range d.ports {
			if p != nil {
				d.send(ctrlMsg(uint32(p.id), EventDeviceAdd, 0, nil))
			}
		}
	case EventPortReady:
		if int(id) >= len(d.ports) || d.ports[id] == nil || value != 1 {
			return
		}
		p := d.ports[id]
		if p.Console {
			d.send(ctrlMsg(id, EventConsolePort, 1, nil))
		}
		if p.Name != "" {
			d.send(ctrlMsg(id, EventPortName, 0, []byte(p.Name)))
		}
		// Our backends are always connected: the host side is open.
		d.send(ctrlMsg(id, EventPortOpen, 1, nil))
	case EventPortOpen:
		if int(id) >= len(d.ports) || d.ports[id] == nil {
			return
		}
		p := d.ports[id]
		p.mu.Lock()
		p.guestOpen = value == 1
		p.mu.Unlock()
	}
}

func (d *Device) flushOutbox(crx *virtio.Queue, intr virtio.Interrupt) bool {
	for {
		d.mu.Lock()
		if len(d.outbox) == 0 {
			d.mu.Unlock()
			return true
		}
		msg := d.outbox[0]
		d.mu.Unlock()
		c, ok := pop(crx, intr)
		if !ok {
			return false
		}
		if c == nil {
			return true // wait for the driver to add buffers
		}
		n := c.CopyTo(msg, 0)
		d.mu.Lock()
		d.outbox = d.outbox[1:]
		d.mu.Unlock()
		if !complete(crx, intr, c.Head, uint32(n)) {
			return false
		}
	}
}
