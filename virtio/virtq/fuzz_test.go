package virtq_test

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/govmm/govmm/machine/guestmem"
	"github.com/govmm/govmm/virtio/virtq"
)

// FuzzPop fills a small guest RAM with fuzzer bytes, points a queue at it and
// pops and pushes until the ring is drained or broken. Whatever the guest
// wrote, the device must not panic, and every buffer it hands out must lie
// inside guest RAM.
func FuzzPop(f *testing.F) {
	seed := func(build func(mem []byte)) []byte {
		mem := make([]byte, 4096)
		build(mem)
		return append([]byte{3}, mem...)
	}
	desc := func(mem []byte, i int, addr uint64, l uint32, flags, next uint16) {
		b := mem[i*16:]
		binary.LittleEndian.PutUint64(b, addr)
		binary.LittleEndian.PutUint32(b[8:], l)
		binary.LittleEndian.PutUint16(b[12:], flags)
		binary.LittleEndian.PutUint16(b[14:], next)
	}
	// A good two-descriptor chain.
	f.Add(seed(func(m []byte) {
		desc(m, 0, 0x1800, 16, 1, 1)
		desc(m, 1, 0x1900, 8, 2, 0)
		binary.LittleEndian.PutUint16(m[0x102:], 1)
	}))
	// An indirect chain.
	f.Add(seed(func(m []byte) {
		desc(m, 0, 0x1a00, 32, 4, 0)
		desc(m[0xa00:], 0, 0x1800, 16, 1, 1)
		desc(m[0xa00:], 1, 0x1900, 8, 2, 0)
		binary.LittleEndian.PutUint16(m[0x102:], 1)
	}))
	// A loop.
	f.Add(seed(func(m []byte) {
		desc(m, 0, 0x1800, 16, 1, 1)
		desc(m, 1, 0x1900, 8, 1, 0)
		binary.LittleEndian.PutUint16(m[0x102:], 1)
	}))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 1 {
			return
		}
		var features uint64
		if in[0]&1 != 0 {
			features |= virtq.FeatureIndirectDesc
		}
		if in[0]&2 != 0 {
			features |= virtq.FeatureEventIdx
		}
		ram := make([]byte, 4096)
		copy(ram, in[1:])
		const base = 0x1000
		mem, err := guestmem.New(guestmem.Region{GPA: base, Data: ram})
		if err != nil {
			t.Fatal(err)
		}
		q, err := virtq.New(mem, virtq.Config{Size: 16, DescAddr: base, DriverAddr: base + 0x100, DeviceAddr: base + 0x200}, features)
		if err != nil {
			t.Fatal(err)
		}
		inRAM := func(b []byte) bool {
			for i := range ram {
				if &ram[i] == &b[0] {
					return i+len(b) <= len(ram)
				}
			}
			return false
		}
		for i := 0; i < 40; i++ {
			c, err := q.Pop()
			var ce *virtq.ChainError
			switch {
			case errors.As(err, &ce):
				if ce.Head >= 16 {
					t.Fatalf("ChainError head %d out of range", ce.Head)
				}
				q.Push(ce.Head, 0)
				continue
			case err != nil:
				if !errors.Is(err, virtq.ErrBroken) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			case c == nil:
				return
			}
			for _, b := range append(c.Readable, c.Writable...) {
				if len(b) == 0 || !inRAM(b) {
					t.Fatalf("buffer outside RAM or empty")
				}
			}
			if c.ReadableLen()+c.WritableLen() > 1<<32-1 {
				t.Fatal("total length over 32 bits")
			}
			q.Push(c.Head, uint32(c.WritableLen()))
			q.NeedInterrupt()
		}
	})
}
