package emulate

import (
	"math/bits"

	"golang.org/x/arch/x86/x86asm"
)

// int3 raises #BP as a trap: RIP moves past the int3 and the exception is
// injected, so the guest's handler sees the address after the int3 as
// the CPU would push it. KVM's vcpu events have no "soft" marker; KVM
// itself classes vector 3 as a soft exception.
func (st *state) int3() error {
	st.advance()
	st.inject = &fault{vector: vecBP}
	return nil
}

// clacStac clears or sets RFLAGS.AC. Both are #UD outside ring 0 (and in
// virtual-8086 mode); they do not depend on CR4.SMAP.
func (st *state) clacStac(set bool) error {
	if st.regs.RFLAGS&flagVM != 0 || st.cpl != 0 {
		return &fault{vector: vecUD}
	}
	if set {
		st.regs.RFLAGS |= flagAC
	} else {
		st.regs.RFLAGS &^= flagAC
	}
	st.advance()
	return nil
}

// operandValue reads a register or memory source operand of size bytes.
func (st *state) operandValue(arg x86asm.Arg, size int) (uint64, error) {
	if r, ok := arg.(x86asm.Reg); ok {
		v, err := st.reg(r)
		if err != nil {
			return 0, st.unhandled(&st.inst, err.Error())
		}
		return v, nil
	}
	la, err := st.operandAddr(arg)
	if err != nil {
		return 0, err
	}
	return st.readUint(la, size, accRead)
}

// popcnt counts the set bits of the source. ZF tells whether the source
// was zero; CF, PF, AF, SF and OF are cleared.
func (st *state) popcnt() error {
	size := st.inst.DataSize / 8
	dst, ok := st.inst.Args[0].(x86asm.Reg)
	if !ok || size == 0 {
		return st.unhandled(&st.inst, "unexpected popcnt operands")
	}
	v, err := st.operandValue(st.inst.Args[1], size)
	if err != nil {
		return err
	}
	v &= sizeMask(size)
	if err := st.setReg(dst, uint64(bits.OnesCount64(v))); err != nil {
		return st.unhandled(&st.inst, err.Error())
	}
	st.regs.RFLAGS &^= flagsArith
	if v == 0 {
		st.regs.RFLAGS |= flagZF
	}
	st.advance()
	return nil
}

// cmpxchgDouble is cmpxchg8b (EDX:EAX against m64, ECX:EBX stored on
// match) and cmpxchg16b (RDX:RAX, RCX:RBX, m128 16-byte aligned). With the
// guest's memory suitably aligned on the host the compare-and-swap is a
// locked host instruction, so it stays atomic against other vCPUs.
func (st *state) cmpxchgDouble() error {
	size := 8
	if st.inst.Op == x86asm.CMPXCHG16B {
		size = 16
	}
	la, err := st.operandAddr(st.inst.Args[0])
	if err != nil {
		return err
	}
	if size == 16 && la%16 != 0 {
		return gp(0)
	}
	// The CPU writes the destination whether or not the comparison
	// succeeds, so the page must be writable either way.
	sp, err := st.spans(la, size, accWrite)
	if err != nil {
		return err
	}
	r := &st.regs
	var old, nw [2]uint64
	if size == 16 {
		old = [2]uint64{r.RAX, r.RDX}
		nw = [2]uint64{r.RBX, r.RCX}
	} else {
		old[0] = uint64(uint32(r.RAX)) | r.RDX<<32
		nw[0] = uint64(uint32(r.RBX)) | r.RCX<<32
	}
	var cur [2]uint64
	var swapped, done bool
	if len(sp) == 1 {
		host, err := st.mem.Slice(sp[0].gpa, uint64(size))
		if err != nil {
			return err
		}
		if size == 16 {
			cur, swapped, done = hostCAS128(host, old, nw)
		} else {
			cur[0], swapped, done = hostCAS64(host, old[0], nw[0])
		}
	}
	if !done {
		cur, swapped, err = st.slowCAS(la, size, old, nw)
		if err != nil {
			return err
		}
	}
	if swapped {
		r.RFLAGS |= flagZF
	} else {
		r.RFLAGS &^= flagZF
		if size == 16 {
			r.RAX, r.RDX = cur[0], cur[1]
		} else {
			r.RAX = uint64(uint32(cur[0]))
			r.RDX = cur[0] >> 32
			if st.mode != 64 {
				// Outside 64-bit mode only the low halves exist; keep
				// KVM's view of the upper halves untouched.
				r.RAX = st.regs0.RAX&^0xffff_ffff | r.RAX
				r.RDX = st.regs0.RDX&^0xffff_ffff | r.RDX
			}
		}
	}
	st.advance()
	return nil
}

// slowCAS does the compare-and-swap through ordinary reads and writes,
// serialised with other vCPUs handled by the same Emulator only.
func (st *state) slowCAS(la uint64, size int, old, nw [2]uint64) (cur [2]uint64, swapped bool, err error) {
	st.casMu.Lock()
	defer st.casMu.Unlock()
	b, err := st.read(la, size, accWrite)
	if err != nil {
		return cur, false, err
	}
	cur[0] = leUint64(b[0:8])
	if size == 16 {
		cur[1] = leUint64(b[8:16])
	}
	if cur != old {
		return cur, false, nil
	}
	out := make([]byte, size)
	putUint(out[0:8], nw[0])
	if size == 16 {
		putUint(out[8:16], nw[1])
	}
	return cur, true, st.write(la, out, accWrite)
}

func leUint64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}
