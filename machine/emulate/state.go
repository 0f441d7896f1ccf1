package emulate

import (
	"fmt"
	"sync"

	"golang.org/x/arch/x86/x86asm"

	"github.com/govmm/govmm/kvm"
	"github.com/govmm/govmm/machine/guestmem"
)

// Architectural bits used below.
const (
	cr0PE = 1 << 0
	cr0MP = 1 << 1
	cr0EM = 1 << 2
	cr0TS = 1 << 3
	cr0NE = 1 << 5
	cr0WP = 1 << 16
	cr0PG = 1 << 31

	cr4PSE  = 1 << 4
	cr4PAE  = 1 << 5
	cr4LA57 = 1 << 12
	cr4SMEP = 1 << 20
	cr4SMAP = 1 << 21

	eferNXE = 1 << 11
	eferLMA = 1 << 10

	flagCF   = 1 << 0
	flagPF   = 1 << 2
	flagAF   = 1 << 4
	flagZF   = 1 << 6
	flagSF   = 1 << 7
	flagTF   = 1 << 8
	flagIF   = 1 << 9
	flagDF   = 1 << 10
	flagOF   = 1 << 11
	flagIOPL = 3 << 12
	flagNT   = 1 << 14
	flagRF   = 1 << 16
	flagVM   = 1 << 17
	flagAC   = 1 << 18
	flagVIF  = 1 << 19
	flagVIP  = 1 << 20
	flagID   = 1 << 21

	flagsArith = flagCF | flagPF | flagAF | flagZF | flagSF | flagOF
)

// Exception vectors.
const (
	vecBP = 3
	vecUD = 6
	vecNM = 7
	vecNP = 11
	vecSS = 12
	vecGP = 13
	vecPF = 14
	vecMF = 16
)

// fault is an exception the emulated instruction raises. It travels as an
// error up to Handle, which injects it into the guest.
type fault struct {
	vector  uint8
	code    uint32
	hasCode bool
	cr2     uint64 // for #PF
}

func (f *fault) Error() string {
	if f.vector == vecPF {
		return fmt.Sprintf("#PF(%#x) at %#x", f.code, f.cr2)
	}
	if f.hasCode {
		return fmt.Sprintf("exception %d (%#x)", f.vector, f.code)
	}
	return fmt.Sprintf("exception %d", f.vector)
}

func gp(code uint32) *fault { return &fault{vector: vecGP, code: code, hasCode: true} }

// state is one vCPU's state while one instruction is emulated: the values
// read at entry, and the working copy the instruction changes.
type state struct {
	cpu CPU
	mem *guestmem.Memory

	regs0  kvm.Regs
	sregs0 kvm.Sregs

	regs       kvm.Regs
	sregs      kvm.Sregs
	fpu        *kvm.FPU // loaded on first use
	regsDirty  bool
	sregsDirty bool
	fpuDirty   bool
	inject     *fault // exception to inject at commit
	unmaskNMI  bool   // an iret completed: NMIs are no longer blocked

	casMu *sync.Mutex // see Emulator.casMu

	mode int // 16, 32 or 64
	cpl  int
	code []byte
	inst x86asm.Inst
}

func newState(cpu CPU, mem *guestmem.Memory) (*state, error) {
	regs, err := cpu.Regs()
	if err != nil {
		return nil, err
	}
	sregs, err := cpu.Sregs()
	if err != nil {
		return nil, err
	}
	st := &state{cpu: cpu, mem: mem, regs0: regs, sregs0: sregs, regs: regs, sregs: sregs}
	st.mode = cpuMode(sregs, regs.RFLAGS)
	st.cpl = cpuCPL(sregs, regs.RFLAGS)
	return st, nil
}

// cpuMode is the default operand/address size of the code at CS:RIP.
func cpuMode(s kvm.Sregs, rflags uint64) int {
	switch {
	case s.CR0&cr0PE == 0 || rflags&flagVM != 0:
		return 16
	case s.EFER&eferLMA != 0 && s.CS.L != 0:
		return 64
	case s.CS.DB != 0:
		return 32
	}
	return 16
}

// cpuCPL is the current privilege level. KVM reports it as SS.DPL (both
// VMX and SVM keep CPL there).
func cpuCPL(s kvm.Sregs, rflags uint64) int {
	switch {
	case s.CR0&cr0PE == 0:
		return 0
	case rflags&flagVM != 0:
		return 3
	}
	return int(s.SS.DPL & 3)
}

// protected reports protected mode outside virtual-8086 mode.
func (st *state) protected() bool {
	return st.sregs.CR0&cr0PE != 0 && st.regs.RFLAGS&flagVM == 0
}

// longMode reports IA-32e mode (64-bit or compatibility mode).
func (st *state) longMode() bool { return st.sregs.EFER&eferLMA != 0 }

func (st *state) linearIP() uint64 {
	if st.mode == 64 {
		return st.regs0.RIP
	}
	return uint64(uint32(st.sregs0.CS.Base + st.regs0.RIP))
}

// loadFPU reads the x87/SSE state on first use.
func (st *state) loadFPU() (*kvm.FPU, error) {
	if st.fpu == nil {
		f, err := st.cpu.FPU()
		if err != nil {
			return nil, err
		}
		st.fpu = &f
	}
	return st.fpu, nil
}

// discard drops every register change made so far.
func (st *state) discard() {
	st.regs, st.sregs = st.regs0, st.sregs0
	st.regsDirty, st.sregsDirty, st.fpuDirty = false, false, false
	st.inject = nil
	st.unmaskNMI = false
}

// deliver arranges for exception f to be injected at commit.
func (st *state) deliver(f *fault) error {
	if st.inject != nil {
		return fmt.Errorf("emulate: %v raised while %v is being delivered", f, st.inject)
	}
	if f.vector == vecPF {
		st.sregs.CR2 = f.cr2
		st.sregsDirty = true
	}
	st.inject = f
	return nil
}

// commit writes the changed state back to the vCPU.
func (st *state) commit() error {
	if st.sregsDirty {
		if err := st.cpu.SetSregs(st.sregs); err != nil {
			return err
		}
	}
	if st.regsDirty {
		if err := st.cpu.SetRegs(st.regs); err != nil {
			return err
		}
	}
	if st.fpuDirty {
		if err := st.cpu.SetFPU(*st.fpu); err != nil {
			return err
		}
	}
	if st.inject == nil && !st.unmaskNMI {
		return nil
	}
	ev, err := st.cpu.VCPUEvents()
	if err != nil {
		return err
	}
	// Without KVM_VCPUEVENT_VALID_PAYLOAD KVM takes the exception as
	// injected, with CR2 as it is in the sregs (set above for #PF).
	ev.Flags &^= kvm.VCPUEventValidPayload
	ev.ExceptionHasPayload, ev.ExceptionPayload = 0, 0
	if st.unmaskNMI {
		ev.NMI.Masked = 0
	}
	if f := st.inject; f != nil {
		if ev.Exception.Injected != 0 || ev.Exception.Pending != 0 {
			return fmt.Errorf("emulate: cannot inject %v: exception %d already pending", f, ev.Exception.Nr)
		}
		ev.Exception.Injected = 1
		ev.Exception.Pending = 0
		ev.Exception.Nr = f.vector
		ev.Exception.HasErrorCode = 0
		ev.Exception.ErrorCode = 0
		if f.hasCode {
			ev.Exception.HasErrorCode = 1
			ev.Exception.ErrorCode = f.code
		}
	}
	return st.cpu.SetVCPUEvents(ev)
}

// fetch reads up to 15 instruction bytes at CS:RIP from guest memory. It
// stops early at a page it cannot translate; if not even the first byte
// can be read, it returns the fault.
func (st *state) fetch() ([]byte, error) {
	la := st.linearIP()
	var code []byte
	for len(code) < 15 {
		n := min(15-len(code), int(pageSize-(la&(pageSize-1))))
		b, err := st.read(la, n, accFetch)
		if err != nil {
			if len(code) > 0 {
				break
			}
			return nil, err
		}
		code = append(code, b...)
		la += uint64(n)
		if st.mode != 64 {
			la = uint64(uint32(la))
		}
	}
	return code, nil
}

// gpr returns the 64-bit register with encoding number i (0 = RAX, 1 = RCX, ...).
func (st *state) gpr(i int) *uint64 {
	r := &st.regs
	return [...]*uint64{&r.RAX, &r.RCX, &r.RDX, &r.RBX, &r.RSP, &r.RBP, &r.RSI, &r.RDI,
		&r.R8, &r.R9, &r.R10, &r.R11, &r.R12, &r.R13, &r.R14, &r.R15}[i&15]
}

// regRef locates a general-purpose register: its 64-bit container, the
// shift of its low bit and its size in bytes.
func (st *state) regRef(r x86asm.Reg) (p *uint64, shift uint, size int, ok bool) {
	switch {
	case r >= x86asm.AL && r <= x86asm.BL:
		return st.gpr(int(r - x86asm.AL)), 0, 1, true
	case r >= x86asm.AH && r <= x86asm.BH:
		return st.gpr(int(r - x86asm.AH)), 8, 1, true
	case r >= x86asm.SPB && r <= x86asm.R15B:
		return st.gpr(int(r-x86asm.SPB) + 4), 0, 1, true
	case r >= x86asm.AX && r <= x86asm.R15W:
		return st.gpr(int(r - x86asm.AX)), 0, 2, true
	case r >= x86asm.EAX && r <= x86asm.R15L:
		return st.gpr(int(r - x86asm.EAX)), 0, 4, true
	case r >= x86asm.RAX && r <= x86asm.R15:
		return st.gpr(int(r - x86asm.RAX)), 0, 8, true
	}
	return nil, 0, 0, false
}

// reg reads a general-purpose register or the instruction pointer (as the
// address of the next instruction, for RIP-relative operands).
func (st *state) reg(r x86asm.Reg) (uint64, error) {
	switch r {
	case x86asm.IP:
		return (st.regs.RIP + uint64(st.inst.Len)) & 0xffff, nil
	case x86asm.EIP:
		return uint64(uint32(st.regs.RIP + uint64(st.inst.Len))), nil
	case x86asm.RIP:
		return st.regs.RIP + uint64(st.inst.Len), nil
	}
	p, shift, size, ok := st.regRef(r)
	if !ok {
		return 0, fmt.Errorf("register %v is not a general-purpose register", r)
	}
	return (*p >> shift) & sizeMask(size), nil
}

// setReg writes a general-purpose register as the CPU does: 32-bit writes
// clear the upper half, 8- and 16-bit writes keep the other bits.
func (st *state) setReg(r x86asm.Reg, v uint64) error {
	p, shift, size, ok := st.regRef(r)
	if !ok {
		return fmt.Errorf("register %v is not a general-purpose register", r)
	}
	if size == 4 {
		*p = uint64(uint32(v))
	} else {
		m := sizeMask(size) << shift
		*p = *p&^m | (v<<shift)&m
	}
	st.regsDirty = true
	return nil
}

func sizeMask(size int) uint64 {
	if size >= 8 {
		return ^uint64(0)
	}
	return 1<<(8*size) - 1
}

// segment returns the cached segment register named by r.
func (st *state) segment(r x86asm.Reg) *kvm.Segment {
	s := &st.sregs
	switch r {
	case x86asm.ES:
		return &s.ES
	case x86asm.CS:
		return &s.CS
	case x86asm.SS:
		return &s.SS
	case x86asm.FS:
		return &s.FS
	case x86asm.GS:
		return &s.GS
	}
	return &s.DS
}

// memAddr computes the linear address of a memory operand.
func (st *state) memAddr(m x86asm.Mem) (uint64, x86asm.Reg, error) {
	var ea uint64
	if m.Base != 0 {
		v, err := st.reg(m.Base)
		if err != nil {
			return 0, 0, err
		}
		ea += v
	}
	if m.Index != 0 {
		v, err := st.reg(m.Index)
		if err != nil {
			return 0, 0, err
		}
		ea += v * uint64(m.Scale)
	}
	ea += uint64(m.Disp)
	switch st.inst.AddrSize {
	case 16:
		ea &= 0xffff
	case 32:
		ea = uint64(uint32(ea))
	}
	seg := m.Segment
	if seg == 0 {
		seg = x86asm.DS
		switch m.Base {
		case x86asm.SP, x86asm.ESP, x86asm.RSP, x86asm.BP, x86asm.EBP, x86asm.RBP:
			seg = x86asm.SS
		}
	}
	if st.mode == 64 {
		if seg == x86asm.FS || seg == x86asm.GS {
			ea += st.segment(seg).Base
		}
		return ea, seg, nil
	}
	return uint64(uint32(st.segment(seg).Base + ea)), seg, nil
}

// canonical reports whether la is canonical for the paging mode.
func (st *state) canonical(la uint64) bool {
	if !st.longMode() {
		return true
	}
	bits := uint(48)
	if st.sregs.CR4&cr4LA57 != 0 {
		bits = 57
	}
	top := int64(la) >> (bits - 1)
	return top == 0 || top == -1
}

// operandAddr computes and checks the linear address of memory operand arg.
func (st *state) operandAddr(arg x86asm.Arg) (uint64, error) {
	m, ok := arg.(x86asm.Mem)
	if !ok {
		return 0, st.unhandled(&st.inst, "expected a memory operand")
	}
	la, seg, err := st.memAddr(m)
	if err != nil {
		return 0, st.unhandled(&st.inst, err.Error())
	}
	if !st.canonical(la) {
		if seg == x86asm.SS {
			return 0, &fault{vector: vecSS, hasCode: true}
		}
		return 0, gp(0)
	}
	return la, nil
}
