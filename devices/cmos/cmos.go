// Package cmos emulates the MC146818 real-time clock and its 128 bytes of
// CMOS RAM at ports 0x70 (index) and 0x71 (data), following QEMU's
// hw/rtc/mc146818rtc.c and the memory-size bytes QEMU's PC board stores for
// SeaBIOS and Linux.
//
// The clock has no timer of its own: the time registers are computed from
// the host clock whenever the guest reads them. What is left out: the
// periodic, alarm and update-ended interrupts (the device drives no IRQ line;
// register C only ever reports UF, computed lazily, and never IRQF).
package cmos

import (
	"sync"
	"time"
)

// Size is the length of the port range the device expects (0x70-0x71).
// Offsets are taken modulo 2, so a larger mapping aliases as on real boards.
const Size = 2

// CMOS register indices.
const (
	regSeconds    = 0x00
	regSecAlarm   = 0x01
	regMinutes    = 0x02
	regMinAlarm   = 0x03
	regHours      = 0x04
	regHourAlarm  = 0x05
	regDayOfWeek  = 0x06
	regDayOfMonth = 0x07
	regMonth      = 0x08
	regYear       = 0x09
	regA          = 0x0a
	regB          = 0x0b
	regC          = 0x0c
	regD          = 0x0d
	regEquipment  = 0x14
	regCentury    = 0x32
	regIBMCentury = 0x37 // IBM PS/2 alias of the century byte

	aUIP = 0x80 // update in progress

	bSET = 0x80 // stop updates so the guest can set the time
	bUIE = 0x10
	bDM  = 0x04 // binary (not BCD) data mode
	b24H = 0x02

	cUF = 0x10 // update ended

	dVRT = 0x80 // valid RAM and time

	// The MC146818 sets UIP for the last 244 us before each update; QEMU
	// reproduces this from the clock, as does this package.
	uipHold = 8 * time.Second / 32768
)

// CMOS is the RTC plus CMOS RAM. Create it with New.
type CMOS struct {
	mu        sync.Mutex
	now       func() time.Time
	localtime bool

	index      uint8
	nmiDisable bool
	data       [128]uint8

	// The guest's clock is the host's wall clock (in UTC or local time,
	// taken as plain fields) plus offSec seconds and offNsec nanoseconds.
	// It is moved by guest writes to the time registers and by SetBase.
	// Seconds are kept apart so any year a guest writes (up to 9999) fits.
	offSec, offNsec int64
	// lastC is the guest time, in whole seconds, when register C was last
	// read; a later second boundary sets UF.
	lastC int64
}

// New returns the RTC/CMOS with the memory-size and CPU-count bytes filled
// in as QEMU's PC machine does. memBelow4G and memAbove4G are the guest RAM
// sizes in bytes below and above the 4 GiB boundary, cpus the number of
// vCPUs at start. now is the host clock (nil means time.Now); localtime
// selects QEMU's -rtc base=localtime rather than the default UTC.
func New(memBelow4G, memAbove4G uint64, cpus int, now func() time.Time, localtime bool) *CMOS {
	if now == nil {
		now = time.Now
	}
	c := &CMOS{now: now, localtime: localtime}
	c.data[regA] = 0x26 // 32.768 kHz time base, 1024 Hz periodic rate
	c.data[regB] = b24H // 24-hour BCD
	c.data[regD] = dVRT

	const kib, mib = 1 << 10, 1 << 20
	set16 := func(i int, v uint64) {
		c.data[i] = uint8(v)
		c.data[i+1] = uint8(v >> 8)
	}
	// Base memory in KiB (at most 640).
	set16(0x15, min(memBelow4G/kib, 640))
	// Extended memory from 1 MiB in KiB, in both places BIOSes look.
	ext := uint64(0)
	if memBelow4G > mib {
		ext = min((memBelow4G-mib)/kib, 0xffff)
	}
	set16(0x17, ext)
	set16(0x30, ext)
	// Memory between 16 MiB and 4 GiB in 64 KiB units.
	high := uint64(0)
	if memBelow4G > 16*mib {
		high = min((memBelow4G-16*mib)/(64*kib), 0xffff)
	}
	set16(0x34, high)
	// Memory above 4 GiB in 64 KiB units, 24 bits.
	above := memAbove4G / (64 * kib)
	c.data[0x5b] = uint8(above)
	c.data[0x5c] = uint8(above >> 8)
	c.data[0x5d] = uint8(above >> 16)
	// SeaBIOS reads the number of CPUs minus one here.
	if cpus > 0 {
		c.data[0x5f] = uint8(cpus - 1)
	}
	// Equipment byte as QEMU's pc_cmos_init: FPU present, PS/2 mouse.
	c.data[regEquipment] = 0x06

	c.lastC = c.guestTime().Unix()
	c.updateTimeRegs()
	return c
}

// Reset clears what a machine reset clears in QEMU: the interrupt enables
// of register B, the flags of register C and the shutdown status byte 0x0f
// (unless it is 0xfe, the S3 resume marker).
func (c *CMOS) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.data[0x0f] != 0xfe {
		c.data[0x0f] = 0
	}
	c.data[regB] &^= 0x70 // PIE, AIE, UIE
	c.data[regC] = 0
	c.nmiDisable = false
}

// NMIDisabled reports bit 7 of the last byte written to the index port,
// which masks NMIs on a PC.
func (c *CMOS) NMIDisabled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nmiDisable
}

// SetBase makes the guest clock read t now and run on from there, as QEMU's
// -rtc base=DATE. t's wall-clock fields are used in t's own location.
func (c *CMOS) SetBase(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setOffset(wallUTC(t))
	c.lastC = c.guestTime().Unix()
	c.updateTimeRegs()
}

// GuestTime returns the time the guest's clock shows, as wall-clock fields
// in UTC (QEMU's rtc-time property).
func (c *CMOS) GuestTime() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running() {
		return c.guestTime()
	}
	return c.regsTime()
}

// SetByte stores a CMOS RAM byte, for the board to fill in what the
// firmware reads (boot order, disk geometry, ...). Indices past 127 are
// ignored.
func (c *CMOS) SetByte(index int, v uint8) {
	if index < 0 || index >= len(c.data) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.data[index] = v
}

// Byte returns a CMOS RAM byte as stored, without the side effects of a
// guest read. Indices past 127 read 0.
func (c *CMOS) Byte(index int) uint8 {
	if index < 0 || index >= len(c.data) {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.data[index]
}

// Read implements devices.Device: offset 0 is the index port (reads 0xff, as
// in QEMU), offset 1 the data port. Wider accesses are split into bytes.
func (c *CMOS) Read(offset uint64, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range data {
		if (offset+uint64(i))&1 == 0 {
			data[i] = 0xff
		} else {
			data[i] = c.readData()
		}
	}
}

// Write implements devices.Device. A 16-bit write at offset 0 sets the index
// and then writes the data byte, as `outw` to 0x70 does on a PC.
func (c *CMOS) Write(offset uint64, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, b := range data {
		if (offset+uint64(i))&1 == 0 {
			c.index = b & 0x7f
			c.nmiDisable = b&0x80 != 0
		} else {
			c.writeData(b)
		}
	}
}

func (c *CMOS) readData() uint8 {
	switch c.index {
	case regIBMCentury:
		c.index = regCentury
		fallthrough
	case regSeconds, regMinutes, regHours, regDayOfWeek, regDayOfMonth,
		regMonth, regYear, regCentury:
		if c.running() {
			c.updateTimeRegs()
		}
		return c.data[c.index]
	case regA:
		v := c.data[regA]
		if c.running() && c.guestFrac() >= int64(time.Second-uipHold) {
			v |= aUIP
		}
		return v
	case regC:
		// No timer sets UF, so compute it here: an update has ended if the
		// guest clock crossed a second boundary since the last read.
		v := c.data[regC]
		if c.running() {
			if s := c.guestTime().Unix(); s != c.lastC {
				v |= cUF
				c.lastC = s
			}
		}
		c.data[regC] = 0
		return v
	default:
		return c.data[c.index]
	}
}

func (c *CMOS) writeData(v uint8) {
	switch c.index {
	case regIBMCentury:
		c.index = regCentury
		fallthrough
	case regSeconds, regMinutes, regHours, regDayOfWeek, regDayOfMonth,
		regMonth, regYear, regCentury:
		if !c.running() {
			c.data[c.index] = v // takes effect when SET is cleared
			return
		}
		c.updateTimeRegs() // the other fields must be current
		c.data[c.index] = v
		c.setTimeFromRegs(c.guestFrac())
	case regA:
		wasRunning := c.running()
		wasReset := c.data[regA]&0x60 == 0x60
		c.data[regA] = v &^ aUIP // UIP is read-only
		switch {
		case wasRunning && !c.running():
			c.updateTimeRegs()
		case wasReset && c.running():
			// Leaving divider reset: the first update comes half a second
			// later, so start the second half-way through.
			c.setTimeFromRegs(int64(time.Second / 2))
		case !wasRunning && c.running():
			c.setTimeFromRegs(c.guestFrac())
		}
	case regB:
		wasRunning := c.running()
		if v&bSET != 0 {
			if wasRunning {
				c.updateTimeRegs() // freeze the registers at this moment
			}
			v &^= bUIE
		}
		c.data[regB] = v
		if !wasRunning && c.running() {
			c.setTimeFromRegs(c.guestFrac())
		}
	case regC, regD:
		// Read-only.
	default:
		c.data[c.index] = v
	}
}

// running reports whether the clock advances: SET is clear and the
// divider chain runs (QEMU's rtc_running).
func (c *CMOS) running() bool {
	return c.data[regB]&bSET == 0 && c.data[regA]&0x70 <= 0x20
}

// hostWall is the host clock as plain wall-clock fields, labelled UTC.
func (c *CMOS) hostWall() time.Time {
	t := c.now()
	if !c.localtime {
		t = t.UTC()
	}
	return wallUTC(t)
}

func wallUTC(t time.Time) time.Time {
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	return time.Date(y, mo, d, h, mi, s, t.Nanosecond(), time.UTC)
}

func (c *CMOS) guestTime() time.Time {
	h := c.hostWall()
	return time.Unix(h.Unix()+c.offSec, int64(h.Nanosecond())+c.offNsec).UTC()
}

// guestFrac is how far into its current second the guest clock is, in ns.
func (c *CMOS) guestFrac() int64 { return int64(c.guestTime().Nanosecond()) }

// setOffset makes the guest clock read t now.
func (c *CMOS) setOffset(t time.Time) {
	h := c.hostWall()
	c.offSec = t.Unix() - h.Unix()
	c.offNsec = int64(t.Nanosecond()) - int64(h.Nanosecond())
}

// updateTimeRegs stores the current guest time in registers 0-9 and the
// century byte, in the format register B selects.
func (c *CMOS) updateTimeRegs() {
	t := c.guestTime()
	c.data[regSeconds] = c.toBCD(t.Second())
	c.data[regMinutes] = c.toBCD(t.Minute())
	if c.data[regB]&b24H != 0 {
		c.data[regHours] = c.toBCD(t.Hour())
	} else {
		h := t.Hour() % 12
		if h == 0 {
			h = 12
		}
		c.data[regHours] = c.toBCD(h)
		if t.Hour() >= 12 {
			c.data[regHours] |= 0x80 // PM
		}
	}
	c.data[regDayOfWeek] = c.toBCD(int(t.Weekday()) + 1)
	c.data[regDayOfMonth] = c.toBCD(t.Day())
	c.data[regMonth] = c.toBCD(int(t.Month()))
	c.data[regYear] = c.toBCD(t.Year() % 100)
	c.data[regCentury] = c.toBCD(t.Year() / 100)
}

// regsTime decodes registers 0-9 and the century. Out-of-range fields are
// normalised by time.Date rather than refused, so no guest value fails.
func (c *CMOS) regsTime() time.Time {
	hour := c.fromBCD(c.data[regHours] & 0x7f)
	if c.data[regB]&b24H == 0 {
		hour %= 12
		if c.data[regHours]&0x80 != 0 {
			hour += 12
		}
	}
	year := c.fromBCD(c.data[regCentury])*100 + c.fromBCD(c.data[regYear])
	return time.Date(year, time.Month(c.fromBCD(c.data[regMonth])), c.fromBCD(c.data[regDayOfMonth]),
		hour, c.fromBCD(c.data[regMinutes]), c.fromBCD(c.data[regSeconds]), 0, time.UTC)
}

// setTimeFromRegs makes the guest clock run on from the time in the
// registers, frac nanoseconds into that second.
func (c *CMOS) setTimeFromRegs(frac int64) {
	c.setOffset(c.regsTime().Add(time.Duration(frac)))
	c.lastC = c.guestTime().Unix()
}

func (c *CMOS) toBCD(v int) uint8 {
	if c.data[regB]&bDM != 0 {
		return uint8(v)
	}
	return uint8(v/10<<4 | v%10)
}

func (c *CMOS) fromBCD(v uint8) int {
	if c.data[regB]&bDM != 0 {
		return int(v)
	}
	return int(v>>4)*10 + int(v&0x0f)
}
