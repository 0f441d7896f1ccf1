// Package blk is the virtio-blk device model (virtio spec 5.2): read,
// write, flush, get-id, discard and write-zeroes against a disk.Disk, with
// one goroutine per queue and up to Workers requests in flight per queue.
package blk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/govmm/govmm/devices/disk"
	"github.com/govmm/govmm/virtio"
	"github.com/govmm/govmm/virtio/virtq"
)

// Feature bits (virtio spec 5.2.3).
const (
	FeatureSizeMax     = uint64(1) << 1
	FeatureSegMax      = uint64(1) << 2
	FeatureGeometry    = uint64(1) << 4
	FeatureRO          = uint64(1) << 5
	FeatureBlkSize     = uint64(1) << 6
	FeatureFlush       = uint64(1) << 9
	FeatureTopology    = uint64(1) << 10
	FeatureConfigWCE   = uint64(1) << 11
	FeatureMQ          = uint64(1) << 12
	FeatureDiscard     = uint64(1) << 13
	FeatureWriteZeroes = uint64(1) << 14
)

// Request types and status values (virtio spec 5.2.6).
const (
	TypeIn          = 0
	TypeOut         = 1
	TypeFlush       = 4
	TypeGetID       = 8
	TypeDiscard     = 11
	TypeWriteZeroes = 13

	StatusOK     = 0
	StatusIOErr  = 1
	StatusUnsupp = 2
)

// SectorSize is the unit of sector numbers in requests.
const SectorSize = 512

// IDLen is the size of the GET_ID reply (the serial, zero padded).
const IDLen = 20

// Limits advertised in the configuration (QEMU's values).
const (
	maxDiscardSectors = 0x3FFFFF
	maxDiscardSeg     = 1
	unmapFlag         = 1
)

// Configuration space offsets (struct virtio_blk_config).
const (
	cfgCapacity              = 0
	cfgSegMax                = 12
	cfgBlkSize               = 20
	cfgNumQueues             = 34
	cfgMaxDiscardSectors     = 36
	cfgMaxDiscardSeg         = 40
	cfgDiscardAlignment      = 44
	cfgMaxWriteZeroesSectors = 48
	cfgMaxWriteZeroesSeg     = 52
	cfgWriteZeroesMayUnmap   = 56
	cfgSize                  = 60
)

// Options configure a virtio-blk device.
type Options struct {
	Serial    string // returned by GET_ID (truncated to 20 bytes)
	NumQueues int    // request queues; default 1 (>1 offers VIRTIO_BLK_F_MQ)
	QueueSize uint16 // maximum queue size; default 256
	Workers   int    // requests in flight per queue; default 32
	ReadOnly  bool   // also read-only when the disk is
}

// Device is a virtio-blk device.
type Device struct {
	disk     disk.Disk
	opts     Options
	ro       bool
	features uint64
	config   [cfgSize]byte

	stop chan struct{}
	wg   sync.WaitGroup
}

// New returns a virtio-blk device serving d.
func New(d disk.Disk, opts Options) (*Device, error) {
	if opts.NumQueues == 0 {
		opts.NumQueues = 1
	}
	if opts.QueueSize == 0 {
		opts.QueueSize = 256
	}
	if opts.Workers <= 0 {
		opts.Workers = 32
	}
	if opts.NumQueues < 1 || opts.NumQueues > 1024 {
		return nil, fmt.Errorf("virtio-blk: num-queues %d out of range", opts.NumQueues)
	}
	if s := opts.QueueSize; s < 4 || s > virtq.MaxSize || s&(s-1) != 0 {
		return nil, fmt.Errorf("virtio-blk: queue-size %d must be a power of 2 in 4..%d", s, virtq.MaxSize)
	}
	b := &Device{disk: d, opts: opts, ro: opts.ReadOnly || d.ReadOnly()}
	b.features = FeatureSegMax | FeatureBlkSize | FeatureFlush | FeatureDiscard | FeatureWriteZeroes
	if b.ro {
		b.features |= FeatureRO
	}
	if opts.NumQueues > 1 {
		b.features |= FeatureMQ
	}
	le := binary.LittleEndian
	le.PutUint64(b.config[cfgCapacity:], uint64(d.Size())/SectorSize)
	le.PutUint32(b.config[cfgSegMax:], uint32(opts.QueueSize)-2)
	le.PutUint32(b.config[cfgBlkSize:], SectorSize)
	le.PutUint16(b.config[cfgNumQueues:], uint16(opts.NumQueues))
	le.PutUint32(b.config[cfgMaxDiscardSectors:], maxDiscardSectors)
	le.PutUint32(b.config[cfgMaxDiscardSeg:], maxDiscardSeg)
	le.PutUint32(b.config[cfgDiscardAlignment:], 1)
	le.PutUint32(b.config[cfgMaxWriteZeroesSectors:], maxDiscardSectors)
	le.PutUint32(b.config[cfgMaxWriteZeroesSeg:], maxDiscardSeg)
	b.config[cfgWriteZeroesMayUnmap] = 1
	return b, nil
}

// Type implements virtio.Device.
func (b *Device) Type() uint16 { return virtio.TypeBlock }

// Features implements virtio.Device.
func (b *Device) Features() uint64 { return b.features }

// QueueMaxSizes implements virtio.Device.
func (b *Device) QueueMaxSizes() []uint16 {
	s := make([]uint16, b.opts.NumQueues)
	for i := range s {
		s[i] = b.opts.QueueSize
	}
	return s
}

// ReadConfig implements virtio.Device.
func (b *Device) ReadConfig(off uint64, data []byte) {
	for i := range data {
		data[i] = 0
	}
	if off < cfgSize {
		copy(data, b.config[off:])
	}
}

// WriteConfig implements virtio.Device; every field is read-only.
func (b *Device) WriteConfig(off uint64, data []byte) {}

// Activate implements virtio.Device.
func (b *Device) Activate(a virtio.Activation) error {
	b.stop = make(chan struct{})
	for _, q := range a.Queues {
		if q == nil {
			continue
		}
		b.wg.Add(1)
		go b.serve(q, a.Interrupt)
	}
	return nil
}

// Reset implements virtio.Device: it waits for every request in flight.
func (b *Device) Reset() {
	if b.stop == nil {
		return
	}
	close(b.stop)
	b.wg.Wait()
	b.stop = nil
}

// serve is one queue's goroutine: pop chains as kicks arrive and hand them
// to at most Workers concurrent request goroutines, which push their
// completions as they finish.
func (b *Device) serve(q *virtio.Queue, intr virtio.Interrupt) {
	defer b.wg.Done()
	sem := make(chan struct{}, b.opts.Workers)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	complete := func(head uint16, written uint32) {
		if err := q.Push(head, written); err != nil {
			intr.NeedsReset()
			return
		}
		if q.NeedInterrupt() {
			intr.Queue(q.Index)
		}
	}
	for {
		select {
		case <-b.stop:
			return
		case <-q.Kick:
		}
		for {
			c, err := q.Pop()
			var ce *virtq.ChainError
			if errors.As(err, &ce) {
				// Malformed chain: we cannot find its status
				// byte, so return it with nothing written.
				complete(ce.Head, 0)
				continue
			}
			if err != nil {
				intr.NeedsReset()
				<-b.stop
				return
			}
			if c == nil {
				break
			}
			select {
			case sem <- struct{}{}:
			case <-b.stop:
				complete(c.Head, 0)
				return
			}
			inflight.Add(1)
			go func() {
				defer inflight.Done()
				written := b.Handle(c)
				<-sem
				complete(c.Head, written)
			}()
		}
	}
}

// Handle serves one request chain and returns the number of bytes written
// into its writable buffers (including the status byte).
func (b *Device) Handle(c *virtq.Chain) uint32 {
	wl := c.WritableLen()
	if wl == 0 {
		return 0 // nowhere to put a status
	}
	status := virtq.Sub(c.Writable, wl-1, 1)[0]
	in := virtq.Sub(c.Writable, 0, wl-1)
	var hdr [16]byte
	if c.CopyFrom(hdr[:], 0) < len(hdr) {
		status[0] = StatusIOErr
		return 1
	}
	typ := binary.LittleEndian.Uint32(hdr[0:])
	sector := binary.LittleEndian.Uint64(hdr[8:])
	out := virtq.Sub(c.Readable, 16, c.ReadableLen()-16)
	st, n := b.do(typ, sector, in, out)
	status[0] = st
	return n + 1
}

func (b *Device) capacity() uint64 { return uint64(b.disk.Size()) / SectorSize }

// inRange checks [sector, sector+bytes/512) against the capacity without
// overflowing.
func (b *Device) inRange(sector, bytes uint64) bool {
	if bytes%SectorSize != 0 {
		return false
	}
	c := b.capacity()
	return sector <= c && bytes/SectorSize <= c-sector
}

func (b *Device) do(typ uint32, sector uint64, in, out [][]byte) (status byte, written uint32) {
	switch typ {
	case TypeIn:
		n := total(in)
		if !b.inRange(sector, n) {
			return StatusIOErr, 0
		}
		off := int64(sector * SectorSize)
		for _, buf := range in {
			if _, err := b.disk.ReadAt(buf, off); err != nil {
				return StatusIOErr, 0
			}
			off += int64(len(buf))
		}
		return StatusOK, uint32(n)
	case TypeOut:
		if b.ro {
			return StatusIOErr, 0
		}
		if !b.inRange(sector, total(out)) {
			return StatusIOErr, 0
		}
		off := int64(sector * SectorSize)
		for _, buf := range out {
			if _, err := b.disk.WriteAt(buf, off); err != nil {
				return StatusIOErr, 0
			}
			off += int64(len(buf))
		}
		return StatusOK, 0
	case TypeFlush:
		if err := b.disk.Flush(); err != nil {
			return StatusIOErr, 0
		}
		return StatusOK, 0
	case TypeGetID:
		var id [IDLen]byte
		copy(id[:], b.opts.Serial)
		n := 0
		for _, buf := range in {
			n += copy(buf, id[n:])
		}
		return StatusOK, uint32(n)
	case TypeDiscard, TypeWriteZeroes:
		return b.discardOrZero(typ, out), 0
	}
	return StatusUnsupp, 0
}

// discardOrZero serves DISCARD and WRITE_ZEROES, whose payload is a list of
// struct virtio_blk_discard_write_zeroes {le64 sector; le32 num_sectors;
// le32 flags}.
func (b *Device) discardOrZero(typ uint32, out [][]byte) byte {
	n := total(out)
	if n == 0 || n%16 != 0 {
		return StatusIOErr
	}
	if n/16 > maxDiscardSeg {
		return StatusUnsupp
	}
	if b.ro {
		return StatusIOErr
	}
	// Copy the segments out of guest memory before checking them.
	segs := make([]byte, n)
	copyOut(segs, out)
	for i := uint64(0); i < n; i += 16 {
		sector := binary.LittleEndian.Uint64(segs[i:])
		num := binary.LittleEndian.Uint32(segs[i+8:])
		flags := binary.LittleEndian.Uint32(segs[i+12:])
		if flags&^unmapFlag != 0 || (typ == TypeDiscard && flags&unmapFlag != 0) {
			return StatusUnsupp
		}
		if num > maxDiscardSectors || !b.inRange(sector, uint64(num)*SectorSize) {
			return StatusIOErr
		}
		off, length := int64(sector*SectorSize), int64(num)*SectorSize
		var err error
		if typ == TypeDiscard {
			err = b.disk.Discard(off, length)
		} else {
			err = b.disk.WriteZeroes(off, length)
		}
		if err != nil {
			return StatusIOErr
		}
	}
	return StatusOK
}

func total(bufs [][]byte) uint64 {
	var n uint64
	for _, b := range bufs {
		n += uint64(len(b))
	}
	return n
}

func copyOut(dst []byte, bufs [][]byte) {
	for _, b := range bufs {
		dst = dst[copy(dst, b):]
	}
}
