package i8042

import "testing"

// FuzzPorts feeds arbitrary port accesses and host scancodes and checks the
// IRQ lines always agree with the status register.
func FuzzPorts(f *testing.F) {
	f.Add([]byte{1, 0xff, 0, 0, 0, 0, 3, 0x1c})
	f.Add([]byte{1, 0xd4, 0, 0xf3, 1, 0xd4, 0, 200, 0, 0, 2, 0x60, 0, 0x43})
	f.Add([]byte{2, 0xad, 3, 0x1c, 2, 0xae, 0, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		kbd, mouse := &fakeIRQ{}, &fakeIRQ{}
		c := New(kbd, mouse, nil)
		for len(ops) >= 2 {
			op, v := ops[0], ops[1]
			ops = ops[2:]
			switch op % 6 {
			case 0:
				c.Read(0, []byte{0})
			case 1:
				c.Write(0, []byte{v})
			case 2:
				c.Write(4, []byte{v})
			case 3:
				c.KeyScancode([]byte{v, v ^ 0xf0})
			case 4:
				c.Read(uint64(v%5), make([]byte, 1+v%2))
			case 5:
				c.Write(uint64(v%5), []byte{v})
			}
			c.mu.Lock()
			obf := c.status&statOBF != 0
			aux := c.status&statMouseOBF != 0
			if kbd.high && (!obf || aux) {
				t.Fatalf("IRQ1 high with status %#x", c.status)
			}
			if mouse.high && (!obf || !aux) {
				t.Fatalf("IRQ12 high with status %#x", c.status)
			}
			if !obf && c.pending() != 0 {
				t.Fatalf("data pending %#x but OBF clear", c.pending())
			}
			if c.kbd.len() > queueSize+3 || c.mouse.len() > queueSize {
				t.Fatalf("queues %d/%d", c.kbd.len(), c.mouse.len())
			}
			c.mu.Unlock()
		}
	})
}
