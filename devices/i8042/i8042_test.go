package i8042

import (
	"bytes"
	"testing"
)

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

type rig struct {
	c          *Controller
	kbd, mouse *fakeIRQ
	resets     int
}

func newRig() *rig {
	r := &rig{kbd: &fakeIRQ{}, mouse: &fakeIRQ{}}
	r.c = New(r.kbd, r.mouse, func() { r.resets++ })
	return r
}

func (r *rig) status() uint8 {
	b := []byte{0}
	r.c.Read(4, b)
	return b[0]
}

func (r *rig) data() uint8 {
	b := []byte{0}
	r.c.Read(0, b)
	return b[0]
}

func (r *rig) cmd(v uint8)   { r.c.Write(4, []byte{v}) }
func (r *rig) write(v uint8) { r.c.Write(0, []byte{v}) }

// drain reads the output buffer while it is full.
func (r *rig) drain(t *testing.T) []byte {
	t.Helper()
	var out []byte
	for i := 0; r.status()&statOBF != 0; i++ {
		if i > 64 {
			t.Fatal("output buffer never empties")
		}
		out = append(out, r.data())
	}
	return out
}

func TestPowerOn(t *testing.T) {
	r := newRig()
	if got := r.status(); got != 0x18 {
		t.Errorf("status = %#x, want 0x18", got)
	}
	r.cmd(cmdReadMode)
	if st := r.status(); st&statOBF == 0 {
		t.Fatal("no reply to 0x20")
	}
	if !r.kbd.high {
		t.Error("IRQ1 not raised with KBD_INT set")
	}
	if got := r.data(); got != 0x03 {
		t.Errorf("command byte = %#x, want 0x03", got)
	}
	if r.kbd.high || r.status()&statOBF != 0 {
		t.Error("OBF or IRQ1 left after reading the reply")
	}
	if got := r.data(); got != 0x03 {
		t.Errorf("re-read of empty buffer = %#x, want the last byte", got)
	}
}

func TestControllerCommands(t *testing.T) {
	r := newRig()
	r.cmd(cmdSelfTest)
	if got := r.drain(t); !bytes.Equal(got, []byte{0x55}) {
		t.Errorf("self test = % x, want 55", got)
	}
	if r.status()&statSelfTest == 0 {
		t.Error("status system flag not set after self test")
	}
	r.cmd(cmdKbdTest)
	if got := r.drain(t); !bytes.Equal(got, []byte{0x00}) {
		t.Errorf("interface test = % x, want 00", got)
	}
	r.cmd(cmdWriteMode)
	r.write(0x65)
	r.cmd(cmdReadMode)
	if got := r.drain(t); !bytes.Equal(got, []byte{0x65}) {
		t.Errorf("command byte = % x, want 65", got)
	}
	r.cmd(cmdKbdEnable)
	r.cmd(cmdReadMode)
	if got := r.drain(t); got[0]&modeDisableKbd != 0 {
		t.Errorf("0xAE left the disable bit: %#x", got[0])
	}
	r.cmd(cmdKbdDisable)
	r.cmd(cmdReadMode)
	if got := r.drain(t); got[0]&modeDisableKbd == 0 {
		t.Errorf("0xAD did not set the disable bit: %#x", got[0])
	}
	r.cmd(cmdWriteObuf)
	r.write(0x42)
	if got := r.drain(t); !bytes.Equal(got, []byte{0x42}) {
		t.Errorf("0xD2 echo = % x", got)
	}
	r.cmd(cmdWriteMode)
	r.write(0x03) // both interrupts on
	r.cmd(cmdWriteAuxObuf)
	r.write(0x43)
	if r.status()&statMouseOBF == 0 || !r.mouse.high {
		t.Error("0xD3 byte not presented as mouse data")
	}
	if got := r.data(); got != 0x43 {
		t.Errorf("0xD3 echo = %#x", got)
	}
}

func TestOutputPortAndReset(t *testing.T) {
	r := newRig()
	r.cmd(cmdReadOutport)
	if got := r.drain(t); got[0]&(outReset|outA20) != outReset|outA20 {
		t.Errorf("output port = %#x, want reset and A20 high", got[0])
	}
	r.cmd(cmdDisableA20)
	if r.c.A20() {
		t.Error("A20 still on after 0xDD")
	}
	r.cmd(cmdWriteOutport)
	r.write(0x03)
	if !r.c.A20() || r.resets != 0 {
		t.Errorf("outport 0x03: A20 %v, resets %d", r.c.A20(), r.resets)
	}
	r.cmd(cmdWriteOutport)
	r.write(0x02) // bit 0 clear: CPU reset
	if r.resets != 1 {
		t.Errorf("resets = %d after clearing outport bit 0", r.resets)
	}
	r.cmd(cmdReset)
	if r.resets != 2 {
		t.Errorf("resets = %d after 0xFE", r.resets)
	}
	r.cmd(0xf1) // pulse bits 3-1 only: no reset
	if r.resets != 2 {
		t.Error("0xF1 reset the CPU")
	}
	r.cmd(0xf0) // pulses bit 0 too
	if r.resets != 3 {
		t.Error("0xF0 did not reset the CPU")
	}
}

// The reset callback runs without the controller's lock, so it may reset
// the controller.
func TestResetCallbackMayReset(t *testing.T) {
	var c *Controller
	c = New(nil, nil, func() { c.Reset() })
	c.Write(4, []byte{cmdReset})
}

func TestKeyboardCommands(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bytes []byte
		want  []byte
	}{
		{"reset", []byte{0xff}, []byte{0xfa, 0xaa}},
		{"identify", []byte{0xf2}, []byte{0xfa, 0xab, 0x83}},
		{"enable", []byte{0xf4}, []byte{0xfa}},
		{"disable", []byte{0xf5}, []byte{0xfa}},
		{"leds", []byte{0xed, 0x07}, []byte{0xfa, 0xfa}},
		{"typematic", []byte{0xf3, 0x20}, []byte{0xfa, 0xfa}},
		{"echo", []byte{0xee}, []byte{0xee}},
		{"get set", []byte{0xf0, 0x00}, []byte{0xfa, 0xfa, 0x02}},
		{"bad set", []byte{0xf0, 0x07}, []byte{0xfa, 0xfe}},
		{"unknown", []byte{0x77}, []byte{0xfe}},
	} {
		r := newRig()
		var got []byte
		for _, b := range tc.bytes {
			r.write(b)
			got = append(got, r.drain(t)...)
		}
		if !bytes.Equal(got, tc.want) {
			t.Errorf("%s: % x, want % x", tc.name, got, tc.want)
		}
	}
	r := newRig()
	r.write(0xed)
	r.write(0x05)
	if r.c.LEDs() != 0x05 {
		t.Errorf("LEDs = %#x", r.c.LEDs())
	}
	// With translation on, identify answers 0x41 and the set reads as 0x41.
	r.cmd(cmdWriteMode)
	r.write(0x61)
	r.write(0xf2)
	if got := r.drain(t); !bytes.Equal(got, []byte{0xfa, 0xab, 0x41}) {
		t.Errorf("translated identify = % x", got)
	}
}

func TestKeyboardIRQ(t *testing.T) {
	r := newRig()
	r.write(0xff)
	if !r.kbd.high || r.kbd.edges != 1 {
		t.Fatalf("IRQ1 high=%v edges=%d after reset command", r.kbd.high, r.kbd.edges)
	}
	r.data()
	// The next byte is latched at once, with a fresh edge.
	if !r.kbd.high || r.kbd.edges != 2 {
		t.Errorf("IRQ1 high=%v edges=%d after reading ACK", r.kbd.high, r.kbd.edges)
	}
	if got := r.data(); got != 0xaa {
		t.Errorf("second byte %#x, want 0xaa", got)
	}
	if r.kbd.high {
		t.Error("IRQ1 high with the queue empty")
	}
	// Interrupt bit clear: OBF set but no IRQ1.
	r.cmd(cmdWriteMode)
	r.write(0x00)
	r.write(0xf4)
	if r.status()&statOBF == 0 || r.kbd.high {
		t.Errorf("KBD_INT clear: status %#x IRQ1 %v", r.status(), r.kbd.high)
	}
	// Setting it raises IRQ1 for the byte already waiting.
	r.cmd(cmdWriteMode)
	r.write(0x01)
	if !r.kbd.high {
		t.Error("enabling KBD_INT did not raise IRQ1 for pending data")
	}
}

func TestKeyScancode(t *testing.T) {
	r := newRig()
	r.c.KeyScancode([]byte{0x1c, 0xf0, 0x1c}) // 'A' make and break, set 2
	if got := r.drain(t); !bytes.Equal(got, []byte{0x1c, 0xf0, 0x1c}) {
		t.Errorf("raw scancodes % x", got)
	}
	r.cmd(cmdWriteMode)
	r.write(0x41) // translate, KBD_INT
	r.c.KeyScancode([]byte{0x1c, 0xf0, 0x1c})
	if got := r.drain(t); !bytes.Equal(got, []byte{0x1e, 0x9e}) {
		t.Errorf("translated scancodes % x, want 1e 9e", got)
	}
	// Keyboard disabled by the controller: data is held, not lost.
	r.cmd(cmdKbdDisable)
	r.c.KeyScancode([]byte{0x29})
	if r.status()&statOBF != 0 {
		t.Error("data presented while the keyboard interface is disabled")
	}
	r.cmd(cmdKbdEnable)
	if got := r.drain(t); !bytes.Equal(got, []byte{0x39}) {
		t.Errorf("held scancode % x, want 39", got)
	}
	// Scanning disabled by the keyboard: keys are dropped.
	r.write(0xf5)
	r.drain(t)
	r.c.KeyScancode([]byte{0x29})
	if r.status()&statOBF != 0 {
		t.Error("key queued while scanning is disabled")
	}
	// The queue holds 16 bytes.
	r.write(0xf4)
	r.drain(t)
	r.cmd(cmdWriteMode)
	r.write(0x01)
	r.c.KeyScancode(bytes.Repeat([]byte{0x1c}, 20))
	if got := r.drain(t); len(got) != 16 {
		t.Errorf("drained %d bytes, want 16", len(got))
	}
}

// A command reply goes ahead of queued scancodes.
func TestReplyBeforeScancodes(t *testing.T) {
	r := newRig()
	r.cmd(cmdKbdDisable)
	r.c.KeyScancode([]byte{0x1c, 0x32})
	r.write(0xf2) // also re-enables the keyboard
	if got := r.drain(t); !bytes.Equal(got, []byte{0xfa, 0xab, 0x83, 0x1c, 0x32}) {
		t.Errorf("% x, want replies then scancodes", got)
	}
}

func TestMouse(t *testing.T) {
	r := newRig()
	send := func(b ...byte) []byte {
		var got []byte
		for _, v := range b {
			r.cmd(cmdWriteMouse)
			r.write(v)
			got = append(got, r.drain(t)...)
		}
		return got
	}
	if got := send(0xff); !bytes.Equal(got, []byte{0xfa, 0xaa, 0x00}) {
		t.Errorf("mouse reset % x", got)
	}
	if r.mouse.edges == 0 || r.kbd.edges != 0 {
		t.Errorf("mouse data on IRQ12 %d times, IRQ1 %d", r.mouse.edges, r.kbd.edges)
	}
	if got := send(0xf2); !bytes.Equal(got, []byte{0xfa, 0x00}) {
		t.Errorf("mouse id % x", got)
	}
	send(0xf3, 200, 0xf3, 100, 0xf3, 80)
	if got := send(0xf2); !bytes.Equal(got, []byte{0xfa, 0x03}) {
		t.Errorf("mouse id after IntelliMouse knock % x, want fa 03", got)
	}
	if got := send(0xf4, 0xe9); !bytes.Equal(got, []byte{0xfa, 0xfa, 0x20, 0x02, 80}) {
		t.Errorf("enable + status % x", got)
	}
	r.cmd(cmdTestMouse)
	if got := r.drain(t); !bytes.Equal(got, []byte{0x00}) {
		t.Errorf("aux test % x", got)
	}
	r.cmd(cmdMouseDisable)
	r.cmd(cmdWriteAuxObuf)
	r.write(0x11) // controller data is not held by the disable bit
	if got := r.drain(t); !bytes.Equal(got, []byte{0x11}) {
		t.Errorf("aux obuf % x", got)
	}
}

func TestPorts(t *testing.T) {
	r := newRig()
	d, c := r.c.DataPort(), r.c.CommandPort()
	c.Write(0, []byte{cmdSelfTest})
	b := []byte{0}
	c.Read(0, b)
	if b[0]&statOBF == 0 {
		t.Fatal("command port status lacks OBF")
	}
	d.Read(0, b)
	if b[0] != 0x55 {
		t.Errorf("data port read %#x, want 0x55", b[0])
	}
	wide := []byte{0, 0}
	r.c.Read(0, wide)
	r.c.Read(2, b)
	if wide[0] != 0xff || b[0] != 0xff {
		t.Error("wide or off-port reads not all ones")
	}
	r.c.Write(0, []byte{0xff, 0xff}) // ignored
	if r.status()&statOBF != 0 {
		t.Error("16-bit write reached the keyboard")
	}
}

func TestReset(t *testing.T) {
	r := newRig()
	r.cmd(cmdWriteMode)
	r.write(0x00)
	r.write(0xff)
	r.c.Reset()
	if r.status() != 0x18 || r.kbd.high {
		t.Errorf("after Reset status %#x IRQ1 %v", r.status(), r.kbd.high)
	}
	r.cmd(cmdReadMode)
	if got := r.drain(t); got[0] != 0x03 {
		t.Errorf("command byte after Reset %#x", got[0])
	}
}
