package cmos

import (
	"testing"
	"time"
)

// clock is a settable fake host clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTest(t *testing.T, at time.Time) (*CMOS, *clock) {
	t.Helper()
	clk := &clock{t: at}
	return New(128<<20, 0, 1, clk.now, false), clk
}

func read(c *CMOS, index uint8) uint8 {
	c.Write(0, []byte{index})
	b := []byte{0}
	c.Read(1, b)
	return b[0]
}

func write(c *CMOS, index, v uint8) {
	c.Write(0, []byte{index})
	c.Write(1, []byte{v})
}

// 2024-02-29 (a Thursday) 15:04:05.25 UTC.
var testTime = time.Date(2024, 2, 29, 15, 4, 5, 250_000_000, time.UTC)

func TestTimeBCD(t *testing.T) {
	c, _ := newTest(t, testTime)
	want := map[uint8]uint8{
		regSeconds: 0x05, regMinutes: 0x04, regHours: 0x15, regDayOfWeek: 0x05,
		regDayOfMonth: 0x29, regMonth: 0x02, regYear: 0x24, regCentury: 0x20,
		regIBMCentury: 0x20, regA: 0x26, regB: 0x02, regD: 0x80,
	}
	for i, v := range want {
		if got := read(c, i); got != v {
			t.Errorf("reg %#x = %#x, want %#x", i, got, v)
		}
	}
}

func TestTimeBinary(t *testing.T) {
	c, _ := newTest(t, testTime)
	write(c, regB, b24H|bDM)
	want := map[uint8]uint8{
		regSeconds: 5, regMinutes: 4, regHours: 15, regDayOfWeek: 5,
		regDayOfMonth: 29, regMonth: 2, regYear: 24, regCentury: 20,
	}
	for i, v := range want {
		if got := read(c, i); got != v {
			t.Errorf("reg %#x = %d, want %d", i, got, v)
		}
	}
}

func TestTwelveHour(t *testing.T) {
	for _, tc := range []struct {
		hour     int
		bcd, bin uint8
	}{
		{0, 0x12, 12}, // midnight is 12 AM
		{9, 0x09, 9},
		{12, 0x92, 0x80 | 12}, // noon is 12 PM
		{15, 0x83, 0x83},
		{23, 0x91, 0x80 | 11},
	} {
		c, _ := newTest(t, time.Date(2024, 1, 1, tc.hour, 0, 0, 0, time.UTC))
		write(c, regB, 0)
		if got := read(c, regHours); got != tc.bcd {
			t.Errorf("%02d:00 BCD 12h = %#x, want %#x", tc.hour, got, tc.bcd)
		}
		write(c, regB, bDM)
		if got := read(c, regHours); got != tc.bin {
			t.Errorf("%02d:00 binary 12h = %#x, want %#x", tc.hour, got, tc.bin)
		}
	}
}

func TestClockAdvancesAndLocaltime(t *testing.T) {
	c, clk := newTest(t, testTime)
	clk.t = clk.t.Add(70 * time.Second)
	if got := read(c, regMinutes); got != 0x05 {
		t.Errorf("minutes = %#x after 70 s, want 0x05", got)
	}
	if got := read(c, regSeconds); got != 0x15 {
		t.Errorf("seconds = %#x after 70 s, want 0x15", got)
	}

	zone := time.FixedZone("X", 3*3600)
	clk2 := &clock{t: testTime}
	local := New(0, 0, 1, func() time.Time { return clk2.t.In(zone) }, true)
	if got := read(local, regHours); got != 0x18 {
		t.Errorf("localtime hours = %#x, want 0x18 (UTC+3)", got)
	}
}

func TestGuestSetsTime(t *testing.T) {
	c, clk := newTest(t, testTime)
	// Linux's way: SET, write the fields, clear SET.
	write(c, regB, b24H|bSET)
	clk.t = clk.t.Add(10 * time.Second) // frozen while SET
	if got := read(c, regSeconds); got != 0x05 {
		t.Errorf("seconds moved to %#x while SET", got)
	}
	write(c, regYear, 0x99)
	write(c, regCentury, 0x19)
	write(c, regMonth, 0x12)
	write(c, regDayOfMonth, 0x31)
	write(c, regHours, 0x23)
	write(c, regMinutes, 0x59)
	write(c, regSeconds, 0x58)
	write(c, regB, b24H)
	clk.t = clk.t.Add(3 * time.Second)
	want := time.Date(2000, 1, 1, 0, 0, 1, 0, time.UTC)
	if got := c.GuestTime().Truncate(time.Second); !got.Equal(want) {
		t.Errorf("guest time %v, want %v", got, want)
	}
	if got := read(c, regYear); got != 0x00 {
		t.Errorf("year = %#x, want 0x00", got)
	}
	if got := read(c, regCentury); got != 0x20 {
		t.Errorf("century = %#x, want 0x20", got)
	}

	// A write of one field while running moves the clock at once.
	write(c, regHours, 0x10)
	if got := c.GuestTime().Hour(); got != 10 {
		t.Errorf("hour = %d after writing 0x10 while running", got)
	}
	if got := read(c, regMinutes); got != 0x00 {
		t.Errorf("minutes = %#x, other fields disturbed", got)
	}
}

func TestSetBase(t *testing.T) {
	c, clk := newTest(t, testTime)
	c.SetBase(time.Date(2006, 6, 17, 16, 1, 21, 0, time.UTC))
	clk.t = clk.t.Add(2 * time.Second)
	if got := read(c, regYear); got != 0x06 {
		t.Errorf("year = %#x, want 0x06", got)
	}
	if got := read(c, regSeconds); got != 0x23 {
		t.Errorf("seconds = %#x, want 0x23", got)
	}
}

func TestRegisterC(t *testing.T) {
	c, clk := newTest(t, testTime)
	if got := read(c, regC); got != 0 {
		t.Errorf("C = %#x with no update since start, want 0", got)
	}
	clk.t = clk.t.Add(time.Second)
	if got := read(c, regC); got != cUF {
		t.Errorf("C = %#x after a second boundary, want UF", got)
	}
	if got := read(c, regC); got != 0 {
		t.Errorf("C = %#x on second read, want cleared", got)
	}
	write(c, regC, 0xff)
	write(c, regD, 0)
	if read(c, regC) != 0 || read(c, regD) != 0x80 {
		t.Error("C or D writable")
	}
}

func TestUIP(t *testing.T) {
	c, clk := newTest(t, time.Date(2024, 1, 1, 0, 0, 0, 999_900_000, time.UTC))
	if read(c, regA)&aUIP == 0 {
		t.Error("UIP clear 100 us before the update")
	}
	clk.t = clk.t.Add(200 * time.Microsecond)
	if read(c, regA)&aUIP != 0 {
		t.Error("UIP set just after the update")
	}
	write(c, regA, 0xa6) // UIP is read-only
	if got := read(c, regA); got != 0x26 {
		t.Errorf("A = %#x, want 0x26", got)
	}
}

func TestMemoryBytes(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		below, above uint64
		cpus         int
		want         map[int]uint8
	}{
		{32 * mib, 0, 2, map[int]uint8{
			0x15: 0x80, 0x16: 0x02, // 640 KiB
			0x17: 0x00, 0x18: 0x7c, 0x30: 0x00, 0x31: 0x7c, // 31 MiB = 0x7c00 KiB
			0x34: 0x00, 0x35: 0x01, // 16 MiB / 64 KiB = 0x100
			0x5b: 0, 0x5c: 0, 0x5d: 0, 0x5f: 1,
		}},
		{3 << 30, 5 << 30, 4, map[int]uint8{
			0x17: 0xff, 0x18: 0xff, 0x30: 0xff, 0x31: 0xff, // capped at 64 MiB
			0x34: 0x00, 0x35: 0xbf, // (3 GiB - 16 MiB) / 64 KiB = 0xbf00
			0x5b: 0x00, 0x5c: 0x40, 0x5d: 0x01, 0x5f: 3, // 5 GiB / 64 KiB = 0x14000
		}},
		{512 * 1024, 0, 1, map[int]uint8{
			0x15: 0x00, 0x16: 0x02, // 512 KiB
			0x17: 0, 0x18: 0, 0x34: 0, 0x35: 0, 0x5f: 0,
		}},
	} {
		c := New(tc.below, tc.above, tc.cpus, nil, false)
		for i, v := range tc.want {
			if got := c.Byte(i); got != v {
				t.Errorf("mem %#x/%#x: byte %#x = %#x, want %#x", tc.below, tc.above, i, got, v)
			}
		}
		if got := read(c, 0x5d); got != tc.want[0x5d] {
			t.Errorf("guest read of 0x5d = %#x", got)
		}
	}
}

func TestIndexAndNMI(t *testing.T) {
	c, _ := newTest(t, testTime)
	write(c, 0x80|0x40, 0xab) // bit 7 is the NMI mask, not part of the index
	if !c.NMIDisabled() {
		t.Error("NMI not disabled by index bit 7")
	}
	if got := read(c, 0x40); got != 0xab {
		t.Errorf("RAM 0x40 = %#x, want 0xab", got)
	}
	if c.NMIDisabled() {
		t.Error("NMI still disabled after index write without bit 7")
	}
	write(c, 0xff, 0x5a) // index 0x7f, the last byte
	if got := c.Byte(0x7f); got != 0x5a {
		t.Errorf("byte 0x7f = %#x", got)
	}
	b := []byte{0}
	c.Read(0, b)
	if b[0] != 0xff {
		t.Errorf("index port read %#x, want 0xff", b[0])
	}
	// outw: index then data in one access; offsets alias modulo 2.
	c.Write(0, []byte{0x41, 0x77})
	if c.Byte(0x41) != 0x77 {
		t.Error("16-bit write did not set index and data")
	}
	c.Write(2, []byte{0x42})
	c.Write(3, []byte{0x66})
	if c.Byte(0x42) != 0x66 {
		t.Error("offsets 2/3 do not alias 0/1")
	}
}

func TestReset(t *testing.T) {
	c, _ := newTest(t, testTime)
	write(c, regB, 0x72)
	write(c, 0x0f, 0x05)
	c.Reset()
	if c.Byte(regB) != 0x02 || c.Byte(0x0f) != 0 {
		t.Errorf("after reset B = %#x, 0x0f = %#x", c.Byte(regB), c.Byte(0x0f))
	}
	write(c, 0x0f, 0xfe)
	c.Reset()
	if c.Byte(0x0f) != 0xfe {
		t.Error("reset cleared the S3 resume marker")
	}
}
