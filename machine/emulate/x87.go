package emulate

import (
	"encoding/binary"
	"math/bits"

	"github.com/govmm/govmm/kvm"
)

// x87 status word bits.
const (
	fswIE  = 1 << 0
	fswSF  = 1 << 6
	fswES  = 1 << 7
	fswC1  = 1 << 9
	fswTop = 7 << 11
	fswB   = 1 << 15

	fcwIM    = 1 << 0
	fswFlags = 0x3f // IE DE ZE OE UE PE
)

// The x87 state comes as KVM's struct kvm_fpu, which follows the FXSAVE
// layout: FPR[i] is ST(i), i.e. stack order relative to TOP (not physical
// register i), while the abridged tag byte FTWX has one bit per *physical*
// register (bit j set: register R_j is not empty).

// x87Pending reports an unmasked x87 exception waiting to be delivered
// (FSW.ES). Waiting x87 instructions raise it as #MF first when CR0.NE is
// set; with CR0.NE clear the CPU would signal it externally (FERR#, IRQ 13),
// which this emulator does not model: it proceeds.
func (st *state) x87Pending(f *kvm.FPU) error {
	if f.FSW&fswES != 0 && st.sregs.CR0&cr0NE != 0 {
		return &fault{vector: vecMF}
	}
	return nil
}

// fwait: #NM if CR0.TS and CR0.MP, then any pending x87 exception.
func (st *state) fwait() error {
	if cr0 := st.sregs.CR0; cr0&cr0TS != 0 && cr0&cr0MP != 0 {
		return &fault{vector: vecNM}
	}
	f, err := st.loadFPU()
	if err != nil {
		return err
	}
	if err := st.x87Pending(f); err != nil {
		return err
	}
	st.advance()
	return nil
}

// fnclex clears the exception flags, the stack fault, ES and B without
// checking for pending exceptions.
func (st *state) fnclex() error {
	if st.sregs.CR0&(cr0EM|cr0TS) != 0 {
		return &fault{vector: vecNM}
	}
	f, err := st.loadFPU()
	if err != nil {
		return err
	}
	f.FSW &^= fswFlags | fswSF | fswES | fswB
	st.fpuDirty = true
	st.advance()
	return nil
}

// emms marks every x87 register empty.
func (st *state) emms() error {
	switch {
	case st.sregs.CR0&cr0EM != 0:
		return &fault{vector: vecUD}
	case st.sregs.CR0&cr0TS != 0:
		return &fault{vector: vecNM}
	}
	f, err := st.loadFPU()
	if err != nil {
		return err
	}
	if err := st.x87Pending(f); err != nil {
		return err
	}
	f.FTWX = 0
	st.fpuDirty = true
	st.advance()
	return nil
}

// fild loads a 16-, 32- or 64-bit signed integer from memory and pushes it
// on the x87 stack as an 80-bit extended-precision value (exact for every
// such integer).
func (st *state) fild() error {
	if st.sregs.CR0&(cr0EM|cr0TS) != 0 {
		return &fault{vector: vecNM}
	}
	size := st.inst.MemBytes
	if size != 2 && size != 4 && size != 8 {
		return st.unhandled(&st.inst, "unexpected fild operand size")
	}
	f, err := st.loadFPU()
	if err != nil {
		return err
	}
	if err := st.x87Pending(f); err != nil {
		return err
	}
	la, err := st.operandAddr(st.inst.Args[0])
	if err != nil {
		return err
	}
	raw, err := st.readUint(la, size, accRead)
	if err != nil {
		return err
	}
	// Sign-extend from the operand size.
	shift := uint(64 - 8*size)
	v := int64(raw<<shift) >> shift

	// Last-instruction pointers, as FXSAVE would show them (64-bit format:
	// offsets, not selector:offset).
	f.LastIP = st.regs.RIP
	f.LastDP = la
	f.LastOpcode = uint16(st.inst.Opcode>>24&7)<<8 | uint16(st.inst.Opcode>>16&0xff)

	push(f, x87FromInt(v))
	st.fpuDirty = true
	st.advance()
	return nil
}

// push pushes an 80-bit value on the x87 stack. On stack overflow (the
// register becoming ST(0) is not empty) it sets IE, SF and C1; with IE
// masked it pushes the real indefinite instead of the value, unmasked it
// leaves the stack alone and sets ES and B (the next waiting x87
// instruction then raises #MF).
func push(f *kvm.FPU, val [10]byte) {
	top := int(f.FSW&fswTop) >> 11
	newTop := (top - 1) & 7
	if f.FTWX&(1<<newTop) != 0 {
		f.FSW |= fswIE | fswSF | fswC1
		if f.FCW&fcwIM == 0 { // invalid-operation exception unmasked
			f.FSW |= fswES | fswB
			return
		}
		val = x87Indefinite()
	} else {
		f.FSW &^= fswC1
	}
	// FPR is in ST(i) order: every register moves down one slot; the old
	// ST(7) is the (empty, or overflowed) register that becomes ST(0).
	copy(f.FPR[1:], f.FPR[:7])
	f.FPR[0] = [16]byte{}
	copy(f.FPR[0][:], val[:])
	f.FSW = f.FSW&^fswTop | uint16(newTop)<<11
	f.FTWX |= 1 << newTop
}

// x87FromInt converts an integer to the 80-bit format: 64-bit significand
// with explicit integer bit, 15-bit exponent biased by 16383, sign.
func x87FromInt(v int64) [10]byte {
	var out [10]byte
	if v == 0 {
		return out
	}
	var sign uint16
	mag := uint64(v)
	if v < 0 {
		sign = 1 << 15
		mag = -mag // also right for math.MinInt64
	}
	lz := bits.LeadingZeros64(mag)
	binary.LittleEndian.PutUint64(out[0:8], mag<<lz)
	binary.LittleEndian.PutUint16(out[8:10], sign|uint16(16383+63-lz))
	return out
}

// x87Indefinite is the QNaN "real indefinite": sign 1, exponent all ones,
// significand 0xC000000000000000.
func x87Indefinite() [10]byte {
	var out [10]byte
	binary.LittleEndian.PutUint64(out[0:8], 0xc000_0000_0000_0000)
	binary.LittleEndian.PutUint16(out[8:10], 0xffff)
	return out
}
