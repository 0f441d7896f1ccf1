package boot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/govmm/govmm/machine/guestmem"
)

// Params is what a loader needs besides guest memory.
type Params struct {
	Kernel  []byte // the -kernel file's contents
	Initrd  []byte // nil when there is none
	Cmdline string
	MemSize uint64 // total guest RAM
	RSDP    uint64 // guest-physical address of the ACPI RSDP, 0 if none
}

// ErrFormat reports a kernel file none of the loaders recognizes.
var ErrFormat = errors.New("not a bzImage, a PVH ELF or a multiboot kernel")

// Load recognizes the kernel's format, copies it (and the initrd and command
// line) into guest memory, writes the boot information the protocol wants,
// and returns how to enter it. Everything in the file is checked against the
// file's size and guest RAM; a bad image is an error, never a panic.
func Load(mem *guestmem.Memory, p Params) (*Entry, error) {
	k := p.Kernel
	if len(p.Cmdline)+1 > CmdlineMax {
		return nil, fmt.Errorf("kernel command line is %d bytes, at most %d are supported", len(p.Cmdline), CmdlineMax-1)
	}
	if len(k) >= 0x206 && binary.LittleEndian.Uint32(k[0x202:]) == 0x53726448 { // "HdrS"
		return loadLinux(mem, p)
	}
	if isELF(k) {
		f, err := parseELF(k)
		if err != nil {
			return nil, err
		}
		if f.pvhEntry != 0 {
			return loadPVH(mem, p, f)
		}
		if off, ok := findMultiboot(k); ok {
			return loadMultiboot(mem, p, off)
		}
		return nil, errors.New("Error loading uncompressed kernel without PVH ELF Note")
	}
	if off, ok := findMultiboot(k); ok {
		return loadMultiboot(mem, p, off)
	}
	return nil, ErrFormat
}

// writeCmdline stores the NUL-terminated command line at CmdlineAddr.
func writeCmdline(mem *guestmem.Memory, cmdline string) error {
	b := append([]byte(cmdline), 0)
	return mem.WriteAt(b, CmdlineAddr)
}

// lowRAMEnd is the end of RAM below the MMIO hole.
func lowRAMEnd(memSize uint64) uint64 { return RAMRanges(memSize)[0].Size }

// placeInitrd copies the initrd as high as possible below limit (exclusive),
// page aligned, above floor. It returns its address.
func placeInitrd(mem *guestmem.Memory, initrd []byte, floor, limit uint64) (uint64, error) {
	size := uint64(len(initrd))
	if size > limit || (limit-size)&^0xfff < floor {
		return 0, fmt.Errorf("initrd too large for the memory given: %d bytes, at most %d fit between %#x and %#x",
			size, int64(limit)-int64(floor), floor, limit)
	}
	addr := (limit - size) &^ 0xfff
	if err := mem.WriteAt(initrd, addr); err != nil {
		return 0, fmt.Errorf("initrd at %#x: %w", addr, err)
	}
	return addr, nil
}

// pageUp rounds up to 4 KiB.
func pageUp(x uint64) uint64 { return (x + 0xfff) &^ 0xfff }

// --- PVH ---------------------------------------------------------------

const (
	hvmStartMagic   = 0x336ec578
	hvmStartInfoLen = 56
	hvmModEntryLen  = 32
	hvmMemmapEntLen = 24
)

func loadPVH(mem *guestmem.Memory, p Params, f *elfFile) (*Entry, error) {
	end, err := f.loadSegments(mem)
	if err != nil {
		return nil, err
	}
	if err := writeCmdline(mem, p.Cmdline); err != nil {
		return nil, err
	}
	info := make([]byte, hvmStartInfoLen)
	le := binary.LittleEndian
	le.PutUint32(info[0:], hvmStartMagic)
	le.PutUint32(info[4:], 1) // version 1: has the memory map
	le.PutUint64(info[24:], CmdlineAddr)
	le.PutUint64(info[32:], p.RSDP)
	if p.Initrd != nil {
		addr, err := placeInitrd(mem, p.Initrd, pageUp(end), lowRAMEnd(p.MemSize))
		if err != nil {
			return nil, err
		}
		mod := make([]byte, hvmModEntryLen)
		le.PutUint64(mod[0:], addr)
		le.PutUint64(mod[8:], uint64(len(p.Initrd)))
		if err := mem.WriteAt(mod, ModListAddr); err != nil {
			return nil, err
		}
		le.PutUint32(info[12:], 1)
		le.PutUint64(info[16:], ModListAddr)
	}
	e820 := E820(p.MemSize)
	mm := make([]byte, 0, len(e820)*hvmMemmapEntLen)
	for _, e := range e820 {
		mm = le.AppendUint64(mm, e.Addr)
		mm = le.AppendUint64(mm, e.Size)
		mm = le.AppendUint32(mm, e.Type)
		mm = le.AppendUint32(mm, 0)
	}
	if err := mem.WriteAt(mm, MemMapAddr); err != nil {
		return nil, err
	}
	le.PutUint64(info[40:], MemMapAddr)
	le.PutUint32(info[48:], uint32(len(e820)))
	if err := mem.WriteAt(info, StartInfoAddr); err != nil {
		return nil, err
	}
	e := &Entry{Mode: Protected32, Description: "PVH ELF"}
	e.Regs.RIP = f.pvhEntry
	e.Regs.RBX = StartInfoAddr
	return e, nil
}

// --- multiboot v1 ----------------------------------------------------------

const (
	multibootMagic      = 0x1badb002
	multibootBootMagic  = 0x2badb002
	multibootSearch     = 8192
	mbFlagAOutKludge    = 1 << 16
	mbInfoMem           = 1 << 0
	mbInfoCmdline       = 1 << 2
	mbInfoMods          = 1 << 3
	mbInfoMmap          = 1 << 6
	mbInfoLoaderName    = 1 << 9
	mbInfoLen           = 88
	mbLoaderNameAddr    = StartInfoAddr + 0x100
	mbModsAddr          = ModListAddr
	mbSupportedRequired = 0x3 // page-align modules, memory info: both provided
)

// findMultiboot finds a valid multiboot v1 header in the first 8 KiB.
func findMultiboot(k []byte) (int, bool) {
	le := binary.LittleEndian
	for off := 0; off+12 <= len(k) && off < multibootSearch; off += 4 {
		if le.Uint32(k[off:]) != multibootMagic {
			continue
		}
		flags := le.Uint32(k[off+4:])
		if multibootMagic+flags+le.Uint32(k[off+8:]) == 0 {
			return off, true
		}
	}
	return 0, false
}

func loadMultiboot(mem *guestmem.Memory, p Params, off int) (*Entry, error) {
	le := binary.LittleEndian
	k := p.Kernel
	flags := le.Uint32(k[off+4:])
	if req := flags & 0xffff &^ mbSupportedRequired &^ (1 << 2); req != 0 {
		return nil, fmt.Errorf("multiboot kernel requires unsupported features (flags %#x)", req)
	}
	var entry, end uint64
	if flags&mbFlagAOutKludge != 0 {
		if off+32 > len(k) {
			return nil, errors.New("multiboot header truncated")
		}
		hdrAddr := le.Uint32(k[off+12:])
		loadAddr := le.Uint32(k[off+16:])
		loadEnd := le.Uint32(k[off+20:])
		bssEnd := le.Uint32(k[off+24:])
		entry = uint64(le.Uint32(k[off+28:]))
		if hdrAddr < loadAddr || uint64(hdrAddr-loadAddr) > uint64(off) {
			return nil, fmt.Errorf("multiboot header: header_addr %#x below load_addr %#x or past the file", hdrAddr, loadAddr)
		}
		fileOff := uint64(off) - uint64(hdrAddr-loadAddr)
		size := uint64(len(k)) - fileOff
		if loadEnd != 0 {
			if loadEnd < loadAddr || uint64(loadEnd-loadAddr) > size {
				return nil, fmt.Errorf("multiboot header: load_end_addr %#x out of range", loadEnd)
			}
			size = uint64(loadEnd - loadAddr)
		}
		if err := mem.WriteAt(k[fileOff:fileOff+size], uint64(loadAddr)); err != nil {
			return nil, fmt.Errorf("multiboot image at %#x: %w", loadAddr, err)
		}
		end = uint64(loadAddr) + size
		if bssEnd != 0 && uint64(bssEnd) > end {
			b, err := mem.Slice(end, uint64(bssEnd)-end)
			if err != nil {
				return nil, fmt.Errorf("multiboot bss: %w", err)
			}
			clear(b)
			end = uint64(bssEnd)
		}
	} else {
		if !isELF(k) {
			return nil, errors.New("multiboot kernel is not ELF and has no address fields")
		}
		f, err := parseELF(k)
		if err != nil {
			return nil, err
		}
		if end, err = f.loadSegments(mem); err != nil {
			return nil, err
		}
		entry = f.entry
	}
	if err := writeCmdline(mem, p.Cmdline); err != nil {
		return nil, err
	}
	info := make([]byte, mbInfoLen)
	infoFlags := uint32(mbInfoMem | mbInfoCmdline | mbInfoMmap | mbInfoLoaderName)
	le.PutUint32(info[4:], EBDAStart/1024)                                  // mem_lower, KiB
	le.PutUint32(info[8:], uint32((lowRAMEnd(p.MemSize)-HighMemBase)/1024)) // mem_upper, KiB
	le.PutUint32(info[16:], CmdlineAddr)
	if p.Initrd != nil {
		addr, err := placeInitrd(mem, p.Initrd, pageUp(end), lowRAMEnd(p.MemSize))
		if err != nil {
			return nil, err
		}
		mod := make([]byte, 16)
		le.PutUint32(mod[0:], uint32(addr))
		le.PutUint32(mod[4:], uint32(addr)+uint32(len(p.Initrd)))
		le.PutUint32(mod[8:], CmdlineAddr+uint32(len(p.Cmdline))) // empty string: the NUL
		if err := mem.WriteAt(mod, mbModsAddr); err != nil {
			return nil, err
		}
		infoFlags |= mbInfoMods
		le.PutUint32(info[20:], 1)
		le.PutUint32(info[24:], mbModsAddr)
	}
	var mm []byte
	for _, e := range E820(p.MemSize) {
		mm = le.AppendUint32(mm, 20)
		mm = le.AppendUint64(mm, e.Addr)
		mm = le.AppendUint64(mm, e.Size)
		mm = le.AppendUint32(mm, e.Type)
	}
	if err := mem.WriteAt(mm, MemMapAddr); err != nil {
		return nil, err
	}
	le.PutUint32(info[44:], uint32(len(mm)))
	le.PutUint32(info[48:], MemMapAddr)
	if err := mem.WriteAt([]byte("govmm\x00"), mbLoaderNameAddr); err != nil {
		return nil, err
	}
	le.PutUint32(info[64:], mbLoaderNameAddr)
	le.PutUint32(info[0:], infoFlags)
	if err := mem.WriteAt(info, StartInfoAddr); err != nil {
		return nil, err
	}
	e := &Entry{Mode: Protected32, Description: "multiboot"}
	e.Regs.RIP = entry
	e.Regs.RAX = multibootBootMagic
	e.Regs.RBX = StartInfoAddr
	return e, nil
}

// --- Linux bzImage -------------------------------------------------------------

// Offsets in the setup header / boot_params (Documentation/arch/x86/boot.rst
// and zero-page.rst).
const (
	bpACPIRSDP      = 0x070
	bpExtRamdisk    = 0x0c0
	bpExtRamdiskSz  = 0x0c4
	bpExtCmdline    = 0x0c8
	bpE820Entries   = 0x1e8
	hdrSetupSects   = 0x1f1
	hdrVidMode      = 0x1fa
	hdrJump         = 0x200
	hdrVersion      = 0x206
	hdrTypeOfLoader = 0x210
	hdrLoadflags    = 0x211
	hdrRamdiskImage = 0x218
	hdrRamdiskSize  = 0x21c
	hdrHeapEndPtr   = 0x224
	hdrCmdLinePtr   = 0x228
	hdrInitrdMax    = 0x22c
	hdrKernelAlign  = 0x230
	hdrRelocatable  = 0x234
	hdrXLoadflags   = 0x236
	hdrCmdlineSize  = 0x238
	hdrPrefAddress  = 0x258
	hdrInitSize     = 0x260
	bpE820Table     = 0x2d0
	bpE820Max       = 128

	loadedHigh  = 1 << 0
	canUseHeap  = 1 << 7
	xlfKernel64 = 1 << 0
)

func loadLinux(mem *guestmem.Memory, p Params) (*Entry, error) {
	k := p.Kernel
	le := binary.LittleEndian
	version := le.Uint16(k[hdrVersion:])
	if version < 0x206 {
		return nil, fmt.Errorf("Linux boot protocol %d.%02d is too old, 2.06 or later is needed", version>>8, version&0xff)
	}
	if len(k) < hdrInitSize+4 {
		return nil, errors.New("bzImage truncated: setup header incomplete")
	}
	if k[hdrLoadflags]&loadedHigh == 0 {
		return nil, errors.New("kernel is a zImage that loads low; only bzImage is supported")
	}
	if version < 0x20c || le.Uint16(k[hdrXLoadflags:])&xlfKernel64 == 0 {
		return nil, errors.New("kernel has no 64-bit entry point (a 32-bit-only kernel); govmm boots 64-bit kernels")
	}
	setupSects := int(k[hdrSetupSects])
	if setupSects == 0 {
		setupSects = 4
	}
	setupSize := (setupSects + 1) * 512
	if setupSize >= len(k) {
		return nil, fmt.Errorf("bzImage truncated: %d bytes of setup, file is %d bytes", setupSize, len(k))
	}
	pm := k[setupSize:]
	load := uint64(HighMemBase)
	if version >= 0x20a {
		if pa := le.Uint64(k[hdrPrefAddress:]); pa >= HighMemBase {
			load = pa
		}
	}
	initSize := uint64(len(pm))
	if version >= 0x20a {
		initSize = max(initSize, uint64(le.Uint32(k[hdrInitSize:])))
	}
	low := lowRAMEnd(p.MemSize)
	if load+initSize > low {
		return nil, fmt.Errorf("kernel needs %d MiB of RAM from %#x, the guest has %d MiB below 4 GiB",
			(initSize+0xfffff)>>20, load, low>>20)
	}
	if err := mem.WriteAt(pm, load); err != nil {
		return nil, fmt.Errorf("kernel at %#x: %w", load, err)
	}
	cmdlineSize := uint32(255)
	if version >= 0x206 {
		cmdlineSize = le.Uint32(k[hdrCmdlineSize:])
	}
	if uint32(len(p.Cmdline)) > cmdlineSize {
		return nil, fmt.Errorf("kernel command line is %d bytes, this kernel accepts at most %d", len(p.Cmdline), cmdlineSize)
	}
	if err := writeCmdline(mem, p.Cmdline); err != nil {
		return nil, err
	}

	bp := make([]byte, 4096)
	hdrEnd := hdrJump + 2 + int(k[hdrJump+1])
	if hdrEnd > len(k) || hdrEnd > len(bp) || hdrEnd < hdrInitSize+4 {
		hdrEnd = hdrInitSize + 4
	}
	copy(bp[hdrSetupSects:], k[hdrSetupSects:hdrEnd])
	le.PutUint16(bp[hdrVidMode:], 0xffff) // "normal" text mode
	bp[hdrTypeOfLoader] = 0xff            // undefined boot loader
	bp[hdrLoadflags] |= canUseHeap
	le.PutUint16(bp[hdrHeapEndPtr:], 0xfe00)
	le.PutUint32(bp[hdrCmdLinePtr:], CmdlineAddr)
	le.PutUint32(bp[bpExtCmdline:], 0)
	le.PutUint64(bp[bpACPIRSDP:], p.RSDP)
	if p.Initrd != nil {
		max := uint64(le.Uint32(k[hdrInitrdMax:]))
		limit := min(low, max+1)
		addr, err := placeInitrd(mem, p.Initrd, pageUp(load+initSize), limit)
		if err != nil {
			return nil, err
		}
		le.PutUint32(bp[hdrRamdiskImage:], uint32(addr))
		le.PutUint32(bp[hdrRamdiskSize:], uint32(len(p.Initrd)))
		le.PutUint32(bp[bpExtRamdisk:], uint32(addr>>32))
		le.PutUint32(bp[bpExtRamdiskSz:], uint32(uint64(len(p.Initrd))>>32))
	}
	e820 := E820(p.MemSize)
	if len(e820) > bpE820Max {
		return nil, fmt.Errorf("e820 map has %d entries, boot_params holds %d", len(e820), bpE820Max)
	}
	bp[bpE820Entries] = byte(len(e820))
	for i, e := range e820 {
		o := bpE820Table + 20*i
		le.PutUint64(bp[o:], e.Addr)
		le.PutUint64(bp[o+8:], e.Size)
		le.PutUint32(bp[o+16:], e.Type)
	}
	if err := mem.WriteAt(bp, ZeroPageAddr); err != nil {
		return nil, err
	}
	e := &Entry{Mode: Long64, Description: fmt.Sprintf("Linux bzImage (boot protocol %d.%02d)", version>>8, version&0xff)}
	e.Regs.RIP = load + 0x200 // startup_64
	e.Regs.RSI = ZeroPageAddr
	return e, nil
}

// --- ELF ---------------------------------------------------------------------

func isELF(k []byte) bool { return len(k) >= 4 && bytes.Equal(k[:4], []byte("\x7fELF")) }
