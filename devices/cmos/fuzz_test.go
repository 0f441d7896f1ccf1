package cmos

import (
	"testing"
	"time"
)

// FuzzPorts writes arbitrary index/data sequences (garbage BCD, SET toggles,
// divider resets) while the host clock moves, and checks the device never
// panics and keeps its read-only registers.
func FuzzPorts(f *testing.F) {
	f.Add([]byte{0, 0x0b, 1, 0x86, 0, 0x09, 1, 0xff, 0, 0x32, 1, 0x99, 0, 0x0b, 1, 0x02})
	f.Add([]byte{0, 0x0a, 1, 0x66, 0, 0x04, 1, 0xc0, 0, 0x0a, 1, 0x26, 2, 0x00})
	f.Fuzz(func(t *testing.T, ops []byte) {
		clk := &clock{t: testTime}
		c := New(1<<30, 0, 1, clk.now, false)
		for len(ops) >= 2 {
			op, v := ops[0], ops[1]
			ops = ops[2:]
			switch op % 4 {
			case 0:
				c.Write(0, []byte{v})
			case 1:
				c.Write(1, []byte{v})
			case 2:
				c.Read(uint64(v%2), []byte{0})
			case 3:
				clk.t = clk.t.Add(time.Duration(v) * 10 * time.Millisecond)
			}
			_ = c.GuestTime()
			if c.Byte(regD) != 0x80 {
				t.Fatalf("register D = %#x", c.Byte(regD))
			}
		}
	})
}
