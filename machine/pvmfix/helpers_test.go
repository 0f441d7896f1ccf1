package pvmfix

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/govmm/govmm/kvm"
	"github.com/govmm/govmm/machine/guestmem"
)

// debugCall is one SetGuestDebug the fake CPU saw.
type debugCall struct {
	control uint32
	dr      [8]uint64
}

// fakeCPU is vCPU state in memory. Linear addresses translate through a
// page map (4K pages) instead of page tables: KVM_TRANSLATE is the CPU's
// business, not this package's. Like KVM, it reports every page writeable
// and none user-mode.
type fakeCPU struct {
	regs   kvm.Regs
	sregs  kvm.Sregs
	msrs   map[uint32]uint64
	pages  map[uint64]uint64 // linear page -> guest-physical page
	debug  []debugCall
	msrErr error

	setRegs, setSregs, getMSRs int
}

func (c *fakeCPU) Regs() (kvm.Regs, error)    { return c.regs, nil }
func (c *fakeCPU) SetRegs(r kvm.Regs) error   { c.regs = r; c.setRegs++; return nil }
func (c *fakeCPU) Sregs() (kvm.Sregs, error)  { return c.sregs, nil }
func (c *fakeCPU) SetSregs(s kvm.Sregs) error { c.sregs = s; c.setSregs++; return nil }
func (c *fakeCPU) MSRs(m []kvm.MSR) (int, error) {
	c.getMSRs++
	if c.msrErr != nil {
		return 0, c.msrErr
	}
	for i := range m {
		v, ok := c.msrs[m[i].Index]
		if !ok {
			return i, nil
		}
		m[i].Data = v
	}
	return len(m), nil
}
func (c *fakeCPU) Translate(gva uint64) (uint64, bool, bool, bool, error) {
	p, ok := c.pages[gva&^0xfff]
	if !ok {
		return 0, false, false, false, nil
	}
	return p | gva&0xfff, true, true, false, nil
}
func (c *fakeCPU) SetGuestDebug(control uint32, dr [8]uint64) error {
	c.debug = append(c.debug, debugCall{control, dr})
	return nil
}

var errFake = errors.New("fake ioctl failure")

// The crafted guest: a Linux-like x86-64 kernel stopped at the entry of its
// #PF handler after a user-mode syscall the PVM host botched.
const (
	idtLinear   = 0xffff_fe00_0000_0000 // Linux's CPU entry area alias of the IDT
	idtPhys     = 0x1000
	handler     = 0xffff_ffff_81a0_0b20 // asm_exc_page_fault
	lstar       = 0xffff_ffff_81a0_0000 // entry_SYSCALL_64
	stackLinear = 0xffff_c900_0000_4000
	stackPhys   = 0x2000
	frameAddr   = stackLinear + 0xfd0 // 6 quadwords up to the page end
	userCode    = 0x40_1000
	userPhys    = 0x3000
	syscallAt   = userCode + 0x234 // the user's syscall instruction
	userRSP     = 0x7ffe_1000

	star       = 0x23<<48 | 0x10<<32
	linuxFMask = 0x257fd5 // CF PF AF ZF SF TF IF DF OF IOPL NT RF AC ID
	userFlags  = 0x246    // IF ZF PF
)

type guest struct {
	cpu *fakeCPU
	mem *guestmem.Memory
	ram []byte
	clk time.Time
	f   *Fixer
}

func newGuest(t *testing.T) *guest {
	t.Helper()
	ram := make([]byte, 1<<20)
	mem, err := guestmem.New(guestmem.Region{GPA: 0, Data: ram})
	if err != nil {
		t.Fatal(err)
	}
	g := &guest{ram: ram, mem: mem, clk: time.Unix(1000, 0)}
	g.f = New(true)
	g.f.now = func() time.Time { return g.clk }
	g.cpu = &fakeCPU{
		msrs: map[uint32]uint64{msrSTAR: star, msrLSTAR: lstar, msrSFMASK: linuxFMask},
		pages: map[uint64]uint64{
			idtLinear:   idtPhys,
			stackLinear: stackPhys,
			userCode:    userPhys,
		},
	}
	g.setGate(vecPF, handler, 0x8e)
	s := &g.cpu.sregs
	s.CR0 = 0x8005_0033
	s.CR4 = 0x20
	s.EFER = 0xd01 // SCE LME LMA NXE
	s.IDT = kvm.DTable{Base: idtLinear, Limit: 0xfff}
	s.CS = kvm.Segment{Limit: 0xffff_ffff, Selector: 0x10, Type: 0xb, Present: 1, S: 1, L: 1, G: 1}
	s.SS = kvm.Segment{Unusable: 1} // null SS after an interrupt to ring 0
	g.ram[userPhys+0x234], g.ram[userPhys+0x235] = 0x0f, 0x05
	g.setBrokenSyscall()
	return g
}

// setGate writes a 64-bit IDT gate with the given type/attribute byte.
func (g *guest) setGate(vec int, target uint64, attr byte) {
	e := g.ram[idtPhys+16*vec:]
	le := binary.LittleEndian
	le.PutUint16(e[0:], uint16(target))
	le.PutUint16(e[2:], 0x10)
	e[4], e[5] = 0, attr
	le.PutUint16(e[6:], uint16(target>>16))
	le.PutUint32(e[8:], uint32(target>>32))
	le.PutUint32(e[12:], 0)
}

// setFrame puts a hardware #PF frame on the kernel stack and points RSP at it.
func (g *guest) setFrame(fr frame) {
	b := g.ram[stackPhys+frameAddr-stackLinear:]
	for i, v := range []uint64{fr.err, fr.rip, fr.cs, fr.rflags, fr.rsp, fr.ss} {
		binary.LittleEndian.PutUint64(b[8*i:], v)
	}
	g.cpu.regs.RSP = frameAddr
}

// brokenFrame is what the PVM host pushes after a user syscall: a user
// instruction-fetch fault at LSTAR with the SFMASK-masked RFLAGS (and RF).
func brokenFrame() frame {
	return frame{err: 0x15, rip: lstar, cs: 0x33, rflags: userFlags&^linuxFMask | flagRF, rsp: userRSP, ss: 0x2b}
}

func (g *guest) setBrokenSyscall() {
	g.cpu.regs = kvm.Regs{RAX: 39, RCX: syscallAt + 2, R11: userFlags, RDI: 7, RIP: handler, RFLAGS: 2}
	g.setFrame(brokenFrame())
}

// arm polls until the breakpoint is set, as the vCPU loop would.
func (g *guest) arm(t *testing.T) {
	t.Helper()
	for range 2 {
		g.f.Poll(g.cpu, 0, g.mem)
		g.clk = g.clk.Add(pollInterval)
	}
	if n := len(g.cpu.debug); n != 1 || g.cpu.debug[0] != armCall(handler) {
		t.Fatalf("after two polls SetGuestDebug calls = %+v, want one arming at %#x", g.cpu.debug, uint64(handler))
	}
	g.cpu.debug = nil
}

func armCall(addr uint64) debugCall {
	var dr [8]uint64
	dr[0], dr[7] = addr, 1
	return debugCall{kvm.GuestDebugEnable | kvm.GuestDebugUseHWBP, dr}
}

var stepCall = debugCall{control: kvm.GuestDebugEnable | kvm.GuestDebugSingleStep}

func (g *guest) hit(t *testing.T) bool {
	t.Helper()
	handled, err := g.f.HandleDebug(g.cpu, 0, g.mem, kvm.DebugExit{Exception: 1, PC: handler})
	if err != nil {
		t.Fatal(err)
	}
	return handled
}
