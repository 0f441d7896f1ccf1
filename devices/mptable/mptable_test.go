package mptable

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// parsed is what a guest would learn from the table, decoded the way
// Linux's mpparse.c does: find "_MP_", check its checksum, follow the
// absolute pointer, check "PCMP" and its checksum, then walk the entries.
type parsed struct {
	SpecRev   uint8
	LAPICAddr uint32
	CPUs      []cpu
	Buses     []bus
	IOAPICs   []ioapic
	IOInts    []intr
	LocalInts []intr
}

type cpu struct {
	APICID uint8
	Flags  uint8
}

type bus struct {
	ID   uint8
	Type string
}

type ioapic struct {
	ID, Version, Flags uint8
	Addr               uint32
}

type intr struct {
	Type   uint8
	Flags  uint16
	Bus    uint8
	BusIRQ uint8
	APIC   uint8
	Pin    uint8
}

// parse reads the table from mem, which holds guest memory starting at
// guest physical address memBase.
func parse(mem []byte, memBase uint64) (*parsed, error) {
	fpOff := -1
	for off := 0; off+16 <= len(mem); off += 16 {
		if string(mem[off:off+4]) == "_MP_" {
			fpOff = off
			break
		}
	}
	if fpOff < 0 {
		return nil, fmt.Errorf("no _MP_")
	}
	fp := mem[fpOff : fpOff+16]
	if fp[8] != 1 {
		return nil, fmt.Errorf("floating pointer length %d", fp[8])
	}
	if sum(fp) != 0 {
		return nil, fmt.Errorf("floating pointer checksum")
	}
	if fp[11] != 0 {
		return nil, fmt.Errorf("default configuration %d", fp[11])
	}
	phys := uint64(binary.LittleEndian.Uint32(fp[4:]))
	if phys < memBase || phys-memBase+44 > uint64(len(mem)) {
		return nil, fmt.Errorf("config table pointer %#x outside memory", phys)
	}
	t := mem[phys-memBase:]
	if string(t[:4]) != "PCMP" {
		return nil, fmt.Errorf("no PCMP")
	}
	length := int(binary.LittleEndian.Uint16(t[4:]))
	if length > len(t) {
		return nil, fmt.Errorf("table length %d beyond memory", length)
	}
	t = t[:length]
	if sum(t) != 0 {
		return nil, fmt.Errorf("config table checksum")
	}
	p := &parsed{SpecRev: t[6], LAPICAddr: binary.LittleEndian.Uint32(t[36:])}
	count := int(binary.LittleEndian.Uint16(t[34:]))
	if ext := binary.LittleEndian.Uint16(t[40:]); ext != 0 {
		return nil, fmt.Errorf("extended table length %d", ext)
	}
	off := 44
	lastType := uint8(0)
	for i := 0; i < count; i++ {
		if off >= len(t) {
			return nil, fmt.Errorf("entry %d beyond table", i)
		}
		typ := t[off]
		if typ < lastType {
			return nil, fmt.Errorf("entry %d: type %d after %d", i, typ, lastType)
		}
		lastType = typ
		size := 8
		if typ == 0 {
			size = 20
		}
		if off+size > len(t) {
			return nil, fmt.Errorf("entry %d truncated", i)
		}
		e := t[off : off+size]
		switch typ {
		case 0:
			p.CPUs = append(p.CPUs, cpu{APICID: e[1], Flags: e[3]})
		case 1:
			p.Buses = append(p.Buses, bus{ID: e[1], Type: string(e[2:8])})
		case 2:
			p.IOAPICs = append(p.IOAPICs, ioapic{ID: e[1], Version: e[2], Flags: e[3], Addr: binary.LittleEndian.Uint32(e[4:])})
		case 3, 4:
			in := intr{Type: e[1], Flags: binary.LittleEndian.Uint16(e[2:]), Bus: e[4], BusIRQ: e[5], APIC: e[6], Pin: e[7]}
			if typ == 3 {
				p.IOInts = append(p.IOInts, in)
			} else {
				p.LocalInts = append(p.LocalInts, in)
			}
		default:
			return nil, fmt.Errorf("entry %d: unknown type %d", i, typ)
		}
		off += size
	}
	if off != len(t) {
		return nil, fmt.Errorf("entries end at %d, table at %d", off, len(t))
	}
	return p, nil
}

func sum(b []byte) uint8 {
	var s uint8
	for _, v := range b {
		s += v
	}
	return s
}

func isaInts(bus, ioapicID uint8) []intr {
	var want []intr
	for irq := uint8(0); irq < 16; irq++ {
		if irq == 2 {
			continue
		}
		pin := irq
		if irq == 0 {
			pin = 2
		}
		want = append(want, intr{Type: 0, Bus: bus, BusIRQ: irq, APIC: ioapicID, Pin: pin})
	}
	return want
}

func TestBuild(t *testing.T) {
	const base = 0xF0000
	for _, n := range []int{1, 2, 8, MaxCPUs} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			b, err := Build(n, base)
			if err != nil {
				t.Fatal(err)
			}
			// Place the bytes in a 64 KiB BIOS area, not at its start,
			// to check that the pointer is absolute.
			mem := make([]byte, 0x10000)
			const off = 0x1230
			copy(mem[off:], b)
			got, err := parse(mem, base-off)
			if err != nil {
				t.Fatal(err)
			}
			want := &parsed{
				SpecRev:   4,
				LAPICAddr: 0xFEE00000,
				Buses:     []bus{{ID: 0, Type: "ISA   "}},
				IOAPICs:   []ioapic{{ID: uint8(n), Version: 0x11, Flags: 1, Addr: 0xFEC00000}},
				IOInts:    isaInts(0, uint8(n)),
				LocalInts: []intr{
					{Type: 3, Bus: 0, BusIRQ: 0, APIC: 0, Pin: 0},
					{Type: 1, Bus: 0, BusIRQ: 0, APIC: 0xFF, Pin: 1},
				},
			}
			for i := 0; i < n; i++ {
				f := uint8(1)
				if i == 0 {
					f = 3
				}
				want.CPUs = append(want.CPUs, cpu{APICID: uint8(i), Flags: f})
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("parsed table (-want +got):\n%s", d)
			}
		})
	}
}

func TestBuildPCI(t *testing.T) {
	const base = 0xF0000
	b, err := BuildConfig(Config{
		CPUs:       2,
		IOAPICAddr: 0xFEC01000,
		PCI:        true,
		PCIRoutes:  []PCIRoute{{Device: 3, Pin: 0, IOAPICPin: 16}, {Device: 4, Pin: 1, IOAPICPin: 17}},
	}, base)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parse(b, base)
	if err != nil {
		t.Fatal(err)
	}
	want := &parsed{
		SpecRev:   4,
		LAPICAddr: 0xFEE00000,
		CPUs:      []cpu{{APICID: 0, Flags: 3}, {APICID: 1, Flags: 1}},
		Buses:     []bus{{ID: 0, Type: "PCI   "}, {ID: 1, Type: "ISA   "}},
		IOAPICs:   []ioapic{{ID: 2, Version: 0x11, Flags: 1, Addr: 0xFEC01000}},
		IOInts: append(isaInts(1, 2),
			intr{Type: 0, Flags: 0xF, Bus: 0, BusIRQ: 3 << 2, APIC: 2, Pin: 16},
			intr{Type: 0, Flags: 0xF, Bus: 0, BusIRQ: 4<<2 | 1, APIC: 2, Pin: 17}),
		LocalInts: []intr{
			{Type: 3, Bus: 1, BusIRQ: 0, APIC: 0, Pin: 0},
			{Type: 1, Bus: 1, BusIRQ: 0, APIC: 0xFF, Pin: 1},
		},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("parsed table (-want +got):\n%s", d)
	}
}

func TestLayout(t *testing.T) {
	b, err := Build(2, 0xF0000)
	if err != nil {
		t.Fatal(err)
	}
	// 16 floating + 44 header + 2*20 CPUs + 8*(1 bus + 1 IOAPIC + 15 IRQs + 2 local).
	if want := 16 + 44 + 40 + 8*19; len(b) != want {
		t.Errorf("len = %d, want %d", len(b), want)
	}
	if got := binary.LittleEndian.Uint32(b[4:]); got != 0xF0010 {
		t.Errorf("config table pointer = %#x, want 0xf0010", got)
	}
	if got := binary.LittleEndian.Uint16(b[16+34:]); got != 2+19 {
		t.Errorf("entry count = %d, want 21", got)
	}
}

func TestBuildErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		base uint64
	}{
		{"zero cpus", Config{CPUs: 0}, 0xF0000},
		{"too many cpus", Config{CPUs: MaxCPUs + 1}, 0xF0000},
		{"unaligned", Config{CPUs: 1}, 0xF0008},
		{"above 4G", Config{CPUs: 1}, 1 << 32},
		{"routes without pci", Config{CPUs: 1, PCIRoutes: []PCIRoute{{}}}, 0xF0000},
		{"bad pin", Config{CPUs: 1, PCI: true, PCIRoutes: []PCIRoute{{Pin: 4}}}, 0xF0000},
	} {
		if _, err := BuildConfig(tc.cfg, tc.base); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}
