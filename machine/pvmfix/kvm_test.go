package pvmfix

import (
	"encoding/binary"
	"github.com/govmm/govmm/kvm/kvmtest"
	"testing"
	"time"

	"github.com/govmm/govmm/kvm"
	"github.com/govmm/govmm/machine/guestmem"
)

// The end-to-end guest: a tiny 64-bit kernel whose code lives in the kernel
// half (kBase, a 2M supervisor page at physical kHigh), with a GDT, TSS,
// IDT and syscall MSRs set up as Linux does, and user code that makes two
// system calls and then reads a supervisor page (a genuine user #PF).
const (
	ePML4    = 0x1000
	ePDPTLo  = 0x2000
	ePDLo    = 0x3000
	ePTLo    = 0x4000
	ePDPTHi  = 0x5000
	ePDHi    = 0x6000
	eGDT     = 0x8000
	eTSS     = 0x8800
	eIDT     = 0x9000
	eUser    = 0xb000 // user code page
	eUStack  = 0xc000 // user stack page
	eKStack  = 0xe000 // TSS.RSP0
	eKHigh   = 0x20_0000
	eKBase   = 0xffff_ffff_8000_0000 // linear address of eKHigh
	eLSTAR   = eKBase + 0x100
	eStubs   = eKBase + 0x400 // vector v's handler at eStubs + 16*v
	eUserRSP = eUStack + 0x1000
	eSFMASK  = 0x47700 // TF DF IF IOPL NT AC: arithmetic flags survive

	portPoll    = 0xe5 // the kernel gives the Fixer a chance to arm
	portSyscall = 0xe0 // the syscall entry reports AL
	portVector  = 0xe2 // an exception stub reports its vector
)

var eUserCode = []byte{
	0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1
	0x0f, 0x05, // syscall
	0xb8, 0x02, 0x00, 0x00, 0x00, // mov eax, 2
	0x0f, 0x05, // syscall
	0x8a, 0x04, 0x25, 0x00, 0x90, 0x00, 0x00, // mov al, [eIDT]: supervisor page, #PF
	0xeb, 0xfe, // jmp $
}

const eFaultingRIP = eUser + 14

func newE2EGuest(t *testing.T) (*kvm.VCPU, *guestmem.Memory, []byte) {
	t.Helper()
	if !PVMHost() {
		t.Skip("skipping: not a PVM host (/sys/module/kvm_pvm missing); syscall works natively here")
	}
	kg := kvmtest.New(t, 4<<20)
	cpu, ram, mem := kg.CPU, kg.RAM, kg.Mem

	le := binary.LittleEndian
	put := func(gpa uint64, v uint64) { le.PutUint64(ram[gpa:], v) }
	// Page tables: the low 2M in 4K supervisor pages but for the user
	// code and stack; the kernel half's -2G in one 2M supervisor page.
	put(ePML4, ePDPTLo|7)
	put(ePML4+511*8, ePDPTHi|3)
	put(ePDPTLo, ePDLo|7)
	put(ePDLo, ePTLo|7)
	for i := uint64(0); i < 512; i++ {
		f := uint64(3)
		if pa := i << 12; pa == eUser || pa == eUStack {
			f |= 4
		}
		put(ePTLo+i*8, i<<12|f)
	}
	put(ePDPTHi+510*8, ePDHi|3)
	put(ePDHi, eKHigh|0x83)

	// GDT as Linux lays it out for syscall/sysret: kernel CS 0x10, SS
	// 0x18; user CS32 0x23, SS 0x2b, CS 0x33; TSS 0x40.
	put(eGDT+0x10, 0x00af9a000000ffff)
	put(eGDT+0x18, 0x00cf92000000ffff)
	put(eGDT+0x20, 0x00cffa000000ffff)
	put(eGDT+0x28, 0x00cff2000000ffff)
	put(eGDT+0x30, 0x00affa000000ffff)
	put(eGDT+0x40, 0x0000890000000067|eTSS<<16)
	put(eTSS+4, eKStack)

	// IDT: every vector to a stub "mov al, v; out portVector, al; hlt".
	for v := uint64(0); v < 32; v++ {
		stub := uint64(eStubs + 16*v)
		copy(ram[eKHigh+stub-eKBase:], []byte{0xb0, byte(v), 0xe6, portVector, 0xf4})
		put(eIDT+16*v, stub&0xffff|0x10<<16|0x8e<<40|(stub>>16&0xffff)<<48)
		put(eIDT+16*v+8, stub>>32)
	}
	// Kernel start: let the Fixer poll twice, then iretq to user mode.
	copy(ram[eKHigh:], []byte{
		0xe6, portPoll, // out portPoll, al
		0xe6, portPoll,
		0x6a, 0x2b, // push 0x2b (SS)
		0x68, 0x00, 0xd0, 0x00, 0x00, // push eUserRSP
		0x68, 0x02, 0x02, 0x00, 0x00, // push 0x202 (RFLAGS, IF)
		0x6a, 0x33, // push 0x33 (CS)
		0x68, 0x00, 0xb0, 0x00, 0x00, // push eUser
		0x48, 0xcf, // iretq
	})
	// Syscall entry: report AL, return.
	copy(ram[eKHigh+eLSTAR-eKBase:], []byte{0xe6, portSyscall, 0x48, 0x0f, 0x07}) // out; sysretq
	copy(ram[eUser:], eUserCode)

	sregs, err := cpu.Sregs()
	if err != nil {
		t.Fatal(err)
	}
	code := kvm.Segment{Limit: 0xffff_ffff, Selector: 0x10, Type: 0xb, Present: 1, S: 1, L: 1, G: 1}
	data := kvm.Segment{Limit: 0xffff_ffff, Selector: 0x18, Type: 3, Present: 1, S: 1, DB: 1, G: 1}
	sregs.CS = code
	sregs.DS, sregs.ES, sregs.FS, sregs.GS, sregs.SS = data, data, data, data, data
	sregs.TR = kvm.Segment{Base: eTSS, Limit: 0x67, Selector: 0x40, Type: 0xb, Present: 1}
	sregs.GDT = kvm.DTable{Base: eGDT, Limit: 0x4f}
	sregs.IDT = kvm.DTable{Base: eIDT, Limit: 32*16 - 1}
	sregs.CR0, sregs.CR3, sregs.CR4 = 0x8005_0033, ePML4, 0x20
	sregs.EFER = 0xd01 // SCE LME LMA NXE
	if err := cpu.SetSregs(sregs); err != nil {
		t.Fatal(err)
	}
	if err := cpu.SetRegs(kvm.Regs{RIP: eKBase, RSP: eKStack, RFLAGS: 2}); err != nil {
		t.Fatal(err)
	}
	if err := cpu.SetMSRs([]kvm.MSR{
		{Index: msrSTAR, Data: 0x23<<48 | 0x10<<32},
		{Index: msrLSTAR, Data: eLSTAR},
		{Index: msrSFMASK, Data: eSFMASK},
	}); err != nil {
		t.Fatal(err)
	}
	return cpu, mem, ram
}

// TestKVMSyscallAndUserFault runs the guest through a Fixer as the vCPU
// loop would: Poll on I/O exits, HandleDebug on debug exits.
func TestKVMSyscallAndUserFault(t *testing.T) {
	cpu, mem, _ := newE2EGuest(t)
	f := New(true)
	f.Log = testWriter{t}
	clk := time.Unix(0, 0)
	f.now = func() time.Time { clk = clk.Add(time.Second); return clk }

	var syscalls []uint64
	for i := 0; ; i++ {
		if i > 100 {
			t.Fatalf("guest did not finish; syscalls %v, counts %v", syscalls, f.Counts())
		}
		reason, err := cpu.Run()
		if err != nil {
			t.Fatal(err)
		}
		regs, err := cpu.Regs()
		if err != nil {
			t.Fatal(err)
		}
		sregs, err := cpu.Sregs()
		if err != nil {
			t.Fatal(err)
		}
		switch reason {
		case kvm.ExitIntr:
			continue
		case kvm.ExitDebug:
			d := cpu.Debug()
			handled, err := f.HandleDebug(cpu, 0, mem, d)
			if err != nil || !handled {
				t.Fatalf("HandleDebug(%v) = %v, %v at rip %#x", d, handled, err, regs.RIP)
			}
			continue
		case kvm.ExitIO:
		default:
			t.Fatalf("exit %v (%v) at rip %#x cs %#x", reason, cpu.Exit(), regs.RIP, sregs.CS.Selector)
		}
		io := cpu.IO()
		f.Poll(cpu, 0, mem)
		switch io.Port {
		case portPoll:
			continue
		case portSyscall:
			n := uint64(io.Data[0])
			syscalls = append(syscalls, n)
			if sregs.CS.DPL != 0 || sregs.CS.Selector != 0x10 || sregs.SS.DPL != 0 || sregs.SS.Selector != 0x18 {
				t.Errorf("syscall %d entered with CS %#x (DPL %d) SS %#x (DPL %d), want 0x10/0x18 at CPL 0",
					n, sregs.CS.Selector, sregs.CS.DPL, sregs.SS.Selector, sregs.SS.DPL)
			}
			wantRCX := uint64(eUser + 7)
			if n == 2 {
				wantRCX = eUser + 14
			}
			if regs.RCX != wantRCX || regs.R11 != 0x202 || regs.RSP != eUserRSP || regs.RFLAGS&^0x10000 != 2 {
				t.Errorf("syscall %d: rcx %#x r11 %#x rsp %#x rflags %#x, want rcx %#x r11 0x202 rsp %#x rflags 0x2",
					n, regs.RCX, regs.R11, regs.RSP, regs.RFLAGS, wantRCX, uint64(eUserRSP))
			}
			continue
		case portVector:
		default:
			t.Fatalf("unexpected %v", io)
		}
		// An exception stub: it must be the user read fault, delivered
		// with the frame the CPU pushed.
		if v := io.Data[0]; v != 14 {
			t.Fatalf("exception %d at CPL %d, want the user #PF; syscalls %v", v, sregs.CS.DPL, syscalls)
		}
		b, err := readLinear(cpu, mem, regs.RSP, 48)
		if err != nil {
			t.Fatal(err)
		}
		le := binary.LittleEndian
		fErr, fRIP, fCS := le.Uint64(b), le.Uint64(b[8:]), le.Uint64(b[16:])
		if fErr != 5 || fRIP != eFaultingRIP || fCS != 0x33 {
			t.Errorf("#PF frame: error %#x rip %#x cs %#x, want 5 %#x 0x33", fErr, fRIP, fCS, uint64(eFaultingRIP))
		}
		break
	}
	if len(syscalls) != 2 || syscalls[0] != 1 || syscalls[1] != 2 {
		t.Errorf("syscalls seen %v, want [1 2]: user code must resume after each", syscalls)
	}
	c := f.Counts()
	if c[CountSyscallFixup] != 2 || c[CountPFPassthrough] != 1 || c[CountArm] != 1 || c[CountSyscallRejected] != 0 {
		t.Errorf("counts = %v", c)
	}
}

// testWriter sends a Fixer's log to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}
