// Package emulate finishes, in userspace, the guest instructions that KVM's
// in-kernel instruction emulator gives up on.
//
// On hosts where guest ring-0 code is run by KVM's emulator (PVM, or any
// KVM when it must emulate), some instructions make the vCPU exit with
// KVM_EXIT_INTERNAL_ERROR, suberror KVM_INTERNAL_ERROR_EMULATION. An
// Emulator decodes the failing instruction, carries it out against the
// vCPU's registers and guest memory, advances RIP (or injects the exception
// the instruction raises) and lets the caller re-enter KVM_RUN.
//
// All guest state is read through the CPU interface, so every instruction
// is tested on crafted state without /dev/kvm.
//
// Covered: int3 (injects #BP), clac, stac, popcnt, fwait, fnclex, emms,
// fild, cmpxchg8b, cmpxchg16b, and protected-/long-mode iret, iretd and
// iretq (same privilege or to an outer ring). Memory operands go through
// the guest's page tables; a translation the guest refuses injects #PF.
// Not modelled: segment limit checks, single-step (#DB after an emulated
// instruction), interrupt shadows, protection keys, reserved-bit checks
// in page-table entries.
//
// Use from a vCPU loop, one Emulator per machine:
//
//	case kvm.ExitInternalError:
//		ie := vcpu.Exit().(kvm.InternalErrorExit)
//		if err := em.Handle(vcpu, mem, ie); err != nil {
//			return err // *UnhandledError: report it and stop the guest
//		}
//		continue // KVM_RUN again
package emulate

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"

	"golang.org/x/arch/x86/x86asm"

	"github.com/govmm/govmm/kvm"
	"github.com/govmm/govmm/machine/guestmem"
)

// CPU is the vCPU state the emulator reads and writes. *kvm.VCPU satisfies it.
type CPU interface {
	Regs() (kvm.Regs, error)
	SetRegs(kvm.Regs) error
	Sregs() (kvm.Sregs, error)
	SetSregs(kvm.Sregs) error
	FPU() (kvm.FPU, error)
	SetFPU(kvm.FPU) error
	VCPUEvents() (kvm.VCPUEvents, error)
	SetVCPUEvents(kvm.VCPUEvents) error
}

var _ CPU = (*kvm.VCPU)(nil)

// Emulator handles emulation-failure exits. The zero value is ready to use
// and one Emulator may serve all vCPUs of a machine concurrently.
type Emulator struct {
	mu     sync.Mutex
	counts map[string]uint64
	// casMu serialises the non-atomic fallback of cmpxchg8b/16b (unaligned
	// host memory) between vCPUs handled by this Emulator.
	casMu sync.Mutex
}

// Counts returns how many instructions were emulated, by mnemonic
// ("int3", "popcnt", ...). Delivering an exception instead of completing
// the instruction (#PF, #GP, #MF, ...) counts too: the instruction was
// handled.
func (e *Emulator) Counts() map[string]uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.counts)
}

func (e *Emulator) count(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.counts == nil {
		e.counts = map[string]uint64{}
	}
	e.counts[name]++
}

// Handle deals with one KVM_EXIT_INTERNAL_ERROR. It returns nil when the
// instruction was emulated (or an exception injected in its stead) and the
// caller should call KVM_RUN again; an *UnhandledError when the instruction
// is not one this package knows; another error when the vCPU state could
// not be read or written.
func (e *Emulator) Handle(cpu CPU, mem *guestmem.Memory, exit kvm.InternalErrorExit) error {
	if mem == nil {
		return errors.New("emulate: no guest memory")
	}
	st, err := newState(cpu, mem)
	if err != nil {
		return err
	}
	st.casMu = &e.casMu
	if exit.Suberror != kvm.InternalErrorEmulation {
		return st.unhandled(nil, "KVM internal error is "+exit.SuberrorName()+", not an emulation failure")
	}

	name, err := st.run(exit.InstructionBytes())
	var f *fault
	if errors.As(err, &f) {
		// The instruction faulted: the guest sees the exception with the
		// state as it was before the instruction. (int3, a trap, does not
		// come this way: it advances RIP and sets st.inject itself.)
		st.discard()
		err = st.deliver(f)
	}
	if err != nil {
		return err
	}
	if err := st.commit(); err != nil {
		return err
	}
	e.count(name)
	return nil
}

// run decodes and executes the instruction at CS:RIP. It returns the
// mnemonic to count.
func (st *state) run(reported []byte) (string, error) {
	code := reported
	inst, derr := decode(code, st.mode)
	// KVM may report no bytes, or fewer than the instruction has (x86asm
	// then decodes a lone prefix, or fails): unless the report has the
	// maximum 15 bytes, read the instruction from guest memory, and use
	// that if it agrees with the report.
	if len(code) < 15 {
		fetched, err := st.fetch()
		switch {
		case err == nil && bytes.HasPrefix(fetched, code):
			code = fetched
			inst, derr = decode(code, st.mode)
		case len(code) == 0:
			return "", err
		}
	}
	st.code = code
	if derr != nil {
		return "", st.unhandled(nil, "cannot decode: "+derr.Error())
	}
	st.inst = inst
	return st.exec(mnemonic(inst))
}

// mnemonic returns the lower-case mnemonic of an instruction.
func mnemonic(inst x86asm.Inst) string {
	switch inst.Op {
	case opCLAC:
		return "clac"
	case opSTAC:
		return "stac"
	case x86asm.INT:
		if inst.Opcode>>24 == 0xcc {
			return "int3"
		}
	}
	return strings.ToLower(inst.Op.String())
}

// Pseudo-ops for instructions x86asm does not know.
const (
	opCLAC = x86asm.Op(0x7f00) + iota
	opSTAC
)

// decode decodes one instruction in the given mode (16, 32 or 64).
func decode(code []byte, mode int) (x86asm.Inst, error) {
	if len(code) == 0 {
		return x86asm.Inst{}, errors.New("no instruction bytes")
	}
	// clac (0f 01 ca) and stac (0f 01 cb) are unknown to x86asm. They take
	// no prefixes that change their meaning; we accept them bare only.
	if len(code) >= 3 && code[0] == 0x0f && code[1] == 0x01 && (code[2] == 0xca || code[2] == 0xcb) {
		op := opCLAC
		if code[2] == 0xcb {
			op = opSTAC
		}
		return x86asm.Inst{Op: op, Mode: mode, Len: 3, Opcode: 0x0f01ca00 | uint32(code[2]&1)<<8}, nil
	}
	return x86asm.Decode(code, mode)
}

// exec carries out the decoded instruction st.inst.
func (st *state) exec(name string) (string, error) {
	inst := st.inst
	switch inst.Op {
	case x86asm.INT, opCLAC, opSTAC, x86asm.POPCNT, x86asm.FWAIT, x86asm.FNCLEX, x86asm.EMMS,
		x86asm.FILD, x86asm.IRET, x86asm.IRETD, x86asm.IRETQ, x86asm.LDMXCSR, x86asm.STMXCSR, x86asm.FNINIT:
		if hasPrefix(inst, x86asm.PrefixLOCK) {
			return name, &fault{vector: vecUD}
		}
	}
	var err error
	switch inst.Op {
	case x86asm.INT:
		if name != "int3" {
			return name, st.unhandled(&inst, "software interrupt other than int3")
		}
		err = st.int3()
	case opCLAC, opSTAC:
		err = st.clacStac(inst.Op == opSTAC)
	case x86asm.POPCNT:
		err = st.popcnt()
	case x86asm.FWAIT:
		err = st.fwait()
	case x86asm.FNCLEX:
		err = st.fnclex()
	case x86asm.EMMS:
		err = st.emms()
	case x86asm.FILD:
		err = st.fild()
	case x86asm.CMPXCHG8B, x86asm.CMPXCHG16B:
		err = st.cmpxchgDouble()
	case x86asm.LDMXCSR:
		err = st.ldmxcsr()
	case x86asm.STMXCSR:
		err = st.stmxcsr()
	case x86asm.FNINIT:
		err = st.fninit()
	case x86asm.IRET, x86asm.IRETD, x86asm.IRETQ:
		err = st.iret()
	default:
		return name, st.unhandled(&inst, "instruction not emulated")
	}
	return name, err
}

func hasPrefix(inst x86asm.Inst, p x86asm.Prefix) bool {
	for _, q := range inst.Prefix {
		if q == 0 {
			break
		}
		if q&0xff == p {
			return true
		}
	}
	return false
}

// advance moves RIP past the current instruction.
func (st *state) advance() {
	rip := st.regs.RIP + uint64(st.inst.Len)
	if st.mode != 64 {
		rip = uint64(uint32(rip))
		if st.mode == 16 {
			rip &= 0xffff
		}
	}
	st.regs.RIP = rip
	st.regsDirty = true
}

// UnhandledError reports an instruction the emulator cannot carry out.
type UnhandledError struct {
	Reason string
	Bytes  []byte // instruction bytes as reported by KVM or fetched
	Inst   string // Intel syntax, or "" when the bytes did not decode
	Mode   int    // 16, 32 or 64
	CS     uint16
	RIP    uint64
	Linear uint64 // CS.base + RIP
	CPL    int
	Regs   kvm.Regs
	Sregs  kvm.Sregs
}

func (e *UnhandledError) Error() string {
	var sb strings.Builder
	what := "undecodable instruction"
	if e.Inst != "" {
		what = fmt.Sprintf("%q", e.Inst)
	}
	fmt.Fprintf(&sb, "emulation failure: cannot emulate %s", what)
	if len(e.Bytes) > 0 {
		fmt.Fprintf(&sb, " (bytes % x)", e.Bytes)
	}
	fmt.Fprintf(&sb, " at %04x:%016x (linear %#x) in %d-bit mode, CPL %d: %s\n", e.CS, e.RIP, e.Linear, e.Mode, e.CPL, e.Reason)
	r := &e.Regs
	fmt.Fprintf(&sb, "RAX=%016x RBX=%016x RCX=%016x RDX=%016x\n", r.RAX, r.RBX, r.RCX, r.RDX)
	fmt.Fprintf(&sb, "RSI=%016x RDI=%016x RBP=%016x RSP=%016x\n", r.RSI, r.RDI, r.RBP, r.RSP)
	fmt.Fprintf(&sb, "R8 =%016x R9 =%016x R10=%016x R11=%016x\n", r.R8, r.R9, r.R10, r.R11)
	fmt.Fprintf(&sb, "R12=%016x R13=%016x R14=%016x R15=%016x\n", r.R12, r.R13, r.R14, r.R15)
	fmt.Fprintf(&sb, "RIP=%016x RFL=%08x\n", r.RIP, r.RFLAGS)
	s := &e.Sregs
	for _, sg := range []struct {
		n string
		s kvm.Segment
	}{{"ES", s.ES}, {"CS", s.CS}, {"SS", s.SS}, {"DS", s.DS}, {"FS", s.FS}, {"GS", s.GS}, {"LDT", s.LDT}, {"TR", s.TR}} {
		fmt.Fprintf(&sb, "%-3s=%04x %016x %08x type=%x dpl=%d p=%d db=%d l=%d g=%d\n", sg.n, sg.s.Selector, sg.s.Base, sg.s.Limit, sg.s.Type, sg.s.DPL, sg.s.Present, sg.s.DB, sg.s.L, sg.s.G)
	}
	fmt.Fprintf(&sb, "GDT=     %016x %08x\nIDT=     %016x %08x\n", s.GDT.Base, s.GDT.Limit, s.IDT.Base, s.IDT.Limit)
	fmt.Fprintf(&sb, "CR0=%08x CR2=%016x CR3=%016x CR4=%08x EFER=%016x", s.CR0, s.CR2, s.CR3, s.CR4, s.EFER)
	return sb.String()
}

// unhandled builds an *UnhandledError for the instruction at CS:RIP.
func (st *state) unhandled(inst *x86asm.Inst, reason string) error {
	e := &UnhandledError{
		Reason: reason,
		Bytes:  st.code,
		Mode:   st.mode,
		CS:     st.sregs0.CS.Selector,
		RIP:    st.regs0.RIP,
		Linear: st.linearIP(),
		CPL:    st.cpl,
		Regs:   st.regs0,
		Sregs:  st.sregs0,
	}
	if inst != nil {
		e.Bytes = st.code[:min(inst.Len, len(st.code))]
		if inst.Op == opCLAC || inst.Op == opSTAC {
			e.Inst = mnemonic(*inst)
		} else {
			e.Inst = x86asm.IntelSyntax(*inst, st.regs0.RIP, nil)
		}
	}
	return e
}

// FormatCounts renders counts as the monitor's "info emulation" and the
// -d exit log print them:
// a total, then one "mnemonic: count" line each, most frequent first.
func FormatCounts(counts map[string]uint64) string {
	type kv struct {
		k string
		v uint64
	}
	var all []kv
	var total uint64
	for k, v := range counts {
		all = append(all, kv{k, v})
		if !strings.HasPrefix(k, "pvm-") { // PVM syscall repairs are not instructions
			total += v
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].v != all[j].v {
			return all[i].v > all[j].v
		}
		return all[i].k < all[j].k
	})
	var b strings.Builder
	fmt.Fprintf(&b, "emulated instructions: %d\n", total)
	for _, e := range all {
		fmt.Fprintf(&b, "  %s: %d\n", e.k, e.v)
	}
	return b.String()
}
