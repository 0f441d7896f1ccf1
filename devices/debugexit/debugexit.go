// Package debugexit emulates QEMU's isa-debug-exit device (hw/misc/debugexit.c):
// a guest write of value v ends the VMM with exit status (v<<1)|1, so a test
// guest can report success or failure without a shutdown path. QEMU exits at
// once, without a QMP SHUTDOWN event.
package debugexit

import "encoding/binary"

// QEMU's defaults for the device's iobase and iosize properties.
const (
	DefaultBase = 0x501
	DefaultSize = 2
)

// DebugExit is the device. It answers every offset of the range it is
// mapped at, as QEMU does (any iosize, default 0x501-0x502).
type DebugExit struct {
	exit func(code int)
}

// New returns the device. exit is called from the vCPU goroutine that wrote
// the port, with (v<<1)|1 where v is the value written (1, 2 or 4 bytes,
// little-endian). As with QEMU's exit(), the process status a shell sees is
// that code & 0xff; exit decides how to stop the machine.
func New(exit func(code int)) *DebugExit {
	if exit == nil {
		exit = func(int) {}
	}
	return &DebugExit{exit: exit}
}

// Read implements devices.Device: the port reads as zero.
func (d *DebugExit) Read(offset uint64, data []byte) {
	clear(data)
}

// Write implements devices.Device. Accesses wider than 4 bytes, which QEMU
// refuses, are ignored.
func (d *DebugExit) Write(offset uint64, data []byte) {
	if len(data) == 0 || len(data) > 4 {
		return
	}
	var buf [4]byte
	copy(buf[:], data)
	v := uint64(binary.LittleEndian.Uint32(buf[:]))
	d.exit(int(v<<1 | 1))
}
