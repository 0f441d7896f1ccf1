package acpi

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/govmm/govmm/devices"
)

// Layout of the fixed-hardware PM block at Config.PMBase (port I/O), as the
// FADT describes it.
const (
	pmEvtOff   = 0x0 // PM1a_EVT_BLK: PM1_STS (2 bytes), PM1_EN (2 bytes)
	pmCntOff   = 0x4 // PM1a_CNT_BLK: PM1_CNT (2 bytes)
	pmTmrOff   = 0x8 // PM_TMR_BLK: 24-bit timer (4 bytes)
	pmResetOff = 0xC // RESET_REG: write ResetValue to reset

	// PMSize is the number of ports PM occupies.
	PMSize = 0x10
)

// PM1 register bits (ACPI 6.5, 4.8.3.1).
const (
	PM1TmrSts    = 1 << 0
	PM1GblSts    = 1 << 5
	PM1PwrBtnSts = 1 << 8
	PM1SlpBtnSts = 1 << 9
	PM1RTCSts    = 1 << 10
	PM1WakSts    = 1 << 15

	PM1TmrEn    = 1 << 0
	PM1GblEn    = 1 << 5
	PM1PwrBtnEn = 1 << 8
	PM1SlpBtnEn = 1 << 9
	PM1RTCEn    = 1 << 10

	pm1EnMask = PM1TmrEn | PM1GblEn | PM1PwrBtnEn | PM1SlpBtnEn | PM1RTCEn

	PM1CntSCIEn    = 1 << 0
	PM1CntSlpTyp   = 7 << 10
	PM1CntSlpEn    = 1 << 13
	pm1CntSlpShift = 10
	pm1CntMask     = PM1CntSCIEn | 1<<1 | 1<<2 | PM1CntSlpTyp // SLP_EN is write-only
)

// pmTimerHz is the ACPI PM timer frequency.
const pmTimerHz = 3579545

// PM emulates the PM1a event and control blocks, the PM timer and a reset
// register of fixed-hardware ACPI. It is a devices.Device for the PMSize
// ports at Config.PMBase. Its methods are safe for concurrent use.
//
// There is no SMI_CMD in the FADT, so the guest has no way to switch
// between legacy and ACPI mode: SCI_EN starts set.
type PM struct {
	mu       sync.Mutex
	sts      uint16
	en       uint16
	cnt      uint16
	sciLevel bool

	sci      devices.IRQLine
	shutdown func()
	reset    func()
	start    time.Time
	now      func() time.Time // for tests
}

// NewPM returns a PM raising sci (GSI SCIIRQ) and calling shutdown when
// the guest enters S5 and reset when it writes the reset register. Either
// callback may be nil. They are called without PM's lock held.
func NewPM(sci devices.IRQLine, shutdown, reset func()) *PM {
	if sci == nil {
		sci = devices.NoIRQ
	}
	p := &PM{sci: sci, shutdown: shutdown, reset: reset, now: time.Now}
	p.start = p.now()
	p.cnt = PM1CntSCIEn
	return p
}

// Reset returns the registers to their power-on values, as on a machine
// reset.
func (p *PM) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sts, p.en, p.cnt = 0, 0, PM1CntSCIEn
	p.updateSCI()
}

// PressPowerButton sets PWRBTN_STS, which raises the SCI if the guest has
// enabled the event.
func (p *PM) PressPowerButton() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sts |= PM1PwrBtnSts
	p.updateSCI()
}

// updateSCI drives the SCI level from the status, enable and SCI_EN bits.
func (p *PM) updateSCI() {
	level := p.cnt&PM1CntSCIEn != 0 && p.sts&p.en&pm1EnMask != 0
	if level != p.sciLevel {
		p.sciLevel = level
		p.sci.SetLevel(level)
	}
}

// timer returns the 24-bit PM timer value: ticks since the device was made.
func (p *PM) timer() uint32 {
	d := p.now().Sub(p.start)
	if d < 0 {
		d = 0
	}
	// Split into seconds and the rest so the product cannot overflow.
	sec, ns := uint64(d/time.Second), uint64(d%time.Second)
	ticks := sec*pmTimerHz + ns*pmTimerHz/uint64(time.Second)
	return uint32(ticks & 0xFFFFFF)
}

// Read implements devices.Device. Each byte is read from the register it
// belongs to, so any access size and alignment works; bytes outside the
// registers read as 0xFF.
func (p *PM) Read(offset uint64, data []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var regs [PMSize]byte
	for i := range regs {
		regs[i] = 0xFF
	}
	binary.LittleEndian.PutUint16(regs[pmEvtOff:], p.sts)
	binary.LittleEndian.PutUint16(regs[pmEvtOff+2:], p.en)
	binary.LittleEndian.PutUint16(regs[pmCntOff:], p.cnt)
	binary.LittleEndian.PutUint32(regs[pmTmrOff:], p.timer())
	regs[pmResetOff] = 0
	for i := range data {
		off := offset + uint64(i)
		if off < PMSize {
			data[i] = regs[off]
		} else {
			data[i] = 0xFF
		}
	}
}

// Write implements devices.Device. Status bits are cleared by writing 1;
// SLP_EN with SLP_TYP = SlpTypS5Fixed powers off.
func (p *PM) Write(offset uint64, data []byte) {
	var shutdown, reset bool
	p.mu.Lock()
	for i, b := range data {
		off := offset + uint64(i)
		v := uint16(b)
		switch off {
		case pmEvtOff, pmEvtOff + 1:
			p.sts &^= v << (8 * (off - pmEvtOff))
		case pmEvtOff + 2, pmEvtOff + 3:
			shift := 8 * (off - pmEvtOff - 2)
			p.en = (p.en &^ (0xFF << shift)) | (v<<shift)&pm1EnMask
		case pmCntOff, pmCntOff + 1:
			shift := 8 * (off - pmCntOff)
			v <<= shift
			p.cnt = (p.cnt &^ (0xFF << shift)) | v&pm1CntMask
			if v&PM1CntSlpEn != 0 && (p.cnt&PM1CntSlpTyp)>>pm1CntSlpShift == SlpTypS5Fixed {
				shutdown = true
			}
		case pmResetOff:
			reset = b == ResetValue
		}
	}
	p.updateSCI()
	p.mu.Unlock()
	// Other sleep states are not supported: the guest only finds \_S5.
	if shutdown && p.shutdown != nil {
		p.shutdown()
	}
	if reset && p.reset != nil {
		p.reset()
	}
}

// Layout of the hardware-reduced GED block at Config.GEDBase (MMIO), as
// the FADT and DSDT describe it.
const (
	gedEvtOff      = 0x0 // event selector, 32 bits, read clears
	gedSleepCtlOff = 0x4 // SLEEP_CONTROL_REG
	gedSleepStsOff = 0x5 // SLEEP_STATUS_REG
	gedResetOff    = 0x6 // RESET_REG

	// GEDSize is the number of bytes GED occupies.
	GEDSize = 0x10

	// GEDEventPowerDown is the event selector bit of a power button press
	// (QEMU's ACPI_GED_PWR_DOWN_EVT).
	GEDEventPowerDown = 1 << 1
)

// Sleep control and status register bits (ACPI 6.5, 4.8.3.7 and 4.8.3.8).
const (
	sleepCtlSlpTyp   = 7 << 2
	sleepCtlSlpShift = 2
	sleepCtlSlpEn    = 1 << 5
	sleepStsWakSts   = 1 << 7
)

// GED emulates the Generic Event Device of hardware-reduced ACPI as QEMU
// does: an event selector the DSDT's _EVT reads (and so clears), plus the
// FADT's sleep control, sleep status and reset registers. It is a
// devices.Device for the GEDSize bytes at Config.GEDBase. Its interrupt is
// level triggered: asserted while an event is pending. Its methods are safe
// for concurrent use.
type GED struct {
	mu       sync.Mutex
	sel      uint32
	sleepSts uint8
	irqLevel bool

	irq      devices.IRQLine
	shutdown func()
	reset    func()
}

// NewGED returns a GED raising irq (GSI SCIIRQ) and calling shutdown and
// reset as PM does. Either callback may be nil.
func NewGED(irq devices.IRQLine, shutdown, reset func()) *GED {
	if irq == nil {
		irq = devices.NoIRQ
	}
	return &GED{irq: irq, shutdown: shutdown, reset: reset}
}

// Reset clears pending events, as on a machine reset.
func (g *GED) Reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sel, g.sleepSts = 0, 0
	g.updateIRQ()
}

// PressPowerButton signals the power-down event.
func (g *GED) PressPowerButton() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sel |= GEDEventPowerDown
	g.updateIRQ()
}

func (g *GED) updateIRQ() {
	level := g.sel != 0
	if level != g.irqLevel {
		g.irqLevel = level
		g.irq.SetLevel(level)
	}
}

// Read implements devices.Device. Reading event selector bytes returns
// and clears them.
func (g *GED) Read(offset uint64, data []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range data {
		off := offset + uint64(i)
		switch {
		case off < gedEvtOff+4:
			shift := 8 * (off - gedEvtOff)
			data[i] = byte(g.sel >> shift)
			g.sel &^= 0xFF << shift
		case off == gedSleepStsOff:
			data[i] = g.sleepSts
		case off == gedSleepCtlOff, off == gedResetOff:
			data[i] = 0 // write-only
		default:
			data[i] = 0xFF
		}
	}
	g.updateIRQ()
}

// Write implements devices.Device.
func (g *GED) Write(offset uint64, data []byte) {
	var shutdown, reset bool
	g.mu.Lock()
	for i, b := range data {
		switch offset + uint64(i) {
		case gedSleepCtlOff:
			if b&sleepCtlSlpEn != 0 && (b&sleepCtlSlpTyp)>>sleepCtlSlpShift == SlpTypS5Reduced {
				shutdown = true
			}
		case gedSleepStsOff:
			g.sleepSts &^= b & sleepStsWakSts
		case gedResetOff:
			reset = b == ResetValue
		}
	}
	g.mu.Unlock()
	if shutdown && g.shutdown != nil {
		g.shutdown()
	}
	if reset && g.reset != nil {
		g.reset()
	}
}
