package uart16550

import (
	"testing"
	"time"
)

// FuzzRegisters drives the UART with arbitrary register accesses, host input
// and timer firings, and checks after every step that the IRQ line matches
// IIR and the FIFO never holds more than it can.
func FuzzRegisters(f *testing.F) {
	f.Add([]byte{1, 2, 0, 0, 'a', 2, 2, 1})
	f.Add([]byte{1, 2, 0xc1, 1, 1, 0x0f, 0, 4, 0x10, 1, 0, 'x', 4, 'q', 3, 0, 0})
	f.Add([]byte{1, 3, 0x80, 1, 0, 1, 1, 1, 0, 0, 5, 0, 0, 6, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		irq := &fakeIRQ{}
		u := New(irq, nil)
		var fire func()
		u.afterFunc = func(_ time.Duration, f func()) func() bool {
			fire = f
			return func() bool { return true }
		}
		for len(ops) >= 3 {
			op, a, v := ops[0], ops[1], ops[2]
			ops = ops[3:]
			switch op % 5 {
			case 0:
				u.Read(uint64(a%9), []byte{0})
			case 1:
				u.Write(uint64(a%9), []byte{v})
			case 2:
				u.Receive(make([]byte, a%20))
			case 3:
				if fire != nil {
					fire()
				}
			case 4:
				b := make([]byte, 1+a%4)
				u.Read(uint64(v%8), b)
			}
			u.mu.Lock()
			if u.rxN < 0 || u.rxN > fifoLen {
				t.Fatalf("rxN = %d", u.rxN)
			}
			if want := u.iir&iirNoInt == 0; irq.high != want {
				t.Fatalf("IRQ %v with IIR %#x", irq.high, u.iir)
			}
			if u.fcr&fcrFE != 0 && u.iir&iirFE != iirFE {
				t.Fatalf("FIFO on but IIR %#x", u.iir)
			}
			u.mu.Unlock()
		}
	})
}
