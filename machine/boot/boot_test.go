package boot

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/govmm/govmm/guest/payload"
	"github.com/govmm/govmm/machine/guestmem"
)

func newMem(t testing.TB, size uint64) *guestmem.Memory {
	t.Helper()
	var regions []guestmem.Region
	for _, r := range RAMRanges(size) {
		regions = append(regions, guestmem.Region{GPA: r.GPA, Data: make([]byte, r.Size)})
	}
	m, err := guestmem.New(regions...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestE820(t *testing.T) {
	want := []E820Entry{
		{0, 0x9fc00, E820RAM},
		{0x9fc00, 0x400, E820Reserved},
		{0xe0000, 0x20000, E820Reserved},
		{0x100000, 512<<20 - 0x100000, E820RAM},
	}
	if diff := cmp.Diff(want, E820(512<<20)); diff != "" {
		t.Errorf("E820(512 MiB) (-want +got):\n%s", diff)
	}
	big := E820(8 << 30)
	wantBig := []E820Entry{
		{0, 0x9fc00, E820RAM},
		{0x9fc00, 0x400, E820Reserved},
		{0xe0000, 0x20000, E820Reserved},
		{0x100000, MMIO32Start - 0x100000, E820RAM},
		{FourGiB, 8<<30 - MMIO32Start, E820RAM},
	}
	if diff := cmp.Diff(wantBig, big); diff != "" {
		t.Errorf("E820(8 GiB) (-want +got):\n%s", diff)
	}
	var ram uint64
	for _, e := range big {
		if e.Type == E820RAM {
			ram += e.Size
		}
	}
	// Everything but the EBDA and the BIOS area is usable.
	if want := uint64(8<<30) - 0x400 - 0x20000 - (0x100000 - 0xe0000 - 0x20000) - (0xe0000 - 0xa0000); ram != want {
		t.Errorf("usable RAM %#x, want %#x", ram, want)
	}
}

// readPVHStartInfo decodes hvm_start_info and its memory map.
func readPVHStartInfo(t *testing.T, mem *guestmem.Memory) (cmdline string, mods [][2]uint64, e820 []E820Entry) {
	t.Helper()
	info := make([]byte, hvmStartInfoLen)
	if err := mem.ReadAt(info, StartInfoAddr); err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	if le.Uint32(info) != hvmStartMagic || le.Uint32(info[4:]) != 1 {
		t.Fatalf("hvm_start_info magic %#x version %d", le.Uint32(info), le.Uint32(info[4:]))
	}
	cmdline = readCString(t, mem, le.Uint64(info[24:]))
	for i := uint32(0); i < le.Uint32(info[12:]); i++ {
		m := make([]byte, hvmModEntryLen)
		mem.ReadAt(m, le.Uint64(info[16:])+uint64(i)*hvmModEntryLen)
		mods = append(mods, [2]uint64{le.Uint64(m), le.Uint64(m[8:])})
	}
	for i := uint32(0); i < le.Uint32(info[48:]); i++ {
		e := make([]byte, hvmMemmapEntLen)
		mem.ReadAt(e, le.Uint64(info[40:])+uint64(i)*hvmMemmapEntLen)
		e820 = append(e820, E820Entry{le.Uint64(e), le.Uint64(e[8:]), le.Uint32(e[16:])})
	}
	return cmdline, mods, e820
}

func readCString(t *testing.T, mem *guestmem.Memory, addr uint64) string {
	t.Helper()
	b := make([]byte, 256)
	if err := mem.ReadAt(b, addr); err != nil {
		t.Fatal(err)
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func TestLoadPVHPayload(t *testing.T) {
	p, err := payload.Path("hello")
	if err != nil {
		t.Fatal(err)
	}
	k, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	mem := newMem(t, 64<<20)
	initrd := bytes.Repeat([]byte("initrd!"), 1000)
	e, err := Load(mem, Params{Kernel: k, Initrd: initrd, Cmdline: "console=ttyS0 quiet", MemSize: 64 << 20, RSDP: 0xe0000})
	if err != nil {
		t.Fatal(err)
	}
	if e.Mode != Protected32 || e.Regs.RIP != 0x10000c || e.Regs.RBX != StartInfoAddr {
		t.Errorf("entry %+v, want 32-bit at _start (0x10000c) with rbx = start info", e)
	}
	cmdline, mods, e820 := readPVHStartInfo(t, mem)
	if cmdline != "console=ttyS0 quiet" {
		t.Errorf("cmdline %q", cmdline)
	}
	if diff := cmp.Diff(E820(64<<20), e820); diff != "" {
		t.Errorf("PVH memory map (-want +got):\n%s", diff)
	}
	if len(mods) != 1 || mods[0][1] != uint64(len(initrd)) || mods[0][0]%4096 != 0 || mods[0][0]+mods[0][1] > 64<<20 {
		t.Fatalf("modules %v", mods)
	}
	got := make([]byte, len(initrd))
	mem.ReadAt(got, mods[0][0])
	if !bytes.Equal(got, initrd) {
		t.Error("initrd contents differ in guest memory")
	}
	// The first loaded byte is the multiboot header the payload starts with.
	if v, _ := mem.Uint32(0x100000); v != multibootMagic {
		t.Errorf("guest memory at 1 MiB: %#x, want the payload's multiboot magic", v)
	}
}

func TestLoadMultiboot(t *testing.T) {
	p, err := payload.Path("hello")
	if err != nil {
		t.Fatal(err)
	}
	k, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// Strip the PVH note type so only the multiboot header identifies it.
	k = bytes.Replace(k, []byte{18, 0, 0, 0, 'X', 'e', 'n', 0}, []byte{99, 0, 0, 0, 'X', 'e', 'n', 0}, 1)
	mem := newMem(t, 32<<20)
	e, err := Load(mem, Params{Kernel: k, Cmdline: "mb args", MemSize: 32 << 20, Initrd: []byte("module")})
	if err != nil {
		t.Fatal(err)
	}
	if e.Description != "multiboot" || e.Regs.RAX != multibootBootMagic || e.Regs.RBX != StartInfoAddr {
		t.Fatalf("entry %+v", e)
	}
	le := binary.LittleEndian
	info := make([]byte, mbInfoLen)
	mem.ReadAt(info, StartInfoAddr)
	flags := le.Uint32(info)
	if flags&(mbInfoMem|mbInfoCmdline|mbInfoMmap|mbInfoMods) != mbInfoMem|mbInfoCmdline|mbInfoMmap|mbInfoMods {
		t.Errorf("info flags %#x", flags)
	}
	if lower, upper := le.Uint32(info[4:]), le.Uint32(info[8:]); lower != 639 || upper != (32<<20-0x100000)/1024 {
		t.Errorf("mem_lower %d mem_upper %d", lower, upper)
	}
	if c := readCString(t, mem, uint64(le.Uint32(info[16:]))); c != "mb args" {
		t.Errorf("cmdline %q", c)
	}
	var e820 []E820Entry
	mm := make([]byte, le.Uint32(info[44:]))
	mem.ReadAt(mm, uint64(le.Uint32(info[48:])))
	for len(mm) >= 24 {
		size := le.Uint32(mm)
		e820 = append(e820, E820Entry{le.Uint64(mm[4:]), le.Uint64(mm[12:]), le.Uint32(mm[20:])})
		mm = mm[4+size:]
	}
	if diff := cmp.Diff(E820(32<<20), e820); diff != "" {
		t.Errorf("multiboot memory map (-want +got):\n%s", diff)
	}
}

// fakeBzImage builds a minimal bzImage: a setup header of the given
// protocol version and a protected-mode part.
func fakeBzImage(version uint16, xloadflags uint16, pm []byte) []byte {
	k := make([]byte, 5*512+len(pm))
	le := binary.LittleEndian
	k[hdrSetupSects] = 4
	le.PutUint16(k[0x1fe:], 0xaa55)
	k[hdrJump] = 0xeb
	k[hdrJump+1] = byte(hdrInitSize + 4 - hdrJump - 2)
	le.PutUint32(k[0x202:], 0x53726448)
	le.PutUint16(k[hdrVersion:], version)
	k[hdrLoadflags] = loadedHigh
	le.PutUint32(k[hdrInitrdMax:], 0x7fffffff)
	le.PutUint32(k[hdrKernelAlign:], 0x200000)
	le.PutUint16(k[hdrXLoadflags:], xloadflags)
	le.PutUint32(k[hdrCmdlineSize:], 2047)
	le.PutUint64(k[hdrPrefAddress:], 0x1000000)
	le.PutUint32(k[hdrInitSize:], 0x400000)
	copy(k[5*512:], pm)
	return k
}

func TestLoadBzImage(t *testing.T) {
	pm := bytes.Repeat([]byte{0x90}, 8192)
	k := fakeBzImage(0x20f, xlfKernel64, pm)
	mem := newMem(t, 128<<20)
	initrd := bytes.Repeat([]byte{0xab}, 100000)
	e, err := Load(mem, Params{Kernel: k, Initrd: initrd, Cmdline: "console=ttyS0", MemSize: 128 << 20, RSDP: 0xe0000})
	if err != nil {
		t.Fatal(err)
	}
	if e.Mode != Long64 || e.Regs.RIP != 0x1000200 || e.Regs.RSI != ZeroPageAddr {
		t.Fatalf("entry %+v, want 64-bit entry at pref_address+0x200 with rsi = boot_params", e)
	}
	bp := make([]byte, 4096)
	mem.ReadAt(bp, ZeroPageAddr)
	le := binary.LittleEndian
	if bp[hdrTypeOfLoader] != 0xff || le.Uint16(bp[hdrVidMode:]) != 0xffff || le.Uint32(bp[hdrCmdLinePtr:]) != CmdlineAddr {
		t.Errorf("boot_params: loader %#x vid_mode %#x cmd_line_ptr %#x", bp[hdrTypeOfLoader], le.Uint16(bp[hdrVidMode:]), le.Uint32(bp[hdrCmdLinePtr:]))
	}
	if le.Uint64(bp[bpACPIRSDP:]) != 0xe0000 {
		t.Errorf("acpi_rsdp_addr %#x", le.Uint64(bp[bpACPIRSDP:]))
	}
	rd, rdSize := uint64(le.Uint32(bp[hdrRamdiskImage:])), le.Uint32(bp[hdrRamdiskSize:])
	if rdSize != uint32(len(initrd)) || rd%4096 != 0 || rd < 0x1000000+0x400000 || rd+uint64(rdSize) > 128<<20 {
		t.Errorf("ramdisk at %#x size %d: must be page aligned, above the kernel's init_size and in RAM", rd, rdSize)
	}
	var e820 []E820Entry
	for i := 0; i < int(bp[bpE820Entries]); i++ {
		o := bpE820Table + 20*i
		e820 = append(e820, E820Entry{le.Uint64(bp[o:]), le.Uint64(bp[o+8:]), le.Uint32(bp[o+16:])})
	}
	if diff := cmp.Diff(E820(128<<20), e820); diff != "" {
		t.Errorf("boot_params e820 (-want +got):\n%s", diff)
	}
	got := make([]byte, len(pm))
	mem.ReadAt(got, 0x1000000)
	if !bytes.Equal(got, pm) {
		t.Error("protected-mode kernel not at pref_address")
	}
	if c := readCString(t, mem, CmdlineAddr); c != "console=ttyS0" {
		t.Errorf("cmdline %q", c)
	}
}

func TestRefusedImages(t *testing.T) {
	pm := make([]byte, 4096)
	cases := []struct {
		name   string
		kernel []byte
		p      Params
		want   string
	}{
		{"old protocol", fakeBzImage(0x205, xlfKernel64, pm), Params{MemSize: 64 << 20}, "too old"},
		{"32-bit only", fakeBzImage(0x20f, 0, pm), Params{MemSize: 64 << 20}, "32-bit-only"},
		{"too little RAM", fakeBzImage(0x20f, xlfKernel64, pm), Params{MemSize: 16 << 20}, "RAM"},
		{"initrd too large", fakeBzImage(0x20f, xlfKernel64, pm), Params{MemSize: 24 << 20, Initrd: make([]byte, 8<<20)}, "initrd too large"},
		{"cmdline too long", fakeBzImage(0x20f, xlfKernel64, pm), Params{MemSize: 64 << 20, Cmdline: strings.Repeat("x", 3000)}, "command line"},
		{"not a kernel", []byte("hello world, this is not a kernel at all"), Params{MemSize: 64 << 20}, "not a bzImage"},
		{"ELF without PVH", minimalELF64(), Params{MemSize: 64 << 20}, "without PVH ELF Note"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.p.Kernel = c.kernel
			_, err := Load(newMem(t, c.p.MemSize), c.p)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("error is more than one line: %q", err)
			}
		})
	}
}

func minimalELF64() []byte {
	k := make([]byte, 0x1000)
	copy(k, "\x7fELF\x02\x01\x01")
	le := binary.LittleEndian
	le.PutUint16(k[18:], 62)
	le.PutUint64(k[24:], 0x100000)
	le.PutUint64(k[32:], 64) // phoff
	le.PutUint16(k[54:], 56)
	le.PutUint16(k[56:], 1)
	ph := k[64:]
	le.PutUint32(ph[0:], ptLoad)
	le.PutUint64(ph[8:], 0x200)
	le.PutUint64(ph[24:], 0x100000)
	le.PutUint64(ph[32:], 0x100)
	le.PutUint64(ph[40:], 0x100)
	return k
}

// TestDistroKernelHeader checks the setup header of a real distro kernel
// when one is installed (Debian's linux-image-*-amd64).
func TestDistroKernelHeader(t *testing.T) {
	ks, _ := filepath.Glob("/boot/vmlinuz-*")
	if env := os.Getenv("GOVMM_TEST_BZIMAGE"); env != "" {
		ks = []string{env}
	}
	if len(ks) == 0 {
		t.Skip("skipping: no /boot/vmlinuz-* and GOVMM_TEST_BZIMAGE unset")
	}
	k, err := os.ReadFile(ks[0])
	if err != nil {
		t.Skip(err)
	}
	mem := newMem(t, 512<<20)
	e, err := Load(mem, Params{Kernel: k, Cmdline: "console=ttyS0", MemSize: 512 << 20, Initrd: make([]byte, 1<<20)})
	if err != nil {
		t.Fatal(err)
	}
	if e.Mode != Long64 || !strings.HasPrefix(e.Description, "Linux bzImage") {
		t.Errorf("%s: entry %+v", ks[0], e)
	}
}

func FuzzLoad(f *testing.F) {
	if p, err := payload.Path("hello"); err == nil {
		if k, err := os.ReadFile(p); err == nil {
			f.Add(k)
		}
	}
	f.Add(fakeBzImage(0x20f, xlfKernel64, make([]byte, 64)))
	f.Add(minimalELF64())
	mb := make([]byte, 64)
	binary.LittleEndian.PutUint32(mb[0:], multibootMagic)
	binary.LittleEndian.PutUint32(mb[4:], mbFlagAOutKludge)
	sum := uint32(multibootMagic + mbFlagAOutKludge)
	binary.LittleEndian.PutUint32(mb[8:], -sum)
	f.Add(mb)
	mem := newMem(f, 32<<20)
	f.Fuzz(func(t *testing.T, k []byte) {
		Load(mem, Params{Kernel: k, Cmdline: "x", MemSize: 32 << 20, Initrd: []byte("rd")})
	})
}
