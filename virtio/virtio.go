// Package virtio defines what a virtio device model implements, apart from
// the transport that lets the guest find and notify it (virtio spec 4; the
// same split as crosvm's VirtioDevice). Transports (virtio/pci) drive a
// Device through feature negotiation, queue setup, activation and reset;
// device packages (virtio/blk, virtio/rng, virtio/console) serve requests.
package virtio

import (
	"github.com/govmm/govmm/machine/guestmem"
	"github.com/govmm/govmm/virtio/virtq"
)

// Device type IDs (virtio spec 5).
const (
	TypeNet     = 1
	TypeBlock   = 2
	TypeConsole = 3
	TypeRNG     = 4
)

// Feature bits every transport understands (virtio spec 6).
const (
	FeatureIndirectDesc = virtq.FeatureIndirectDesc
	FeatureEventIdx     = virtq.FeatureEventIdx
	FeatureVersion1     = uint64(1) << 32
)

// Device status bits (virtio spec 2.1).
const (
	StatusAcknowledge = 1
	StatusDriver      = 2
	StatusDriverOK    = 4
	StatusFeaturesOK  = 8
	StatusNeedsReset  = 64
	StatusFailed      = 128
)

// Device is a virtio device model. The transport calls ReadConfig and
// WriteConfig from vCPU goroutines; Activate and Reset are never concurrent
// with each other.
type Device interface {
	// Type is the virtio device ID.
	Type() uint16
	// Features is the device-specific feature bits the device offers. The
	// transport adds VERSION_1, INDIRECT_DESC and EVENT_IDX itself.
	Features() uint64
	// QueueMaxSizes has one entry per virtqueue: its maximum size.
	QueueMaxSizes() []uint16
	// ReadConfig and WriteConfig access the device-specific configuration
	// space. Out-of-range bytes read as zero and writes are ignored.
	ReadConfig(off uint64, data []byte)
	WriteConfig(off uint64, data []byte)
	// Activate starts the device after the driver set DRIVER_OK. From now
	// on the device serves its queues on its own goroutines.
	Activate(a Activation) error
	// Reset stops the device: when it returns, no goroutine of the device
	// touches guest memory or raises interrupts, and the device is ready
	// for another Activate.
	Reset()
}

// Activation is everything a device needs to run.
type Activation struct {
	Mem *guestmem.Memory
	// Features is what the driver accepted.
	Features uint64
	// Queues has one entry per queue of QueueMaxSizes; nil where the
	// driver did not enable that queue.
	Queues []*Queue
	// Interrupt raises interrupts towards the driver.
	Interrupt Interrupt
}

// Queue is one enabled virtqueue and its doorbell. Kick receives a value
// (non-blocking, coalesced) whenever the driver notifies the queue; the
// device's goroutine then pops until the ring is empty.
type Queue struct {
	*virtq.Queue
	Index int
	Kick  <-chan struct{}
}

// Interrupt is how a device signals the driver; safe for concurrent use.
type Interrupt interface {
	// Queue sends a used-buffer notification for queue q. Call it when
	// virtq.Queue.NeedInterrupt says so.
	Queue(q int)
	// ConfigChanged bumps the config generation and sends a configuration
	// change notification.
	ConfigChanged()
	// NeedsReset sets DEVICE_NEEDS_RESET (the device hit an error it
	// cannot recover from, such as a corrupt ring) and notifies the driver.
	NeedsReset()
}
