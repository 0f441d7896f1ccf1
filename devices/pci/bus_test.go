package pci

import (
	"encoding/binary"
	"testing"
)

func port(d interface{ Read(uint64, []byte) }, off uint64, n int) uint32 {
	b := make([]byte, 4)
	d.Read(off, b[:n])
	return binary.LittleEndian.Uint32(b)
}

func put(d interface{ Write(uint64, []byte) }, off uint64, n int, v uint32) {
	b := make([]byte, 4)
	binary.LittleEndian.PutUint32(b, v)
	d.Write(off, b[:n])
}

func cf8(bus, slot, fn, reg int) uint32 {
	return 1<<31 | uint32(bus)<<16 | uint32(slot)<<11 | uint32(fn)<<8 | uint32(reg)
}

func TestMechanism1(t *testing.T) {
	r, err := NewRoot(1)
	must(t, err)
	must(t, r.Bus0.Add(0, 0, NewHostBridge(HostBridgeI440FX)))
	dev := NewConfigSpace(testHeader())
	must(t, r.Bus0.Add(3, 0, dev))
	addr, data := r.AddressPort(), r.DataPort()

	put(addr, 0, 4, cf8(0, 0, 0, 0))
	if got := port(data, 0, 4); got != 0x12378086 {
		t.Fatalf("host bridge id %#x", got)
	}
	if got := port(addr, 0, 4); got != cf8(0, 0, 0, 0) {
		t.Fatalf("address readback %#x", got)
	}
	put(addr, 0, 4, cf8(0, 3, 0, 0))
	if got := port(data, 2, 2); got != 0x1042 {
		t.Fatalf("device id via 0xCFE = %#x", got)
	}
	if got := port(data, 1, 1); got != 0x1a {
		t.Fatalf("byte at 0xCFD = %#x", got)
	}
	// Register 0x3C via byte 0 and pin via byte 1.
	put(addr, 0, 4, cf8(0, 3, 0, 0x3C))
	put(data, 0, 1, 10)
	if got := port(data, 0, 2); got != 0x010a {
		t.Fatalf("line/pin = %#x", got)
	}
	// Absent device, other function, other bus: all ones.
	for _, a := range []uint32{cf8(0, 4, 0, 0), cf8(0, 3, 1, 0), cf8(1, 3, 0, 0)} {
		put(addr, 0, 4, a)
		if got := port(data, 0, 4); got != 0xFFFFFFFF {
			t.Errorf("%#x reads %#x", a, got)
		}
	}
	// Enable bit clear: all ones.
	put(addr, 0, 4, cf8(0, 3, 0, 0)&^(1<<31))
	if got := port(data, 0, 4); got != 0xFFFFFFFF {
		t.Errorf("disabled access reads %#x", got)
	}
	// Non-dword accesses to 0xCF8 do not change the address; 0xCF9
	// goes to the reset control hook.
	var reset []byte
	r.OnResetControl = func(v byte) { reset = append(reset, v) }
	put(addr, 0, 4, cf8(0, 3, 0, 0))
	put(addr, 1, 1, 0x06)
	put(addr, 0, 2, 0)
	if got := port(addr, 0, 4); got != cf8(0, 3, 0, 0) || len(reset) != 1 || reset[0] != 6 {
		t.Fatalf("address %#x reset %v", got, reset)
	}
}

func TestMultiFunctionBit(t *testing.T) {
	r, _ := NewRoot(1)
	must(t, r.Bus0.Add(5, 0, NewConfigSpace(testHeader())))
	put(r.AddressPort(), 0, 4, cf8(0, 5, 0, RegHeaderType&^3))
	if got := port(r.DataPort(), 2, 1); got != 0 {
		t.Fatalf("single function header type %#x", got)
	}
	must(t, r.Bus0.Add(5, 2, NewConfigSpace(testHeader())))
	if got := port(r.DataPort(), 2, 1); got != 0x80 {
		t.Fatalf("multi-function header type %#x", got)
	}
}

func TestECAM(t *testing.T) {
	r, err := NewRoot(4)
	must(t, err)
	must(t, r.Bus0.Add(0, 0, NewHostBridge(HostBridgeQ35)))
	dev := NewConfigSpace(Header{VendorID: 0x1af4, DeviceID: 0x1041, Express: true})
	dev.SetBytes(0x100, []byte{1, 2, 3, 4})
	must(t, r.Bus0.Add(0x1f, 7, dev))
	e := r.ECAM()
	if ECAMSize(4) != 4<<20 {
		t.Fatal("ECAMSize")
	}
	if got := port(e, 0, 4); got != 0x29c08086 {
		t.Fatalf("q35 host id %#x", got)
	}
	off := uint64(0x1f)<<15 | 7<<12
	if got := port(e, off, 4); got != 0x10411af4 {
		t.Fatalf("1f.7 id %#x", got)
	}
	if got := port(e, off+0x100, 4); got != 0x04030201 {
		t.Fatalf("extended config %#x", got)
	}
	if got := port(e, off+2, 2); got != 0x1041 {
		t.Fatalf("word read %#x", got)
	}
	if got := port(e, off+1, 2); got != 0xFFFF {
		t.Fatalf("misaligned read %#x", got)
	}
	put(e, off+RegInterruptLine, 1, 9)
	if got := port(e, off+RegInterruptLine, 1); got != 9 {
		t.Fatalf("ECAM write lost: %#x", got)
	}
	// Bus 3 exists in the window but is empty; bus 4 is beyond it.
	if got := port(e, 3<<20, 4); got != 0xFFFFFFFF {
		t.Fatalf("bus 3 reads %#x", got)
	}
	if got := port(e, 4<<20, 4); got != 0xFFFFFFFF {
		t.Fatalf("bus 4 reads %#x", got)
	}
	if _, err := NewRoot(257); err == nil {
		t.Fatal("257 buses accepted")
	}
}

func TestParseDevFn(t *testing.T) {
	good := map[string]DevFn{"04.0": {4, 0}, "4": {4, 0}, "0x4": {4, 0}, "1f.7": {31, 7}, "0x10.3": {16, 3}, "10": {16, 0}}
	for s, want := range good {
		if got, err := ParseDevFn(s); err != nil || got != want {
			t.Errorf("ParseDevFn(%q) = %v, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "20", "4.8", "x", "4.", ".1", "-1", "04.0.0"} {
		if got, err := ParseDevFn(s); err == nil {
			t.Errorf("ParseDevFn(%q) = %v, want error", s, got)
		}
	}
}

func TestSlotAllocator(t *testing.T) {
	a := NewSlotAllocator(0, 1)
	got := []DevFn{}
	for _, want := range []*DevFn{nil, {Slot: 5}, nil, nil, {Slot: 3, Fn: 1}} {
		d, err := a.Assign(want)
		must(t, err)
		got = append(got, d)
	}
	exp := []DevFn{{2, 0}, {5, 0}, {3, 0}, {4, 0}, {3, 1}}
	for i := range exp {
		if got[i] != exp[i] {
			t.Fatalf("assignments %v, want %v", got, exp)
		}
	}
	if _, err := a.Assign(&DevFn{Slot: 5}); err == nil {
		t.Fatal("double assignment accepted")
	}
	if _, err := a.Assign(&DevFn{Slot: 1}); err == nil {
		t.Fatal("reserved slot accepted")
	}
	d, _ := a.Assign(nil)
	if d != (DevFn{6, 0}) {
		t.Fatalf("next = %v", d)
	}
}

func TestAllocatorAndAssign(t *testing.T) {
	al := NewAllocator(0xfe001000, 0x100000)
	a, err := al.Alloc(0x4000)
	must(t, err)
	if a != 0xfe004000 {
		t.Fatalf("alloc %#x", a)
	}
	if _, err := al.Alloc(0x3000); err == nil {
		t.Fatal("non power of two accepted")
	}
	if _, err := al.Alloc(0x200000); err == nil {
		t.Fatal("overflowing window accepted")
	}

	c := NewConfigSpace(testHeader())
	must(t, c.SetBAR(0, BAR{Kind: BARIO, Size: 0x20}))
	must(t, c.SetBAR(1, BAR{Kind: BARMem32, Size: 0x1000}))
	must(t, c.SetBAR(4, BAR{Kind: BARMem64, Size: 0x4000}))
	var maps []BARMapping
	c.OnBARChange = func(_, n BARMapping) { maps = append(maps, n) }
	must(t, AssignBARs(c, NewAllocator(0xc000, 0x1000), NewAllocator(0xfe000000, 0x1000000), nil))
	if m := c.Mapping(4); m.Addr != 0xfe000000 || !m.Enabled {
		t.Fatalf("BAR4 %v", m)
	}
	if m := c.Mapping(1); m.Addr != 0xfe004000 || !m.Enabled {
		t.Fatalf("BAR1 %v", m)
	}
	if m := c.Mapping(0); m.Addr != 0xc000 || !m.Enabled {
		t.Fatalf("BAR0 %v", m)
	}
	if len(maps) != 3 {
		t.Fatalf("callbacks %v", maps)
	}
}
