// Package i8042 emulates the PC keyboard controller with a PS/2 keyboard and
// mouse behind it, as QEMU's hw/input/pckbd.c and hw/input/ps2.c (with the
// controller's "extended state", QEMU's default).
//
// Ports: QEMU maps the data port at 0x60 and the status/command port at
// 0x64, one byte each. The Controller itself answers a 5-byte range based at
// 0x60 (offset 0 data, offset 4 status/command; offsets 1-3 read 0xff and
// ignore writes), but 0x61 is the PC's system control port B, so the board
// should rather map DataPort() at 0x60 and CommandPort() at 0x64, size 1.
//
// Keyboard data raises IRQ1 and mouse data IRQ12, while the output buffer is
// full and the command byte enables it. Only byte accesses are meaningful:
// wider reads return 0xff and wider writes are ignored.
package i8042

import (
	"sync"

	"github.com/govmm/govmm/devices"
)

// Size is the length of the range Controller answers (0x60-0x64).
const Size = 5

// Controller commands (written to port 0x64).
const (
	cmdReadMode     = 0x20
	cmdWriteMode    = 0x60
	cmdMouseDisable = 0xa7
	cmdMouseEnable  = 0xa8
	cmdTestMouse    = 0xa9
	cmdSelfTest     = 0xaa
	cmdKbdTest      = 0xab
	cmdKbdDisable   = 0xad
	cmdKbdEnable    = 0xae
	cmdReadInport   = 0xc0
	cmdReadOutport  = 0xd0
	cmdWriteOutport = 0xd1
	cmdWriteObuf    = 0xd2
	cmdWriteAuxObuf = 0xd3
	cmdWriteMouse   = 0xd4
	cmdDisableA20   = 0xdd
	cmdEnableA20    = 0xdf
	cmdPulseBits    = 0xf0
	cmdReset        = 0xfe
	cmdNoOp         = 0xff
)

// Status register bits.
const (
	statOBF      = 0x01
	statSelfTest = 0x04
	statCmd      = 0x08
	statUnlocked = 0x10
	statMouseOBF = 0x20
)

// Command byte ("mode") bits.
const (
	modeKbdInt       = 0x01
	modeMouseInt     = 0x02
	modeDisableKbd   = 0x10
	modeDisableMouse = 0x20
	modeKCC          = 0x40 // translate set 2 scancodes to set 1
)

// Output port bits.
const (
	outReset    = 0x01 // 0 resets the CPU
	outA20      = 0x02
	outOBF      = 0x10
	outMouseOBF = 0x20
	outOnes     = 0xcc // bits QEMU keeps set so A20 toggling round-trips
)

// Sources that may fill the output buffer, in priority order. The values of
// pendKbd and pendAux equal the mode's disable bits so one mask hides them.
const (
	pendCtrlKbd = 0x04 // a controller reply, as if from the keyboard
	pendCtrlAux = 0x08 // a controller reply, as if from the mouse
	pendKbd     = modeDisableKbd
	pendAux     = modeDisableMouse
)

// Controller is the i8042 with its keyboard and mouse. Create it with New.
type Controller struct {
	mu        sync.Mutex
	kbdIRQ    devices.IRQLine
	mouseIRQ  devices.IRQLine
	resetFunc func()
	kbdHigh   bool
	mouseHigh bool

	mode     uint8
	status   uint8
	outport  uint8
	writeCmd uint8 // controller command waiting for its data byte, or 0
	obdata   uint8 // last byte presented at the data port
	obsrc    uint8 // which pend* source the full output buffer holds
	cbdata   uint8 // controller reply byte
	ctrl     uint8 // pendCtrlKbd, pendCtrlAux or 0: cbdata is unread

	kbd   keyboard
	mouse mouse
}

// New returns a controller in its power-on state. kbdIRQ is ISA IRQ 1 and
// mouseIRQ ISA IRQ 12 (either may be nil). reset is called when the guest
// pulses the CPU reset line (command 0xFE, or output port bit 0 cleared),
// from the vCPU goroutine doing the access and without the controller's
// lock held, so it may call Reset.
func New(kbdIRQ, mouseIRQ devices.IRQLine, reset func()) *Controller {
	if kbdIRQ == nil {
		kbdIRQ = devices.NoIRQ
	}
	if mouseIRQ == nil {
		mouseIRQ = devices.NoIRQ
	}
	if reset == nil {
		reset = func() {}
	}
	c := &Controller{kbdIRQ: kbdIRQ, mouseIRQ: mouseIRQ, resetFunc: reset}
	c.resetLocked()
	return c
}

// Reset puts the controller, keyboard and mouse in their power-on state.
func (c *Controller) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resetLocked()
}

func (c *Controller) resetLocked() {
	c.mode = modeKbdInt | modeMouseInt
	c.status = statCmd | statUnlocked
	c.outport = outReset | outA20 | outOnes
	c.writeCmd = 0
	c.ctrl = 0
	c.kbd.reset()
	c.mouse.reset()
	c.deassert()
}

// A20 reports whether the output port enables the A20 gate.
func (c *Controller) A20() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.outport&outA20 != 0
}

// LEDs returns the keyboard LED state last set by the guest (command 0xED):
// bit 0 scroll lock, bit 1 num lock, bit 2 caps lock.
func (c *Controller) LEDs() uint8 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kbd.leds
}

// KeyScancode queues scancodes from the host keyboard, in scancode set 2
// (break codes prefixed by 0xF0) or whichever set the guest selected. When
// the guest enabled translation in the command byte they reach it in set 1,
// as through a real 8042. Bytes are dropped while scanning is disabled or
// the 16-byte keyboard queue is full, as on hardware.
func (c *Controller) KeyScancode(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.kbd.scanEnabled {
		return
	}
	for _, code := range b {
		if c.mode&modeKCC != 0 {
			if code == 0xf0 {
				c.kbd.breakPrefix = true
				continue
			}
			code = translateTable[code]
			if c.kbd.breakPrefix {
				code |= 0x80
				c.kbd.breakPrefix = false
			}
		}
		c.kbd.queue(code)
	}
	c.safeUpdate(0)
}

// Read implements devices.Device for the 5-byte range at 0x60.
func (c *Controller) Read(offset uint64, data []byte) {
	switch {
	case len(data) != 1 || (offset != 0 && offset != 4):
		fill(data)
	case offset == 0:
		data[0] = c.readData()
	default:
		data[0] = c.readStatus()
	}
}

// Write implements devices.Device for the 5-byte range at 0x60.
func (c *Controller) Write(offset uint64, data []byte) {
	if len(data) != 1 {
		return
	}
	var reset bool
	switch offset {
	case 0:
		reset = c.writeData(data[0])
	case 4:
		reset = c.writeCommand(data[0])
	}
	if reset {
		c.resetFunc()
	}
}

// DataPort returns the data port (0x60) as a 1-byte device.
func (c *Controller) DataPort() devices.Device { return port{c, 0} }

// CommandPort returns the status/command port (0x64) as a 1-byte device.
func (c *Controller) CommandPort() devices.Device { return port{c, 4} }

type port struct {
	c    *Controller
	base uint64
}

func (p port) Read(offset uint64, data []byte) {
	if offset != 0 {
		fill(data)
		return
	}
	p.c.Read(p.base, data)
}

func (p port) Write(offset uint64, data []byte) {
	if offset == 0 {
		p.c.Write(p.base, data)
	}
}

func fill(data []byte) {
	for i := range data {
		data[i] = 0xff
	}
}

func (c *Controller) readStatus() uint8 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

func (c *Controller) readData() uint8 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status&statOBF == 0 {
		// Nothing new: hardware (and QEMU) show the last byte again.
		return c.obdata
	}
	c.deassert()
	switch c.obsrc {
	case pendKbd:
		c.obdata = c.kbd.read()
		// QEMU's PS/2 line drops and rises again: other sources get their
		// turn before the rest of the keyboard queue.
		c.safeUpdate(pendKbd)
	case pendAux:
		c.obdata = c.mouse.read()
		c.safeUpdate(pendAux)
	default:
		c.obdata = c.cbdata
		c.ctrl = 0
	}
	c.safeUpdate(0)
	return c.obdata
}

// writeCommand handles a byte written to port 0x64 and reports whether the
// CPU reset line was pulsed.
func (c *Controller) writeCommand(v uint8) (reset bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// 0xF0-0xFF pulse output port bits 3-0 (a 0 bit pulses). Only bit 0,
	// the CPU reset, has an effect.
	if v&cmdPulseBits == cmdPulseBits {
		if v&1 == 0 {
			v = cmdReset
		} else {
			v = cmdNoOp
		}
	}
	switch v {
	case cmdReadMode:
		c.reply(c.mode, false)
	case cmdWriteMode, cmdWriteObuf, cmdWriteAuxObuf, cmdWriteMouse, cmdWriteOutport:
		c.writeCmd = v
	case cmdMouseDisable:
		c.mode |= modeDisableMouse
	case cmdMouseEnable:
		c.mode &^= modeDisableMouse
		c.safeUpdate(0)
	case cmdTestMouse, cmdKbdTest:
		c.reply(0x00, false)
	case cmdSelfTest:
		c.status |= statSelfTest
		c.reply(0x55, false)
	case cmdKbdDisable:
		c.mode |= modeDisableKbd
	case cmdKbdEnable:
		c.mode &^= modeDisableKbd
		c.safeUpdate(0)
	case cmdReadInport:
		c.reply(0x80, false)
	case cmdReadOutport:
		c.reply(c.outport, false)
	case cmdEnableA20:
		c.outport |= outA20
	case cmdDisableA20:
		c.outport &^= outA20
	case cmdReset:
		return true
	default:
		// cmdNoOp and commands QEMU does not implement.
	}
	return false
}

// writeData handles a byte written to port 0x60 and reports whether the
// CPU reset line was pulled (output port bit 0 cleared).
func (c *Controller) writeData(v uint8) (reset bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.writeCmd {
	case 0:
		c.kbd.write(v, c.mode&modeKCC != 0)
		c.mode &^= modeDisableKbd // talking to the keyboard re-enables it
		c.safeUpdate(0)
	case cmdWriteMode:
		c.mode = v
		c.updateLines()
		c.safeUpdate(0)
	case cmdWriteObuf:
		c.reply(v, false)
	case cmdWriteAuxObuf:
		c.reply(v, true)
	case cmdWriteOutport:
		c.outport = v
		reset = v&outReset == 0
	case cmdWriteMouse:
		c.mouse.write(v)
		c.mode &^= modeDisableMouse
		c.safeUpdate(0)
	}
	c.writeCmd = 0
	return reset
}

// reply queues a byte from the controller itself. A newer reply replaces an
// unread one.
func (c *Controller) reply(b uint8, aux bool) {
	c.cbdata = b
	c.ctrl = pendCtrlKbd
	if aux {
		c.ctrl = pendCtrlAux
	}
	c.safeUpdate(0)
}

// pending returns the sources with data, hiding the keyboard and mouse while
// their interfaces are disabled in the command byte.
func (c *Controller) pending() uint8 {
	p := c.ctrl
	if c.kbd.len() > 0 {
		p |= pendKbd
	}
	if c.mouse.len() > 0 {
		p |= pendAux
	}
	return p &^ (c.mode & (pendKbd | pendAux))
}

// safeUpdate latches the highest-priority pending source (other than
// exclude) into the output buffer, unless the buffer is already full.
func (c *Controller) safeUpdate(exclude uint8) {
	if c.status&statOBF != 0 {
		return
	}
	p := c.pending() &^ exclude
	if p == 0 {
		return
	}
	c.status |= statOBF
	c.outport |= outOBF
	switch {
	case p&pendCtrlKbd != 0:
		c.obsrc = pendCtrlKbd
	case p&pendCtrlAux != 0:
		c.obsrc = pendCtrlAux
		c.status |= statMouseOBF
		c.outport |= outMouseOBF
	case p&pendKbd != 0:
		c.obsrc = pendKbd
	default:
		c.obsrc = pendAux
		c.status |= statMouseOBF
		c.outport |= outMouseOBF
	}
	c.updateLines()
}

// deassert empties the output buffer flags and lowers the lines.
func (c *Controller) deassert() {
	c.status &^= statOBF | statMouseOBF
	c.outport &^= outOBF | outMouseOBF
	c.updateLines()
}

// updateLines drives IRQ1 and IRQ12 from the output buffer state. Like QEMU
// it keeps IRQ1 low while the keyboard interface is disabled. The lines are
// set with c.mu held; they must not call back into the controller.
func (c *Controller) updateLines() {
	var kbd, mouse bool
	if c.status&statOBF != 0 {
		if c.status&statMouseOBF != 0 {
			mouse = c.mode&modeMouseInt != 0
		} else {
			kbd = c.mode&modeKbdInt != 0 && c.mode&modeDisableKbd == 0
		}
	}
	if kbd != c.kbdHigh {
		c.kbdHigh = kbd
		c.kbdIRQ.SetLevel(kbd)
	}
	if mouse != c.mouseHigh {
		c.mouseHigh = mouse
		c.mouseIRQ.SetLevel(mouse)
	}
}
