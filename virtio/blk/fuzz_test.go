package blk

import (
	"encoding/binary"
	"testing"

	"github.com/govmm/govmm/virtio/virtq"
)

// FuzzHandle feeds arbitrary request bytes (header, payload, segment lists)
// and writable buffer sizes to the request handler. It must never panic,
// never report more bytes written than the chain can hold, and never touch
// the disk outside its size.
func FuzzHandle(f *testing.F) {
	f.Add(append(hdr(TypeIn, 1), 0, 2, 0, 0), uint16(512), uint16(1))
	f.Add(append(hdr(TypeOut, 0), make([]byte, 512)...), uint16(0), uint16(1))
	f.Add(append(hdr(TypeDiscard, 0), seg(1, 2, 0)...), uint16(0), uint16(1))
	f.Add(append(hdr(TypeWriteZeroes, 0), seg(60, 8, 1)...), uint16(0), uint16(1))
	f.Add(hdr(TypeGetID, 0), uint16(20), uint16(1))
	f.Fuzz(func(t *testing.T, readable []byte, w1, w2 uint16) {
		d := &memDisk{data: make([]byte, 64*512)}
		dev, err := New(d, Options{Serial: "fuzz"})
		if err != nil {
			t.Fatal(err)
		}
		c := &virtq.Chain{}
		// Split the readable bytes in two buffers to exercise scatter.
		if len(readable) > 0 {
			k := int(binary.LittleEndian.Uint16(append(readable[:min(2, len(readable))], 0, 0))) % len(readable)
			if k > 0 {
				c.Readable = append(c.Readable, readable[:k])
			}
			c.Readable = append(c.Readable, readable[k:])
		}
		for _, n := range []uint16{w1 % 4096, w2 % 4096} {
			if n > 0 {
				c.Writable = append(c.Writable, make([]byte, n))
			}
		}
		written := dev.Handle(c)
		if uint64(written) > c.WritableLen() {
			t.Fatalf("wrote %d into %d bytes", written, c.WritableLen())
		}
		if len(d.data) != 64*512 {
			t.Fatal("disk grew")
		}
	})
}
