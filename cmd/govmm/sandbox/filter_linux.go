package sandbox

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// action is what a denied system call gets.
type action uint8

const (
	// actKill is QEMU's SCMP_ACT_TRAP, which QEMU upgrades to
	// SECCOMP_RET_KILL_PROCESS when the kernel has it (Linux 4.14+).
	actKill action = iota
	actEPERM
	actENOSYS
)

type condKind uint8

const (
	condNone     condKind = iota // always denied
	condNE                       // denied if args[arg] != value (all 64 bits)
	condMaskedNE                 // denied if low32(args[arg]) & mask != value
)

// cond narrows a rule to some argument values.
type cond struct {
	kind  condKind
	arg   int
	mask  uint32
	value uint64
}

// rule denies one system call, perhaps only for some arguments.
type rule struct {
	name  string
	nr    uint32
	group group
	act   action
	cond  cond
}

// Offsets into struct seccomp_data {int nr; u32 arch; u64 ip; u64 args[6]},
// little endian.
const (
	offNr   = 0
	offArch = 4
)

func offArgLo(i int) uint32 { return uint32(16 + 8*i) }
func offArgHi(i int) uint32 { return uint32(16 + 8*i + 4) }

// Build returns the filter for o: every system call of the groups o enables
// gets QEMU's action, anything else is allowed. Denials that QEMU traps are
// SECCOMP_RET_KILL_PROCESS if the running kernel supports it, else
// SECCOMP_RET_TRAP (a SIGSYS, which the Go runtime turns into a crash).
func Build(o Options) ([]unix.SockFilter, error) {
	return build(o, killAction())
}

// build makes the program with kill as the action for actKill.
func build(o Options, kill uint32) ([]unix.SockFilter, error) {
	groups, err := o.groups()
	if err != nil {
		return nil, err
	}
	if auditArch == 0 {
		return nil, fmt.Errorf("seccomp sandbox not supported on this architecture")
	}
	ret := func(a action) uint32 {
		switch a {
		case actEPERM:
			return unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
		case actENOSYS:
			return unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
		}
		return kill
	}

	var a asm
	// A foreign architecture or an x32 call would be a different system
	// call table: kill rather than misread the number.
	a.stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, offArch)
	a.jump(unix.BPF_JEQ, auditArch, "", "badarch")
	a.stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, offNr)
	a.jump(unix.BPF_JGE, x32ABIBit, "badarch", "")
	for _, r := range denyList {
		if groups&r.group == 0 {
			continue
		}
		// Each block is entered with the number in A and either returns
		// or falls through with A unchanged.
		next := r.name + ".next"
		deny := r.name + ".deny"
		allow := r.name + ".allow"
		switch r.cond.kind {
		case condNone:
			a.jump(unix.BPF_JEQ, r.nr, "", next)
			a.ret(ret(r.act))
		case condNE:
			a.jump(unix.BPF_JEQ, r.nr, "", next)
			a.stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, offArgHi(r.cond.arg))
			a.jump(unix.BPF_JEQ, uint32(r.cond.value>>32), "", deny)
			a.stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, offArgLo(r.cond.arg))
			a.jump(unix.BPF_JEQ, uint32(r.cond.value), allow, deny)
			a.label(deny)
			a.ret(ret(r.act))
			a.label(allow)
			a.ret(unix.SECCOMP_RET_ALLOW)
		case condMaskedNE:
			a.jump(unix.BPF_JEQ, r.nr, "", next)
			a.stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, offArgLo(r.cond.arg))
			a.stmt(unix.BPF_ALU|unix.BPF_AND|unix.BPF_K, r.cond.mask)
			a.jump(unix.BPF_JEQ, uint32(r.cond.value), allow, deny)
			a.label(deny)
			a.ret(ret(r.act))
			a.label(allow)
			a.ret(unix.SECCOMP_RET_ALLOW)
		}
		a.label(next)
	}
	a.ret(unix.SECCOMP_RET_ALLOW)
	a.label("badarch")
	a.ret(kill)
	return a.assemble()
}

// asm assembles classic BPF with forward jumps to named labels; "" names
// the next instruction.
type asm struct {
	prog   []unix.SockFilter
	jumps  map[int][2]string // instruction index -> jt, jf labels
	labels map[string]int
}

func (a *asm) stmt(code uint16, k uint32) {
	a.prog = append(a.prog, unix.SockFilter{Code: code, K: k})
}

func (a *asm) ret(k uint32) { a.stmt(unix.BPF_RET|unix.BPF_K, k) }

// jump appends a conditional jump comparing A with k (op is BPF_JEQ, ...).
func (a *asm) jump(op uint16, k uint32, jt, jf string) {
	if a.jumps == nil {
		a.jumps = map[int][2]string{}
	}
	a.jumps[len(a.prog)] = [2]string{jt, jf}
	a.stmt(unix.BPF_JMP|op|unix.BPF_K, k)
}

func (a *asm) label(name string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[name] = len(a.prog)
}

func (a *asm) assemble() ([]unix.SockFilter, error) {
	if len(a.prog) > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("seccomp filter too long: %d instructions", len(a.prog))
	}
	off := func(from int, name string) (uint8, error) {
		if name == "" {
			return 0, nil
		}
		to, ok := a.labels[name]
		if !ok {
			return 0, fmt.Errorf("seccomp filter: undefined label %q", name)
		}
		d := to - from - 1
		if d < 0 || d > 255 || to >= len(a.prog) {
			return 0, fmt.Errorf("seccomp filter: jump to %q out of range", name)
		}
		return uint8(d), nil
	}
	for i, j := range a.jumps {
		var err error
		if a.prog[i].Jt, err = off(i, j[0]); err != nil {
			return nil, err
		}
		if a.prog[i].Jf, err = off(i, j[1]); err != nil {
			return nil, err
		}
	}
	return a.prog, nil
}
