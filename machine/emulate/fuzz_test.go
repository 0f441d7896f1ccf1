package emulate

import (
	"encoding/binary"
	"testing"

	"github.com/govmm/govmm/kvm"
	"github.com/govmm/govmm/machine/guestmem"
)

// FuzzHandle runs random instruction bytes against random vCPU state and
// guest memory holding random page tables: Handle may fail, never panic.
func FuzzHandle(f *testing.F) {
	seeds := [][]byte{
		{0xcc}, {0x0f, 0x01, 0xca}, {0x0f, 0x01, 0xcb}, {0xf3, 0x48, 0x0f, 0xb8, 0x03},
		{0x9b}, {0xdb, 0xe2}, {0x0f, 0x77}, {0xdf, 0x2c, 0x24}, {0xdb, 0x43, 0x04},
		{0xf0, 0x48, 0x0f, 0xc7, 0x0e}, {0x0f, 0xc7, 0x0f}, {0xcf}, {0x48, 0xcf}, {0x66, 0xcf},
		{0x64, 0xf3, 0x0f, 0xb8, 0x44, 0x8d, 0x10},
	}
	for i, s := range seeds {
		state := make([]byte, 96)
		for j := range state {
			state[j] = byte(i*31 + j*7)
		}
		f.Add(s, state, true)
		f.Add(s, state, false)
	}
	f.Fuzz(func(t *testing.T, code, state []byte, reportBytes bool) {
		ram := make([]byte, 1<<16)
		mem, err := guestmem.New(guestmem.Region{GPA: 0, Data: ram})
		if err != nil {
			t.Fatal(err)
		}
		// Fill RAM with a pattern derived from the state, so page walks
		// and descriptor reads see arbitrary entries.
		for i := range ram {
			if len(state) > 0 {
				ram[i] = state[i%len(state)] ^ byte(i>>8)
			}
		}
		word := func(i int) uint64 {
			var b [8]byte
			for j := range b {
				if k := i*8 + j; k < len(state) {
					b[j] = state[k]
				}
			}
			return binary.LittleEndian.Uint64(b[:])
		}
		c := &fakeCPU{}
		c.regs = kvm.Regs{RAX: word(0), RBX: word(1), RCX: word(2), RDX: word(3), RSI: word(4), RDI: word(5),
			RSP: word(6), RBP: word(7), RIP: word(8) % (1 << 17), RFLAGS: word(9)}
		w := word(10)
		c.sregs.CR0 = w & (cr0PE | cr0PG | cr0NE | cr0TS | cr0EM | cr0MP | cr0WP)
		c.sregs.CR4 = w >> 8 & (cr4PSE | cr4PAE | cr4LA57 | cr4SMAP | cr4SMEP)
		c.sregs.EFER = w >> 16 & (eferLMA | eferNXE)
		c.sregs.CR3 = word(11) % (1 << 17)
		seg := kvm.Segment{Base: w >> 24 & 0xffff, Limit: 0xffff, Selector: uint16(w >> 40), Type: uint8(w>>44) & 15,
			Present: 1, S: 1, DPL: uint8(w>>48) & 3, DB: uint8(w>>50) & 1, L: uint8(w>>51) & 1}
		c.sregs.CS, c.sregs.DS, c.sregs.ES, c.sregs.FS, c.sregs.GS, c.sregs.SS = seg, seg, seg, seg, seg, seg
		c.sregs.SS.DPL = uint8(w>>52) & 3
		c.sregs.GDT = kvm.DTable{Base: word(11) >> 32 % (1 << 17), Limit: uint16(w >> 54)}
		c.sregs.LDT = kvm.Segment{Base: word(7) % (1 << 17), Limit: uint32(w >> 20 & 0xffff), Present: 1, Selector: 8}
		c.fpu.FSW = uint16(w >> 12)
		c.fpu.FTWX = uint8(w >> 28)
		c.fpu.FCW = uint16(w >> 36)
		exit := kvm.InternalErrorExit{Suberror: kvm.InternalErrorEmulation}
		if reportBytes {
			exit = exitWith(code)
		} else {
			copy(ram[c.regs.RIP%uint64(len(ram)):], code)
		}
		var em Emulator
		err = em.Handle(c, mem, exit)
		if ue, ok := err.(*UnhandledError); ok {
			_ = ue.Error()
		}
	})
}
