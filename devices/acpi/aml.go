package acpi

// A small AML (ACPI Machine Language) encoder: just the terms the DSDT
// needs, each a function returning the encoded bytes so that a table reads
// like the ASL it stands for. Encodings follow ACPI 6.5 chapter 20 ("ACPI
// Machine Language Specification") and chapter 6.4 (resource descriptors).
//
// Names are constants of this package, so an invalid one is a programming
// error and panics, like regexp.MustCompile.

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Opcodes (ACPI 6.5, 20.3).
const (
	zeroOp        = 0x00
	oneOp         = 0x01
	onesOp        = 0xFF
	nameOp        = 0x08
	bytePrefix    = 0x0A
	wordPrefix    = 0x0B
	dwordPrefix   = 0x0C
	stringPrefix  = 0x0D
	qwordPrefix   = 0x0E
	scopeOp       = 0x10
	bufferOp      = 0x11
	packageOp     = 0x12
	methodOp      = 0x14
	dualNamePfx   = 0x2E
	multiNamePfx  = 0x2F
	extOpPrefix   = 0x5B
	rootChar      = 0x5C
	parentChar    = 0x5E
	local0Op      = 0x60
	arg0Op        = 0x68
	storeOp       = 0x70
	andOp         = 0x7B
	notifyOp      = 0x86
	lEqualOp      = 0x93
	ifOp          = 0xA0
	returnOp      = 0xA4
	opRegionExtOp = 0x80 // after extOpPrefix
	fieldExtOp    = 0x81
	deviceExtOp   = 0x82
)

// Operation region spaces (ACPI 6.5, 19.6.100).
const (
	regionSystemMemory = 0x00
	regionSystemIO     = 0x01
)

// maxPkgLength is the largest length a PkgLength can hold (28 bits).
const maxPkgLength = 1<<28 - 1

// pkgLength encodes a PkgLength for a body of n bytes. The encoded value
// counts its own bytes too, so the encoding size is chosen first: the
// smallest s for which n+s fits in s bytes.
func pkgLength(n int) []byte {
	for size := 1; size <= 4; size++ {
		if n+size <= lengthLimit(size) {
			return encodeLength(n + size)
		}
	}
	panic(fmt.Sprintf("aml: package of %d bytes is too long", n))
}

// lengthLimit is the largest value a PkgLength of size bytes holds: 6 bits
// in one byte, else 4 bits in the lead byte plus 8 in each following one.
func lengthLimit(size int) int {
	if size == 1 {
		return 0x3F
	}
	return 1<<(4+8*(size-1)) - 1
}

// encodeLength encodes v in the fewest PkgLength bytes. One byte holds
// 0-63. Otherwise bits 7-6 of the lead byte give the number of following
// bytes (1-3), bits 3-0 the low nibble of v, and each following byte the
// next 8 bits. Field lists use it directly for bit counts.
func encodeLength(v int) []byte {
	if v < 0 || v > maxPkgLength {
		panic(fmt.Sprintf("aml: length %d out of range", v))
	}
	size := 1
	for v > lengthLimit(size) {
		size++
	}
	if size == 1 {
		return []byte{byte(v)}
	}
	b := make([]byte, size)
	b[0] = byte(size-1)<<6 | byte(v&0x0F)
	for i := 1; i < size; i++ {
		b[i] = byte(v >> (4 + 8*(i-1)))
	}
	return b
}

// withPkgLength returns op, the PkgLength of body, and body.
func withPkgLength(op []byte, body ...[]byte) []byte {
	b := cat(body...)
	out := append([]byte{}, op...)
	out = append(out, pkgLength(len(b))...)
	return append(out, b...)
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// nameSeg encodes one 4-character name segment, padding a shorter one with
// '_' as ASL does ("GED" is "GED_").
func nameSeg(s string) []byte {
	if len(s) == 0 || len(s) > 4 {
		panic(fmt.Sprintf("aml: bad name segment %q", s))
	}
	for i, c := range []byte(s) {
		lead := c >= 'A' && c <= 'Z' || c == '_'
		if !lead && (i == 0 || c < '0' || c > '9') {
			panic(fmt.Sprintf("aml: bad name segment %q", s))
		}
	}
	return []byte(s + strings.Repeat("_", 4-len(s)))
}

// nameString encodes an ASL name path such as "_HID", "\_SB.PCI0" or
// "^PWRB" (ACPI 6.5, 20.2.2).
func nameString(path string) []byte {
	var out []byte
	if strings.HasPrefix(path, `\`) {
		out = append(out, rootChar)
		path = path[1:]
	} else {
		for strings.HasPrefix(path, "^") {
			out = append(out, parentChar)
			path = path[1:]
		}
	}
	if path == "" {
		return append(out, zeroOp) // NullName
	}
	segs := strings.Split(path, ".")
	switch len(segs) {
	case 1:
	case 2:
		out = append(out, dualNamePfx)
	default:
		if len(segs) > 255 {
			panic("aml: name path too long")
		}
		out = append(out, multiNamePfx, byte(len(segs)))
	}
	for _, s := range segs {
		out = append(out, nameSeg(s)...)
	}
	return out
}

// integer encodes v with the shortest prefix, as iasl does.
func integer(v uint64) []byte {
	switch {
	case v == 0:
		return []byte{zeroOp}
	case v == 1:
		return []byte{oneOp}
	case v == ^uint64(0):
		return []byte{onesOp}
	case v <= 0xFF:
		return []byte{bytePrefix, byte(v)}
	case v <= 0xFFFF:
		return binary.LittleEndian.AppendUint16([]byte{wordPrefix}, uint16(v))
	case v <= 0xFFFFFFFF:
		return binary.LittleEndian.AppendUint32([]byte{dwordPrefix}, uint32(v))
	default:
		return binary.LittleEndian.AppendUint64([]byte{qwordPrefix}, v)
	}
}

// str encodes a string literal.
func str(s string) []byte {
	return append(append([]byte{stringPrefix}, s...), 0)
}

// eisaID encodes ASL's EisaId("PNP0A03"): three letters in 5 bits each and
// four hex digits, as a DWord (iasl always uses the DWord prefix).
func eisaID(id string) []byte {
	if len(id) != 7 {
		panic(fmt.Sprintf("aml: bad EISA ID %q", id))
	}
	hex := func(c byte) uint32 {
		switch {
		case c >= '0' && c <= '9':
			return uint32(c - '0')
		case c >= 'A' && c <= 'F':
			return uint32(c-'A') + 10
		}
		panic(fmt.Sprintf("aml: bad EISA ID %q", id))
	}
	for _, c := range []byte(id[:3]) {
		if c < 'A' || c > 'Z' {
			panic(fmt.Sprintf("aml: bad EISA ID %q", id))
		}
	}
	b := [4]byte{
		(id[0]-0x40)<<2 | (id[1]-0x40)>>3,
		(id[1]-0x40)<<5 | (id[2] - 0x40),
		byte(hex(id[3])<<4 | hex(id[4])),
		byte(hex(id[5])<<4 | hex(id[6])),
	}
	return append([]byte{dwordPrefix}, b[:]...)
}

// buffer encodes Buffer() {data}.
func buffer(data []byte) []byte {
	return withPkgLength([]byte{bufferOp}, integer(uint64(len(data))), data)
}

// pkg encodes Package() {elems...}.
func pkg(elems ...[]byte) []byte {
	if len(elems) > 255 {
		panic("aml: package too long")
	}
	return withPkgLength([]byte{packageOp}, []byte{byte(len(elems))}, cat(elems...))
}

// name encodes Name(n, obj).
func name(n string, obj []byte) []byte {
	return cat([]byte{nameOp}, nameString(n), obj)
}

// scope encodes Scope(n) {body}.
func scope(n string, body ...[]byte) []byte {
	return withPkgLength([]byte{scopeOp}, nameString(n), cat(body...))
}

// device encodes Device(n) {body}.
func device(n string, body ...[]byte) []byte {
	return withPkgLength([]byte{extOpPrefix, deviceExtOp}, nameString(n), cat(body...))
}

// method encodes Method(n, args, NotSerialized|Serialized) {body}.
func method(n string, args int, serialized bool, body ...[]byte) []byte {
	if args < 0 || args > 7 {
		panic("aml: bad method argument count")
	}
	flags := byte(args)
	if serialized {
		flags |= 1 << 3
	}
	return withPkgLength([]byte{methodOp}, nameString(n), []byte{flags}, cat(body...))
}

// notify encodes Notify(obj, value).
func notify(obj, value []byte) []byte { return cat([]byte{notifyOp}, obj, value) }

// ifThen encodes If (pred) {body}.
func ifThen(pred []byte, body ...[]byte) []byte {
	return withPkgLength([]byte{ifOp}, pred, cat(body...))
}

// lEqual encodes LEqual(a, b).
func lEqual(a, b []byte) []byte { return cat([]byte{lEqualOp}, a, b) }

// and encodes And(a, b, target); a nil target is no target (NullName).
func and(a, b, target []byte) []byte {
	if target == nil {
		target = []byte{zeroOp}
	}
	return cat([]byte{andOp}, a, b, target)
}

// store encodes Store(src, dst).
func store(src, dst []byte) []byte { return cat([]byte{storeOp}, src, dst) }

// ret encodes Return(v).
func ret(v []byte) []byte { return cat([]byte{returnOp}, v) }

// local and arg encode Local0-7 and Arg0-6.
func local(n int) []byte { return []byte{local0Op + byte(n)} }
func arg(n int) []byte   { return []byte{arg0Op + byte(n)} }

// opRegion encodes OperationRegion(n, space, offset, length).
func opRegion(n string, space byte, offset, length uint64) []byte {
	return cat([]byte{extOpPrefix, opRegionExtOp}, nameString(n), []byte{space}, integer(offset), integer(length))
}

// Field access types and update rules for field().
const (
	accessByte         = 1
	accessDWord        = 3
	lockNone           = 0
	updatePreserve     = 0 << 5
	updateWriteAsZeros = 2 << 5
)

// fieldUnit is one named field of a Field list.
type fieldUnit struct {
	Name string
	Bits int
}

// field encodes Field(region, access, NoLock, update) {units}.
func field(region string, flags byte, units ...fieldUnit) []byte {
	var list []byte
	for _, u := range units {
		list = append(list, nameSeg(u.Name)...)
		list = append(list, encodeLength(u.Bits)...) // a bit count, not counting itself
	}
	return withPkgLength([]byte{extOpPrefix, fieldExtOp}, nameString(region), []byte{flags}, list)
}

// Resource descriptors (ACPI 6.5, 6.4). A template is a Buffer holding the
// descriptors and an End Tag.

// resourceTemplate encodes ResourceTemplate() {descs...}. The End Tag's
// checksum is 0, which means "treat as valid", as iasl emits.
func resourceTemplate(descs ...[]byte) []byte {
	return buffer(cat(cat(descs...), []byte{0x79, 0x00}))
}

// ioPort encodes IO(Decode16, min, max, align, length).
func ioPort(min, max uint16, align, length uint8) []byte {
	b := []byte{0x47, 0x01}
	b = binary.LittleEndian.AppendUint16(b, min)
	b = binary.LittleEndian.AppendUint16(b, max)
	return append(b, align, length)
}

// irqNoFlags encodes IRQNoFlags() {irq} (edge, active high, exclusive).
func irqNoFlags(irq uint8) []byte {
	return binary.LittleEndian.AppendUint16([]byte{0x22}, 1<<irq)
}

// interrupt encodes Interrupt(ResourceConsumer, Level|Edge, ActiveHigh,
// Shared|Exclusive) {irqs...}: the Extended Interrupt Descriptor.
func interrupt(level, shared bool, irqs ...uint32) []byte {
	flags := byte(1) // consumer
	if !level {
		flags |= 1 << 1
	}
	if shared {
		flags |= 1 << 3
	}
	b := []byte{0x89}
	b = binary.LittleEndian.AppendUint16(b, uint16(2+4*len(irqs)))
	b = append(b, flags, byte(len(irqs)))
	for _, irq := range irqs {
		b = binary.LittleEndian.AppendUint32(b, irq)
	}
	return b
}

// memory32Fixed encodes Memory32Fixed(ReadWrite, base, length).
func memory32Fixed(base, length uint32) []byte {
	b := []byte{0x86, 9, 0, 1}
	b = binary.LittleEndian.AppendUint32(b, base)
	return binary.LittleEndian.AppendUint32(b, length)
}

// Address space resource types and flags.
const (
	addrMemory = 0
	addrIO     = 1
	addrBus    = 2

	// General flags: MinFixed, MaxFixed, PosDecode; bit 0 set for a consumer.
	addrFixedProducer = 0x0C
	addrFixedConsumer = 0x0D

	memReadWrite    = 1 << 0
	memCacheable    = 1 << 1
	ioEntireRange   = 3
	memNonCacheable = 0
)

// addressSpace encodes the Word (0x88), DWord (0x87) or QWord (0x8A)
// Address Space Descriptor with values of size bytes each: granularity,
// min, max, translation offset and length.
func addressSpace(size int, typ, general, specific byte, min, max, length uint64) []byte {
	var tag byte
	switch size {
	case 2:
		tag = 0x88
	case 4:
		tag = 0x87
	case 8:
		tag = 0x8A
	default:
		panic("aml: bad address space size")
	}
	b := []byte{tag}
	b = binary.LittleEndian.AppendUint16(b, uint16(3+5*size))
	b = append(b, typ, general, specific)
	for _, v := range []uint64{0, min, max, 0, length} {
		var le [8]byte
		binary.LittleEndian.PutUint64(le[:], v)
		b = append(b, le[:size]...)
	}
	return b
}

// wordBusNumber encodes WordBusNumber(ResourceProducer, MinFixed, MaxFixed,
// PosDecode, 0, min, max, 0, max-min+1).
func wordBusNumber(min, max uint16) []byte {
	return addressSpace(2, addrBus, addrFixedProducer, 0, uint64(min), uint64(max), uint64(max)-uint64(min)+1)
}

// dwordIO encodes DWordIO(ResourceProducer, MinFixed, MaxFixed, PosDecode,
// EntireRange, 0, min, max, 0, max-min+1).
func dwordIO(min, max uint32) []byte {
	return addressSpace(4, addrIO, addrFixedProducer, ioEntireRange, uint64(min), uint64(max), uint64(max)-uint64(min)+1)
}

// dwordMemory encodes DWordMemory(ResourceProducer, PosDecode, MinFixed,
// MaxFixed, Cacheable|NonCacheable, ReadWrite, 0, min, max, 0, max-min+1).
func dwordMemory(cacheable bool, min, max uint32) []byte {
	return addressSpace(4, addrMemory, addrFixedProducer, memFlags(cacheable), uint64(min), uint64(max), uint64(max)-uint64(min)+1)
}

// qwordMemory is dwordMemory with 64-bit values; consumer selects
// ResourceConsumer over ResourceProducer.
func qwordMemory(consumer, cacheable bool, min, max uint64) []byte {
	general := byte(addrFixedProducer)
	if consumer {
		general = addrFixedConsumer
	}
	return addressSpace(8, addrMemory, general, memFlags(cacheable), min, max, max-min+1)
}

func memFlags(cacheable bool) byte {
	if cacheable {
		return memCacheable | memReadWrite
	}
	return memNonCacheable | memReadWrite
}
