// Package virtqtest is a minimal virtio driver for tests: it lays out a
// split virtqueue in guest memory, adds descriptor chains the way a guest
// driver would, and reads the used ring back. It trusts itself; it is not
// for production use.
package virtqtest

import (
	"encoding/binary"
	"fmt"

	"github.com/govmm/govmm/machine/guestmem"
	"github.com/govmm/govmm/virtio/virtq"
	"github.com/govmm/govmm/virtio/virtq/internal/atomicmem"
)

// Descriptor flags, as the driver writes them.
const (
	FlagNext     = 1
	FlagWrite    = 2
	FlagIndirect = 4
)

// Buf is one buffer of a chain: Data is copied into guest memory for a
// readable buffer; a writable buffer gets Len zeroed bytes.
type Buf struct {
	Data  []byte
	Write bool
	Len   uint32
}

// Driver owns one queue's rings and a bump allocator for buffers.
type Driver struct {
	Mem                *guestmem.Memory
	Size               uint16
	Desc, Avail, Used  uint64
	dataBase           uint64
	dataNext, dataEnd  uint64
	nextDesc           uint16
	availIdx, lastUsed uint16
	AddrOf             map[uint16][]uint64 // head -> guest address of each buffer
}

// New lays out a queue of the given size at base (needs 16*size+6+2*size+
// 6+8*size bytes, rounded) and uses [dataBase, dataBase+dataSize) for buffers.
func New(mem *guestmem.Memory, base uint64, size uint16, dataBase, dataSize uint64) *Driver {
	d := &Driver{Mem: mem, Size: size, dataBase: dataBase, dataNext: dataBase, dataEnd: dataBase + dataSize, AddrOf: map[uint16][]uint64{}}
	n := uint64(size)
	d.Desc = base
	d.Avail = base + 16*n
	d.Used = align(d.Avail+6+2*n, 4096)
	// Zero the rings as a driver would.
	zero := make([]byte, d.Used+6+8*n-base)
	if err := mem.WriteAt(zero, base); err != nil {
		panic(err)
	}
	return d
}

func align(v, a uint64) uint64 { return (v + a - 1) &^ (a - 1) }

// Config is the queue configuration to give the device.
func (d *Driver) Config() virtq.Config {
	return virtq.Config{Size: d.Size, DescAddr: d.Desc, DriverAddr: d.Avail, DeviceAddr: d.Used}
}

// Alloc reserves n bytes of buffer space (16-byte aligned) and returns its address.
func (d *Driver) Alloc(n uint64) uint64 {
	a := align(d.dataNext, 16)
	if a+n > d.dataEnd {
		panic("virtqtest: out of buffer space")
	}
	d.dataNext = a + n
	return a
}

// ResetData forgets every buffer allocation (for long-running tests whose
// earlier buffers are all completed).
func (d *Driver) ResetData() { d.dataNext = d.dataBase }

// WriteDesc writes raw descriptor i of a table at table.
func (d *Driver) WriteDesc(table uint64, i uint16, addr uint64, length uint32, flags, next uint16) {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[0:], addr)
	binary.LittleEndian.PutUint32(b[8:], length)
	binary.LittleEndian.PutUint16(b[12:], flags)
	binary.LittleEndian.PutUint16(b[14:], next)
	if err := d.Mem.WriteAt(b[:], table+16*uint64(i)); err != nil {
		panic(err)
	}
}

// Publish puts head on the available ring and advances avail.idx.
func (d *Driver) Publish(head uint16) {
	slot := uint64(d.availIdx % d.Size)
	must(d.Mem.PutUint16(d.Avail+4+2*slot, head))
	d.availIdx++
	must(atomicmem.Store16(d.Mem, d.Avail+2, d.availIdx))
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func (d *Driver) place(bufs []Buf) []uint64 {
	addrs := make([]uint64, len(bufs))
	for i, b := range bufs {
		n := uint64(b.Len)
		if !b.Write {
			n = uint64(len(b.Data))
		}
		addrs[i] = d.Alloc(n)
		if !b.Write {
			must(d.Mem.WriteAt(b.Data, addrs[i]))
		}
	}
	return addrs
}

func bufLen(b Buf) uint32 {
	if b.Write {
		return b.Len
	}
	return uint32(len(b.Data))
}

// Add places bufs in guest memory, chains direct descriptors for them and
// publishes the chain. It returns the head index.
func (d *Driver) Add(bufs []Buf) uint16 {
	addrs := d.place(bufs)
	head := d.nextDesc
	for i, b := range bufs {
		idx := d.nextDesc
		d.nextDesc = (d.nextDesc + 1) % d.Size
		var flags, next uint16
		if b.Write {
			flags |= FlagWrite
		}
		if i < len(bufs)-1 {
			flags |= FlagNext
			next = d.nextDesc
		}
		d.WriteDesc(d.Desc, idx, addrs[i], bufLen(b), flags, next)
	}
	d.AddrOf[head] = addrs
	d.Publish(head)
	return head
}

// AddIndirect is Add with the chain in an indirect table referenced by one
// descriptor.
func (d *Driver) AddIndirect(bufs []Buf) uint16 {
	addrs := d.place(bufs)
	table := d.Alloc(16 * uint64(len(bufs)))
	for i, b := range bufs {
		var flags, next uint16
		if b.Write {
			flags |= FlagWrite
		}
		if i < len(bufs)-1 {
			flags |= FlagNext
			next = uint16(i + 1)
		}
		d.WriteDesc(table, uint16(i), addrs[i], bufLen(b), flags, next)
	}
	head := d.nextDesc
	d.nextDesc = (d.nextDesc + 1) % d.Size
	d.WriteDesc(d.Desc, head, table, uint32(16*len(bufs)), FlagIndirect, 0)
	d.AddrOf[head] = addrs
	d.Publish(head)
	return head
}

// Used is one used-ring element.
type Used struct {
	ID  uint32
	Len uint32
}

// PollUsed returns the used elements the device added since the last call.
// Like a Linux driver re-enabling callbacks, it then sets used_event to what
// it has seen and looks again, so with VIRTIO_F_EVENT_IDX the device
// interrupts for the next completion.
func (d *Driver) PollUsed() []Used {
	var out []Used
	for {
		idx, err := atomicmem.Load16(d.Mem, d.Used+2)
		must(err)
		if idx == d.lastUsed {
			return out
		}
		for d.lastUsed != idx {
			slot := uint64(d.lastUsed % d.Size)
			id, err := d.Mem.Uint32(d.Used + 4 + 8*slot)
			must(err)
			l, err := d.Mem.Uint32(d.Used + 8 + 8*slot)
			must(err)
			out = append(out, Used{ID: id, Len: l})
			d.lastUsed++
		}
		d.SetUsedEvent(d.lastUsed)
	}
}

// SetAvailIdx overwrites avail.idx (to feed the device garbage).
func (d *Driver) SetAvailIdx(v uint16) { must(atomicmem.Store16(d.Mem, d.Avail+2, v)) }

// Read returns a copy of n bytes of guest memory at addr.
func (d *Driver) Read(addr, n uint64) []byte {
	b := make([]byte, n)
	must(d.Mem.ReadAt(b, addr))
	return b
}

// SetUsedEvent writes used_event (the VIRTIO_F_EVENT_IDX interrupt threshold).
func (d *Driver) SetUsedEvent(v uint16) {
	must(atomicmem.Store16(d.Mem, d.Avail+4+2*uint64(d.Size), v))
}

// AvailEvent reads avail_event, the device's notification threshold.
func (d *Driver) AvailEvent() uint16 {
	v, err := atomicmem.Load16(d.Mem, d.Used+4+8*uint64(d.Size))
	must(err)
	return v
}

// SetAvailFlags writes the available ring's flags (1 = NO_INTERRUPT).
func (d *Driver) SetAvailFlags(v uint16) { must(atomicmem.Store16(d.Mem, d.Avail, v)) }

// UsedFlags reads the used ring's flags (1 = NO_NOTIFY).
func (d *Driver) UsedFlags() uint16 {
	v, err := atomicmem.Load16(d.Mem, d.Used)
	must(err)
	return v
}

// String describes the layout, for test failure messages.
func (d *Driver) String() string {
	return fmt.Sprintf("queue size %d desc %#x avail %#x used %#x", d.Size, d.Desc, d.Avail, d.Used)
}
