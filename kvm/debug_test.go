package kvm

import (
	"encoding/binary"
	"testing"
	"unsafe"
)

func TestGuestDebugLayout(t *testing.T) {
	if s := unsafe.Sizeof(guestDebug{}); s != (kvmSetGuestDebug>>16)&0x3fff || s != 72 {
		t.Errorf("sizeof(guestDebug) = %d, ioctl encodes %d, want 72", s, (kvmSetGuestDebug>>16)&0x3fff)
	}
	// _IOW(KVMIO, 0x9b, struct kvm_guest_debug) from the kernel headers.
	if kvmSetGuestDebug != 0x4048ae9b {
		t.Errorf("KVM_SET_GUEST_DEBUG = %#x, want 0x4048ae9b", kvmSetGuestDebug)
	}
}

func TestDecodeDebug(t *testing.T) {
	u := make([]byte, 32)
	le := binary.LittleEndian
	le.PutUint32(u[0:], 1)
	le.PutUint32(u[4:], 0xdeadbeef) // padding, ignored
	le.PutUint64(u[8:], 0xffffffff81a00b20)
	le.PutUint64(u[16:], 0xffff0ff1)
	le.PutUint64(u[24:], 0x401)
	got := decodeDebug(u)
	want := DebugExit{Exception: 1, PC: 0xffffffff81a00b20, DR6: 0xffff0ff1, DR7: 0x401}
	if got != want {
		t.Errorf("decodeDebug = %+v, want %+v", got, want)
	}
	if got.Reason() != ExitDebug {
		t.Errorf("Reason = %v", got.Reason())
	}
}

// TestGuestDebugHardwareBreakpoint stops a long-mode guest at a hardware
// breakpoint, single-steps one instruction, then runs it to its hlt with
// debugging off.
func TestGuestDebugHardwareBreakpoint(t *testing.T) {
	tv := newTestVM(t, 4<<20)
	const pml4, pdpt, pd = 0x2000, 0x3000, 0x4000
	le := binary.LittleEndian
	le.PutUint64(tv.mem[pml4:], pdpt|3)
	le.PutUint64(tv.mem[pdpt:], pd|3)
	le.PutUint64(tv.mem[pd:], 0|0x83)
	copy(tv.mem[0x10000:], []byte{
		0x90, 0x90, // nop; nop
		0xb8, 0x01, 0x00, 0x00, 0x00, // 0x10002: mov eax, 1
		0xff, 0xc0, // 0x10007: inc eax
		0xf4, // hlt
	})
	sregs, err := tv.cpu.Sregs()
	if err != nil {
		t.Fatal(err)
	}
	sregs.CS = Segment{Limit: 0xffffffff, Selector: 8, Type: 11, Present: 1, S: 1, L: 1, G: 1}
	data := Segment{Limit: 0xffffffff, Selector: 16, Type: 3, Present: 1, S: 1, DB: 1, G: 1}
	sregs.DS, sregs.ES, sregs.FS, sregs.GS, sregs.SS = data, data, data, data, data
	sregs.CR3, sregs.CR4, sregs.CR0, sregs.EFER = pml4, 1<<5, 1<<0|1<<4|1<<5|1<<31, 1<<8|1<<10
	if err := tv.cpu.SetSregs(sregs); err != nil {
		t.Fatal(err)
	}
	if err := tv.cpu.SetRegs(Regs{RIP: 0x10000, RFLAGS: 2, RSP: 0x100000}); err != nil {
		t.Fatal(err)
	}

	var dr [8]uint64
	dr[0], dr[7] = 0x10002, 1 // DR0 enabled locally, execute, 1 byte
	if err := tv.cpu.SetGuestDebug(GuestDebugEnable|GuestDebugUseHWBP, dr); err != nil {
		t.Fatal(err)
	}
	tv.runUntil(t, ExitDebug)
	if d := tv.cpu.Debug(); d.PC != 0x10002 || d.Exception != 1 {
		t.Fatalf("breakpoint exit %v, want #DB at 0x10002", d)
	}

	if err := tv.cpu.SetGuestDebug(GuestDebugEnable|GuestDebugSingleStep, [8]uint64{}); err != nil {
		t.Fatal(err)
	}
	tv.runUntil(t, ExitDebug)
	if d := tv.cpu.Debug(); d.PC != 0x10007 {
		t.Fatalf("single-step exit %v, want pc 0x10007", d)
	}
	regs, err := tv.cpu.Regs()
	if err != nil {
		t.Fatal(err)
	}
	if regs.RAX != 1 || regs.RIP != 0x10007 {
		t.Fatalf("after one step rax=%#x rip=%#x, want 1 and 0x10007", regs.RAX, regs.RIP)
	}

	if err := tv.cpu.SetGuestDebug(0, [8]uint64{}); err != nil {
		t.Fatal(err)
	}
	tv.runUntil(t, ExitHLT)
	if regs, _ := tv.cpu.Regs(); regs.RAX != 2 {
		t.Errorf("rax = %d at hlt, want 2", regs.RAX)
	}
}
