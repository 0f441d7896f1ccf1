package uart16550

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// fakeIRQ records the level of the line and counts rising edges.
type fakeIRQ struct {
	high  bool
	edges int
}

func (f *fakeIRQ) SetLevel(high bool) {
	if high && !f.high {
		f.edges++
	}
	f.high = high
}

// fakeTimer replaces time.AfterFunc so tests fire the character timeout
// themselves.
type fakeTimer struct {
	f     func()
	armed bool
	d     time.Duration
}

func newTest(t *testing.T) (*UART, *fakeIRQ, *bytes.Buffer, *fakeTimer) {
	t.Helper()
	irq := &fakeIRQ{}
	out := &bytes.Buffer{}
	u := New(irq, out)
	ft := &fakeTimer{}
	u.afterFunc = func(d time.Duration, f func()) func() bool {
		ft.f, ft.armed, ft.d = f, true, d
		return func() bool { was := ft.armed; ft.armed = false; return was }
	}
	return u, irq, out, ft
}

func rd(u *UART, off uint64) uint8 {
	b := []byte{0}
	u.Read(off, b)
	return b[0]
}

func wr(u *UART, off uint64, v uint8) { u.Write(off, []byte{v}) }

func TestResetState(t *testing.T) {
	u, irq, _, _ := newTest(t)
	want := map[uint64]uint8{regIER: 0, regIIR: 0x01, regLCR: 0, regMCR: 0x08, regLSR: 0x60, regMSR: 0xb0, regSCR: 0}
	for off, v := range want {
		if got := rd(u, off); got != v {
			t.Errorf("reg %d = %#x, want %#x", off, got, v)
		}
	}
	if irq.high {
		t.Error("IRQ high after reset")
	}
}

func TestDivisorLatch(t *testing.T) {
	u, _, out, _ := newTest(t)
	wr(u, regIER, 0x05)
	wr(u, regLCR, 0x83) // DLAB, 8N1
	if got := rd(u, 0); got != 0x0c {
		t.Errorf("DLL = %#x, want 0x0c (9600 baud default)", got)
	}
	if got := rd(u, 1); got != 0 {
		t.Errorf("DLM = %#x, want 0", got)
	}
	wr(u, 0, 0x01)
	wr(u, 1, 0x02)
	if got, want := rd(u, 0), uint8(0x01); got != want {
		t.Errorf("DLL = %#x, want %#x", got, want)
	}
	if got, want := rd(u, 1), uint8(0x02); got != want {
		t.Errorf("DLM = %#x, want %#x", got, want)
	}
	if out.Len() != 0 {
		t.Errorf("DLL write transmitted %q", out.Bytes())
	}
	wr(u, regLCR, 0x03)
	if got := rd(u, regIER); got != 0x05 {
		t.Errorf("IER = %#x after DLM write, want 0x05 untouched", got)
	}
	// A 16-bit access is split into bytes at consecutive offsets.
	wr(u, regLCR, 0x83)
	u.Write(0, []byte{0x34, 0x12})
	b := make([]byte, 2)
	u.Read(0, b)
	if b[0] != 0x34 || b[1] != 0x12 || u.divider != 0x1234 {
		t.Errorf("16-bit divisor access: read % x, divider %#x", b, u.divider)
	}
}

func TestTransmit(t *testing.T) {
	u, irq, out, _ := newTest(t)
	for _, c := range []byte("hi\n") {
		wr(u, 0, c)
		if lsr := rd(u, regLSR); lsr&(lsrTHRE|lsrTEMT) != lsrTHRE|lsrTEMT {
			t.Fatalf("LSR = %#x after THR write, want THRE|TEMT", lsr)
		}
	}
	if out.String() != "hi\n" {
		t.Errorf("output %q, want %q", out.String(), "hi\n")
	}
	if irq.high {
		t.Error("IRQ raised with IER = 0")
	}
}

func TestTHREInterrupt(t *testing.T) {
	u, irq, _, _ := newTest(t)
	wr(u, regMCR, 0) // OUT2 clear: QEMU does not gate the line with it
	wr(u, regIER, ierTHRI)
	if !irq.high || irq.edges != 1 {
		t.Fatalf("enabling THRI with THR empty: high=%v edges=%d, want raised once", irq.high, irq.edges)
	}
	if got := rd(u, regIIR); got != 0x02 {
		t.Fatalf("IIR = %#x, want 0x02", got)
	}
	// Reading IIR while it reports THRE acknowledges it.
	if irq.high {
		t.Error("IRQ still high after IIR read reported THRE")
	}
	if got := rd(u, regIIR); got != 0x01 {
		t.Errorf("IIR = %#x after ack, want 0x01", got)
	}
	// Each THR write gives a fresh edge.
	wr(u, 0, 'x')
	if !irq.high || irq.edges != 2 {
		t.Errorf("after THR write: high=%v edges=%d, want high with a new edge", irq.high, irq.edges)
	}
	wr(u, 0, 'y')
	if irq.edges != 3 {
		t.Errorf("edges = %d after second THR write, want 3", irq.edges)
	}
	// Toggling IER.THRI re-raises it after an ack.
	rd(u, regIIR)
	wr(u, regIER, 0)
	wr(u, regIER, ierTHRI)
	if !irq.high {
		t.Error("IER.THRI 0->1 with THR empty did not re-raise the interrupt")
	}
	// Rewriting the same IER value does not.
	rd(u, regIIR)
	wr(u, regIER, ierTHRI)
	if irq.high {
		t.Error("rewriting an unchanged IER raised THRE again")
	}
}

func TestReceiveNonFIFO(t *testing.T) {
	u, irq, _, _ := newTest(t)
	wr(u, regIER, ierRDI)
	if n := u.Receive([]byte("ab")); n != 1 {
		t.Fatalf("Receive accepted %d bytes without FIFO, want 1", n)
	}
	if !irq.high || rd(u, regIIR) != 0x04 {
		t.Fatal("no RX data interrupt")
	}
	if n := u.Receive([]byte("b")); n != 0 {
		t.Errorf("Receive accepted %d bytes with RBR full, want 0", n)
	}
	select {
	case <-u.RXSpace():
	default:
	}
	if got := rd(u, 0); got != 'a' {
		t.Errorf("RBR = %q, want 'a'", got)
	}
	if irq.high || rd(u, regLSR)&lsrDR != 0 {
		t.Error("RX interrupt or DR still set after RBR read")
	}
	select {
	case <-u.RXSpace():
	default:
		t.Error("RXSpace not signalled after RBR read")
	}
	if n := u.Receive([]byte("b")); n != 1 {
		t.Errorf("Receive accepted %d after read, want 1", n)
	}
}

func TestInterruptPriority(t *testing.T) {
	u, irq, _, _ := newTest(t)
	wr(u, regMCR, mcrLoop)
	wr(u, 0, 'a')
	wr(u, 0, 'b') // overrun: RBR held 'a'
	u.msr |= 0x01 // a delta-CTS, as a modem line change would set
	wr(u, regIER, 0x0f)
	steps := []struct {
		iir   uint8
		clear func() // the access that clears this source
	}{
		{0x06, func() { rd(u, regLSR) }},
		{0x04, func() { rd(u, regRBR) }},
		{0x02, func() { rd(u, regIIR) }},
		// Outside loopback an MSR read clears the delta bits.
		{0x00, func() { wr(u, regMCR, 0); rd(u, regMSR) }},
		{0x01, func() {}},
	}
	for _, s := range steps {
		if got := u.iir; got != s.iir {
			t.Fatalf("IIR = %#x, want %#x", got, s.iir)
		}
		if irq.high != (s.iir&1 == 0) {
			t.Fatalf("IRQ = %v with IIR %#x", irq.high, s.iir)
		}
		if s.iir != 0x02 && rd(u, regIIR) != s.iir {
			t.Fatalf("IIR register read differs from state")
		}
		s.clear()
	}
}

func TestLoopback(t *testing.T) {
	u, irq, out, _ := newTest(t)
	for _, c := range []struct{ mcr, msr uint8 }{
		{0x10, 0x00},
		{0x11, 0x20}, // DTR -> DSR
		{0x12, 0x10}, // RTS -> CTS
		{0x14, 0x40}, // OUT1 -> RI
		{0x18, 0x80}, // OUT2 -> DCD
		{0x1f, 0xf0},
	} {
		wr(u, regMCR, c.mcr)
		if got := rd(u, regMSR); got != c.msr {
			t.Errorf("MCR %#x: MSR = %#x, want %#x", c.mcr, got, c.msr)
		}
	}
	wr(u, regIER, ierRDI)
	wr(u, 0, 'z')
	if out.Len() != 0 {
		t.Errorf("loopback byte reached output: %q", out.Bytes())
	}
	if !irq.high || rd(u, 0) != 'z' {
		t.Error("loopback byte not received")
	}
	if n := u.Receive([]byte("q")); n != 0 {
		t.Errorf("host input accepted in loopback: %d", n)
	}
	for len(u.space) > 0 {
		<-u.space
	}
	wr(u, regMCR, 0x0b)
	if len(u.space) != 1 {
		t.Error("leaving loopback did not signal RXSpace")
	}
	if got := rd(u, regMSR); got != 0xb0 {
		t.Errorf("MSR = %#x outside loopback, want 0xb0", got)
	}
}

func TestFIFO(t *testing.T) {
	u, irq, _, _ := newTest(t)
	wr(u, regIIR, 0xc1) // enable FIFOs, trigger level 14
	if got := rd(u, regIIR); got != 0xc1 {
		t.Fatalf("IIR = %#x with FIFOs on, want 0xc1", got)
	}
	wr(u, regIER, ierRDI)
	in := []byte("0123456789abcdefXYZ")
	if n := u.Receive(in[:13]); n != 13 {
		t.Fatalf("accepted %d, want 13", n)
	}
	if irq.high {
		t.Error("RX interrupt below trigger level 14")
	}
	if n := u.Receive(in[13:]); n != 3 {
		t.Fatalf("accepted %d more, want 3 (FIFO holds 16)", n)
	}
	if !irq.high || rd(u, regIIR) != 0xc4 {
		t.Fatal("no RX interrupt at trigger level")
	}
	for i := range 16 {
		if got := rd(u, 0); got != in[i] {
			t.Fatalf("byte %d = %q, want %q", i, got, in[i])
		}
	}
	if rd(u, regLSR)&lsrDR != 0 || irq.high {
		t.Error("DR or IRQ left after draining FIFO")
	}
	if got := rd(u, 0); got != 0 {
		t.Errorf("empty FIFO read %#x, want 0", got)
	}

	// Overrun from loopback: the 17th byte is lost and OE is set.
	wr(u, regMCR, mcrLoop)
	wr(u, regIER, ierRLSI)
	for i := range 17 {
		wr(u, 0, byte('A'+i))
	}
	if u.rxN != 16 {
		t.Errorf("FIFO holds %d, want 16", u.rxN)
	}
	if !irq.high || u.iir != 0xc6 {
		t.Errorf("overrun: IRQ %v IIR %#x, want line status 0xc6", irq.high, u.iir)
	}
	if lsr := rd(u, regLSR); lsr&(lsrOE|lsrDR) != lsrOE|lsrDR {
		t.Errorf("LSR = %#x, want OE|DR", lsr)
	}
	if lsr := rd(u, regLSR); lsr&lsrOE != 0 {
		t.Errorf("OE not cleared by LSR read: %#x", lsr)
	}
	if irq.high {
		t.Error("IRQ high after LSR read cleared overrun")
	}
	if got := rd(u, 0); got != 'A' {
		t.Errorf("first FIFO byte %q, want 'A' (overruns keep old data)", got)
	}

	// Receive FIFO reset.
	wr(u, regIIR, 0xc3)
	if u.rxN != 0 || rd(u, regLSR)&lsrDR != 0 {
		t.Error("FCR RFR did not empty the FIFO")
	}
	// Turning FIFOs off flushes and clears IIR's FIFO bits.
	wr(u, regMCR, 0)
	u.Receive([]byte("12"))
	wr(u, regIIR, 0x00)
	if u.rxN != 0 || rd(u, regIIR)&0xc0 != 0 {
		t.Error("disabling FIFOs did not flush or clear IIR bits 6-7")
	}
}

func TestTriggerLevels(t *testing.T) {
	for fcr, itl := range map[uint8]int{0x01: 1, 0x41: 4, 0x81: 8, 0xc1: 14} {
		u, irq, _, _ := newTest(t)
		wr(u, regIIR, fcr)
		wr(u, regIER, ierRDI)
		u.Receive(make([]byte, itl-1))
		if irq.high {
			t.Errorf("FCR %#x: interrupt at %d bytes", fcr, itl-1)
		}
		u.Receive([]byte{1})
		if !irq.high {
			t.Errorf("FCR %#x: no interrupt at %d bytes", fcr, itl)
		}
	}
}

func TestCharacterTimeout(t *testing.T) {
	u, irq, _, ft := newTest(t)
	wr(u, regIIR, 0x81) // trigger level 8
	wr(u, regIER, ierRDI)
	u.Receive([]byte("ab"))
	if irq.high {
		t.Fatal("interrupt below trigger level")
	}
	if !ft.armed {
		t.Fatal("character timeout not armed")
	}
	// 9600 baud 8N1 default: 4 characters of 10 bits.
	if want := 4 * 10 * time.Second / 9600; ft.d < want-time.Microsecond || ft.d > want+time.Microsecond {
		t.Errorf("timeout %v, want about %v", ft.d, want)
	}
	ft.f()
	if !irq.high || rd(u, regIIR) != 0xcc {
		t.Fatalf("timeout: IRQ %v IIR %#x, want 0xcc", irq.high, u.iir)
	}
	if got := rd(u, 0); got != 'a' {
		t.Errorf("read %q", got)
	}
	if irq.high {
		t.Error("RBR read did not clear the timeout interrupt")
	}
	if !ft.armed {
		t.Error("timeout not re-armed with data left in the FIFO")
	}
	ft.f()
	if rd(u, regIIR) != 0xcc {
		t.Error("second timeout not reported")
	}
	rd(u, 0)
	// A stale timer (stopped after it had fired) must not report anything.
	f := ft.f
	u.Receive([]byte("c"))
	wr(u, regIIR, 0x83) // RX FIFO reset stops the timer
	f()
	if irq.high {
		t.Error("stale timer raised an interrupt")
	}
	// The timeout is masked by IER.RDI.
	u.Receive([]byte("d"))
	wr(u, regIER, 0)
	ft.f()
	if irq.high {
		t.Error("timeout raised with IER.RDI clear")
	}
}

func TestRealTimerFires(t *testing.T) {
	irq := make(chan bool, 16)
	u := New(irqChan(irq), io.Discard)
	wr(u, regLCR, 0x80)
	wr(u, 0, 1) // 115200 baud: timeout after ~350us
	wr(u, regLCR, 0x03)
	wr(u, regIIR, 0xc1)
	wr(u, regIER, ierRDI)
	u.Receive([]byte("x"))
	select {
	case high := <-irq:
		if !high {
			t.Fatal("line lowered first")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("character timeout never fired")
	}
	if rd(u, regIIR) != 0xcc {
		t.Errorf("IIR = %#x, want 0xcc", u.iir)
	}
}

type irqChan chan bool

func (c irqChan) SetLevel(high bool) { c <- high }

func TestReset(t *testing.T) {
	u, irq, _, _ := newTest(t)
	wr(u, regIIR, 0x01)
	wr(u, regIER, 0x0f)
	wr(u, regSCR, 0x55)
	u.Receive([]byte("abc"))
	u.Reset()
	if irq.high || u.rxN != 0 || rd(u, regIIR) != 0x01 || rd(u, regSCR) != 0 || rd(u, regLSR) != 0x60 {
		t.Errorf("state after Reset: irq %v rxN %d IIR %#x", irq.high, u.rxN, u.iir)
	}
}

func TestOutOfRange(t *testing.T) {
	u, _, _, _ := newTest(t)
	b := []byte{0}
	u.Read(8, b)
	if b[0] != 0xff {
		t.Errorf("read past the range = %#x, want 0xff", b[0])
	}
	u.Write(100, []byte{1})
	u.Read(7, []byte{0, 0, 0, 0})
}

func BenchmarkTransmit(b *testing.B) {
	u := New(nil, io.Discard)
	lsr := []byte{0}
	thr := []byte{'x'}
	for b.Loop() {
		u.Read(regLSR, lsr)
		u.Write(0, thr)
	}
}

// A host goroutine feeding input through Receive/RXSpace while a "vCPU"
// drains RBR delivers every byte in order (run with -race).
func TestConcurrentReceive(t *testing.T) {
	u := New(nil, nil)
	wr(u, regIIR, 0x81)
	msg := bytes.Repeat([]byte("0123456789"), 50)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := msg
		for len(b) > 0 {
			n := u.Receive(b)
			b = b[n:]
			if n == 0 {
				<-u.RXSpace()
			}
		}
	}()
	var got []byte
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < len(msg) && time.Now().Before(deadline) {
		if rd(u, regLSR)&lsrDR != 0 {
			got = append(got, rd(u, 0))
		}
	}
	<-done
	if !bytes.Equal(got, msg) {
		t.Errorf("received %d bytes, want %d in order", len(got), len(msg))
	}
}
