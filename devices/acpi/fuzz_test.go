package acpi

import (
	"encoding/binary"
	"testing"
)

// FuzzRegisters drives PM and GED with guest-chosen offsets, sizes and
// values. Neither may panic, and each interrupt line must always match the
// register state the guest can read back.
func FuzzRegisters(f *testing.F) {
	f.Add([]byte{1, 2, 2, 0x00, 0x01, 0, 0, 2, 0xff, 0xff})
	f.Add([]byte{1, 4, 2, 0x00, 0x20, 0, 0x0c, 1, 0x42, 2, 0, 4, 0, 0})
	f.Add([]byte{0, 0xff, 8, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, ops []byte) {
		var pmIRQ, gedIRQ fakeIRQ
		pm := NewPM(&pmIRQ, func() {}, func() {})
		ged := NewGED(&gedIRQ, func() {}, func() {})
		for len(ops) >= 3 {
			kind, off, size := ops[0], uint64(ops[1]), int(ops[2]%9)
			ops = ops[3:]
			if kind&0x80 != 0 {
				off |= 0xFFFFFFFFFFFFFF00 // near the top of the address space
			}
			data := make([]byte, size)
			switch kind & 7 {
			case 0: // press both buttons
				pm.PressPowerButton()
				ged.PressPowerButton()
			case 1, 2:
				n := copy(data, ops)
				ops = ops[n:]
				if kind&7 == 1 {
					pm.Write(off, data)
				} else {
					ged.Write(off, data)
				}
			case 3:
				pm.Read(off, data)
			case 4:
				ged.Read(off, data)
			}
		}
		// The SCI is up exactly when an enabled event is pending and
		// SCI_EN is set.
		var regs [6]byte
		pm.Read(0, regs[:])
		sts := binary.LittleEndian.Uint16(regs[0:])
		en := binary.LittleEndian.Uint16(regs[2:])
		cnt := binary.LittleEndian.Uint16(regs[4:])
		want := cnt&PM1CntSCIEn != 0 && sts&en != 0
		if pmIRQ.high() != want {
			t.Errorf("SCI %v with STS %#x EN %#x CNT %#x", pmIRQ.high(), sts, en, cnt)
		}
		if gedIRQ.high() != (ged.sel != 0) {
			t.Errorf("GED line %v with selector %#x", gedIRQ.high(), ged.sel)
		}
	})
}
