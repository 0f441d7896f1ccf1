package emulate

import (
	"github.com/govmm/govmm/kvm"
)

// iret is a protected-mode or IA-32e-mode interrupt return (iret, iretd,
// iretq): to the same privilege level, or to an outer one (which also
// pops SS:ESP and nulls data segments the new CPL may not use). In 64-bit
// mode SS:RSP is always popped. KVM's emulator already handles real-mode
// iret; task returns (NT set) and returns to virtual-8086 mode are left
// to UnhandledError.
func (st *state) iret() error {
	if !st.protected() {
		return st.unhandled(&st.inst, "iret outside protected mode")
	}
	if st.regs.RFLAGS&flagNT != 0 {
		if st.longMode() {
			return gp(0)
		}
		return st.unhandled(&st.inst, "iret with NT set (task return)")
	}
	opSize := st.inst.DataSize / 8
	if opSize != 2 && opSize != 4 && opSize != 8 {
		return st.unhandled(&st.inst, "unexpected operand size")
	}

	// The stack: RSP in 64-bit mode, else ESP or SP by SS.B.
	spMask := uint64(0xffff)
	switch {
	case st.mode == 64:
		spMask = ^uint64(0)
	case st.sregs.SS.DB != 0:
		spMask = 0xffff_ffff
	}
	sp := st.regs.RSP & spMask
	var ssBase uint64
	if st.mode != 64 {
		ssBase = st.sregs.SS.Base
	}
	pop := func(i int) (uint64, error) {
		la := ssBase + (sp+uint64(i*opSize))&spMask
		if !st.canonical(la) {
			return 0, &fault{vector: vecSS, hasCode: true}
		}
		return st.readUint(la, opSize, accRead)
	}
	newIP, err := pop(0)
	if err != nil {
		return err
	}
	csWord, err := pop(1)
	if err != nil {
		return err
	}
	newFlags, err := pop(2)
	if err != nil {
		return err
	}
	if st.mode != 64 && opSize == 4 && newFlags&flagVM != 0 && st.cpl == 0 {
		return st.unhandled(&st.inst, "iret to virtual-8086 mode")
	}

	csSel := uint16(csWord)
	rpl := int(csSel & 3)
	if csSel&0xfffc == 0 {
		return gp(0)
	}
	if rpl < st.cpl {
		return gp(uint32(csSel & 0xfffc))
	}
	cs, csAddr, err := st.loadDescriptor(csSel)
	if err != nil {
		return err
	}
	if cs.S == 0 || cs.Type&8 == 0 {
		return gp(uint32(csSel & 0xfffc))
	}
	if cs.Type&4 != 0 { // conforming
		if int(cs.DPL) > rpl {
			return gp(uint32(csSel & 0xfffc))
		}
	} else if int(cs.DPL) != rpl {
		return gp(uint32(csSel & 0xfffc))
	}
	if st.longMode() && cs.L != 0 && cs.DB != 0 {
		return gp(uint32(csSel & 0xfffc))
	}
	if cs.Present == 0 {
		return &fault{vector: vecNP, code: uint32(csSel & 0xfffc), hasCode: true}
	}
	if !st.longMode() {
		cs.L = 0 // reserved outside IA-32e mode
	}

	outer := rpl > st.cpl || st.mode == 64
	var ss kvm.Segment
	var ssAddr uint64
	var newSP uint64
	if outer {
		if newSP, err = pop(3); err != nil {
			return err
		}
		ssWord, err := pop(4)
		if err != nil {
			return err
		}
		ssSel := uint16(ssWord)
		if ssSel&0xfffc == 0 {
			// A null SS is allowed only returning to 64-bit code below ring 3.
			if st.mode != 64 || cs.L == 0 || rpl == 3 || int(ssSel&3) != rpl {
				return gp(0)
			}
			ss = kvm.Segment{Selector: ssSel, DPL: uint8(rpl), Unusable: 1, DB: 1, S: 1, Type: 3}
		} else {
			if int(ssSel&3) != rpl {
				return gp(uint32(ssSel & 0xfffc))
			}
			if ss, ssAddr, err = st.loadDescriptor(ssSel); err != nil {
				return err
			}
			if ss.S == 0 || ss.Type&8 != 0 || ss.Type&2 == 0 || int(ss.DPL) != rpl {
				return gp(uint32(ssSel & 0xfffc))
			}
			if ss.Present == 0 {
				return &fault{vector: vecSS, code: uint32(ssSel & 0xfffc), hasCode: true}
			}
		}
	}

	// Everything checked: mark the descriptors accessed, then switch.
	if err := st.setDescAccessed(&cs, csAddr); err != nil {
		return err
	}
	if outer && ss.Unusable == 0 {
		if err := st.setDescAccessed(&ss, ssAddr); err != nil {
			return err
		}
	}

	st.regs.RFLAGS = st.iretFlags(newFlags, opSize)
	switch {
	case opSize == 2:
		st.regs.RIP = newIP & 0xffff
	case cs.L == 0:
		st.regs.RIP = uint64(uint32(newIP))
	default:
		st.regs.RIP = newIP
	}
	st.sregs.CS = cs
	if outer {
		st.sregs.SS = ss
		switch {
		case opSize == 8:
			st.regs.RSP = newSP
		case ss.DB != 0:
			st.regs.RSP = uint64(uint32(newSP))
		default:
			st.regs.RSP = st.regs.RSP&^0xffff | newSP&0xffff
		}
		if rpl > st.cpl {
			// Data segments the new, less privileged code may not use are nulled.
			for _, s := range []*kvm.Segment{&st.sregs.ES, &st.sregs.DS, &st.sregs.FS, &st.sregs.GS} {
				conformingCode := s.Type&8 != 0 && s.Type&4 != 0
				if s.Unusable == 0 && !conformingCode && int(s.DPL) < rpl {
					*s = kvm.Segment{Unusable: 1}
				}
			}
		}
	} else {
		st.regs.RSP = st.regs.RSP&^spMask | (sp+uint64(3*opSize))&spMask
	}
	st.regsDirty, st.sregsDirty = true, true
	st.unmaskNMI = true // iret ends NMI blocking
	return nil
}

// iretFlags merges the popped flags into RFLAGS by the rules of a
// protected-mode iret at the current (old) CPL.
func (st *state) iretFlags(popped uint64, opSize int) uint64 {
	old := st.regs.RFLAGS
	mask := uint64(flagCF | flagPF | flagAF | flagZF | flagSF | flagTF | flagDF | flagOF | flagNT)
	if opSize > 2 {
		mask |= flagRF | flagAC | flagID
		if st.cpl == 0 {
			mask |= flagVIF | flagVIP
		}
	}
	if st.cpl == 0 {
		mask |= flagIOPL
	}
	if st.cpl <= int(old&flagIOPL>>12) {
		mask |= flagIF
	}
	return old&^mask | popped&mask | 2
}

// loadDescriptor reads the code or data segment descriptor selected by sel
// from the GDT or LDT and returns it as a segment cache, with the linear
// address of the descriptor.
func (st *state) loadDescriptor(sel uint16) (kvm.Segment, uint64, error) {
	base, limit := st.sregs.GDT.Base, uint64(st.sregs.GDT.Limit)
	if sel&4 != 0 {
		ldt := st.sregs.LDT
		if ldt.Unusable != 0 || ldt.Present == 0 || ldt.Selector&0xfffc == 0 {
			return kvm.Segment{}, 0, gp(uint32(sel & 0xfffc))
		}
		base, limit = ldt.Base, uint64(ldt.Limit)
	}
	off := uint64(sel &^ 7)
	if off+7 > limit {
		return kvm.Segment{}, 0, gp(uint32(sel & 0xfffc))
	}
	addr := base + off
	if !st.longMode() {
		addr = uint64(uint32(addr))
	}
	d, err := st.read(addr, 8, accImplicit)
	if err != nil {
		return kvm.Segment{}, 0, err
	}
	return descToSegment(sel, d), addr, nil
}

// descToSegment unpacks an 8-byte code/data segment descriptor.
func descToSegment(sel uint16, d []byte) kvm.Segment {
	limit := uint32(d[0]) | uint32(d[1])<<8 | uint32(d[6]&0xf)<<16
	g := d[6] >> 7
	if g != 0 {
		limit = limit<<12 | 0xfff
	}
	return kvm.Segment{
		Base:     uint64(d[2]) | uint64(d[3])<<8 | uint64(d[4])<<16 | uint64(d[7])<<24,
		Limit:    limit,
		Selector: sel,
		Type:     d[5] & 0xf,
		S:        d[5] >> 4 & 1,
		DPL:      d[5] >> 5 & 3,
		Present:  d[5] >> 7,
		AVL:      d[6] >> 4 & 1,
		L:        d[6] >> 5 & 1,
		DB:       d[6] >> 6 & 1,
		G:        g,
	}
}

// setDescAccessed sets the accessed bit of a descriptor, in memory and in
// the cache, as loading a segment register does.
func (st *state) setDescAccessed(s *kvm.Segment, addr uint64) error {
	if s.Type&1 != 0 {
		return nil
	}
	s.Type |= 1
	b, err := st.read(addr+5, 1, accImplicit|accWrite)
	if err != nil {
		return err
	}
	return st.write(addr+5, []byte{b[0] | 1}, accImplicit)
}
