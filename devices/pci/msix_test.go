package pci

import (
	"encoding/binary"
	"testing"
)

type msiRec struct{ got []uint32 }

func (r *msiRec) SendMSI(addr uint64, data uint32) error {
	if addr != 0xfee00000 {
		panic("unexpected address")
	}
	r.got = append(r.got, data)
	return nil
}

func TestMSIX(t *testing.T) {
	c := NewConfigSpace(testHeader())
	must(t, c.SetBAR(1, BAR{Kind: BARMem32, Size: 0x1000}))
	rec := &msiRec{}
	m, err := NewMSIX(c, 3, 1, 0, 0x800, rec)
	must(t, err)
	caps := c.Capabilities()
	if len(caps) != 1 || caps[0][0] != CapIDMSIX {
		t.Fatalf("caps %v", caps)
	}
	cap := uint16(caps[0][1])
	if got := rd(c, cap+2, 2); got != 2 { // table size N-1, disabled
		t.Fatalf("message control %#x", got)
	}
	if got := rd(c, cap+4, 4); got != 1 {
		t.Fatalf("table offset/BIR %#x", got)
	}
	if got := rd(c, cap+8, 4); got != 0x801 {
		t.Fatalf("PBA offset/BIR %#x", got)
	}
	bar := m.Device()
	// Disabled: Notify reports false so the caller uses INTx.
	if m.Notify(0) {
		t.Fatal("Notify succeeded with MSI-X disabled")
	}
	// Program entries 0 and 1 (8-byte and 4-byte writes).
	for v := 0; v < 2; v++ {
		b := make([]byte, 8)
		binary.LittleEndian.PutUint64(b, 0xfee00000)
		bar.Write(uint64(16*v), b)
		put(bar, uint64(16*v+8), 4, uint32(0x40+v))
	}
	wr(c, cap+2, 2, 0x8000|0x3FF) // enable; table size bits are read-only
	if got := rd(c, cap+2, 2); got != 0x8002 {
		t.Fatalf("message control after enable %#x", got)
	}
	// Vectors start masked: the interrupt becomes pending.
	if !m.Notify(0) || len(rec.got) != 0 || !m.Pending(0) {
		t.Fatalf("masked vector: sent %v pending %v", rec.got, m.Pending(0))
	}
	if got := port(bar, 0x800, 4); got != 1 {
		t.Fatalf("PBA = %#x", got)
	}
	put(bar, 0x800, 4, 0) // PBA is read-only
	if !m.Pending(0) {
		t.Fatal("PBA write cleared a pending bit")
	}
	// Unmasking delivers the pending message and clears the bit.
	put(bar, 12, 4, 0)
	if len(rec.got) != 1 || rec.got[0] != 0x40 || m.Pending(0) {
		t.Fatalf("after unmask: sent %v pending %v", rec.got, m.Pending(0))
	}
	m.Notify(0)
	if len(rec.got) != 2 {
		t.Fatalf("unmasked vector not delivered: %v", rec.got)
	}
	// Function mask holds everything back; clearing it delivers.
	put(bar, 16+12, 4, 0)
	wr(c, cap+2, 2, 0xC000)
	m.Notify(1)
	m.Notify(0)
	if len(rec.got) != 2 || !m.Pending(1) || !m.Pending(0) {
		t.Fatalf("function mask leaked: %v", rec.got)
	}
	wr(c, cap+2, 2, 0x8000)
	if len(rec.got) != 4 || m.Pending(0) || m.Pending(1) {
		t.Fatalf("after function unmask: %v", rec.got)
	}
	// Vector control reserved bits read back as zero; table reads work.
	put(bar, 12, 4, 0xFFFFFFFF)
	if got := port(bar, 12, 4); got != 1 {
		t.Fatalf("vector control %#x", got)
	}
	if got := port(bar, 8, 4); got != 0x40 {
		t.Fatalf("message data %#x", got)
	}
	// Out-of-range vector and out-of-table accesses.
	if m.Notify(3) {
		t.Fatal("vector 3 of 3 accepted")
	}
	if got := port(bar, 0x400, 4); got != 0 {
		t.Fatalf("hole reads %#x", got)
	}
	m.Reset()
	if m.Enabled() || rd(c, cap+2, 2) != 2 || port(bar, 12, 4) != 1 {
		t.Fatal("Reset did not restore power-on state")
	}
}

func TestMSIXPlacement(t *testing.T) {
	c := NewConfigSpace(testHeader())
	if _, err := NewMSIX(c, 4, 1, 0, 0x20, &msiRec{}); err == nil {
		t.Fatal("overlapping table and PBA accepted")
	}
	if _, err := NewMSIX(c, 0, 1, 0, 0x800, &msiRec{}); err == nil {
		t.Fatal("zero vectors accepted")
	}
}
