package i8042

// PS/2 keyboard commands and replies (QEMU hw/input/ps2.c).
const (
	kbdCmdSetLEDs      = 0xed
	kbdCmdEcho         = 0xee
	kbdCmdScancode     = 0xf0
	kbdCmdGetID        = 0xf2
	kbdCmdSetRate      = 0xf3
	kbdCmdEnable       = 0xf4
	kbdCmdResetDisable = 0xf5
	kbdCmdResetEnable  = 0xf6
	kbdCmdSetTypematic = 0xfa
	kbdCmdSetMakeBreak = 0xfc
	kbdCmdReset        = 0xff

	kbdReplyPOR    = 0xaa
	kbdReplyID     = 0xab
	kbdReplyAck    = 0xfa
	kbdReplyResend = 0xfe

	noCmd = -1 // no command waiting for its argument

	queueSize = 16 // scancode/packet queue depth the PS/2 protocol needs
)

// ring is a small FIFO of bytes.
type ring struct {
	buf  [queueSize]byte
	pos  int
	n    int
	last byte // the last byte read, shown again when empty (as QEMU)
}

func (r *ring) push(b ...byte) bool {
	if queueSize-r.n < len(b) {
		return false // multi-byte packets are queued whole or not at all
	}
	for _, c := range b {
		r.buf[(r.pos+r.n)%queueSize] = c
		r.n++
	}
	return true
}

func (r *ring) pop() byte {
	if r.n == 0 {
		return r.last
	}
	r.last = r.buf[r.pos]
	r.pos = (r.pos + 1) % queueSize
	r.n--
	return r.last
}

func (r *ring) clear() { r.pos, r.n = 0, 0 }

// keyboard is an MF2 AT keyboard. Replies to commands go ahead of queued
// scancodes, and a new command drops replies the guest has not read.
type keyboard struct {
	replies     [3]byte
	nReplies    int
	replyPos    int
	codes       ring
	writeCmd    int
	scanEnabled bool
	scancodeSet uint8
	leds        uint8
	breakPrefix bool // translating: the last set 2 byte was 0xF0
}

func (k *keyboard) reset() {
	k.writeCmd = noCmd
	k.resetKeyboard()
}

// resetKeyboard is the keyboard's own reset (commands 0xFF, 0xF5, 0xF6).
func (k *keyboard) resetKeyboard() {
	k.scanEnabled = true
	k.scancodeSet = 2
	k.leds = 0
	k.breakPrefix = false
	k.nReplies, k.replyPos = 0, 0
	k.codes.clear()
}

func (k *keyboard) len() int { return k.nReplies - k.replyPos + k.codes.n }

func (k *keyboard) queue(b byte) { k.codes.push(b) }

func (k *keyboard) reply(b ...byte) {
	k.nReplies = copy(k.replies[:], b)
	k.replyPos = 0
}

func (k *keyboard) read() byte {
	if k.replyPos < k.nReplies {
		b := k.replies[k.replyPos]
		k.replyPos++
		k.codes.last = b
		return b
	}
	return k.codes.pop()
}

// write handles a byte the guest sends to the keyboard. translate is the
// controller's command byte translation bit, which changes the answers to
// "identify" and "get scancode set" as in QEMU.
func (k *keyboard) write(v byte, translate bool) {
	k.nReplies, k.replyPos = 0, 0
	cmd := k.writeCmd
	k.writeCmd = noCmd
	switch cmd {
	case kbdCmdSetMakeBreak, kbdCmdSetRate:
		k.reply(kbdReplyAck)
		return
	case kbdCmdSetLEDs:
		k.leds = v
		k.reply(kbdReplyAck)
		return
	case kbdCmdScancode:
		switch {
		case v == 0:
			set := k.scancodeSet
			if translate {
				set = translateTable[set]
			}
			k.reply(kbdReplyAck, set)
		case v <= 3:
			k.scancodeSet = v
			k.reply(kbdReplyAck)
		default:
			k.reply(kbdReplyResend)
		}
		return
	}
	switch v {
	case 0x00, kbdCmdSetTypematic:
		k.reply(kbdReplyAck)
	case 0x05:
		k.reply(kbdReplyResend)
	case kbdCmdGetID:
		id := byte(0x83)
		if translate {
			id = 0x41
		}
		k.reply(kbdReplyAck, kbdReplyID, id)
	case kbdCmdEcho:
		k.reply(kbdCmdEcho)
	case kbdCmdEnable:
		k.scanEnabled = true
		k.reply(kbdReplyAck)
	case kbdCmdScancode, kbdCmdSetLEDs, kbdCmdSetRate, kbdCmdSetMakeBreak:
		k.writeCmd = int(v)
		k.reply(kbdReplyAck)
	case kbdCmdResetDisable:
		k.resetKeyboard()
		k.scanEnabled = false
		k.reply(kbdReplyAck)
	case kbdCmdResetEnable:
		k.resetKeyboard()
		k.reply(kbdReplyAck)
	case kbdCmdReset:
		k.resetKeyboard()
		k.reply(kbdReplyAck, kbdReplyPOR)
	default:
		k.reply(kbdReplyResend)
	}
}

// PS/2 mouse commands (QEMU hw/input/ps2.c).
const (
	auxSetScale11  = 0xe6
	auxSetScale21  = 0xe7
	auxSetRes      = 0xe8
	auxGetScale    = 0xe9
	auxSetStream   = 0xea
	auxPoll        = 0xeb
	auxResetWrap   = 0xec
	auxSetWrap     = 0xee
	auxSetRemote   = 0xf0
	auxGetType     = 0xf2
	auxSetSample   = 0xf3
	auxEnableDev   = 0xf4
	auxDisableDev  = 0xf5
	auxSetDefault  = 0xf6
	auxReset       = 0xff
	auxAck         = 0xfa
	mouseRemote    = 0x40
	mouseEnabled   = 0x20
	mouseScale21   = 0x10
	mouseTypePS2   = 0
	mouseTypeIMPS2 = 3
	mouseTypeIMEX  = 4
)

// mouse is a PS/2 mouse that answers every command like QEMU's but never
// moves: the host has no pointer to give it yet. It lets guests probe the
// aux port and find a mouse, as under QEMU.
type mouse struct {
	q          ring
	writeCmd   int
	status     byte
	resolution byte
	sampleRate byte
	mtype      byte
	detect     int // IntelliMouse knock sequence state
	wrap       bool
}

func (m *mouse) reset() {
	*m = mouse{writeCmd: noCmd}
}

func (m *mouse) len() int { return m.q.n }

func (m *mouse) read() byte { return m.q.pop() }

// packet queues one movement report with no motion and no buttons.
func (m *mouse) packet() {
	if m.mtype == mouseTypePS2 {
		m.q.push(0x08, 0, 0)
	} else {
		m.q.push(0x08, 0, 0, 0)
	}
}

func (m *mouse) write(v byte) {
	switch m.writeCmd {
	case auxSetSample:
		m.sampleRate = v
		// The IntelliMouse knock: rates 200,100,80 select the wheel mouse,
		// 200,200,80 the five-button one.
		switch m.detect {
		case 0:
			if v == 200 {
				m.detect = 1
			}
		case 1:
			switch v {
			case 100:
				m.detect = 2
			case 200:
				m.detect = 3
			default:
				m.detect = 0
			}
		case 2:
			if v == 80 {
				m.mtype = mouseTypeIMPS2
			}
			m.detect = 0
		case 3:
			if v == 80 {
				m.mtype = mouseTypeIMEX
			}
			m.detect = 0
		}
		m.q.push(auxAck)
		m.writeCmd = noCmd
		return
	case auxSetRes:
		m.resolution = v
		m.q.push(auxAck)
		m.writeCmd = noCmd
		return
	}
	if m.wrap {
		if v == auxResetWrap {
			m.wrap = false
			m.q.push(auxAck)
			return
		}
		if v != auxReset {
			m.q.push(v) // wrap mode echoes
			return
		}
	}
	switch v {
	case auxSetScale11:
		m.status &^= mouseScale21
		m.q.push(auxAck)
	case auxSetScale21:
		m.status |= mouseScale21
		m.q.push(auxAck)
	case auxSetStream:
		m.status &^= mouseRemote
		m.q.push(auxAck)
	case auxSetWrap:
		m.wrap = true
		m.q.push(auxAck)
	case auxSetRemote:
		m.status |= mouseRemote
		m.q.push(auxAck)
	case auxGetType:
		m.q.push(auxAck, m.mtype)
	case auxSetRes, auxSetSample:
		m.writeCmd = int(v)
		m.q.push(auxAck)
	case auxGetScale:
		m.q.push(auxAck, m.status, m.resolution, m.sampleRate)
	case auxPoll:
		m.q.push(auxAck)
		m.packet()
	case auxEnableDev:
		m.status |= mouseEnabled
		m.q.push(auxAck)
	case auxDisableDev:
		m.status &^= mouseEnabled
		m.q.push(auxAck)
	case auxSetDefault:
		m.sampleRate, m.resolution, m.status = 100, 2, 0
		m.q.push(auxAck)
	case auxReset:
		m.sampleRate, m.resolution, m.status, m.mtype = 100, 2, 0, mouseTypePS2
		m.q.clear()
		m.q.push(auxAck, 0xaa, m.mtype)
	}
}

// translateTable maps scancode set 2 to set 1, as the 8042 does when the
// command byte's translation bit is set. Codes from 0x88 up map to
// themselves and are filled in by init.
var translateTable = [256]byte{
	0xff, 0x43, 0x41, 0x3f, 0x3d, 0x3b, 0x3c, 0x58,
	0x64, 0x44, 0x42, 0x40, 0x3e, 0x0f, 0x29, 0x59,
	0x65, 0x38, 0x2a, 0x70, 0x1d, 0x10, 0x02, 0x5a,
	0x66, 0x71, 0x2c, 0x1f, 0x1e, 0x11, 0x03, 0x5b,
	0x67, 0x2e, 0x2d, 0x20, 0x12, 0x05, 0x04, 0x5c,
	0x68, 0x39, 0x2f, 0x21, 0x14, 0x13, 0x06, 0x5d,
	0x69, 0x31, 0x30, 0x23, 0x22, 0x15, 0x07, 0x5e,
	0x6a, 0x72, 0x32, 0x24, 0x16, 0x08, 0x09, 0x5f,
	0x6b, 0x33, 0x25, 0x17, 0x18, 0x0b, 0x0a, 0x60,
	0x6c, 0x34, 0x35, 0x26, 0x27, 0x19, 0x0c, 0x61,
	0x6d, 0x73, 0x28, 0x74, 0x1a, 0x0d, 0x62, 0x6e,
	0x3a, 0x36, 0x1c, 0x1b, 0x75, 0x2b, 0x63, 0x76,
	0x55, 0x56, 0x77, 0x78, 0x79, 0x7a, 0x0e, 0x7b,
	0x7c, 0x4f, 0x7d, 0x4b, 0x47, 0x7e, 0x7f, 0x6f,
	0x52, 0x53, 0x50, 0x4c, 0x4d, 0x48, 0x01, 0x45,
	0x57, 0x4e, 0x51, 0x4a, 0x37, 0x49, 0x46, 0x54,
	0x80, 0x81, 0x82, 0x41, 0x54, 0x85, 0x86, 0x87,
}

func init() {
	for i := 0x88; i < 0x100; i++ {
		translateTable[i] = byte(i)
	}
}
