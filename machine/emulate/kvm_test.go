package emulate

import (
	"github.com/govmm/govmm/kvm/kvmtest"
	"testing"

	"github.com/govmm/govmm/kvm"
	"github.com/govmm/govmm/machine/guestmem"
)

// kvmGuest is a real VM with one vCPU over 4 MiB of RAM: long mode at CPL 0
// with paging (2M identity pages for the first 4M, 4K pages mapping linear
// 4M.. to physical 3M..), a GDT and an IDT whose #BP handler counts in R15,
// saves the pushed RIP in R13 and iretqs; every other vector reports its
// number on port 0x80 and halts.
type kvmGuest struct {
	cpu *kvm.VCPU
	ram []byte
	mem *guestmem.Memory
	em  Emulator
}

const (
	kGDT     = 0x1000
	kPML4    = 0x2000
	kPDPT    = 0x3000
	kPD      = 0x4000
	kPT      = 0x5000
	kIDT     = 0x6000
	kStubs   = 0x7000
	kBP      = 0x7800
	kCode    = 0x10000
	kStack   = 0x80000
	k4KLin   = 0x40_0000 // mapped by 4K pages
	k4KPhys  = 0x30_0000
	kExcPort = 0x80
)

func newKVMGuest(t *testing.T) *kvmGuest {
	t.Helper()
	kg := kvmtest.New(t, memSize)
	cpu, ram, mem := kg.CPU, kg.RAM, kg.Mem
	g := &kvmGuest{cpu: cpu, ram: ram, mem: mem}

	le.PutUint64(ram[kGDT+8:], 0x00af9b000000ffff)  // 0x08: 64-bit code
	le.PutUint64(ram[kGDT+16:], 0x00cf93000000ffff) // 0x10: data
	le.PutUint64(ram[kGDT+24:], 0x00cf9b000000ffff) // 0x18: 32-bit code
	le.PutUint64(ram[kPML4:], kPDPT|3)
	le.PutUint64(ram[kPDPT:], kPD|3)
	le.PutUint64(ram[kPD:], 0|0x83)
	le.PutUint64(ram[kPD+8:], 0x20_0000|0x83)
	le.PutUint64(ram[kPD+16:], kPT|3)
	for i := 0; i < 512; i++ {
		le.PutUint64(ram[kPT+8*i:], uint64(k4KPhys+i*pageSize)|3)
	}
	for v := 0; v < 32; v++ {
		stub := uint64(kStubs + 16*v)
		copy(ram[stub:], []byte{0xb0, byte(v), 0xe6, kExcPort, 0xf4}) // mov al, v; out 0x80, al; hlt
		if v == vecBP {
			stub = kBP
		}
		// 64-bit interrupt gate, selector 0x08, present, DPL 0.
		e := ram[kIDT+16*v:]
		le.PutUint16(e[0:], uint16(stub))
		le.PutUint16(e[2:], 0x08)
		e[5] = 0x8e
		le.PutUint16(e[6:], uint16(stub>>16))
		le.PutUint32(e[8:], uint32(stub>>32))
	}
	copy(ram[kBP:], []byte{
		0x4c, 0x8b, 0x2c, 0x24, // mov r13, [rsp]
		0x49, 0xff, 0xc7, // inc r15
		0x48, 0xcf, // iretq
	})

	sregs, err := cpu.Sregs()
	if err != nil {
		t.Fatal(err)
	}
	code := kvm.Segment{Limit: 0xffffffff, Selector: 8, Type: 11, Present: 1, S: 1, L: 1, G: 1}
	data := kvm.Segment{Limit: 0xffffffff, Selector: 16, Type: 3, Present: 1, S: 1, DB: 1, G: 1}
	sregs.CS = code
	sregs.DS, sregs.ES, sregs.FS, sregs.GS, sregs.SS = data, data, data, data, data
	sregs.GDT = kvm.DTable{Base: kGDT, Limit: 4*8 - 1}
	sregs.IDT = kvm.DTable{Base: kIDT, Limit: 32*16 - 1}
	sregs.CR3 = kPML4
	sregs.CR4 = cr4PAE | 1<<9 // PAE, OSFXSR
	sregs.CR0 = cr0PE | cr0MP | 1<<4 | cr0NE | cr0PG
	sregs.EFER = 1<<8 | eferLMA // LME, LMA
	if err := cpu.SetSregs(sregs); err != nil {
		t.Fatal(err)
	}
	if err := cpu.SetRegs(kvm.Regs{RIP: kCode, RFLAGS: 2, RSP: kStack}); err != nil {
		t.Fatal(err)
	}
	if err := cpu.SetFPU(kvm.FPU{FCW: 0x37f, MXCSR: 0x1f80}); err != nil {
		t.Fatal(err)
	}
	return g
}

// run executes until hlt, handling emulation failures with the Emulator.
func (g *kvmGuest) run(t *testing.T) kvm.Regs {
	t.Helper()
	for i := 0; i < 1000; i++ {
		r, err := g.cpu.Run()
		if err != nil {
			t.Fatal(err)
		}
		switch r {
		case kvm.ExitIntr:
			continue
		case kvm.ExitHLT:
			regs, err := g.cpu.Regs()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("emulated: %v", g.em.Counts())
			return regs
		case kvm.ExitInternalError:
			ex := g.cpu.Exit().(kvm.InternalErrorExit)
			if err := g.em.Handle(g.cpu, g.mem, ex); err != nil {
				t.Fatalf("%v\n(exit: %v)", err, ex)
			}
		case kvm.ExitIO:
			io := g.cpu.IO()
			regs, _ := g.cpu.Regs()
			if io.Port == kExcPort && len(io.Data) == 1 {
				t.Fatalf("guest took exception %d (rip after stub %#x)", io.Data[0], regs.RIP)
			}
			t.Fatalf("unexpected %v", io)
		default:
			regs, _ := g.cpu.Regs()
			t.Fatalf("unexpected exit %v (%v) at rip %#x", r, g.cpu.Exit(), regs.RIP)
		}
	}
	t.Fatal("guest did not halt")
	return kvm.Regs{}
}

func (g *kvmGuest) load(code ...byte) { copy(g.ram[kCode:], code) }

func (g *kvmGuest) setRegs(t *testing.T, f func(*kvm.Regs)) {
	t.Helper()
	r, err := g.cpu.Regs()
	if err != nil {
		t.Fatal(err)
	}
	f(&r)
	if err := g.cpu.SetRegs(r); err != nil {
		t.Fatal(err)
	}
}

func TestKVMPopcnt(t *testing.T) {
	g := newKVMGuest(t)
	le.PutUint64(g.ram[k4KPhys+0x10:], 0xffff_0000_ffff_0001)
	g.load(
		0xf3, 0x48, 0x0f, 0xb8, 0xc3, // popcnt rax, rbx
		0xba, 0x10, 0x00, 0x40, 0x00, // mov edx, 0x400010
		0xf3, 0x0f, 0xb8, 0x0a, // popcnt ecx, [rdx]
		0xf3, 0x48, 0x0f, 0xb8, 0xf7, // popcnt rsi, rdi (zero)
		0xf4,
	)
	g.setRegs(t, func(r *kvm.Regs) { r.RBX = 0x8000_0000_0000_0003; r.RCX = ^uint64(0); r.RSI = 99 })
	regs := g.run(t)
	if regs.RAX != 3 || regs.RCX != 17 || regs.RSI != 0 {
		t.Errorf("RAX %d RCX %d RSI %d, want 3 17 0", regs.RAX, regs.RCX, regs.RSI)
	}
	if regs.RFLAGS&flagsArith != flagZF {
		t.Errorf("RFLAGS = %#x, want only ZF of the arithmetic flags", regs.RFLAGS)
	}
	if regs.RIP != kCode+20 {
		t.Errorf("RIP = %#x", regs.RIP)
	}
}

func TestKVMClacStac(t *testing.T) {
	g := newKVMGuest(t)
	g.load(
		0x0f, 0x01, 0xcb, // stac
		0x9c, 0x58, // pushfq; pop rax
		0x0f, 0x01, 0xca, // clac
		0x9c, 0x5b, // pushfq; pop rbx
		0xf4,
	)
	regs := g.run(t)
	if regs.RAX&flagAC == 0 || regs.RBX&flagAC != 0 {
		t.Errorf("flags after stac %#x, after clac %#x", regs.RAX, regs.RBX)
	}
}

func TestKVMX87(t *testing.T) {
	g := newKVMGuest(t)
	le.PutUint64(g.ram[k4KPhys+0x100:], uint64(0xffff_ffff_ffff_fff9)) // -7
	le.PutUint32(g.ram[k4KPhys+0x108:], 1000)
	g.load(
		0x9b,       // fwait
		0xdb, 0xe2, // fnclex
		0x0f, 0x77, // emms
		0xba, 0x00, 0x01, 0x40, 0x00, // mov edx, 0x400100
		0xdf, 0x2a, // fild qword ptr [rdx]
		0xdb, 0x42, 0x08, // fild dword ptr [rdx+8]
		0xf4,
	)
	regs := g.run(t)
	if regs.RIP != kCode+16 {
		t.Errorf("RIP = %#x", regs.RIP)
	}
	f, err := g.cpu.FPU()
	if err != nil {
		t.Fatal(err)
	}
	if top := f.FSW >> 11 & 7; top != 6 || f.FTWX != 0xc0 {
		t.Errorf("TOP %d FTWX %#x, want 6 0xc0", top, f.FTWX)
	}
	if got, want := [10]byte(f.FPR[0][:10]), x87FromInt(1000); got != want {
		t.Errorf("ST(0) = % x, want % x", got, want)
	}
	if got, want := [10]byte(f.FPR[1][:10]), x87FromInt(-7); got != want {
		t.Errorf("ST(1) = % x, want % x", got, want)
	}
}

func TestKVMCmpxchg(t *testing.T) {
	g := newKVMGuest(t)
	const phys = k4KPhys + 0x200
	le.PutUint64(g.ram[phys:], 1)
	le.PutUint64(g.ram[phys+8:], 2)
	le.PutUint64(g.ram[phys+16:], 0x0000_0004_0000_0003)
	g.load(
		0xbe, 0x00, 0x02, 0x40, 0x00, // mov esi, 0x400200
		0xf0, 0x48, 0x0f, 0xc7, 0x0e, // lock cmpxchg16b [rsi]  (matches)
		0x9c, 0x41, 0x59, // pushfq; pop r9
		0xf0, 0x48, 0x0f, 0xc7, 0x0e, // lock cmpxchg16b [rsi]  (does not match)
		0x9c, 0x41, 0x5a, // pushfq; pop r10
		0x4c, 0x8b, 0xd8, // mov r11, rax
		0x4c, 0x8b, 0xe2, // mov r12, rdx
		0xb8, 0x03, 0, 0, 0, // mov eax, 3
		0xba, 0x04, 0, 0, 0, // mov edx, 4
		0xf0, 0x0f, 0xc7, 0x4e, 0x10, // lock cmpxchg8b [rsi+16]
		0xf4,
	)
	g.setRegs(t, func(r *kvm.Regs) { r.RAX, r.RDX, r.RBX, r.RCX = 1, 2, 0x55, 0x66 })
	regs := g.run(t)
	if regs.R9&flagZF == 0 || regs.R10&flagZF != 0 || regs.RFLAGS&flagZF == 0 {
		t.Errorf("ZF: first %v second %v third %v", regs.R9&flagZF != 0, regs.R10&flagZF != 0, regs.RFLAGS&flagZF != 0)
	}
	if regs.R11 != 0x55 || regs.R12 != 0x66 {
		t.Errorf("failed compare loaded RDX:RAX = %#x:%#x", regs.R12, regs.R11)
	}
	if a, b, c := le.Uint64(g.ram[phys:]), le.Uint64(g.ram[phys+8:]), le.Uint64(g.ram[phys+16:]); a != 0x55 || b != 0x66 || c != 0x66_0000_0055 {
		t.Errorf("memory %#x %#x %#x", a, b, c)
	}
}

func TestKVMInt3(t *testing.T) {
	g := newKVMGuest(t)
	g.load(
		0xcc,                                     // int3
		0x49, 0xc7, 0xc6, 0x42, 0x00, 0x00, 0x00, // mov r14, 0x42
		0xcc, // int3
		0xf4, // hlt
	)
	regs := g.run(t)
	if regs.R15 != 2 || regs.R14 != 0x42 || regs.R13 != kCode+9 {
		t.Errorf("R15 %d R14 %#x R13 %#x: want 2 handler runs, 0x42, return address %#x", regs.R15, regs.R14, regs.R13, kCode+9)
	}
	if regs.RSP != kStack {
		t.Errorf("RSP = %#x after the handler returned", regs.RSP)
	}
}

// TestKVMIretd32 returns with iretd in 32-bit protected mode at CPL 0.
func TestKVMIretd32(t *testing.T) {
	g := newKVMGuest(t)
	sregs, err := g.cpu.Sregs()
	if err != nil {
		t.Fatal(err)
	}
	sregs.CR0 = cr0PE | 1<<4 | cr0NE
	sregs.CR4, sregs.EFER = 0, 0
	sregs.CS = kvm.Segment{Limit: 0xffffffff, Selector: 0x18, Type: 11, Present: 1, S: 1, DB: 1, G: 1}
	if err := g.cpu.SetSregs(sregs); err != nil {
		t.Fatal(err)
	}
	g.load(
		0x68, 0x02, 0x02, 0x00, 0x00, // push 0x202
		0x6a, 0x18, // push 0x18
		0x68, 0x20, 0x00, 0x01, 0x00, // push 0x10020
		0xcf, // iretd
	)
	copy(g.ram[kCode+0x20:], []byte{0xbb, 0x77, 0, 0, 0, 0xf4}) // mov ebx, 0x77; hlt
	regs := g.run(t)
	if regs.RBX != 0x77 || regs.RIP != kCode+0x26 || regs.RFLAGS&flagIF == 0 || regs.RSP != kStack {
		t.Errorf("RBX %#x RIP %#x RFLAGS %#x RSP %#x", regs.RBX, regs.RIP, regs.RFLAGS, regs.RSP)
	}
}

// TestKVMPageFaultDelivered makes an emulated popcnt read a page that is
// not present: the guest must enter its #PF handler with CR2 set and the
// error code pushed, and RIP must point at the popcnt.
func TestKVMPageFaultDelivered(t *testing.T) {
	g := newKVMGuest(t)
	le.PutUint64(g.ram[kPT+8*5:], 0) // linear 0x405000 not present
	g.load(
		0xba, 0x08, 0x50, 0x40, 0x00, // mov edx, 0x405008
		0xf3, 0x48, 0x0f, 0xb8, 0x02, // popcnt rax, [rdx]
		0xf4,
	)
	for i := 0; i < 100; i++ {
		r, err := g.cpu.Run()
		if err != nil {
			t.Fatal(err)
		}
		switch r {
		case kvm.ExitIntr:
			continue
		case kvm.ExitInternalError:
			if err := g.em.Handle(g.cpu, g.mem, g.cpu.Exit().(kvm.InternalErrorExit)); err != nil {
				t.Fatal(err)
			}
			continue
		case kvm.ExitIO:
			io := g.cpu.IO()
			if io.Port != kExcPort || len(io.Data) != 1 || io.Data[0] != vecPF {
				t.Fatalf("exit %v data % x, want exception %d reported", io, io.Data, vecPF)
			}
			sregs, err := g.cpu.Sregs()
			if err != nil {
				t.Fatal(err)
			}
			regs, err := g.cpu.Regs()
			if err != nil {
				t.Fatal(err)
			}
			if sregs.CR2 != 0x405008 {
				t.Errorf("CR2 = %#x", sregs.CR2)
			}
			// The handler's frame: error code, then RIP.
			frame := g.ram[regs.RSP:]
			if code, rip := le.Uint64(frame), le.Uint64(frame[8:]); code != 0 || rip != kCode+5 {
				t.Errorf("#PF frame: error code %#x RIP %#x, want 0 and %#x", code, rip, kCode+5)
			}
			return
		default:
			t.Fatalf("unexpected exit %v (%v)", r, g.cpu.Exit())
		}
	}
	t.Fatal("no #PF delivered")
}
