package acpi

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const testBase = 0xE0000

func pciConfig(ecam bool) *PCI {
	p := &PCI{
		BusStart: 0,
		BusEnd:   255,
		MMIO32:   Window{Base: 0xC0000000, Size: 0x3EC00000},
		MMIO64:   Window{Base: 0x100000000, Size: 0x800000000},
		Routes:   []Route{{Device: 1, Pin: 0, GSI: 16}, {Device: 2, Pin: 1, GSI: 17}},
	}
	if ecam {
		p.ECAMBase = 0xB0000000
	}
	return p
}

func testConfig(cpus int, mode PowerMode, pci *PCI) Config {
	return Config{
		CPUs:     cpus,
		IOAPICID: 0,
		PCI:      pci,
		Serial:   []Serial{{IOBase: 0x3F8, IRQ: 4}, {IOBase: 0x2F8, IRQ: 3}},
		Mode:     mode,
		PMBase:   0x600,
		GEDBase:  0xFEA00000,
		I8042:    true,
		RTC:      true,
	}
}

// guest reads tables out of the blob by guest physical address, failing
// the test on an address outside it.
type guest struct {
	t  *testing.T
	tb Tables
}

func (g guest) at(addr uint64, n int) []byte {
	g.t.Helper()
	if addr < g.tb.Base || addr-g.tb.Base+uint64(n) > uint64(len(g.tb.Data)) {
		g.t.Fatalf("address %#x+%d outside the tables at %#x+%d", addr, n, g.tb.Base, len(g.tb.Data))
	}
	off := addr - g.tb.Base
	return g.tb.Data[off : off+uint64(n)]
}

// table returns the table at addr after checking its signature, length
// and checksum.
func (g guest) table(addr uint64, sig string) []byte {
	g.t.Helper()
	h := g.at(addr, headerSize)
	if got := string(h[:4]); got != sig {
		g.t.Fatalf("table at %#x is %q, want %q", addr, got, sig)
	}
	t := g.at(addr, int(binary.LittleEndian.Uint32(h[4:])))
	if sum(t) != 0 {
		g.t.Errorf("%s checksum: bytes sum to %#x", sig, sum(t))
	}
	return t
}

func sum(b []byte) byte {
	var s byte
	for _, v := range b {
		s += v
	}
	return s
}

// walk follows RSDP -> XSDT -> tables as a guest does and returns them by
// signature, checking every checksum and length on the way.
func walk(t *testing.T, tb Tables) map[string][]byte {
	t.Helper()
	g := guest{t, tb}
	if tb.RSDPAddr%16 != 0 {
		t.Errorf("RSDP at %#x is not 16-byte aligned", tb.RSDPAddr)
	}
	rsdp := g.at(tb.RSDPAddr, rsdpSize)
	if !bytes.Equal(rsdp, tb.RSDP) {
		t.Errorf("RSDP in the blob differs from Tables.RSDP")
	}
	if string(rsdp[:8]) != "RSD PTR " || rsdp[15] != 2 {
		t.Fatalf("bad RSDP %x", rsdp)
	}
	if sum(rsdp[:20]) != 0 || sum(rsdp) != 0 {
		t.Errorf("RSDP checksums: %#x %#x", sum(rsdp[:20]), sum(rsdp))
	}
	if l := binary.LittleEndian.Uint32(rsdp[20:]); l != rsdpSize {
		t.Errorf("RSDP length %d", l)
	}
	out := map[string][]byte{}
	xsdtAddr := binary.LittleEndian.Uint64(rsdp[24:])
	xsdt := g.table(xsdtAddr, "XSDT")
	out["XSDT"] = xsdt
	if (len(xsdt)-headerSize)%8 != 0 {
		t.Fatalf("XSDT length %d", len(xsdt))
	}
	for off := headerSize; off < len(xsdt); off += 8 {
		addr := binary.LittleEndian.Uint64(xsdt[off:])
		sig := string(g.at(addr, 4))
		out[sig] = g.table(addr, sig)
		if tb.Addr[sig] != addr {
			t.Errorf("Tables.Addr[%s] = %#x, XSDT says %#x", sig, tb.Addr[sig], addr)
		}
	}
	fadt := out["FACP"]
	if fadt == nil {
		t.Fatal("no FADT in the XSDT")
	}
	if len(fadt) != fadtSize || fadt[8] != 6 {
		t.Errorf("FADT length %d revision %d", len(fadt), fadt[8])
	}
	dsdt := binary.LittleEndian.Uint64(fadt[140:])
	if d32 := binary.LittleEndian.Uint32(fadt[40:]); uint64(d32) != dsdt {
		t.Errorf("FADT DSDT %#x, X_DSDT %#x", d32, dsdt)
	}
	out["DSDT"] = g.table(dsdt, "DSDT")
	if facs := binary.LittleEndian.Uint32(fadt[36:]); facs != 0 {
		if facs%64 != 0 {
			t.Errorf("FACS at %#x is not 64-byte aligned", facs)
		}
		f := g.at(uint64(facs), 64)
		if string(f[:4]) != "FACS" || binary.LittleEndian.Uint32(f[4:]) != 64 {
			t.Errorf("bad FACS %x", f)
		}
		out["FACS"] = f
	}
	return out
}

type parsedLAPIC struct{ UID, APICID, Flags uint32 }
type parsedIOAPIC struct {
	ID      uint8
	Addr    uint32
	GSIBase uint32
}
type parsedISO struct {
	Bus, Source uint8
	GSI         uint32
	Flags       uint16
}
type parsedNMI struct {
	UID   uint8
	Flags uint16
	LINT  uint8
}
type parsedMADT struct {
	LAPICAddr uint32
	Flags     uint32
	LAPICs    []parsedLAPIC
	IOAPICs   []parsedIOAPIC
	ISOs      []parsedISO
	NMIs      []parsedNMI
}

func parseMADT(t *testing.T, b []byte) parsedMADT {
	t.Helper()
	le := binary.LittleEndian
	m := parsedMADT{LAPICAddr: le.Uint32(b[36:]), Flags: le.Uint32(b[40:])}
	for off := 44; off < len(b); {
		if off+2 > len(b) || b[off+1] < 2 || off+int(b[off+1]) > len(b) {
			t.Fatalf("bad MADT entry at %d", off)
		}
		e := b[off : off+int(b[off+1])]
		switch want := map[byte]int{0: 8, 1: 12, 2: 10, 4: 6}[e[0]]; {
		case want == 0:
			t.Fatalf("unexpected MADT entry type %d", e[0])
		case want != len(e):
			t.Fatalf("MADT entry type %d has length %d, want %d", e[0], len(e), want)
		}
		switch e[0] {
		case 0:
			m.LAPICs = append(m.LAPICs, parsedLAPIC{uint32(e[2]), uint32(e[3]), le.Uint32(e[4:])})
		case 1:
			m.IOAPICs = append(m.IOAPICs, parsedIOAPIC{e[2], le.Uint32(e[4:]), le.Uint32(e[8:])})
		case 2:
			m.ISOs = append(m.ISOs, parsedISO{e[2], e[3], le.Uint32(e[4:]), le.Uint16(e[8:])})
		case 4:
			m.NMIs = append(m.NMIs, parsedNMI{e[2], le.Uint16(e[3:]), e[5]})
		}
		off += len(e)
	}
	return m
}

func TestBuildTables(t *testing.T) {
	for _, mode := range []PowerMode{FixedHardware, HardwareReduced} {
		for _, cpus := range []int{1, 2, 8, MaxCPUs} {
			for _, pci := range []string{"none", "pci", "pcie"} {
				name := fmt.Sprintf("mode%d/%dcpu/%s", mode, cpus, pci)
				t.Run(name, func(t *testing.T) {
					var p *PCI
					if pci != "none" {
						p = pciConfig(pci == "pcie")
					}
					cfg := testConfig(cpus, mode, p)
					tb, err := Build(cfg, testBase)
					if err != nil {
						t.Fatal(err)
					}
					checkTables(t, cfg, tb)
				})
			}
		}
	}
}

func checkTables(t *testing.T, cfg Config, tb Tables) {
	tabs := walk(t, tb)
	wantSigs := []string{"APIC", "DSDT", "FACP", "XSDT"}
	if cfg.Mode == FixedHardware {
		wantSigs = append(wantSigs, "FACS")
	}
	if cfg.PCI != nil && cfg.PCI.ECAMBase != 0 {
		wantSigs = append(wantSigs, "MCFG")
	}
	var gotSigs []string
	for s := range tabs {
		gotSigs = append(gotSigs, s)
	}
	if d := cmp.Diff(wantSigs, gotSigs, cmpSorted); d != "" {
		t.Errorf("tables (-want +got):\n%s", d)
	}

	want := parsedMADT{
		LAPICAddr: 0xFEE00000,
		Flags:     1,
		IOAPICs:   []parsedIOAPIC{{ID: cfg.IOAPICID, Addr: 0xFEC00000, GSIBase: 0}},
		ISOs:      []parsedISO{{0, 0, 2, 0}, {0, 9, 9, 0xD}},
		NMIs:      []parsedNMI{{0xFF, 0, 1}},
	}
	for i := 0; i < cfg.CPUs; i++ {
		want.LAPICs = append(want.LAPICs, parsedLAPIC{UID: uint32(i), APICID: uint32(i), Flags: 1})
	}
	if d := cmp.Diff(want, parseMADT(t, tabs["APIC"])); d != "" {
		t.Errorf("MADT (-want +got):\n%s", d)
	}

	fadt := tabs["FACP"]
	le := binary.LittleEndian
	flags := le.Uint32(fadt[112:])
	reduced := flags&fadtHWReducedACPI != 0
	if reduced != (cfg.Mode == HardwareReduced) {
		t.Errorf("FADT flags %#x in mode %d", flags, cfg.Mode)
	}
	if got := le.Uint16(fadt[46:]); got != SCIIRQ {
		t.Errorf("SCI_INT = %d", got)
	}
	if fadt[128] != ResetValue || flags&fadtResetRegSup == 0 {
		t.Errorf("reset register value %#x, flags %#x", fadt[128], flags)
	}
	if cfg.Mode == FixedHardware {
		if got := le.Uint32(fadt[56:]); got != uint32(cfg.PMBase) {
			t.Errorf("PM1a_EVT_BLK = %#x", got)
		}
		if got := le.Uint32(fadt[64:]); got != uint32(cfg.PMBase)+4 {
			t.Errorf("PM1a_CNT_BLK = %#x", got)
		}
		if got := le.Uint64(fadt[172+4:]); got != uint64(cfg.PMBase)+4 || fadt[172] != gasIO {
			t.Errorf("X_PM1a_CNT_BLK = %x", fadt[172:184])
		}
	} else {
		if got := le.Uint64(fadt[244+4:]); got != cfg.GEDBase+gedSleepCtlOff || fadt[244] != gasMemory {
			t.Errorf("SLEEP_CONTROL_REG = %x", fadt[244:256])
		}
		if le.Uint32(fadt[56:]) != 0 || le.Uint32(fadt[36:]) != 0 {
			t.Errorf("hardware-reduced FADT has a PM1 block or FACS")
		}
	}

	if mcfg := tabs["MCFG"]; mcfg != nil {
		if len(mcfg) != headerSize+8+16 {
			t.Fatalf("MCFG length %d", len(mcfg))
		}
		e := mcfg[headerSize+8:]
		if le.Uint64(e) != cfg.PCI.ECAMBase || le.Uint16(e[8:]) != 0 || e[10] != cfg.PCI.BusStart || e[11] != cfg.PCI.BusEnd {
			t.Errorf("MCFG allocation %x", e)
		}
	}

	// The DSDT's _S5 gives the SLP_TYP the PM devices act on.
	dsdt := tabs["DSDT"]
	typ := byte(SlpTypS5Fixed)
	if cfg.Mode == HardwareReduced {
		typ = SlpTypS5Reduced
	}
	s5 := name("_S5", pkg(integer(uint64(typ)), integer(uint64(typ)), integer(0), integer(0)))
	if !bytes.HasSuffix(dsdt, s5) {
		t.Errorf("DSDT does not end with %x", s5)
	}
}

var cmpSorted = cmp.Transformer("sort", func(in []string) []string {
	out := append([]string(nil), in...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
})

func TestBuildAbove4G(t *testing.T) {
	cfg := testConfig(2, FixedHardware, nil)
	tb, err := Build(cfg, 0x1_0000_0000)
	if err != nil {
		t.Fatal(err)
	}
	// The 32-bit pointers cannot hold the addresses; walk checks that the
	// 64-bit ones are used (it fails on a zero DSDT pointer mismatch
	// otherwise), so only check the FACS went to X_FIRMWARE_CTRL.
	fadt := tb.Data[tb.Addr["FACP"]-tb.Base:]
	if binary.LittleEndian.Uint32(fadt[36:]) != 0 || binary.LittleEndian.Uint32(fadt[40:]) != 0 {
		t.Error("32-bit FACS/DSDT pointers set above 4 GiB")
	}
	if got := binary.LittleEndian.Uint64(fadt[132:]); got != tb.Addr["FACS"] {
		t.Errorf("X_FIRMWARE_CTRL = %#x, want %#x", got, tb.Addr["FACS"])
	}
	if got := binary.LittleEndian.Uint64(fadt[140:]); got != tb.Addr["DSDT"] {
		t.Errorf("X_DSDT = %#x, want %#x", got, tb.Addr["DSDT"])
	}
}

func TestBuildErrors(t *testing.T) {
	good := testConfig(1, FixedHardware, pciConfig(true))
	for _, tc := range []struct {
		name string
		mod  func(c *Config)
		base uint64
	}{
		{"no cpus", func(c *Config) { c.CPUs = 0 }, testBase},
		{"too many cpus", func(c *Config) { c.CPUs = 256 }, testBase},
		{"unaligned base", func(c *Config) {}, testBase + 8},
		{"no PM base", func(c *Config) { c.PMBase = 0 }, testBase},
		{"PM past 64K", func(c *Config) { c.PMBase = 0xFFF8 }, testBase},
		{"no GED base", func(c *Config) { c.Mode = HardwareReduced; c.GEDBase = 0 }, testBase},
		{"bad mode", func(c *Config) { c.Mode = 7 }, testBase},
		{"serial irq", func(c *Config) { c.Serial = []Serial{{IOBase: 0x3F8, IRQ: 16}} }, testBase},
		{"bus range", func(c *Config) { c.PCI.BusStart, c.PCI.BusEnd = 5, 4 }, testBase},
		{"ecam alignment", func(c *Config) { c.PCI.ECAMBase = 0xB0001000 }, testBase},
		{"no mmio32", func(c *Config) { c.PCI.MMIO32 = Window{} }, testBase},
		{"mmio32 above 4G", func(c *Config) { c.PCI.MMIO32 = Window{Base: 0xF0000000, Size: 0x20000000} }, testBase},
		{"mmio64 wraps", func(c *Config) { c.PCI.MMIO64 = Window{Base: 1<<63 + 1, Size: 1 << 63} }, testBase},
		{"io window", func(c *Config) { c.PCI.IO = []Window{{Base: 0xF000, Size: 0x2000}} }, testBase},
		{"io window wraps", func(c *Config) { c.PCI.IO = []Window{{Base: 1<<64 - 1, Size: 2}} }, testBase},
		{"mmio32 wraps", func(c *Config) { c.PCI.MMIO32 = Window{Base: 1<<64 - 1, Size: 2} }, testBase},
		{"ecam at the top", func(c *Config) { c.PCI.ECAMBase = 1<<64 - 1<<20 }, testBase},
		{"GED at the top", func(c *Config) { c.Mode = HardwareReduced; c.GEDBase = 1<<64 - 8 }, testBase},
		{"route", func(c *Config) { c.PCI.Routes = []Route{{Device: 32}} }, testBase},
	} {
		cfg := good
		p := *good.PCI
		cfg.PCI = &p
		tc.mod(&cfg)
		if _, err := Build(cfg, tc.base); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if _, err := Build(good, testBase); err != nil {
		t.Errorf("good config: %v", err)
	}
}

// TestIASLDisassembly feeds every table to ACPICA's disassembler, which
// checks lengths, checksums and field values of data tables and decodes
// the DSDT's AML.
func TestIASLDisassembly(t *testing.T) {
	iasl, err := exec.LookPath("iasl")
	if err != nil {
		t.Skip("iasl not installed (Debian package acpica-tools)")
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		// Each string must appear in the disassembled DSDT.
		dsdt []string
		fadt []string
	}{
		{
			name: "fixed-pcie",
			cfg:  testConfig(2, FixedHardware, pciConfig(true)),
			dsdt: []string{
				`Device (C000)`, `Device (C001)`, `Name (_HID, "ACPI0007"`,
				`Device (COM1)`, `Device (COM2)`, `EisaId ("PNP0501")`,
				`IO (Decode16,` + "\n" + `                    0x03F8,`,
				`IRQNoFlags ()` + "\n" + `                    {4}`,
				`Device (PCI0)`, `EisaId ("PNP0A08")`, `EisaId ("PNP0A03")`,
				`WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,`,
				`DWordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,`,
				`DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,`,
				`QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite,`,
				`Name (_PRT, Package (0x02)`,
				`Device (PDRC)`, `Memory32Fixed (ReadWrite,` + "\n" + `                    0xB0000000,         // Address Base` + "\n" + `                    0x10000000,`,
				`Device (PWRB)`, `EisaId ("PNP0C0C")`,
				`Device (KBD)`, `Device (MOU)`, `Device (RTC)`, `EisaId ("PNP0B00")`,
				`Name (_S5, Package (0x04) // _S5_: S5 System State { Zero, Zero, Zero, Zero })`,
			},
			fadt: []string{
				`PM1A Event Block Address : 00000600`,
				`PM1A Control Block Address : 00000604`,
				`PM Timer Block Address : 00000608`,
				`Hardware Reduced (V5) : 0`,
				`Control Method Power Button (V1) : 0`,
				`Reset Register Supported (V2) : 1`,
			},
		},
		{
			name: "reduced-nopci",
			cfg:  testConfig(8, HardwareReduced, nil),
			dsdt: []string{
				`Device (C007)`, `Device (COM1)`, `Device (PWRB)`,
				`Device (GED)`, `Name (_HID, "ACPI0013"`,
				`Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive, ,, )` + "\n" + `                {` + "\n" + `                    0x00000009,`,
				`OperationRegion (EREG, SystemMemory, 0xFEA00000, 0x04)`,
				`Field (EREG, DWordAcc, NoLock, WriteAsZeros)`,
				`Method (_EVT, 1, Serialized)`,
				`Notify (\_SB.PWRB, 0x80)`,
				`Name (_S5, Package (0x04) // _S5_: S5 System State { 0x05, 0x05, Zero, Zero })`,
				`If (((Local0 & 0x02) == 0x02))`,
			},
			fadt: []string{
				`Hardware Reduced (V5) : 1`,
				`Space ID : 00 [SystemMemory]`,
				`Address : 00000000FEA00004`,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb, err := Build(tc.cfg, testBase)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			// The RSDP is not an ACPI table with a header, which this
			// iasl does not load from a file; walk checks it.
			files := map[string]string{}
			write := func(file string, b []byte) {
				if err := os.WriteFile(filepath.Join(dir, file), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for sig, addr := range tb.Addr {
				off := addr - tb.Base
				n := binary.LittleEndian.Uint32(tb.Data[off+4:])
				f := strings.ToLower(sig) + ".dat"
				files[sig] = f
				write(f, tb.Data[off:off+uint64(n)])
			}
			for sig, f := range files {
				cmd := exec.Command(iasl, "-d", f)
				cmd.Dir = dir
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("iasl -d %s (%s): %v\n%s", f, sig, err, out)
				}
				dsl, err := os.ReadFile(filepath.Join(dir, strings.TrimSuffix(f, ".dat")+".dsl"))
				if err != nil {
					t.Fatalf("%s: %v\n%s", sig, err, out)
				}
				text := string(dsl)
				// Data tables note bad checksums and lengths in the output.
				for _, bad := range []string{"Incorrect checksum", "Invalid", "**** ", "Error", "Unknown"} {
					if strings.Contains(text, bad) || strings.Contains(string(out), bad) {
						t.Errorf("%s: disassembly mentions %q:\n%s\n%s", sig, bad, out, text)
					}
				}
				var wants []string
				switch sig {
				case "DSDT":
					wants = tc.dsdt
				case "FACP":
					wants = tc.fadt
				}
				norm := squeeze(text)
				for _, w := range wants {
					if !strings.Contains(norm, squeeze(w)) {
						t.Errorf("%s disassembly lacks %q:\n%s", sig, w, text)
					}
				}
			}
		})
	}
}

// squeeze turns each run of white space into one space, so expectations
// need not match iasl's line breaks and column alignment.
func squeeze(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
