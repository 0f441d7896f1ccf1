// Package boot puts a kernel or payload into guest memory and describes the
// CPU state to enter it with: the x86 memory layout, the e820 map, GDT and
// identity page tables, and the loaders (ELF with a PVH note, multiboot v1,
// the Linux bzImage boot protocol).
package boot

// Guest-physical addresses of what the loaders place in low memory. They lie
// in the first 640 KiB, below the EBDA, where no kernel is loaded.
const (
	GDTAddr       = 0x500  // boot GDT
	StartInfoAddr = 0x6000 // hvm_start_info (PVH) or multiboot info
	ModListAddr   = 0x6800 // PVH module list
	ZeroPageAddr  = 0x7000 // Linux boot_params
	MemMapAddr    = 0x8000 // PVH / multiboot memory map
	PML4Addr      = 0x9000 // identity page tables: PML4, PDPT, 4 PDs
	PDPTAddr      = 0xa000
	PDAddr        = 0xb000 // 0xb000..0xefff: 4 GiB in 2 MiB pages
	CmdlineAddr   = 0x20000
	CmdlineMax    = 0x10000 // bytes, including the NUL

	EBDAStart   = 0x9fc00
	VGAStart    = 0xa0000
	BIOSStart   = 0xe0000 // ACPI and MP tables live in 0xe0000-0xfffff
	HighMemBase = 0x100000

	// MMIO32Start is where the 32-bit MMIO hole starts: RAM above it moves
	// above 4 GiB. QEMU's q35 uses 2 GiB or 2.75 GiB; 3 GiB keeps the
	// common -m sizes in one low block.
	MMIO32Start = 0xc0000000
	FourGiB     = 1 << 32
)

// E820 entry types.
const (
	E820RAM      = 1
	E820Reserved = 2
	E820ACPI     = 3
	E820NVS      = 4
)

// E820Entry is one range of the BIOS memory map.
type E820Entry struct {
	Addr uint64
	Size uint64
	Type uint32
}

// RAMRange is one block of guest RAM to allocate.
type RAMRange struct {
	GPA, Size uint64
}

// RAMRanges splits memSize bytes of guest RAM around the 32-bit MMIO hole.
func RAMRanges(memSize uint64) []RAMRange {
	if memSize <= MMIO32Start {
		return []RAMRange{{0, memSize}}
	}
	return []RAMRange{{0, MMIO32Start}, {FourGiB, memSize - MMIO32Start}}
}

// E820 is the memory map the guest sees for memSize bytes of RAM: low RAM up
// to the EBDA, the EBDA and BIOS area reserved, RAM from 1 MiB to the MMIO
// hole and, for large memory, RAM above 4 GiB.
func E820(memSize uint64) []E820Entry {
	m := []E820Entry{
		{0, EBDAStart, E820RAM},
		{EBDAStart, VGAStart - EBDAStart, E820Reserved},
		{BIOSStart, HighMemBase - BIOSStart, E820Reserved},
	}
	rs := RAMRanges(memSize)
	if low := rs[0].Size; low > HighMemBase {
		m = append(m, E820Entry{HighMemBase, low - HighMemBase, E820RAM})
	}
	if len(rs) > 1 {
		m = append(m, E820Entry{rs[1].GPA, rs[1].Size, E820RAM})
	}
	return m
}
