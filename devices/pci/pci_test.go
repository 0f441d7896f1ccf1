package pci

import (
	"encoding/binary"
	"testing"
)

func rd(f Function, off uint16, n int) uint32 {
	b := make([]byte, 4)
	f.ReadConfig(off, b[:n])
	return binary.LittleEndian.Uint32(b)
}

func wr(f Function, off uint16, n int, v uint32) {
	b := make([]byte, 4)
	binary.LittleEndian.PutUint32(b, v)
	f.WriteConfig(off, b[:n])
}

func testHeader() Header {
	return Header{VendorID: 0x1af4, DeviceID: 0x1042, Revision: 1, Class: 0x018000, SubsysVendor: 0x1af4, Subsys: 0x1100, InterruptPin: 1}
}

func TestHeaderMasks(t *testing.T) {
	c := NewConfigSpace(testHeader())
	if got := rd(c, 0, 4); got != 0x10421af4 {
		t.Fatalf("id = %#x", got)
	}
	wr(c, 0, 4, 0)
	if got := rd(c, 0, 4); got != 0x10421af4 {
		t.Fatalf("vendor/device writable: %#x", got)
	}
	if got := rd(c, RegClass, 2); got != 0x8000 {
		t.Fatalf("class low = %#x", got)
	}
	if got := rd(c, RegRevision, 4); got != 0x01800001 {
		t.Fatalf("rev/class = %#x", got)
	}
	wr(c, RegCommand, 2, 0xFFFF)
	if got := rd(c, RegCommand, 2); got != cmdWritableMask {
		t.Fatalf("command = %#x, want %#x", got, cmdWritableMask)
	}
	wr(c, RegInterruptLine, 1, 11)
	wr(c, RegInterruptPin, 1, 4)
	if got := rd(c, RegInterruptLine, 2); got != 0x010b {
		t.Fatalf("line/pin = %#x", got)
	}
	// Status error bits are write-1-to-clear.
	c.SetBytes(RegStatus, []byte{0, 0x80})
	wr(c, RegStatus, 2, 0x0000)
	if rd(c, RegStatus, 2)&0x8000 == 0 {
		t.Fatal("writing 0 cleared a W1C bit")
	}
	wr(c, RegStatus, 2, 0x8000)
	if rd(c, RegStatus, 2)&0x8000 != 0 {
		t.Fatal("writing 1 did not clear a W1C bit")
	}
	if got := rd(c, 0x100, 4); got != 0 {
		t.Fatalf("beyond 256 bytes reads %#x", got)
	}
}

func TestBARSizing(t *testing.T) {
	c := NewConfigSpace(testHeader())
	must(t, c.SetBAR(0, BAR{Kind: BARIO, Size: 0x40}))
	must(t, c.SetBAR(1, BAR{Kind: BARMem32, Size: 0x1000}))
	must(t, c.SetBAR(4, BAR{Kind: BARMem64, Size: 0x4000, Prefetchable: true}))
	for i := 0; i < 6; i++ {
		wr(c, uint16(RegBAR0+4*i), 4, 0xFFFFFFFF)
	}
	want := []uint32{0xFFFFFFC1, 0xFFFFF000, 0, 0, 0xFFFFC00C, 0xFFFFFFFF}
	for i, w := range want {
		if got := rd(c, uint16(RegBAR0+4*i), 4); got != w {
			t.Errorf("BAR%d sized = %#x, want %#x", i, got, w)
		}
	}
	// A 64-bit BAR larger than 4 GiB sizes through its upper half.
	c2 := NewConfigSpace(testHeader())
	must(t, c2.SetBAR(2, BAR{Kind: BARMem64, Size: 1 << 33}))
	wr(c2, RegBAR0+8, 4, 0xFFFFFFFF)
	wr(c2, RegBAR0+12, 4, 0xFFFFFFFF)
	if lo, hi := rd(c2, RegBAR0+8, 4), rd(c2, RegBAR0+12, 4); lo != 0x4 || hi != 0xFFFFFFFE {
		t.Errorf("8 GiB BAR sized %#x %#x", lo, hi)
	}
	// Invalid declarations are refused.
	if c.SetBAR(5, BAR{Kind: BARMem64, Size: 0x1000}) == nil {
		t.Error("64-bit BAR5 accepted")
	}
	if c.SetBAR(2, BAR{Kind: BARMem32, Size: 0x1800}) == nil {
		t.Error("non power of two accepted")
	}
}

func TestBARChangeCallback(t *testing.T) {
	c := NewConfigSpace(testHeader())
	must(t, c.SetBAR(4, BAR{Kind: BARMem64, Size: 0x4000}))
	var got []BARMapping
	c.OnBARChange = func(old, new BARMapping) { got = append(got, new) }
	// Programming the address with decode off reports nothing.
	wr(c, RegBAR0+16, 4, 0xfe000000)
	wr(c, RegBAR0+20, 4, 0x1)
	if len(got) != 0 {
		t.Fatalf("callback with decoding off: %v", got)
	}
	wr(c, RegCommand, 2, CmdMemory)
	if len(got) != 1 || got[0] != (BARMapping{Index: 4, Kind: BARMem64, Addr: 0x1fe000000, Size: 0x4000, Enabled: true}) {
		t.Fatalf("after enable: %v", got)
	}
	// The guest moves the BAR while decoding.
	wr(c, RegBAR0+20, 4, 0)
	if len(got) != 2 || got[1].Addr != 0xfe000000 || !got[1].Enabled {
		t.Fatalf("after move: %v", got)
	}
	// Sizing with decode on: the interim all-ones address is reported
	// and the restore brings it back.
	wr(c, RegCommand, 2, 0)
	if len(got) != 3 || got[2].Enabled {
		t.Fatalf("after disable: %v", got)
	}
	if m := c.Mapping(4); m.Addr != 0xfe000000 || m.Enabled {
		t.Fatalf("Mapping = %v", m)
	}
}

func TestCapabilities(t *testing.T) {
	c := NewConfigSpace(testHeader())
	if rd(c, RegStatus, 2)&StatusCapList != 0 {
		t.Fatal("cap list bit set with no capabilities")
	}
	o1, err := c.AddCapability(CapIDVendor, []byte{14, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}, nil, nil)
	must(t, err)
	written := 0
	o2, err := c.AddCapability(CapIDVendor, []byte{6, 0xAA, 0xBB, 0xCC}, []byte{0, 0, 0xFF, 0}, func() { written++ })
	must(t, err)
	if rd(c, RegStatus, 2)&StatusCapList == 0 {
		t.Fatal("cap list bit clear")
	}
	// Walk the list the way a guest does.
	var walk []int
	for p := rd(c, RegCapPtr, 1); p != 0; p = rd(c, uint16(p)+1, 1) {
		walk = append(walk, int(p))
		if len(walk) > 10 {
			t.Fatal("loop")
		}
	}
	if len(walk) != 2 || walk[0] != o1 || walk[1] != o2 || o1 != 0x40 || o2%4 != 0 {
		t.Fatalf("walk = %v (o1 %#x o2 %#x)", walk, o1, o2)
	}
	if caps := c.Capabilities(); len(caps) != 2 || caps[1] != [2]int{CapIDVendor, o2} {
		t.Fatalf("Capabilities = %v", caps)
	}
	wr(c, uint16(o2), 4, 0x11223344) // id/next/len/byte read-only
	wr(c, uint16(o2)+4, 1, 0x77)     // writable byte
	if got := rd(c, uint16(o2), 4); got != 0xAA060009 {
		t.Fatalf("cap header = %#x", got)
	}
	if got := rd(c, uint16(o2)+4, 1); got != 0x77 {
		t.Fatalf("writable cap byte = %#x", got)
	}
	if written != 2 {
		t.Fatalf("hook ran %d times", written)
	}
	if _, err := c.AddCapability(CapIDVendor, make([]byte, 200), nil, nil); err == nil {
		t.Fatal("oversized capability accepted")
	}
}

type irqRec struct{ level bool }

func (r *irqRec) SetLevel(h bool) { r.level = h }

func TestINTx(t *testing.T) {
	c := NewConfigSpace(testHeader())
	r := &irqRec{}
	c.SetIRQ(r)
	c.SetINTx(true)
	if !r.level || rd(c, RegStatus, 2)&StatusINTx == 0 {
		t.Fatal("INTx not asserted")
	}
	wr(c, RegCommand, 2, CmdINTxDisable)
	if r.level || rd(c, RegStatus, 2)&StatusINTx == 0 {
		t.Fatal("INTx Disable did not mask the line (or cleared status)")
	}
	wr(c, RegCommand, 2, 0)
	if !r.level {
		t.Fatal("line not re-asserted")
	}
	c.SetINTx(false)
	if r.level || rd(c, RegStatus, 2)&StatusINTx != 0 {
		t.Fatal("INTx not deasserted")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
