package acpi

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeIRQ records every level change.
type fakeIRQ struct {
	levels []bool
}

func (f *fakeIRQ) SetLevel(high bool) { f.levels = append(f.levels, high) }

func (f *fakeIRQ) high() bool { return len(f.levels) > 0 && f.levels[len(f.levels)-1] }

// counter counts callback calls.
type counter int

func (c *counter) inc() { *c++ }

func read16(d interface{ Read(uint64, []byte) }, off uint64) uint16 {
	var b [2]byte
	d.Read(off, b[:])
	return binary.LittleEndian.Uint16(b[:])
}

func write16(d interface{ Write(uint64, []byte) }, off uint64, v uint16) {
	var b [2]byte
	binary.LittleEndian.PutUint16(b[:], v)
	d.Write(off, b[:])
}

func TestPMPowerButton(t *testing.T) {
	var irq fakeIRQ
	p := NewPM(&irq, nil, nil)

	if got := read16(p, pmCntOff); got&PM1CntSCIEn == 0 {
		t.Fatalf("PM1_CNT = %#x: SCI_EN not set at reset", got)
	}
	// A press before the guest enables the event sets the status but
	// raises nothing.
	p.PressPowerButton()
	if got := read16(p, pmEvtOff); got != PM1PwrBtnSts {
		t.Errorf("PM1_STS = %#x, want PWRBTN_STS", got)
	}
	if irq.high() {
		t.Error("SCI raised with the event disabled")
	}
	// Enabling it with the status pending raises the SCI.
	write16(p, pmEvtOff+2, PM1PwrBtnEn)
	if got := read16(p, pmEvtOff+2); got != PM1PwrBtnEn {
		t.Errorf("PM1_EN = %#x", got)
	}
	if !irq.high() {
		t.Fatal("SCI not raised with PWRBTN_STS and PWRBTN_EN")
	}
	// Writing 0 to the status changes nothing; writing 1 clears it.
	write16(p, pmEvtOff, 0)
	if !irq.high() || read16(p, pmEvtOff) != PM1PwrBtnSts {
		t.Error("writing 0 cleared the status")
	}
	write16(p, pmEvtOff, PM1PwrBtnSts|PM1WakSts)
	if irq.high() || read16(p, pmEvtOff) != 0 {
		t.Error("writing 1 did not clear the status and lower the SCI")
	}
	// A second press, with SCI_EN off, sets status but no SCI until
	// SCI_EN is set again.
	write16(p, pmCntOff, 0)
	p.PressPowerButton()
	if irq.high() {
		t.Error("SCI raised with SCI_EN clear")
	}
	write16(p, pmCntOff, PM1CntSCIEn)
	if !irq.high() {
		t.Error("SCI not raised after setting SCI_EN")
	}
	if d := cmp.Diff([]bool{true, false, true}, irq.levels); d != "" {
		t.Errorf("SCI levels (-want +got):\n%s", d)
	}
	p.Reset()
	if irq.high() || read16(p, pmEvtOff) != 0 || read16(p, pmEvtOff+2) != 0 {
		t.Error("Reset left state behind")
	}
}

func TestPMByteAccess(t *testing.T) {
	var irq fakeIRQ
	p := NewPM(&irq, nil, nil)
	// Enable register written a byte at a time (high byte holds PWRBTN_EN).
	p.Write(pmEvtOff+3, []byte{PM1PwrBtnEn >> 8})
	p.PressPowerButton()
	if !irq.high() {
		t.Fatal("SCI not raised")
	}
	var b [1]byte
	p.Read(pmEvtOff+1, b[:])
	if b[0] != PM1PwrBtnSts>>8 {
		t.Errorf("PM1_STS high byte = %#x", b[0])
	}
	p.Write(pmEvtOff+1, []byte{PM1PwrBtnSts >> 8})
	if irq.high() {
		t.Error("byte write did not clear the status")
	}
	// A 32-bit read of the whole event block: status then enable.
	var w [4]byte
	p.Read(pmEvtOff, w[:])
	if got := binary.LittleEndian.Uint32(w[:]); got != uint32(PM1PwrBtnEn)<<16 {
		t.Errorf("PM1 event block = %#x", got)
	}
	// Reserved enable bits do not stick.
	write16(p, pmEvtOff+2, 0xFFFF)
	if got := read16(p, pmEvtOff+2); got != pm1EnMask {
		t.Errorf("PM1_EN after writing all ones = %#x, want %#x", got, pm1EnMask)
	}
	// Beyond the block: all ones.
	p.Read(PMSize, b[:])
	if b[0] != 0xFF {
		t.Errorf("read past the block = %#x", b[0])
	}
}

func TestPMShutdownAndReset(t *testing.T) {
	var shutdowns, resets counter
	p := NewPM(nil, shutdowns.inc, resets.inc)

	// SLP_TYP for S5 without SLP_EN: nothing happens.
	write16(p, pmCntOff, SlpTypS5Fixed<<10|PM1CntSCIEn)
	if shutdowns != 0 {
		t.Fatal("shutdown without SLP_EN")
	}
	// Another sleep type with SLP_EN: not supported, ignored.
	write16(p, pmCntOff, 1<<10|PM1CntSlpEn|PM1CntSCIEn)
	if shutdowns != 0 {
		t.Fatal("shutdown for SLP_TYP 1")
	}
	// What Linux writes for S5: SLP_TYP, then SLP_TYP|SLP_EN.
	write16(p, pmCntOff, SlpTypS5Fixed<<10|PM1CntSCIEn)
	write16(p, pmCntOff, SlpTypS5Fixed<<10|PM1CntSlpEn|PM1CntSCIEn)
	if shutdowns != 1 {
		t.Fatalf("shutdowns = %d, want 1", shutdowns)
	}
	// SLP_EN reads back as 0.
	if got := read16(p, pmCntOff); got&PM1CntSlpEn != 0 {
		t.Errorf("PM1_CNT = %#x: SLP_EN reads back", got)
	}

	p.Write(pmResetOff, []byte{0x01})
	if resets != 0 {
		t.Fatal("reset on a wrong value")
	}
	p.Write(pmResetOff, []byte{ResetValue})
	if resets != 1 {
		t.Fatalf("resets = %d, want 1", resets)
	}
}

func TestPMTimer(t *testing.T) {
	p := NewPM(nil, nil, nil)
	now := p.start
	p.now = func() time.Time { return now }
	readTimer := func() uint32 {
		var b [4]byte
		p.Read(pmTmrOff, b[:])
		return binary.LittleEndian.Uint32(b[:])
	}
	if got := readTimer(); got != 0 {
		t.Errorf("timer at start = %d", got)
	}
	now = p.start.Add(time.Second)
	if got := readTimer(); got != pmTimerHz {
		t.Errorf("timer after 1s = %d, want %d", got, pmTimerHz)
	}
	// It is 24 bits wide and wraps; a long uptime must not overflow the
	// arithmetic (a naive ns*Hz overflows after 43 minutes).
	now = p.start.Add(100 * time.Hour)
	want := uint32(uint64(100*3600) * pmTimerHz % (1 << 24))
	if got := readTimer(); got != want {
		t.Errorf("timer after 100h = %#x, want %#x", got, want)
	}
	// Writes are ignored.
	p.Write(pmTmrOff, []byte{0, 0, 0, 0})
	if got := readTimer(); got != want {
		t.Errorf("timer changed by a write: %#x", got)
	}
}

func TestGED(t *testing.T) {
	var irq fakeIRQ
	var shutdowns, resets counter
	g := NewGED(&irq, shutdowns.inc, resets.inc)

	g.PressPowerButton()
	if !irq.high() {
		t.Fatal("GED interrupt not raised")
	}
	// _EVT reads the selector with a 32-bit access, which clears it and
	// lowers the line.
	var b [4]byte
	g.Read(gedEvtOff, b[:])
	if got := binary.LittleEndian.Uint32(b[:]); got != GEDEventPowerDown {
		t.Errorf("event selector = %#x, want %#x", got, GEDEventPowerDown)
	}
	if irq.high() {
		t.Error("interrupt still raised after reading the selector")
	}
	g.Read(gedEvtOff, b[:])
	if got := binary.LittleEndian.Uint32(b[:]); got != 0 {
		t.Errorf("selector not cleared: %#x", got)
	}
	if d := cmp.Diff([]bool{true, false}, irq.levels); d != "" {
		t.Errorf("levels (-want +got):\n%s", d)
	}

	// Sleep control: Linux writes SLP_TYP<<2 | SLP_EN.
	g.Write(gedSleepCtlOff, []byte{SlpTypS5Reduced << 2})
	if shutdowns != 0 {
		t.Fatal("shutdown without SLP_EN")
	}
	g.Write(gedSleepCtlOff, []byte{3<<2 | sleepCtlSlpEn})
	if shutdowns != 0 {
		t.Fatal("shutdown for SLP_TYP 3")
	}
	g.Write(gedSleepCtlOff, []byte{SlpTypS5Reduced<<2 | sleepCtlSlpEn})
	if shutdowns != 1 {
		t.Fatalf("shutdowns = %d, want 1", shutdowns)
	}
	// Writing WAK_STS to the status register is harmless.
	g.Write(gedSleepStsOff, []byte{sleepStsWakSts})
	var s [1]byte
	g.Read(gedSleepStsOff, s[:])
	if s[0] != 0 {
		t.Errorf("sleep status = %#x", s[0])
	}

	g.Write(gedResetOff, []byte{0})
	g.Write(gedResetOff, []byte{ResetValue})
	if resets != 1 {
		t.Fatalf("resets = %d, want 1", resets)
	}
	g.Read(GEDSize, s[:])
	if s[0] != 0xFF {
		t.Errorf("read past the block = %#x", s[0])
	}

	g.PressPowerButton()
	g.Reset()
	if irq.high() {
		t.Error("Reset left the interrupt raised")
	}
}

// The offsets the FADT and DSDT publish are the ones the devices decode.
func TestTablesMatchDevices(t *testing.T) {
	cfg := testConfig(1, HardwareReduced, nil)
	tb, err := Build(cfg, testBase)
	if err != nil {
		t.Fatal(err)
	}
	fadt := tb.Data[tb.Addr["FACP"]-tb.Base:]
	le := binary.LittleEndian
	var shutdowns, resets counter
	g := NewGED(nil, shutdowns.inc, resets.inc)
	g.Write(le.Uint64(fadt[248:])-cfg.GEDBase, []byte{SlpTypS5Reduced<<2 | sleepCtlSlpEn})
	g.Write(le.Uint64(fadt[120:])-cfg.GEDBase, []byte{fadt[128]})
	if shutdowns != 1 || resets != 1 {
		t.Errorf("GED via FADT registers: shutdowns %d resets %d", shutdowns, resets)
	}

	cfg = testConfig(1, FixedHardware, nil)
	tb, err = Build(cfg, testBase)
	if err != nil {
		t.Fatal(err)
	}
	fadt = tb.Data[tb.Addr["FACP"]-tb.Base:]
	shutdowns, resets = 0, 0
	var irq fakeIRQ
	p := NewPM(&irq, shutdowns.inc, resets.inc)
	evt := uint64(le.Uint32(fadt[56:]) - uint32(cfg.PMBase))
	cnt := uint64(le.Uint32(fadt[64:]) - uint32(cfg.PMBase))
	write16(p, evt+2, PM1PwrBtnEn) // the enable half follows the status half
	p.PressPowerButton()
	if !irq.high() {
		t.Error("PM via FADT event block: no SCI")
	}
	write16(p, cnt, SlpTypS5Fixed<<10|PM1CntSlpEn)
	p.Write(le.Uint64(fadt[120:])-uint64(cfg.PMBase), []byte{fadt[128]})
	if shutdowns != 1 || resets != 1 {
		t.Errorf("PM via FADT registers: shutdowns %d resets %d", shutdowns, resets)
	}
}
