// Package virtq is the device side of the virtio 1.x split virtqueue: a
// descriptor table, an available ring written by the driver and a used ring
// written by the device, all living in guest memory.
//
// Everything in guest memory is untrusted. Every address and length is
// checked through guestmem, every index is bounded by the queue size, and a
// malformed descriptor chain is an error for that one request; nothing here
// panics on guest input.
package virtq

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/govmm/govmm/machine/guestmem"
	"github.com/govmm/govmm/virtio/virtq/internal/atomicmem"
)

// Feature bits of the ring layer (virtio spec 6, "Reserved Feature Bits").
const (
	FeatureIndirectDesc = uint64(1) << 28 // VIRTIO_F_INDIRECT_DESC
	FeatureEventIdx     = uint64(1) << 29 // VIRTIO_F_EVENT_IDX
)

// MaxSize is the largest split-queue size the spec allows.
const MaxSize = 32768

// Descriptor flags.
const (
	descFNext     = 1
	descFWrite    = 2
	descFIndirect = 4
)

// Ring flags.
const (
	availFNoInterrupt = 1 // VIRTQ_AVAIL_F_NO_INTERRUPT
	usedFNoNotify     = 1 // VIRTQ_USED_F_NO_NOTIFY
)

const descSize = 16

// ErrBroken is returned (wrapped) when the rings themselves are corrupt (an
// available index that ran more than a queue size ahead, a head index out of
// range, ring memory outside guest RAM). The queue cannot be used any more;
// the device should set DEVICE_NEEDS_RESET.
var ErrBroken = errors.New("virtqueue broken")

// ChainError is a malformed descriptor chain. The head was consumed from the
// available ring, so the device must still return it with Push (with
// written 0, or after writing an error status where the device can).
type ChainError struct {
	Head uint16
	Err  error
}

func (e *ChainError) Error() string { return fmt.Sprintf("descriptor chain %d: %v", e.Head, e.Err) }
func (e *ChainError) Unwrap() error { return e.Err }

// Config is where the driver placed the queue and how big it is.
type Config struct {
	Size       uint16 // power of two, 1..MaxSize
	DescAddr   uint64 // descriptor table, 16-byte aligned
	DriverAddr uint64 // available ring, 2-byte aligned
	DeviceAddr uint64 // used ring, 4-byte aligned
}

// Queue is one split virtqueue. Its methods are safe for concurrent use, so
// one goroutine may Pop while request workers Push.
type Queue struct {
	mu       sync.Mutex
	mem      *guestmem.Memory
	cfg      Config
	indirect bool
	eventIdx bool

	lastAvail     uint16 // next available-ring slot to consume
	usedIdx       uint16 // next used-ring slot to fill
	signalledUsed uint16 // usedIdx when the driver was last interrupted
	broken        error

	fenceWord uint32
}

// New checks cfg against guest memory and returns a queue. features is the
// negotiated feature set (only the ring bits matter here).
func New(mem *guestmem.Memory, cfg Config, features uint64) (*Queue, error) {
	n := uint64(cfg.Size)
	if n == 0 || n > MaxSize || n&(n-1) != 0 {
		return nil, fmt.Errorf("virtq: queue size %d is not a power of two in 1..%d", n, MaxSize)
	}
	if cfg.DescAddr%16 != 0 || cfg.DriverAddr%2 != 0 || cfg.DeviceAddr%4 != 0 {
		return nil, fmt.Errorf("virtq: misaligned rings desc=%#x driver=%#x device=%#x", cfg.DescAddr, cfg.DriverAddr, cfg.DeviceAddr)
	}
	// Each area must lie in RAM, including the event-index words, which
	// exist in memory whether or not the feature is negotiated.
	areas := []struct {
		name string
		gpa  uint64
		size uint64
	}{
		{"descriptor table", cfg.DescAddr, descSize * n},
		{"available ring", cfg.DriverAddr, 6 + 2*n},
		{"used ring", cfg.DeviceAddr, 6 + 8*n},
	}
	for _, a := range areas {
		if _, err := mem.Slice(a.gpa, a.size); err != nil {
			return nil, fmt.Errorf("virtq: %s: %w", a.name, err)
		}
	}
	q := &Queue{
		mem:      mem,
		cfg:      cfg,
		indirect: features&FeatureIndirectDesc != 0,
		eventIdx: features&FeatureEventIdx != 0,
	}
	// The used ring starts out empty as far as this device is concerned;
	// its index is whatever the driver initialised (normally 0).
	idx, err := atomicmem.Load16(mem, cfg.DeviceAddr+2)
	if err != nil {
		return nil, err
	}
	q.usedIdx = idx
	q.signalledUsed = idx
	// Whatever the driver made available before the device started is
	// still to be served: start consuming where the used ring stands.
	q.lastAvail = idx
	return q, nil
}

// Size returns the queue size.
func (q *Queue) Size() uint16 { return q.cfg.Size }

// fence is a full memory barrier between our accesses to guest memory and
// the driver's on other CPUs. sync/atomic read-modify-write operations are
// sequentially consistent (a LOCKed instruction on amd64), and the compiler
// does not move memory accesses across them.
func (q *Queue) fence() { atomic.AddUint32(&q.fenceWord, 1) }

func (q *Queue) fail(err error) error {
	q.broken = fmt.Errorf("%w: %v", ErrBroken, err)
	return q.broken
}

// Pop returns the next available descriptor chain, or (nil, nil) when the
// ring is empty. On an empty ring it re-enables driver notifications (the
// avail_event index, or clears VIRTQ_USED_F_NO_NOTIFY) and looks once more,
// so a device loop "Pop until nil, then wait for a kick" never misses one.
//
// A *ChainError means that request is malformed (the head must still be
// pushed back); an error wrapping ErrBroken means the queue is unusable.
func (q *Queue) Pop() (*Chain, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.broken != nil {
		return nil, q.broken
	}
	for attempt := 0; ; attempt++ {
		avail, err := atomicmem.Load16(q.mem, q.cfg.DriverAddr+2)
		if err != nil {
			return nil, q.fail(err)
		}
		pending := avail - q.lastAvail
		if pending > q.cfg.Size {
			return nil, q.fail(fmt.Errorf("available index %d is %d ahead of %d (size %d)", avail, pending, q.lastAvail, q.cfg.Size))
		}
		if pending > 0 {
			// Read the ring entry only after seeing the index.
			q.fence()
			if attempt == 0 && !q.eventIdx {
				// We are busy: ask the driver not to kick while we drain.
				q.setUsedFlags(usedFNoNotify)
			}
			return q.popLocked()
		}
		if attempt > 0 {
			return nil, nil
		}
		// Empty: re-arm notifications, then check again in case the
		// driver added a buffer before it could see the re-arm.
		if q.eventIdx {
			if err := atomicmem.Store16(q.mem, q.cfg.DeviceAddr+4+8*uint64(q.cfg.Size), q.lastAvail); err != nil {
				return nil, q.fail(err)
			}
		} else {
			q.setUsedFlags(0)
		}
		q.fence()
	}
}

func (q *Queue) setUsedFlags(v uint16) {
	// Errors cannot happen: New checked the used ring is in RAM.
	_ = atomicmem.Store16(q.mem, q.cfg.DeviceAddr, v)
}

func (q *Queue) popLocked() (*Chain, error) {
	slot := uint64(q.lastAvail % q.cfg.Size)
	head, err := q.mem.Uint16(q.cfg.DriverAddr + 4 + 2*slot)
	if err != nil {
		return nil, q.fail(err)
	}
	if head >= q.cfg.Size {
		return nil, q.fail(fmt.Errorf("head index %d out of range (size %d)", head, q.cfg.Size))
	}
	q.lastAvail++
	c, err := walkChain(q.mem, q.cfg.DescAddr, q.cfg.Size, head, q.indirect)
	if err != nil {
		return nil, &ChainError{Head: head, Err: err}
	}
	return c, nil
}

// Push returns a chain to the driver through the used ring; written is the
// number of bytes the device wrote into the chain's writable buffers.
func (q *Queue) Push(head uint16, written uint32) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.broken != nil {
		return q.broken
	}
	slot := uint64(q.usedIdx % q.cfg.Size)
	var elem [8]byte
	binary.LittleEndian.PutUint32(elem[0:], uint32(head))
	binary.LittleEndian.PutUint32(elem[4:], written)
	if err := q.mem.WriteAt(elem[:], q.cfg.DeviceAddr+4+8*slot); err != nil {
		return q.fail(err)
	}
	// The element must be visible before the index that publishes it.
	q.fence()
	q.usedIdx++
	if err := atomicmem.Store16(q.mem, q.cfg.DeviceAddr+2, q.usedIdx); err != nil {
		return q.fail(err)
	}
	return nil
}

// NeedInterrupt reports whether the driver wants a used-buffer notification
// for what was pushed since the last time it returned true: with
// VIRTIO_F_EVENT_IDX according to used_event, otherwise unless the driver set
// VIRTQ_AVAIL_F_NO_INTERRUPT.
func (q *Queue) NeedInterrupt() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.broken != nil {
		return false
	}
	// Our used-index store must be visible before we read the driver's
	// suppression state, or both sides can decide the other will act.
	q.fence()
	old, cur := q.signalledUsed, q.usedIdx
	if old == cur {
		return false
	}
	if q.eventIdx {
		ev, err := atomicmem.Load16(q.mem, q.cfg.DriverAddr+4+2*uint64(q.cfg.Size))
		if err != nil {
			return true
		}
		q.signalledUsed = cur
		return NeedEvent(ev, cur, old)
	}
	flags, err := atomicmem.Load16(q.mem, q.cfg.DriverAddr)
	if err != nil {
		return true
	}
	if flags&availFNoInterrupt != 0 {
		return false
	}
	q.signalledUsed = cur
	return true
}

// NeedEvent is vring_need_event: whether moving an index from old to new
// passed event (all arithmetic mod 2^16).
func NeedEvent(event, new, old uint16) bool {
	return new-event-1 < new-old
}

// Chain is one request: the guest buffers of a descriptor chain, readable
// (driver to device) first, then writable (device to driver). The slices
// alias guest memory, which the guest may change at any time: copy out what
// you validate before you act on it.
type Chain struct {
	Head     uint16
	Readable [][]byte
	Writable [][]byte
}

// ReadableLen is the total size of the readable buffers.
func (c *Chain) ReadableLen() uint64 { return totalLen(c.Readable) }

// WritableLen is the total size of the writable buffers.
func (c *Chain) WritableLen() uint64 { return totalLen(c.Writable) }

func totalLen(bufs [][]byte) uint64 {
	var n uint64
	for _, b := range bufs {
		n += uint64(len(b))
	}
	return n
}

// walkChain follows a chain from head, through at most one indirect table.
func walkChain(mem *guestmem.Memory, table uint64, size uint16, head uint16, indirectOK bool) (*Chain, error) {
	c := &Chain{Head: head}
	var total uint64
	idx := uint32(head)
	limit := uint32(size) // a chain longer than its table must loop
	count := uint32(0)
	inIndirect := false
	for {
		if count >= limit {
			return nil, errors.New("chain longer than its descriptor table (loop?)")
		}
		count++
		var d [descSize]byte
		if err := mem.ReadAt(d[:], table+uint64(idx)*descSize); err != nil {
			return nil, err
		}
		addr := binary.LittleEndian.Uint64(d[0:])
		length := binary.LittleEndian.Uint32(d[8:])
		flags := binary.LittleEndian.Uint16(d[12:])
		next := binary.LittleEndian.Uint16(d[14:])

		if flags&descFIndirect != 0 {
			switch {
			case !indirectOK:
				return nil, errors.New("indirect descriptor without VIRTIO_F_INDIRECT_DESC")
			case inIndirect:
				return nil, errors.New("indirect descriptor inside an indirect table")
			case flags&descFNext != 0:
				return nil, errors.New("indirect descriptor with NEXT set")
			case length == 0 || length%descSize != 0:
				return nil, fmt.Errorf("indirect table length %d is not a nonzero multiple of 16", length)
			case length/descSize > MaxSize:
				return nil, fmt.Errorf("indirect table of %d entries is too long", length/descSize)
			}
			// Checking the whole table up front also rules out
			// table+i*16 wrapping around.
			if _, err := mem.Slice(addr, uint64(length)); err != nil {
				return nil, fmt.Errorf("indirect table: %w", err)
			}
			inIndirect = true
			table = addr
			limit = length / descSize
			count = 0
			idx = 0
			continue
		}

		if flags&descFWrite != 0 {
			if length > 0 {
				buf, err := mem.Slice(addr, uint64(length))
				if err != nil {
					return nil, err
				}
				c.Writable = append(c.Writable, buf)
			}
		} else {
			if len(c.Writable) > 0 {
				return nil, errors.New("readable descriptor after a writable one")
			}
			if length > 0 {
				buf, err := mem.Slice(addr, uint64(length))
				if err != nil {
					return nil, err
				}
				c.Readable = append(c.Readable, buf)
			}
		}
		total += uint64(length)
		if total > math.MaxUint32 {
			return nil, errors.New("chain length overflows 32 bits")
		}

		if flags&descFNext == 0 {
			return c, nil
		}
		if uint32(next) >= limit {
			return nil, fmt.Errorf("next index %d out of range %d", next, limit)
		}
		idx = uint32(next)
	}
}
