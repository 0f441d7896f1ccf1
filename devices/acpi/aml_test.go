package acpi

import (
	"encoding/hex"
	"errors"
	"testing"
)

// The expected bytes below are what iasl 20200925 emits for the ASL in
// each case's comment (the body of an SSDT compiled with `iasl`).
func TestAMLKnownEncodings(t *testing.T) {
	for _, tc := range []struct {
		asl  string
		got  []byte
		want string
	}{
		{`Name (HID0, EisaId ("PNP0A03"))`,
			name("HID0", eisaID("PNP0A03")),
			"08484944300c41d00a03"},
		{`Name (INT0, 0x12345678)`,
			name("INT0", integer(0x12345678)),
			"08494e54300c78563412"},
		{`Name (INT1, 0x123456789A)`,
			name("INT1", integer(0x123456789A)),
			"08494e54310e9a78563412000000"},
		{`Name (INT2, 0x1234)`,
			name("INT2", integer(0x1234)),
			"08494e54320b3412"},
		{`Name (STR0, "ACPI0013")`,
			name("STR0", str("ACPI0013")),
			"08535452300d414350493030313300"},
		{`Name (PKG0, Package (4) { 0, 0, 0, 0 })`,
			name("PKG0", pkg(integer(0), integer(0), integer(0), integer(0))),
			"08504b473012060400000000"},
		{`Scope (\_SB) { Device (COM1) { Name (_HID, EisaId ("PNP0501")) Name (_UID, One)
		  Name (_CRS, ResourceTemplate () { IO (Decode16, 0x03F8, 0x03F8, 0x00, 0x08) IRQNoFlags () {4} }) } }`,
			scope(`\_SB`, device("COM1",
				name("_HID", eisaID("PNP0501")),
				name("_UID", integer(1)),
				name("_CRS", resourceTemplate(ioPort(0x3F8, 0x3F8, 0, 8), irqNoFlags(4))))),
			"10335c5f53425f5b822b434f4d31085f4849440c41d00501085f55494401085f43525311100a0d4701f803f80300082210007900"},
		{`WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, 0, 0xFF, 0, 0x100)`,
			name("RT0", resourceTemplate(wordBusNumber(0, 0xFF))),
			"085254305f11150a12880d00020c0000000000ff00000000017900"},
		{`DWordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, 0xD00, 0xFFFF, 0, 0xF300)`,
			name("RT1", resourceTemplate(dwordIO(0xD00, 0xFFFF))),
			"085254315f111f0a1c871700010c0300000000000d0000ffff00000000000000f300007900"},
		{`DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite, 0, 0xC0000000, 0xFEBFFFFF, 0, 0x3EC00000)`,
			name("RT2", resourceTemplate(dwordMemory(false, 0xC0000000, 0xFEBFFFFF))),
			"085254325f111f0a1c871700000c0100000000000000c0ffffbffe000000000000c03e7900"},
		{`QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite, 0, 0x100000000, 0x8FFFFFFFF, 0, 0x800000000)`,
			name("RT3", resourceTemplate(qwordMemory(false, true, 0x100000000, 0x8FFFFFFFF))),
			"085254335f11330a308a2b00000c0300000000000000000000000001000000ffffffff08000000000000000000000000000000080000007900"},
		{`Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive) {9}`,
			name("RT4", resourceTemplate(interrupt(true, false, 9))),
			"085254345f110e0a0b8906000101090000007900"},
		{`Memory32Fixed (ReadWrite, 0xB0000000, 0x10000000)`,
			name("RT5", resourceTemplate(memory32Fixed(0xB0000000, 0x10000000))),
			"085254355f11110a0e86090001000000b0000000107900"},
		{`Device (GED_) { OperationRegion (EREG, SystemMemory, 0xFEA00000, 0x04)
		  Field (EREG, DWordAcc, NoLock, WriteAsZeros) { ESEL, 32 }
		  Method (_EVT, 1, Serialized) { Store (ESEL, Local0)
		    If (LEqual (And (Local0, 2), 2)) { Notify (\_SB.PWRB, 0x80) } } }`,
			genericEventDeviceNoCRS(0xFEA00000),
			"5b8245044745445f5b8045524547000c0000a0fe0a045b810b45524547434553454c2014235f45565409704553454c60a016937b600a02000a02865c2e5f53425f505752420a80"},
	} {
		if got := hex.EncodeToString(tc.got); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.asl, got, tc.want)
		}
	}
}

// genericEventDeviceNoCRS is genericEventDevice's body without the names,
// to compare with the iasl vector above.
func genericEventDeviceNoCRS(base uint64) []byte {
	return device("GED",
		opRegion("EREG", regionSystemMemory, base, 4),
		field("EREG", accessDWord|lockNone<<4|updateWriteAsZeros, fieldUnit{"ESEL", 32}),
		method("_EVT", 1, true,
			store(nameString("ESEL"), local(0)),
			ifThen(lEqual(and(local(0), integer(2), nil), integer(2)),
				notify(nameString(`\_SB.PWRB`), integer(0x80)))))
}

func TestNameString(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"_HID", "5f484944"},
		{"GED", "4745445f"},
		{`\`, "5c00"},
		{`\_SB`, "5c5f53425f"},
		{`\_SB.PCI0`, "5c2e5f53425f50434930"},
		{`\_SB.PCI0.ISA`, "5c2f035f53425f50434930495341_"},
		{"^^PWRB", "5e5e50575242"},
	} {
		want := tc.want
		if want[len(want)-1] == '_' { // "ISA" padded: 0x5F
			want = want[:len(want)-1] + "5f"
		}
		if got := hex.EncodeToString(nameString(tc.in)); got != want {
			t.Errorf("nameString(%q) = %s, want %s", tc.in, got, want)
		}
	}
}

func TestNameStringPanics(t *testing.T) {
	for _, bad := range []string{"TOOLONG", "1ABC", "a", `\_SB..X`} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("nameString(%q) did not panic", bad)
				}
			}()
			nameString(bad)
		}()
	}
}

func TestIntegerPrefixes(t *testing.T) {
	for _, tc := range []struct {
		v    uint64
		want string
	}{
		{0, "00"},
		{1, "01"},
		{2, "0a02"},
		{0xFF, "0aff"},
		{0x100, "0b0001"},
		{0xFFFF, "0bffff"},
		{0x10000, "0c00000100"},
		{0xFFFFFFFF, "0cffffffff"},
		{0x100000000, "0e0000000001000000"},
		{^uint64(0), "ff"},
	} {
		if got := hex.EncodeToString(integer(tc.v)); got != tc.want {
			t.Errorf("integer(%#x) = %s, want %s", tc.v, got, tc.want)
		}
	}
}

// decodePkgLength decodes a PkgLength as an AML interpreter does: it
// returns the encoded value and the number of bytes it took.
func decodePkgLength(b []byte) (value, n int, err error) {
	if len(b) == 0 {
		return 0, 0, errors.New("empty")
	}
	follow := int(b[0] >> 6)
	if follow == 0 {
		return int(b[0] & 0x3F), 1, nil
	}
	if b[0]&0x30 != 0 {
		return 0, 0, errors.New("bits 5-4 of a multi-byte lead byte must be zero")
	}
	if len(b) < 1+follow {
		return 0, 0, errors.New("truncated")
	}
	value = int(b[0] & 0x0F)
	for i := 1; i <= follow; i++ {
		value |= int(b[i]) << (4 + 8*(i-1))
	}
	return value, 1 + follow, nil
}

func TestPkgLengthRoundTrip(t *testing.T) {
	var lengths []int
	for n := 0; n < 5000; n++ {
		lengths = append(lengths, n)
	}
	// Around every boundary of the encoding sizes.
	for size, edge := range []int{0x3F, 0xFFF, 0xFFFFF, maxPkgLength} {
		for d := -3; d <= 3; d++ {
			if n := edge - (size + 1) + d; n <= maxPkgLength-4 {
				lengths = append(lengths, n)
			}
		}
	}
	for n := 5000; n < maxPkgLength-4; n = n*3 + 7 {
		lengths = append(lengths, n)
	}
	for _, n := range lengths {
		enc := pkgLength(n)
		v, size, err := decodePkgLength(enc)
		if err != nil {
			t.Fatalf("pkgLength(%d) = %x: %v", n, enc, err)
		}
		if size != len(enc) {
			t.Fatalf("pkgLength(%d) = %x: decoder used %d bytes", n, enc, size)
		}
		// The value counts the length bytes and the body.
		if v != n+len(enc) {
			t.Fatalf("pkgLength(%d) = %x decodes to %d, want %d", n, enc, v, n+len(enc))
		}
		// The shortest encoding: one byte fewer could not hold it.
		if len(enc) > 1 && n+len(enc)-1 <= lengthLimit(len(enc)-1) {
			t.Fatalf("pkgLength(%d) = %x is not the shortest", n, enc)
		}
	}
	// Known encodings: 63 in all fits one byte; 65 = 0x41 needs two (lead
	// 0x40 | low nibble 1, then 0x41>>4); 0x1000 needs three.
	for n, want := range map[int]string{62: "3f", 63: "4104", 0x3F0: "423f", 0xFFD: "4fff", 0xFFE: "810001"} {
		if got := hex.EncodeToString(pkgLength(n)); got != want {
			t.Errorf("pkgLength(%d) = %s, want %s", n, got, want)
		}
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("pkgLength of 2^28-3 bytes did not panic")
			}
		}()
		pkgLength(maxPkgLength - 3)
	}()
}

func TestEncodeLengthFieldBits(t *testing.T) {
	// Field units give bit counts without counting the encoding itself.
	for bits, want := range map[int]string{32: "20", 63: "3f", 64: "4004", 0x1000: "800001"} {
		if got := hex.EncodeToString(encodeLength(bits)); got != want {
			t.Errorf("encodeLength(%d) = %s, want %s", bits, got, want)
		}
	}
}
