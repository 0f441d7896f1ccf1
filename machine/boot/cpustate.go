package boot

import (
	"encoding/binary"

	"github.com/govmm/govmm/kvm"
	"github.com/govmm/govmm/machine/guestmem"
)

// Mode is the CPU mode a kernel is entered in.
type Mode int

const (
	// Protected32 is 32-bit protected mode with paging off (PVH, multiboot).
	Protected32 Mode = iota
	// Long64 is 64-bit long mode on identity-mapped page tables (Linux's
	// 64-bit boot protocol entry).
	Long64
)

// Entry is how to start the boot vCPU.
type Entry struct {
	Mode Mode
	Regs kvm.Regs // RIP, RSI/RBX/RAX as the protocol wants; RFLAGS set by Apply
	// Description names what was loaded, for logs and errors.
	Description string
}

// GDT selectors of the boot GDT written by writeGDT.
const (
	selCode64 = 0x08
	selCode32 = 0x10
	selData   = 0x18
	selTSS    = 0x20
)

// gdtEntry encodes a segment descriptor.
func gdtEntry(flags uint16, base, limit uint32) uint64 {
	return uint64(limit&0xffff) |
		uint64(base&0xffffff)<<16 |
		uint64(flags&0xf0ff)<<40 |
		uint64((limit>>16)&0xf)<<48 |
		uint64(base>>24)<<56
}

var bootGDT = []uint64{
	0,
	gdtEntry(0xa09b, 0, 0xfffff), // 64-bit code, DPL0
	gdtEntry(0xc09b, 0, 0xfffff), // 32-bit code, DPL0
	gdtEntry(0xc093, 0, 0xfffff), // data, DPL0
	gdtEntry(0x008b, 0, 0x67),    // TSS (busy)
}

func writeGDT(mem *guestmem.Memory) error {
	for i, e := range bootGDT {
		if err := mem.PutUint64(GDTAddr+uint64(i)*8, e); err != nil {
			return err
		}
	}
	return nil
}

// writePageTables identity-maps the first 4 GiB with 2 MiB pages.
func writePageTables(mem *guestmem.Memory) error {
	if err := mem.PutUint64(PML4Addr, PDPTAddr|3); err != nil {
		return err
	}
	for i := uint64(0); i < 4; i++ {
		if err := mem.PutUint64(PDPTAddr+i*8, (PDAddr+i*0x1000)|3); err != nil {
			return err
		}
	}
	b, err := mem.Slice(PDAddr, 4*0x1000)
	if err != nil {
		return err
	}
	for i := uint64(0); i < 2048; i++ {
		binary.LittleEndian.PutUint64(b[i*8:], i<<21|0x83) // present, writable, 2 MiB
	}
	return nil
}

func segment(sel uint16, typ uint8, long bool) kvm.Segment {
	s := kvm.Segment{Base: 0, Limit: 0xffffffff, Selector: sel, Type: typ, Present: 1, S: 1, G: 1, DB: 1}
	if long {
		s.L, s.DB = 1, 0
	}
	return s
}

// SetupMemory writes the boot GDT and, for Long64, the identity page tables.
func SetupMemory(mem *guestmem.Memory, mode Mode) error {
	if err := writeGDT(mem); err != nil {
		return err
	}
	if mode == Long64 {
		return writePageTables(mem)
	}
	return nil
}

// Control register and EFER bits.
const (
	cr0PE   = 1 << 0
	cr0ET   = 1 << 4
	cr0PG   = 1 << 31
	cr4PAE  = 1 << 5
	eferLME = 1 << 8
	eferLMA = 1 << 10
)

// ApplySregs sets the segment and control registers for mode on top of the
// vCPU's power-on state s.
func ApplySregs(s *kvm.Sregs, mode Mode) {
	s.GDT = kvm.DTable{Base: GDTAddr, Limit: uint16(len(bootGDT)*8 - 1)}
	s.IDT = kvm.DTable{}
	data := segment(selData, 3, false)
	s.DS, s.ES, s.FS, s.GS, s.SS = data, data, data, data, data
	s.TR = kvm.Segment{Selector: selTSS, Limit: 0x67, Type: 11, Present: 1}
	switch mode {
	case Protected32:
		s.CS = segment(selCode32, 11, false)
		s.CR0 = cr0PE | cr0ET
		s.CR4, s.CR3, s.EFER = 0, 0, 0
	case Long64:
		s.CS = segment(selCode64, 11, true)
		s.CR0 = cr0PE | cr0ET | cr0PG
		s.CR3 = PML4Addr
		s.CR4 = cr4PAE
		s.EFER = eferLME | eferLMA
	}
}
