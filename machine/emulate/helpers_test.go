package emulate

import (
	"encoding/binary"
	"testing"

	"github.com/govmm/govmm/kvm"
	"github.com/govmm/govmm/machine/guestmem"
)

// fakeCPU is vCPU state in memory, with a record of what was written.
type fakeCPU struct {
	regs   kvm.Regs
	sregs  kvm.Sregs
	fpu    kvm.FPU
	events kvm.VCPUEvents

	setRegs, setSregs, setFPU, setEvents int
}

func (c *fakeCPU) Regs() (kvm.Regs, error)             { return c.regs, nil }
func (c *fakeCPU) SetRegs(r kvm.Regs) error            { c.regs = r; c.setRegs++; return nil }
func (c *fakeCPU) Sregs() (kvm.Sregs, error)           { return c.sregs, nil }
func (c *fakeCPU) SetSregs(s kvm.Sregs) error          { c.sregs = s; c.setSregs++; return nil }
func (c *fakeCPU) FPU() (kvm.FPU, error)               { return c.fpu, nil }
func (c *fakeCPU) SetFPU(f kvm.FPU) error              { c.fpu = f; c.setFPU++; return nil }
func (c *fakeCPU) VCPUEvents() (kvm.VCPUEvents, error) { return c.events, nil }
func (c *fakeCPU) SetVCPUEvents(e kvm.VCPUEvents) error {
	c.events = e
	c.setEvents++
	return nil
}

// Guest-physical layout of the crafted long-mode machine.
const (
	memSize  = 4 << 20
	pml4Addr = 0x1000
	pdptAddr = 0x2000
	pdAddr   = 0x3000 // 1st GiB: 2M pages, identity
	pd2Addr  = 0x5000 // 2nd GiB: one page table
	ptAddr   = 0x6000 // 4K pages: linear 0x4000_0000 + i*4K -> 0x20_0000 + i*4K
	codeAddr = 0x10000

	// highLinear is mapped through 4K pages to highPhys; its page 8 is not present.
	highLinear = 0x4000_0000
	highPhys   = 0x20_0000

	pte = 0x3 // present, writable
)

var le = binary.LittleEndian

// machine is a crafted vCPU in 64-bit mode at CPL 0 with paging, over 4 MiB
// of guest memory.
type machine struct {
	cpu *fakeCPU
	mem *guestmem.Memory
	ram []byte
	em  Emulator
}

func newMachine(t testing.TB) *machine {
	t.Helper()
	ram := make([]byte, memSize)
	mem, err := guestmem.New(guestmem.Region{GPA: 0, Data: ram})
	if err != nil {
		t.Fatal(err)
	}
	le.PutUint64(ram[pml4Addr:], pdptAddr|pte)
	le.PutUint64(ram[pdptAddr:], pdAddr|pte)
	le.PutUint64(ram[pdptAddr+8:], pd2Addr|pte)
	le.PutUint64(ram[pdAddr:], 0|pte|0x80)
	le.PutUint64(ram[pdAddr+8:], 0x20_0000|pte|0x80)
	le.PutUint64(ram[pd2Addr:], ptAddr|pte)
	for i := 0; i < 16; i++ {
		if i == 8 {
			continue // not present
		}
		le.PutUint64(ram[ptAddr+8*i:], uint64(highPhys+i*pageSize)|pte)
	}
	c := &fakeCPU{}
	c.regs = kvm.Regs{RIP: codeAddr, RFLAGS: 2, RSP: 0x8000}
	code := kvm.Segment{Selector: 8, Type: 11, Present: 1, S: 1, L: 1, G: 1, Limit: 0xffffffff}
	data := kvm.Segment{Selector: 16, Type: 3, Present: 1, S: 1, DB: 1, G: 1, Limit: 0xffffffff}
	c.sregs.CS = code
	c.sregs.DS, c.sregs.ES, c.sregs.FS, c.sregs.GS, c.sregs.SS = data, data, data, data, data
	c.sregs.CR0 = cr0PE | cr0NE | cr0PG | cr0WP | 1<<4
	c.sregs.CR3 = pml4Addr
	c.sregs.CR4 = cr4PAE
	c.sregs.EFER = 1<<8 | eferLMA | eferNXE
	c.fpu.FCW = 0x37f
	return &machine{cpu: c, mem: mem, ram: ram}
}

// exitWith builds the emulation-failure exit KVM reports, carrying code.
func exitWith(code []byte) kvm.InternalErrorExit {
	var b [16]byte
	n := copy(b[1:], code)
	b[0] = byte(n)
	return kvm.InternalErrorExit{Suberror: kvm.InternalErrorEmulation, Data: []uint64{1, le.Uint64(b[0:]), le.Uint64(b[8:])}}
}

// run places code at RIP and handles the exit with the bytes reported.
func (m *machine) run(t testing.TB, code ...byte) error {
	t.Helper()
	gpa := m.cpu.regs.RIP
	if m.cpu.sregs.CR0&cr0PG == 0 {
		gpa += m.cpu.sregs.CS.Base
	}
	copy(m.ram[gpa:], code)
	return m.em.Handle(m.cpu, m.mem, exitWith(code))
}

func (m *machine) mustRun(t testing.TB, code ...byte) {
	t.Helper()
	if err := m.run(t, code...); err != nil {
		t.Fatalf("Handle(% x): %v", code, err)
	}
}

// injected returns the exception injected, or -1.
func (m *machine) injected() (nr int, code uint32, hasCode bool) {
	ev := m.cpu.events.Exception
	if ev.Injected == 0 {
		return -1, 0, false
	}
	return int(ev.Nr), ev.ErrorCode, ev.HasErrorCode != 0
}

func (m *machine) wantException(t testing.TB, nr int, code uint32) {
	t.Helper()
	got, gcode, has := m.injected()
	if got != nr {
		t.Fatalf("injected exception %d, want %d", got, nr)
	}
	if has && gcode != code {
		t.Fatalf("exception %d error code %#x, want %#x", nr, gcode, code)
	}
}

func (m *machine) wantRIP(t testing.TB, want uint64) {
	t.Helper()
	if m.cpu.regs.RIP != want {
		t.Fatalf("RIP = %#x, want %#x", m.cpu.regs.RIP, want)
	}
}

// to32 switches the crafted machine to flat 32-bit protected mode without
// paging, with a GDT at 0x800: 0x08 ring-0 code, 0x10 ring-0 data,
// 0x1b ring-3 code, 0x23 ring-3 data.
func (m *machine) to32() {
	c := m.cpu
	c.sregs.CR0 = cr0PE | cr0NE | 1<<4
	c.sregs.CR4 = 0
	c.sregs.EFER = 0
	c.sregs.CS = kvm.Segment{Selector: 8, Type: 11, Present: 1, S: 1, DB: 1, G: 1, Limit: 0xffffffff}
	data := kvm.Segment{Selector: 16, Type: 3, Present: 1, S: 1, DB: 1, G: 1, Limit: 0xffffffff}
	c.sregs.DS, c.sregs.ES, c.sregs.FS, c.sregs.GS, c.sregs.SS = data, data, data, data, data
	c.sregs.GDT = kvm.DTable{Base: 0x800, Limit: 5*8 - 1}
	gdt := m.ram[0x800:]
	le.PutUint64(gdt[8:], 0x00cf9a000000ffff)  // code, DPL 0, not accessed
	le.PutUint64(gdt[16:], 0x00cf93000000ffff) // data, DPL 0, accessed
	le.PutUint64(gdt[24:], 0x00cffa000000ffff) // code, DPL 3
	le.PutUint64(gdt[32:], 0x00cff2000000ffff) // data, DPL 3
}
