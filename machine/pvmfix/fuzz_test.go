package pvmfix

import (
	"encoding/binary"
	"testing"

	"github.com/govmm/govmm/kvm"
)

// FuzzHandleDebug feeds guest-controlled state (the pushed frame, RCX, R11,
// the syscall MSRs, the bytes before RCX, the #PF gate) through Poll and a
// breakpoint hit. It must never panic, and a fixup must only ever happen for
// state that passed every check.
func FuzzHandleDebug(f *testing.F) {
	seed := func(fr frame, rcx, r11, sfmask uint64, insn [2]byte) {
		var b [48]byte
		for i, v := range []uint64{fr.err, fr.rip, fr.cs, fr.rflags, fr.rsp, fr.ss} {
			binary.LittleEndian.PutUint64(b[8*i:], v)
		}
		f.Add(b[:], rcx, r11, sfmask, insn[0], insn[1], uint64(0x81a0_8e00_0010_0b20), uint64(0xffff_ffff))
	}
	ok := brokenFrame()
	seed(ok, syscallAt+2, userFlags, linuxFMask, [2]byte{0x0f, 0x05})
	seed(ok, syscallAt+2, userFlags, linuxFMask, [2]byte{0x0f, 0x06})
	kern := ok
	kern.cs = 0x10
	seed(kern, 0, 0, 0, [2]byte{})
	seed(ok, 1, 0x202, 0x47700, [2]byte{0x0f, 0x05})

	f.Fuzz(func(t *testing.T, fb []byte, rcx, r11, sfmask uint64, i0, i1 byte, gateLo, gateHi uint64) {
		g := newGuest(t)
		binary.LittleEndian.PutUint64(g.ram[idtPhys+16*vecPF:], gateLo)
		binary.LittleEndian.PutUint64(g.ram[idtPhys+16*vecPF+8:], gateHi)
		for range 2 {
			g.f.Poll(g.cpu, 0, g.mem)
			g.clk = g.clk.Add(pollInterval)
		}
		if len(g.cpu.debug) == 0 {
			return // gate not a kernel handler: nothing armed
		}
		pc := g.cpu.debug[0].dr[0]
		copy(g.ram[stackPhys+frameAddr-stackLinear:stackPhys+0x1000], fb)
		g.cpu.regs.RCX, g.cpu.regs.R11 = rcx, r11
		g.cpu.msrs[msrSFMASK] = sfmask
		g.ram[userPhys+0x234], g.ram[userPhys+0x235] = i0, i1
		fr := frame{}
		b := g.ram[stackPhys+frameAddr-stackLinear:]
		fr.err, fr.rip, fr.cs = le(b), le(b[8:]), le(b[16:])

		handled, err := g.f.HandleDebug(g.cpu, 0, g.mem, kvm.DebugExit{PC: pc})
		if err != nil || !handled {
			t.Fatalf("HandleDebug = %v, %v", handled, err)
		}
		if g.cpu.setRegs == 0 {
			return
		}
		// A fixup: it must be a user fetch fault at LSTAR after a syscall.
		if fr.rip != lstar || fr.cs&3 != 3 || fr.err&pfUser == 0 || rcx != syscallAt+2 || i0 != 0x0f || i1 != 0x05 {
			t.Fatalf("fixed up frame %+v rcx %#x insn %02x %02x", fr, rcx, i0, i1)
		}
		if g.cpu.regs.RIP != lstar || g.cpu.sregs.CS.DPL != 0 || g.cpu.regs.RFLAGS&flagRF != 0 {
			t.Fatalf("bad entry state: rip %#x cs %+v rflags %#x", g.cpu.regs.RIP, g.cpu.sregs.CS, g.cpu.regs.RFLAGS)
		}
	})
}
