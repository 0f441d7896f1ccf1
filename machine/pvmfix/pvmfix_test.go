package pvmfix

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/govmm/govmm/kvm"
)

func TestSyscallFixup(t *testing.T) {
	g := newGuest(t)
	g.arm(t)
	before := g.cpu.regs
	if !g.hit(t) {
		t.Fatal("breakpoint on the #PF handler not handled")
	}

	want := before
	want.RIP = lstar
	want.RSP = userRSP
	want.RFLAGS = 0x2 // user flags masked by SFMASK, RF clear
	if diff := cmp.Diff(want, g.cpu.regs); diff != "" {
		t.Errorf("regs after fixup (-want +got):\n%s", diff)
	}
	if g.cpu.regs.RCX != syscallAt+2 || g.cpu.regs.R11 != userFlags {
		t.Errorf("rcx %#x r11 %#x: syscall's outputs must stay", g.cpu.regs.RCX, g.cpu.regs.R11)
	}
	wantCS := kvm.Segment{Limit: 0xffff_ffff, Selector: 0x10, Type: 0xb, Present: 1, S: 1, L: 1, G: 1}
	wantSS := kvm.Segment{Limit: 0xffff_ffff, Selector: 0x18, Type: 3, Present: 1, S: 1, DB: 1, G: 1}
	if diff := cmp.Diff(wantCS, g.cpu.sregs.CS); diff != "" {
		t.Errorf("CS (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantSS, g.cpu.sregs.SS); diff != "" {
		t.Errorf("SS (-want +got):\n%s", diff)
	}
	if g.cpu.sregs.IDT.Base != idtLinear || g.cpu.sregs.EFER != 0xd01 {
		t.Errorf("other sregs changed: %+v", g.cpu.sregs)
	}
	if len(g.cpu.debug) != 0 {
		t.Errorf("SetGuestDebug calls after a fixup: %+v; the breakpoint must stay armed", g.cpu.debug)
	}
	if c := g.f.Counts(); c[CountSyscallFixup] != 1 || c[CountPFPassthrough] != 0 || c[CountArm] != 1 {
		t.Errorf("counts = %v", c)
	}

	// The next syscall is fixed the same way: no state was left behind.
	g.setBrokenSyscall()
	if !g.hit(t) || g.cpu.regs.RIP != lstar || g.f.Counts()[CountSyscallFixup] != 2 {
		t.Errorf("second syscall: rip %#x counts %v", g.cpu.regs.RIP, g.f.Counts())
	}
}

// TestOtherSFMASK: with a mask that keeps the arithmetic flags (the probe's
// 0x47700), the pushed RFLAGS keeps them too.
func TestOtherSFMASK(t *testing.T) {
	g := newGuest(t)
	g.cpu.msrs[msrSFMASK] = 0x47700
	fr := brokenFrame()
	fr.rflags = 0x46 | flagRF
	g.setFrame(fr)
	g.arm(t)
	if !g.hit(t) || g.cpu.regs.RIP != lstar || g.cpu.regs.RFLAGS != 0x46 {
		t.Errorf("rip %#x rflags %#x counts %v", g.cpu.regs.RIP, g.cpu.regs.RFLAGS, g.f.Counts())
	}
}

// TestSyscallSpanningPages reads the syscall instruction across a page boundary.
func TestSyscallSpanningPages(t *testing.T) {
	g := newGuest(t)
	g.cpu.pages[userCode+0x1000] = 0x5000
	g.ram[userPhys+0xfff], g.ram[0x5000] = 0x0f, 0x05
	g.arm(t)
	g.cpu.regs.RCX = userCode + 0x1001
	if !g.hit(t) || g.cpu.regs.RIP != lstar {
		t.Fatalf("syscall across pages not fixed: rip %#x counts %v", g.cpu.regs.RIP, g.f.Counts())
	}
}

// TestRejections breaks one condition at a time: every such fault must go
// to the guest's handler untouched, through a single-step.
func TestRejections(t *testing.T) {
	cases := []struct {
		name     string
		change   func(g *guest)
		rejected bool // counted as a syscall look-alike that failed validation
	}{
		{"kernel fault", func(g *guest) {
			fr := brokenFrame()
			fr.cs, fr.err = 0x10, 0x11
			g.setFrame(fr)
		}, false},
		{"user fault elsewhere", func(g *guest) {
			fr := brokenFrame()
			fr.rip, fr.err = 0x40_2000, 0x6
			g.setFrame(fr)
		}, false},
		{"supervisor error code at LSTAR", func(g *guest) {
			fr := brokenFrame()
			fr.err = 0x11
			g.setFrame(fr)
		}, false},
		{"write fault at LSTAR", func(g *guest) {
			fr := brokenFrame()
			fr.err = 0x7
			g.setFrame(fr)
		}, true},
		{"reserved-bit fault", func(g *guest) {
			fr := brokenFrame()
			fr.err = 0x1d
			g.setFrame(fr)
		}, true},
		{"ring-0 SS in frame", func(g *guest) {
			fr := brokenFrame()
			fr.ss = 0x18
			g.setFrame(fr)
		}, true},
		{"syscall disabled", func(g *guest) { g.cpu.sregs.EFER &^= eferSCE }, true},
		{"r11 without bit 1", func(g *guest) { g.cpu.regs.R11 = 0x244 }, true},
		{"r11 reserved bit", func(g *guest) { g.cpu.regs.R11 = userFlags | 1<<22 }, true},
		{"r11 iopl", func(g *guest) { g.cpu.regs.R11 = userFlags | 3<<12 }, true},
		{"r11 vm", func(g *guest) { g.cpu.regs.R11 = userFlags | flagVM }, true},
		{"r11 vif", func(g *guest) { g.cpu.regs.R11 = userFlags | flagVIF }, true},
		{"jump to LSTAR (IF not masked)", func(g *guest) {
			fr := brokenFrame()
			fr.rflags = userFlags | flagRF
			g.setFrame(fr)
		}, true},
		{"pushed flags are not r11 masked", func(g *guest) { g.cpu.msrs[msrSFMASK] = 0x47700 }, true},
		{"no syscall before rcx", func(g *guest) { g.ram[userPhys+0x235] = 0x06 }, true},
		{"rcx in unmapped memory", func(g *guest) { g.cpu.regs.RCX = 0x50_0000 }, true},
		{"rcx in kernel memory", func(g *guest) {
			// Mapped, and 0f 05 there: still not user code.
			g.cpu.regs.RCX = stackLinear + 0x12
			g.ram[stackPhys+0x10], g.ram[stackPhys+0x11] = 0x0f, 0x05
		}, true},
		{"rcx wraps", func(g *guest) { g.cpu.regs.RCX = 1 }, true},
		{"frame unmapped", func(g *guest) { g.cpu.regs.RSP = 0xffff_c900_0000_8000 }, false},
		{"frame crosses into unmapped page", func(g *guest) { g.cpu.regs.RSP = stackLinear + 0xff8 }, false},
		{"frame outside RAM", func(g *guest) { g.cpu.pages[stackLinear] = 1 << 40 }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := newGuest(t)
			var log bytes.Buffer
			g.f.Log = &log
			g.arm(t)
			c.change(g)
			regs, sregs := g.cpu.regs, g.cpu.sregs
			if !g.hit(t) {
				t.Fatal("breakpoint hit not handled")
			}
			if g.cpu.setRegs != 0 || g.cpu.setSregs != 0 || g.cpu.regs != regs || g.cpu.sregs != sregs {
				t.Errorf("vCPU state written for a genuine fault: rip %#x cs %+v", g.cpu.regs.RIP, g.cpu.sregs.CS)
			}
			if len(g.cpu.debug) != 1 || g.cpu.debug[0] != stepCall {
				t.Errorf("SetGuestDebug calls = %+v, want one single-step", g.cpu.debug)
			}
			cnt := g.f.Counts()
			if cnt[CountPFPassthrough] != 1 || cnt[CountSyscallFixup] != 0 {
				t.Errorf("counts = %v", cnt)
			}
			if got := cnt[CountSyscallRejected] == 1; got != c.rejected {
				t.Errorf("rejected = %v, want %v (counts %v)", got, c.rejected, cnt)
			}
			if got := strings.Contains(log.String(), "not taken as a syscall"); got != c.rejected {
				t.Errorf("log %q", log.String())
			}
		})
	}
}

// TestKernelFaultReadsNoMSRs: kernel #PFs are the common case; they are
// told apart from the frame alone.
func TestKernelFaultReadsNoMSRs(t *testing.T) {
	g := newGuest(t)
	g.arm(t)
	fr := brokenFrame()
	fr.cs, fr.err = 0x10, 0x0
	g.setFrame(fr)
	g.hit(t)
	if g.cpu.getMSRs != 0 {
		t.Errorf("KVM_GET_MSRS called %d times for a kernel fault", g.cpu.getMSRs)
	}
}

// TestStepThenRearm follows a genuine fault: single-step with the
// breakpoint off, and on the step's exit, whatever its PC, re-arm.
func TestStepThenRearm(t *testing.T) {
	g := newGuest(t)
	g.arm(t)
	fr := brokenFrame()
	fr.rip = 0x40_2000
	g.setFrame(fr)
	if !g.hit(t) {
		t.Fatal("not handled")
	}
	// Polls while stepping must not touch the debug state.
	g.clk = g.clk.Add(10 * time.Second)
	g.f.Poll(g.cpu, 0, g.mem)
	handled, err := g.f.HandleDebug(g.cpu, 0, g.mem, kvm.DebugExit{Exception: 1, PC: handler + 4})
	if err != nil || !handled {
		t.Fatalf("step exit: handled %v err %v", handled, err)
	}
	if want := []debugCall{stepCall, armCall(handler)}; !cmp.Equal(want, g.cpu.debug, cmp.AllowUnexported(debugCall{})) {
		t.Errorf("SetGuestDebug calls = %+v, want %+v", g.cpu.debug, want)
	}
	// Armed again: a debug exit elsewhere is not the Fixer's.
	handled, err = g.f.HandleDebug(g.cpu, 0, g.mem, kvm.DebugExit{Exception: 1, PC: 0x1234})
	if err != nil || handled {
		t.Errorf("foreign debug exit: handled %v err %v", handled, err)
	}
	// And the next syscall is fixed.
	g.setBrokenSyscall()
	if !g.hit(t) || g.cpu.regs.RIP != lstar {
		t.Errorf("syscall after a pass-through not fixed: rip %#x", g.cpu.regs.RIP)
	}
}

func TestPollWaitsForKernelGate(t *testing.T) {
	g := newGuest(t)
	poll := func() {
		g.f.Poll(g.cpu, 0, g.mem)
		g.clk = g.clk.Add(pollInterval)
	}
	// Not in long mode yet.
	efer := g.cpu.sregs.EFER
	g.cpu.sregs.EFER = 0
	poll()
	poll()
	g.cpu.sregs.EFER = efer
	// IDT too short for gate 14.
	g.cpu.sregs.IDT.Limit = 14*16 + 14
	poll()
	poll()
	g.cpu.sregs.IDT.Limit = 0xfff
	// A gate into low memory (a loader's IDT), then a non-present gate.
	g.setGate(vecPF, 0x10_0000, 0x8e)
	poll()
	poll()
	g.setGate(vecPF, handler, 0x0e)
	poll()
	poll()
	// A call gate type.
	g.setGate(vecPF, handler, 0x8c)
	poll()
	poll()
	if len(g.cpu.debug) != 0 {
		t.Fatalf("armed before the gate was a kernel handler: %+v", g.cpu.debug)
	}
	g.setGate(vecPF, handler, 0x8f) // a trap gate is fine
	poll()
	if len(g.cpu.debug) != 0 {
		t.Fatal("armed on the first sight of the gate, want a second look")
	}
	poll()
	if len(g.cpu.debug) != 1 || g.cpu.debug[0] != armCall(handler) {
		t.Fatalf("SetGuestDebug calls = %+v", g.cpu.debug)
	}
}

func TestPollRateLimitAndMove(t *testing.T) {
	g := newGuest(t)
	g.f.Poll(g.cpu, 0, g.mem)
	// Within the interval: no second look, so not armed.
	g.clk = g.clk.Add(pollInterval / 2)
	g.f.Poll(g.cpu, 0, g.mem)
	if len(g.cpu.debug) != 0 {
		t.Fatal("polled twice within the interval")
	}
	g.clk = g.clk.Add(pollInterval)
	g.f.Poll(g.cpu, 0, g.mem)
	if len(g.cpu.debug) != 1 {
		t.Fatalf("not armed: %+v", g.cpu.debug)
	}

	// The guest moves its handler (early handler -> final one).
	const moved = handler + 0x1000
	g.setGate(vecPF, moved, 0x8e)
	g.clk = g.clk.Add(pollInterval) // below the re-check interval once armed
	g.f.Poll(g.cpu, 0, g.mem)
	g.clk = g.clk.Add(pollInterval)
	g.f.Poll(g.cpu, 0, g.mem)
	if len(g.cpu.debug) != 1 {
		t.Fatalf("re-checked too soon after arming: %+v", g.cpu.debug)
	}
	for range 2 {
		g.clk = g.clk.Add(recheckInterval)
		g.f.Poll(g.cpu, 0, g.mem)
	}
	if len(g.cpu.debug) != 2 || g.cpu.debug[1] != armCall(moved) {
		t.Fatalf("SetGuestDebug calls = %+v, want a re-arm at %#x", g.cpu.debug, uint64(moved))
	}
	// A hit at the old address is no longer the Fixer's; the new one is.
	if h, _ := g.f.HandleDebug(g.cpu, 0, g.mem, kvm.DebugExit{PC: handler}); h {
		t.Error("hit at the old handler handled")
	}
	if h, _ := g.f.HandleDebug(g.cpu, 0, g.mem, kvm.DebugExit{PC: moved}); !h {
		t.Error("hit at the new handler not handled")
	}
	if c := g.f.Counts(); c[CountArm] != 2 {
		t.Errorf("counts = %v", c)
	}
}

func TestVCPUsAreIndependent(t *testing.T) {
	g := newGuest(t)
	g.arm(t) // vCPU 0
	other := *g.cpu
	other.debug = nil
	// vCPU 1 has not been armed: its debug exits are not the Fixer's.
	if h, _ := g.f.HandleDebug(&other, 1, g.mem, kvm.DebugExit{PC: handler}); h {
		t.Error("unarmed vCPU 1's exit handled")
	}
	for range 2 {
		g.f.Poll(&other, 1, g.mem)
		g.clk = g.clk.Add(pollInterval)
	}
	if len(other.debug) != 1 || len(g.cpu.debug) != 0 {
		t.Errorf("arming vCPU 1: its calls %+v, vCPU 0's %+v", other.debug, g.cpu.debug)
	}
}

func TestDisabled(t *testing.T) {
	g := newGuest(t)
	g.f = New(false)
	for range 3 {
		g.f.Poll(g.cpu, 0, g.mem)
	}
	h, err := g.f.HandleDebug(g.cpu, 0, g.mem, kvm.DebugExit{PC: handler})
	if h || err != nil || len(g.cpu.debug) != 0 || g.cpu.setRegs != 0 || g.f.Enabled() {
		t.Errorf("disabled Fixer acted: handled %v err %v debug %+v", h, err, g.cpu.debug)
	}
	if err := g.f.Reset(g.cpu, 0); err != nil || len(g.cpu.debug) != 0 {
		t.Errorf("disabled Reset: %v %+v", err, g.cpu.debug)
	}
}

func TestReset(t *testing.T) {
	g := newGuest(t)
	g.arm(t)
	if err := g.f.Reset(g.cpu, 0); err != nil {
		t.Fatal(err)
	}
	if len(g.cpu.debug) != 1 || g.cpu.debug[0] != (debugCall{}) {
		t.Errorf("Reset's SetGuestDebug calls = %+v, want one turning debugging off", g.cpu.debug)
	}
	if h, _ := g.f.HandleDebug(g.cpu, 0, g.mem, kvm.DebugExit{PC: handler}); h {
		t.Error("exit handled after Reset")
	}
}

func TestMSRFailure(t *testing.T) {
	g := newGuest(t)
	g.arm(t)
	g.cpu.msrErr = errFake
	if _, err := g.f.HandleDebug(g.cpu, 0, g.mem, kvm.DebugExit{PC: handler}); err == nil {
		t.Error("KVM_GET_MSRS failure not reported")
	}
	g = newGuest(t)
	g.arm(t)
	delete(g.cpu.msrs, msrSFMASK)
	if _, err := g.f.HandleDebug(g.cpu, 0, g.mem, kvm.DebugExit{PC: handler}); err == nil {
		t.Error("short KVM_GET_MSRS not reported")
	}
}

func TestGateTarget(t *testing.T) {
	// Linux's asm_exc_page_fault gate: selector 0x10, interrupt gate, DPL 0.
	lo := uint64(0x81a0_8e00_0010_0b20)
	hi := uint64(0xffff_ffff)
	got, err := gateTarget(lo, hi)
	if err != nil || got != 0xffff_ffff_81a0_0b20 {
		t.Errorf("gateTarget = %#x, %v", got, err)
	}
}
