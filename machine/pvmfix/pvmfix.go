// Package pvmfix makes a stock guest kernel's system calls work on PVM
// hosts, where KVM runs guest ring 3 natively but mishandles `syscall`.
//
// On the PVM fork of KVM this project's hosts run, a ring-3 `syscall` sets
// RIP=LSTAR, RCX and R11 as it should, masks RFLAGS with SFMASK, but leaves
// CS/SS at ring 3 and RSP unchanged. The fetch at LSTAR (a supervisor page)
// then faults, and the guest kernel sees a user #PF at its own syscall
// entry point and kills the process. No exit reaches the VMM on the
// syscall itself; what does work is a hardware breakpoint, set with
// KVM_SET_GUEST_DEBUG, on an address the guest runs at CPL 0.
//
// So a Fixer puts a breakpoint on the guest's #PF handler (gate 14 of its
// IDT) on every vCPU. When it fires, the Fixer reads the hardware frame the
// CPU pushed. A fault taken from ring 3 on an instruction fetch at LSTAR,
// whose registers are exactly what `syscall` leaves behind and whose RCX
// follows a `syscall` instruction (0f 05) in user memory, is rewritten into
// the syscall entry the CPU should have made: RIP=LSTAR at CPL 0 with CS
// and SS from STAR, RSP and RFLAGS as they were, RCX and R11 kept. The
// guest then runs its real syscall entry. Any other #PF passes through: the
// Fixer single-steps the handler's first instruction with the breakpoint
// off, then arms it again.
//
// All vCPU access goes through the CPU interface, so the logic is tested on
// crafted state. Enable it only on PVM hosts (PVMHost); elsewhere `syscall`
// works and the Fixer must stay out of the way.
package pvmfix

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"sync"
	"time"

	"github.com/govmm/govmm/kvm"
	"github.com/govmm/govmm/machine/guestmem"
)

// CPU is the vCPU state the Fixer reads and writes. *kvm.VCPU satisfies it.
// Its methods are called from the vCPU's own thread.
type CPU interface {
	Regs() (kvm.Regs, error)
	SetRegs(kvm.Regs) error
	Sregs() (kvm.Sregs, error)
	SetSregs(kvm.Sregs) error
	MSRs([]kvm.MSR) (int, error)
	Translate(gva uint64) (gpa uint64, valid, writeable, user bool, err error)
	SetGuestDebug(control uint32, debugRegs [8]uint64) error
}

var _ CPU = (*kvm.VCPU)(nil)

// Counter names, as Counts reports them.
const (
	CountSyscallFixup    = "pvm-syscall-fixup"    // a broken syscall turned into a proper entry
	CountPFPassthrough   = "pvm-pf-passthrough"   // a genuine #PF stepped over
	CountSyscallRejected = "pvm-syscall-rejected" // a ring-3 fetch fault at LSTAR that failed validation
	CountArm             = "pvm-bp-arm"           // breakpoint armed on a (new) handler address
	CountArmFailed       = "pvm-bp-arm-failed"    // KVM_SET_GUEST_DEBUG refused while arming
)

// Timing of Poll: how often to look for the #PF handler until a breakpoint
// is armed, and how often to re-check the gate afterwards (the guest may
// move it: Linux first points it at an early handler, and a reset or kexec
// starts over).
const (
	pollInterval    = 10 * time.Millisecond
	recheckInterval = 250 * time.Millisecond
)

// userTop is the end of the lower canonical half, where user code lives.
const userTop = 0x0000_8000_0000_0000

// kernelBase is the lowest kernel-half address with 4-level paging. A gate
// pointing below it is not a 64-bit kernel's handler yet.
const kernelBase = 0xffff_8000_0000_0000

// MSR numbers.
const (
	msrSTAR   = 0xc000_0081
	msrLSTAR  = 0xc000_0082
	msrSFMASK = 0xc000_0084
)

// Architectural bits.
const (
	cr0PG   = 1 << 31
	eferSCE = 1 << 0
	eferLMA = 1 << 10

	flagFixed = 1 << 1
	flagIOPL  = 3 << 12
	flagRF    = 1 << 16
	flagVM    = 1 << 17
	flagVIF   = 1 << 19
	flagVIP   = 1 << 20
	// flagsReserved are the RFLAGS bits that always read 0.
	flagsReserved = ^uint64(0x3f_7fd7)

	pfWrite    = 1 << 1
	pfUser     = 1 << 2
	pfReserved = 1 << 3

	vecPF = 14
)

// dr7Exec0 enables DR0 locally as a 1-byte execute breakpoint.
const dr7Exec0 = 1

type phase int

const (
	idle     phase = iota // no breakpoint set
	armed                 // breakpoint on handler
	stepping              // single-stepping past handler's first instruction
)

// vcpuState is one vCPU's part of the Fixer. Only that vCPU's thread
// touches it.
type vcpuState struct {
	phase     phase
	handler   uint64    // the address the breakpoint is (or was last) armed on
	candidate uint64    // the gate's target at the last poll, for stability
	lastPoll  time.Time // zero: never polled
}

// Fixer fixes broken syscall entries on one machine's vCPUs. Create it with
// New. Its methods may be called concurrently for different vCPUs, each
// from its own vCPU thread.
type Fixer struct {
	enabled bool
	now     func() time.Time

	// Log, if set before the vCPUs run, receives one line for each fault
	// that looked like a broken syscall but failed validation.
	Log io.Writer

	mu     sync.Mutex
	cpus   sync.Map // vCPU id -> *vcpuState
	counts map[string]uint64
}

// New returns a Fixer. A disabled Fixer does nothing: Poll returns at once
// and HandleDebug reports every exit as not its own.
func New(enabled bool) *Fixer {
	return &Fixer{enabled: enabled, now: time.Now, counts: map[string]uint64{}}
}

// PVMHost reports whether the host's KVM is PVM (the kvm_pvm module is
// loaded), the only kind of host where a Fixer should be enabled.
func PVMHost() bool {
	_, err := os.Stat("/sys/module/kvm_pvm")
	return err == nil
}

// Enabled reports whether the Fixer acts at all.
func (f *Fixer) Enabled() bool { return f.enabled }

// Counts returns the counters (see the Count* names).
func (f *Fixer) Counts() map[string]uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.counts)
}

func (f *Fixer) count(name string) {
	f.mu.Lock()
	f.counts[name]++
	f.mu.Unlock()
}

// state is the vCPU's own record. Poll calls it on every I/O exit, so the
// lookup takes no lock shared between vCPUs (a sync.Map read); each record
// is touched only by its vCPU's thread.
func (f *Fixer) state(id int) *vcpuState {
	if s, ok := f.cpus.Load(id); ok {
		return s.(*vcpuState)
	}
	s, _ := f.cpus.LoadOrStore(id, &vcpuState{})
	return s.(*vcpuState)
}

// Poll arms the breakpoint once the guest's #PF gate points at a kernel
// handler, and moves it if the gate changes. It is cheap and rate-limited,
// so a vCPU loop may call it on every I/O or MMIO exit. Errors are counted
// (CountArmFailed), not returned: the guest simply runs unfixed.
func (f *Fixer) Poll(cpu CPU, vcpuID int, mem *guestmem.Memory) {
	if !f.enabled || mem == nil {
		return
	}
	s := f.state(vcpuID)
	now := f.now()
	interval := pollInterval
	if s.phase != idle {
		interval = recheckInterval
	}
	if !s.lastPoll.IsZero() && now.Sub(s.lastPoll) < interval {
		return
	}
	s.lastPoll = now
	if s.phase == stepping {
		return // the step's exit re-arms; don't disturb it
	}
	addr, err := pfHandler(cpu, mem)
	if err != nil {
		s.candidate = 0
		return
	}
	if addr != s.candidate {
		// Seen for the first time: wait for the next poll to confirm.
		s.candidate = addr
		return
	}
	if s.phase == armed && s.handler == addr {
		return
	}
	if err := arm(cpu, addr); err != nil {
		f.count(CountArmFailed)
		return
	}
	s.phase, s.handler = armed, addr
	f.count(CountArm)
}

// Reset forgets vcpuID's breakpoint and turns guest debugging off, for a
// machine reset. It may be called from another thread while the vCPU is
// stopped.
func (f *Fixer) Reset(cpu CPU, vcpuID int) error {
	if !f.enabled {
		return nil
	}
	f.cpus.Delete(vcpuID)
	return cpu.SetGuestDebug(0, [8]uint64{})
}

func arm(cpu CPU, addr uint64) error {
	var dr [8]uint64
	dr[0], dr[7] = addr, dr7Exec0
	return cpu.SetGuestDebug(kvm.GuestDebugEnable|kvm.GuestDebugUseHWBP, dr)
}

// HandleDebug deals with a KVM_EXIT_DEBUG. handled is false when the exit
// is not one the Fixer caused (the caller should treat it as it would
// without a Fixer); err is set only when the vCPU state could not be read
// or written, and the vCPU cannot go on.
func (f *Fixer) HandleDebug(cpu CPU, vcpuID int, mem *guestmem.Memory, d kvm.DebugExit) (handled bool, err error) {
	if !f.enabled || mem == nil {
		return false, nil
	}
	s := f.state(vcpuID)
	switch s.phase {
	case stepping:
		// The handler's first instruction ran (or an exception it raised
		// was delivered): put the breakpoint back.
		if err := arm(cpu, s.handler); err != nil {
			return true, fmt.Errorf("pvmfix: re-arming #PF breakpoint: %w", err)
		}
		s.phase = armed
		return true, nil
	case armed:
		if d.PC != s.handler {
			return false, nil
		}
	default:
		return false, nil
	}

	fixed, err := f.fixSyscall(cpu, mem)
	if err != nil {
		return true, err
	}
	if fixed {
		f.count(CountSyscallFixup)
		return true, nil // the breakpoint stays; the syscall entry never runs the #PF handler
	}
	// A genuine #PF: run the handler's first instruction without the
	// breakpoint (RF does not suppress a re-hit here), then re-arm.
	if err := cpu.SetGuestDebug(kvm.GuestDebugEnable|kvm.GuestDebugSingleStep, [8]uint64{}); err != nil {
		return true, fmt.Errorf("pvmfix: single-stepping #PF handler: %w", err)
	}
	s.phase = stepping
	f.count(CountPFPassthrough)
	return true, nil
}

// frame is the hardware exception frame a #PF with an error code pushes in
// 64-bit mode, lowest address first.
type frame struct {
	err, rip, cs, rflags, rsp, ss uint64
}

// syscallMSRs are the MSRs a syscall reads.
type syscallMSRs struct {
	star, lstar, sfmask uint64
}

// fixSyscall checks whether the vCPU, stopped at the #PF handler's entry,
// is there because of a broken syscall, and if so turns its state into the
// syscall entry. It returns false (and changes nothing) for any other
// fault; an error only for a failing vCPU ioctl.
func (f *Fixer) fixSyscall(cpu CPU, mem *guestmem.Memory) (bool, error) {
	regs, err := cpu.Regs()
	if err != nil {
		return false, err
	}
	b, err := readLinear(cpu, mem, regs.RSP, 48)
	if err != nil {
		return false, nil // not a frame this package can read: let the guest handle it
	}
	fr := frame{
		err: le(b[0:]), rip: le(b[8:]), cs: le(b[16:]),
		rflags: le(b[24:]), rsp: le(b[32:]), ss: le(b[40:]),
	}
	if fr.cs&3 != 3 || fr.err&pfUser == 0 {
		return false, nil // a fault in the kernel: the common case, decided without MSRs
	}
	msrs := []kvm.MSR{{Index: msrSTAR}, {Index: msrLSTAR}, {Index: msrSFMASK}}
	n, err := cpu.MSRs(msrs)
	if err != nil {
		return false, err
	}
	if n != len(msrs) {
		return false, fmt.Errorf("pvmfix: KVM_GET_MSRS read %d of %d syscall MSRs", n, len(msrs))
	}
	m := syscallMSRs{star: msrs[0].Data, lstar: msrs[1].Data, sfmask: msrs[2].Data}
	if fr.rip != m.lstar {
		return false, nil // an ordinary user fault
	}
	sregs, err := cpu.Sregs()
	if err != nil {
		return false, err
	}
	if err := validate(regs, sregs, fr, m); err != nil {
		f.reject(regs, fr, err)
		return false, nil
	}
	// syscall is only taken from user code: the lower half. (KVM_TRANSLATE
	// cannot tell user pages apart: KVM always reports usermode 0.)
	if regs.RCX < 2 || regs.RCX-2 >= userTop {
		f.reject(regs, fr, fmt.Errorf("RCX %#x does not follow user code", regs.RCX))
		return false, nil
	}
	insn, err := readLinear(cpu, mem, regs.RCX-2, 2)
	if err != nil {
		f.reject(regs, fr, fmt.Errorf("reading the instruction before RCX: %w", err))
		return false, nil
	}
	if insn[0] != 0x0f || insn[1] != 0x05 {
		f.reject(regs, fr, fmt.Errorf("bytes before RCX are % x, not syscall (0f 05)", insn))
		return false, nil
	}

	r, s := syscallEntry(regs, sregs, fr, m)
	if err := cpu.SetRegs(r); err != nil {
		return false, err
	}
	if err := cpu.SetSregs(s); err != nil {
		return false, err
	}
	return true, nil
}

func (f *Fixer) reject(regs kvm.Regs, fr frame, why error) {
	f.count(CountSyscallRejected)
	if f.Log != nil {
		fmt.Fprintf(f.Log, "pvmfix: user fault at LSTAR %#x not taken as a syscall: %v (error code %#x rcx %#x r11 %#x rflags %#x)\n",
			fr.rip, why, fr.err, regs.RCX, regs.R11, fr.rflags)
	}
}

// validate checks that the registers are exactly what a 64-bit `syscall`
// leaves behind: R11 holds a user RFLAGS the CPU could have had, and the
// RFLAGS the fault pushed is that value masked with SFMASK. A user `jmp` to
// LSTAR fails the second check (IF, which Linux masks, stays set).
func validate(regs kvm.Regs, sregs kvm.Sregs, fr frame, m syscallMSRs) error {
	switch {
	case sregs.EFER&eferSCE == 0:
		return errors.New("EFER.SCE is clear: syscall would raise #UD")
	case fr.err&(pfWrite|pfReserved) != 0:
		return fmt.Errorf("error code %#x is not an instruction fetch", fr.err)
	case fr.ss&3 != 3:
		return fmt.Errorf("pushed SS %#x is not a ring-3 selector", fr.ss)
	}
	u := regs.R11
	switch {
	case u&flagFixed == 0 || u&flagsReserved != 0:
		return fmt.Errorf("R11 %#x is not an RFLAGS value", u)
	case u&(flagIOPL|flagVM|flagVIF|flagVIP) != 0:
		return fmt.Errorf("R11 %#x has IOPL, VM, VIF or VIP set", u)
	}
	// RF: the CPU sets it in the frame of a fault; a syscall clears it.
	if u&^m.sfmask&^flagRF != fr.rflags&^flagRF {
		return fmt.Errorf("pushed RFLAGS %#x is not R11 %#x masked with SFMASK %#x", fr.rflags, u, m.sfmask)
	}
	return nil
}

// syscallEntry is the state right after a 64-bit syscall at CPL 3 (Intel
// SDM, SYSCALL): RIP=LSTAR, RFLAGS masked (RF clear), CS and SS flat ring-0
// segments with selectors from STAR[47:32]. RSP is not changed by syscall,
// so it is the user RSP from the frame; RCX and R11 already hold what
// syscall put there.
func syscallEntry(regs kvm.Regs, sregs kvm.Sregs, fr frame, m syscallMSRs) (kvm.Regs, kvm.Sregs) {
	regs.RIP = m.lstar
	regs.RSP = fr.rsp
	regs.RFLAGS = fr.rflags&^flagRF | flagFixed
	sel := uint16(m.star>>32) &^ 3
	sregs.CS = kvm.Segment{Limit: 0xffff_ffff, Selector: sel, Type: 0xb, Present: 1, S: 1, L: 1, G: 1}
	sregs.SS = kvm.Segment{Limit: 0xffff_ffff, Selector: sel + 8, Type: 3, Present: 1, S: 1, DB: 1, G: 1}
	return regs, sregs
}

// pfHandler returns the target of the guest's IDT gate 14 once it is a
// present 64-bit interrupt or trap gate pointing into the kernel half.
func pfHandler(cpu CPU, mem *guestmem.Memory) (uint64, error) {
	sregs, err := cpu.Sregs()
	if err != nil {
		return 0, err
	}
	if sregs.EFER&eferLMA == 0 || sregs.CR0&cr0PG == 0 {
		return 0, errors.New("not in long mode with paging")
	}
	if uint64(sregs.IDT.Limit) < vecPF*16+15 {
		return 0, fmt.Errorf("IDT limit %#x has no gate %d", sregs.IDT.Limit, vecPF)
	}
	b, err := readLinear(cpu, mem, sregs.IDT.Base+vecPF*16, 16)
	if err != nil {
		return 0, err
	}
	return gateTarget(le(b[0:]), le(b[8:]))
}

// gateTarget decodes a 64-bit IDT gate (low and high quadwords).
func gateTarget(lo, hi uint64) (uint64, error) {
	typ := lo >> 40 & 0xf
	if lo>>47&1 == 0 || (typ != 0xe && typ != 0xf) {
		return 0, fmt.Errorf("gate %#x_%016x is not a present interrupt or trap gate", hi, lo)
	}
	off := lo&0xffff | (lo>>48&0xffff)<<16 | (hi&0xffff_ffff)<<32
	if off < kernelBase {
		return 0, fmt.Errorf("gate target %#x is not a kernel address", off)
	}
	return off, nil
}

// readLinear copies n bytes at guest-linear address la, translated page by
// page with the vCPU's current page tables.
func readLinear(cpu CPU, mem *guestmem.Memory, la uint64, n int) ([]byte, error) {
	const pageSize = 4096
	out := make([]byte, 0, n)
	for n > 0 {
		k := min(n, int(pageSize-la%pageSize))
		gpa, valid, _, _, err := cpu.Translate(la)
		if err != nil {
			return nil, err
		}
		if !valid {
			return nil, fmt.Errorf("linear %#x is not mapped", la)
		}
		b, err := mem.Slice(gpa, uint64(k))
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
		la += uint64(k)
		n -= k
	}
	return out, nil
}

func le(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }
