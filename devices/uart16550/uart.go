// Package uart16550 emulates a 16550A UART the way QEMU's hw/char/serial.c
// does, so that guests (SeaBIOS, Linux's 8250 driver, tiny payloads) see the
// same register behaviour under govmm as under qemu-system-x86_64.
//
// The UART is mapped at an 8-byte port range (COM1 is 0x3f8-0x3ff, IRQ 4).
// Transmitted bytes go straight to an io.Writer; received bytes come from the
// host through Receive. The device is a state machine behind one mutex: the
// vCPU goroutines call Read/Write, an input goroutine calls Receive, and the
// character-timeout timer fires on its own goroutine.
package uart16550

import (
	"io"
	"sync"
	"time"

	"github.com/govmm/govmm/devices"
)

// Register offsets within the 8-byte range.
const (
	regRBR = 0 // receive buffer (read), THR (write), DLL with DLAB
	regIER = 1 // interrupt enable, DLM with DLAB
	regIIR = 2 // interrupt identification (read), FCR (write)
	regLCR = 3
	regMCR = 4
	regLSR = 5
	regMSR = 6
	regSCR = 7
)

// Size is the length of the port range the UART expects to be mapped at.
const Size = 8

const (
	lcrDLAB = 0x80

	ierRDI  = 0x01 // received data available
	ierTHRI = 0x02 // transmitter holding register empty
	ierRLSI = 0x04 // receiver line status
	ierMSI  = 0x08 // modem status

	iirNoInt = 0x01
	iirID    = 0x06 // mask of the interrupt ID bits QEMU compares against
	iirMSI   = 0x00
	iirTHRI  = 0x02
	iirRDI   = 0x04
	iirRLSI  = 0x06
	iirCTI   = 0x0c // character timeout
	iirFE    = 0xc0 // FIFOs enabled

	fcrFE  = 0x01 // FIFO enable
	fcrRFR = 0x02 // receive FIFO reset
	fcrXFR = 0x04 // transmit FIFO reset

	mcrLoop = 0x10
	mcrOUT2 = 0x08

	lsrDR     = 0x01
	lsrOE     = 0x02
	lsrBI     = 0x10
	lsrTHRE   = 0x20
	lsrTEMT   = 0x40
	lsrIntAny = 0x1e // OE, PE, FE, BI: the bits that raise a line-status interrupt

	msrCTS      = 0x10
	msrDSR      = 0x20
	msrDCD      = 0x80
	msrAnyDelta = 0x0f

	fifoLen  = 16
	baudBase = 115200 // QEMU's default "baudbase" property
)

// UART is one 16550A. Create it with New.
type UART struct {
	mu  sync.Mutex
	irq devices.IRQLine
	out io.Writer

	irqHigh bool // level last given to irq, so SetLevel is only called on changes

	rbr, ier, iir, lcr, mcr, lsr, msr, scr, fcr uint8
	divider                                     uint16

	thrIPending     bool // THRE interrupt pending (cleared by IIR read or THR write)
	timeoutIPending bool // character timeout interrupt pending

	rx    [fifoLen]byte // receive FIFO ring (FIFO mode only; non-FIFO uses rbr)
	rxPos int           // index of the oldest byte
	rxN   int           // number of bytes held
	rxITL int           // receive interrupt trigger level in bytes

	charTime time.Duration // time to send one character at the current line settings

	// The character timeout timer. afterFunc is time.AfterFunc, replaced in
	// tests. timerGen invalidates callbacks of timers stopped too late.
	afterFunc func(time.Duration, func()) (stop func() bool)
	stopTimer func() bool
	timerGen  uint64

	space chan struct{} // signalled when the receiver can take more bytes
	txBuf [1]byte       // reused for out.Write so a byte sent costs no allocation
}

// New returns a UART in its power-on state. irq is its interrupt line (ISA
// IRQ 4 for COM1); out receives every transmitted byte. out is called with
// the UART's lock held, from the vCPU goroutine that wrote THR, so it must
// not block for long (a buffered or non-blocking writer is best); its errors
// are ignored, as QEMU drops bytes its chardev cannot take. out may be nil.
func New(irq devices.IRQLine, out io.Writer) *UART {
	if irq == nil {
		irq = devices.NoIRQ
	}
	if out == nil {
		out = io.Discard
	}
	u := &UART{
		irq:   irq,
		out:   out,
		space: make(chan struct{}, 1),
		afterFunc: func(d time.Duration, f func()) func() bool {
			return time.AfterFunc(d, f).Stop
		},
	}
	u.resetLocked()
	return u
}

// Reset puts the UART back in its power-on state, as on a machine reset.
// Unlike QEMU (whose reset keeps FCR), FCR is cleared too, so IIR's FIFO bits
// and the FIFO mode stay consistent.
func (u *UART) Reset() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.resetLocked()
	u.signalSpace()
}

func (u *UART) resetLocked() {
	u.rbr = 0
	u.ier = 0
	u.iir = iirNoInt
	u.lcr = 0
	u.lsr = lsrTEMT | lsrTHRE
	u.msr = msrDCD | msrDSR | msrCTS
	u.divider = 0x0c // 9600 baud
	u.mcr = mcrOUT2
	u.scr = 0
	u.fcr = 0
	u.rxITL = 1
	u.rxPos, u.rxN = 0, 0
	u.thrIPending = false
	u.timeoutIPending = false
	u.stopTimeout()
	u.charTime = 10 * time.Second / 9600 // QEMU's reset value: 9600 baud, 8N1
	u.setIRQ(false)
}

// Read implements devices.Device. Each byte of a wider access reads the
// register at the next offset, as QEMU splits accesses to byte size.
func (u *UART) Read(offset uint64, data []byte) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for i := range data {
		off := offset + uint64(i)
		if off >= Size {
			data[i] = 0xff
			continue
		}
		data[i] = u.readReg(off)
	}
}

// Write implements devices.Device, byte by byte like Read.
func (u *UART) Write(offset uint64, data []byte) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for i, b := range data {
		off := offset + uint64(i)
		if off >= Size {
			continue
		}
		u.writeReg(off, b)
	}
}

func (u *UART) readReg(off uint64) uint8 {
	switch off {
	case regRBR:
		if u.lcr&lcrDLAB != 0 {
			return uint8(u.divider)
		}
		var ret uint8
		if u.fcr&fcrFE != 0 {
			if u.rxN > 0 {
				ret = u.rx[u.rxPos]
				u.rxPos = (u.rxPos + 1) % fifoLen
				u.rxN--
			}
			if u.rxN == 0 {
				u.lsr &^= lsrDR | lsrBI
			} else {
				u.armTimeout()
			}
			u.timeoutIPending = false
		} else {
			ret = u.rbr
			u.lsr &^= lsrDR | lsrBI
		}
		u.updateIRQ()
		if u.mcr&mcrLoop == 0 {
			u.signalSpace()
		}
		return ret
	case regIER:
		if u.lcr&lcrDLAB != 0 {
			return uint8(u.divider >> 8)
		}
		return u.ier
	case regIIR:
		ret := u.iir
		if ret&iirID == iirTHRI {
			u.thrIPending = false
			u.updateIRQ()
		}
		return ret
	case regLCR:
		return u.lcr
	case regMCR:
		return u.mcr
	case regLSR:
		ret := u.lsr
		if u.lsr&(lsrBI|lsrOE) != 0 {
			u.lsr &^= lsrBI | lsrOE
			u.updateIRQ()
		}
		return ret
	case regMSR:
		if u.mcr&mcrLoop != 0 {
			// In loopback the modem control outputs drive the status inputs:
			// OUT2->DCD, OUT1->RI, RTS->CTS, DTR->DSR.
			return (u.mcr&0x0c)<<4 | (u.mcr&0x02)<<3 | (u.mcr&0x01)<<5
		}
		ret := u.msr
		if u.msr&msrAnyDelta != 0 {
			u.msr &= 0xf0
			u.updateIRQ()
		}
		return ret
	default: // regSCR
		return u.scr
	}
}

func (u *UART) writeReg(off uint64, val uint8) {
	switch off {
	case regRBR:
		if u.lcr&lcrDLAB != 0 {
			u.divider = u.divider&0xff00 | uint16(val)
			u.updateParams()
			return
		}
		u.transmit(val)
	case regIER:
		if u.lcr&lcrDLAB != 0 {
			u.divider = u.divider&0x00ff | uint16(val)<<8
			u.updateParams()
			return
		}
		changed := (u.ier ^ val) & 0x0f
		u.ier = val & 0x0f
		// Enabling THRI while THR is empty raises the interrupt even if an
		// IIR read had acknowledged it before (QEMU does this; Windows
		// relies on it).
		if changed&ierTHRI != 0 {
			u.thrIPending = u.ier&ierTHRI != 0 && u.lsr&lsrTHRE != 0
		}
		if changed != 0 {
			u.updateIRQ()
		}
	case regIIR: // FCR
		wasFIFO := u.fcr&fcrFE != 0
		if (val^u.fcr)&fcrFE != 0 {
			val |= fcrXFR | fcrRFR // toggling FIFO mode flushes both FIFOs
		}
		if val&fcrRFR != 0 {
			u.lsr &^= lsrDR | lsrBI
			u.stopTimeout()
			u.timeoutIPending = false
			u.rxPos, u.rxN = 0, 0
		}
		if val&fcrXFR != 0 {
			// Bytes are sent the moment THR is written, so the transmit
			// FIFO is always empty here; only the flags change.
			u.lsr |= lsrTHRE
			u.thrIPending = true
		}
		u.fcr = val & 0xc9
		if u.fcr&fcrFE != 0 {
			u.iir |= iirFE
			u.rxITL = [4]int{1, 4, 8, 14}[u.fcr>>6]
		} else {
			u.iir &^= iirFE
		}
		u.updateIRQ()
		if val&fcrRFR != 0 || wasFIFO != (u.fcr&fcrFE != 0) {
			u.signalSpace()
		}
	case regLCR:
		u.lcr = val
		u.updateParams()
	case regMCR:
		wasLoop := u.mcr&mcrLoop != 0
		u.mcr = val & 0x1f
		if wasLoop && u.mcr&mcrLoop == 0 {
			u.signalSpace() // host input is connected again
		}
	case regLSR, regMSR:
		// Read-only.
	default: // regSCR
		u.scr = val
	}
}

// transmit handles a THR write. QEMU sends the byte at once, so THR and the
// transmit FIFO never hold data across a register access: THRE drops, the
// interrupt line follows, and then THRE and its interrupt come straight back.
// With IER.THRI set this gives the interrupt controller a fresh edge per
// byte, which Linux's 8250 driver relies on.
func (u *UART) transmit(b uint8) {
	u.thrIPending = false
	u.lsr &^= lsrTHRE | lsrTEMT
	u.updateIRQ()

	u.lsr |= lsrTHRE
	u.thrIPending = true
	u.updateIRQ()

	if u.mcr&mcrLoop != 0 {
		u.receiveByte(b)
	} else {
		// A chardev that fails drops the byte, as in QEMU.
		u.txBuf[0] = b
		_, _ = u.out.Write(u.txBuf[:])
	}
	u.lsr |= lsrTEMT
}

// receiveByte puts one byte into the receiver, as QEMU's serial_receive1.
func (u *UART) receiveByte(b uint8) {
	if u.fcr&fcrFE != 0 {
		if u.rxN < fifoLen {
			u.rx[(u.rxPos+u.rxN)%fifoLen] = b
			u.rxN++
		} else {
			u.lsr |= lsrOE // overruns do not overwrite the FIFO
		}
		u.lsr |= lsrDR
		u.armTimeout()
	} else {
		if u.lsr&lsrDR != 0 {
			u.lsr |= lsrOE
		}
		u.rbr = b
		u.lsr |= lsrDR
	}
	u.updateIRQ()
}

// canReceive is how many bytes the receiver takes now without overrun. Like
// QEMU it only offers one byte at a time in non-FIFO mode; in FIFO mode it
// offers all free space (QEMU offers only up to the trigger level, which
// changes when the guest is interrupted but never loses data).
func (u *UART) canReceive() int {
	if u.mcr&mcrLoop != 0 {
		return 0 // in loopback the serial input is disconnected
	}
	if u.fcr&fcrFE != 0 {
		return fifoLen - u.rxN
	}
	if u.lsr&lsrDR != 0 {
		return 0
	}
	return 1
}

// Receive queues bytes from the host side (e.g. stdin) into the receiver and
// returns how many it accepted: it never overruns, so it may accept fewer
// than len(b), or none while the guest has not read what came before, or in
// loopback mode. Retry the rest after RXSpace signals.
func (u *UART) Receive(b []byte) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := min(len(b), u.canReceive())
	for _, c := range b[:n] {
		u.receiveByte(c)
	}
	return n
}

// RXSpace returns a channel that gets a value whenever the receiver may have
// room again (the guest read RBR, reset the FIFO, left loopback, ...). The
// channel has a buffer of one, so a signal between a short Receive and the
// wait is not lost; a spurious wake-up just makes Receive return 0 again:
//
//	for len(b) > 0 {
//		n := u.Receive(b)
//		b = b[n:]
//		if n == 0 {
//			<-u.RXSpace()
//		}
//	}
func (u *UART) RXSpace() <-chan struct{} { return u.space }

func (u *UART) signalSpace() {
	select {
	case u.space <- struct{}{}:
	default:
	}
}

// updateIRQ recomputes IIR from the pending conditions in QEMU's priority
// order and drives the IRQ line. QEMU does not gate the line with MCR.OUT2,
// and neither does this.
func (u *UART) updateIRQ() {
	id := uint8(iirNoInt)
	switch {
	case u.ier&ierRLSI != 0 && u.lsr&lsrIntAny != 0:
		id = iirRLSI
	case u.ier&ierRDI != 0 && u.timeoutIPending:
		id = iirCTI
	case u.ier&ierRDI != 0 && u.lsr&lsrDR != 0 && (u.fcr&fcrFE == 0 || u.rxN >= u.rxITL):
		id = iirRDI
	case u.ier&ierTHRI != 0 && u.thrIPending:
		id = iirTHRI
	case u.ier&ierMSI != 0 && u.msr&msrAnyDelta != 0:
		id = iirMSI
	}
	u.iir = id | u.iir&0xf0
	u.setIRQ(id != iirNoInt)
}

// setIRQ drives the line on changes only. It runs with u.mu held, so the
// line always follows the order of state changes; the IRQLine must not call
// back into the UART.
func (u *UART) setIRQ(high bool) {
	if high == u.irqHigh {
		return
	}
	u.irqHigh = high
	u.irq.SetLevel(high)
}

// updateParams recomputes the character time from the divisor and LCR, as
// QEMU's serial_update_parameters; it only paces the character timeout.
func (u *UART) updateParams() {
	frame := 1 // start bit
	if u.lcr&0x08 != 0 {
		frame++ // parity
	}
	if u.lcr&0x04 != 0 {
		frame += 2
	} else {
		frame++
	}
	frame += int(u.lcr&0x03) + 5
	speed := 3500.0 // QEMU: a zero divisor gives about 3500 baud
	if u.divider != 0 {
		speed = float64(baudBase) / float64(u.divider)
	}
	u.charTime = time.Duration(float64(time.Second) / speed * float64(frame))
}

// armTimeout (re)starts the character timeout: when the receive FIFO holds
// data that nobody reads for four character times, IIR reports 0x0C so the
// guest collects bytes below the trigger level.
func (u *UART) armTimeout() {
	u.stopTimeout()
	gen := u.timerGen
	u.stopTimer = u.afterFunc(4*u.charTime, func() { u.fifoTimeout(gen) })
}

func (u *UART) stopTimeout() {
	u.timerGen++
	if u.stopTimer != nil {
		u.stopTimer()
		u.stopTimer = nil
	}
}

func (u *UART) fifoTimeout(gen uint64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if gen != u.timerGen {
		return // stopped or re-armed after this timer had fired
	}
	u.stopTimer = nil
	if u.rxN > 0 {
		u.timeoutIPending = true
		u.updateIRQ()
	}
}
