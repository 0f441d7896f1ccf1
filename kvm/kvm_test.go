package kvm

import (
	"encoding/binary"
	"errors"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestStructSizesMatchIoctlNumbers(t *testing.T) {
	size := func(req uintptr) uintptr { return (req >> 16) & 0x3fff }
	cases := []struct {
		name string
		got  uintptr
		req  uintptr
	}{
		{"Regs", unsafe.Sizeof(Regs{}), kvmGetRegs},
		{"Sregs", unsafe.Sizeof(Sregs{}), kvmGetSregs},
		{"FPU", unsafe.Sizeof(FPU{}), kvmGetFPU},
		{"LAPICState", unsafe.Sizeof(LAPICState{}), kvmGetLAPIC},
		{"VCPUEvents", unsafe.Sizeof(VCPUEvents{}), kvmGetVCPUEvents},
		{"UserMemoryRegion", unsafe.Sizeof(UserMemoryRegion{}), kvmSetUserMemoryRegion},
		{"irqLevel", unsafe.Sizeof(irqLevel{}), kvmIRQLine},
		{"irqfd", unsafe.Sizeof(irqfd{}), kvmIRQFD},
		{"ioeventfd", unsafe.Sizeof(ioeventfd{}), kvmIOEventFD},
		{"pitConfig", unsafe.Sizeof(pitConfig{}), kvmCreatePIT2},
		{"ClockData", unsafe.Sizeof(ClockData{}), kvmGetClock},
		{"msi", unsafe.Sizeof(msi{}), kvmSignalMSI},
		{"translation", unsafe.Sizeof(translation{}), kvmTranslate},
		{"enableCap", unsafe.Sizeof(enableCap{}), kvmEnableCap},
	}
	for _, c := range cases {
		if c.got != size(c.req) {
			t.Errorf("sizeof(%s) = %d, ioctl encodes %d", c.name, c.got, size(c.req))
		}
	}
	if s := unsafe.Sizeof(CPUIDEntry{}); s != 40 {
		t.Errorf("sizeof(CPUIDEntry) = %d, want 40", s)
	}
	if s := unsafe.Sizeof(MSR{}); s != 16 {
		t.Errorf("sizeof(MSR) = %d, want 16", s)
	}
	if s := unsafe.Sizeof(IRQRoute{}); s != 48 {
		t.Errorf("sizeof(IRQRoute) = %d, want 48", s)
	}
	if o := unsafe.Offsetof(VCPUEvents{}.ExceptionPayload); o != 56 {
		t.Errorf("offsetof(VCPUEvents.ExceptionPayload) = %d, want 56", o)
	}
	// Spot-check a few well-known request numbers against the kernel headers.
	if kvmRun != 0xae80 || kvmGetRegs != 0x8090ae81 || kvmSetUserMemoryRegion != 0x4020ae46 {
		t.Errorf("ioctl numbers: KVM_RUN %#x KVM_GET_REGS %#x KVM_SET_USER_MEMORY_REGION %#x", kvmRun, kvmGetRegs, kvmSetUserMemoryRegion)
	}
}

func openOrSkip(t *testing.T) *System {
	t.Helper()
	s, err := Open()
	if errors.Is(err, ErrNoKVM) {
		t.Skipf("skipping: %v (these tests need /dev/kvm)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testVM is a VM with one vCPU and memSize bytes of RAM at guest address 0.
type testVM struct {
	vm  *VM
	cpu *VCPU
	mem []byte
}

func newTestVM(t *testing.T, memSize int) *testVM {
	t.Helper()
	s := openOrSkip(t)
	vm, err := s.CreateVM()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Close() })
	mem, err := unix.Mmap(-1, 0, memSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	if err := vm.SetUserMemoryRegion(0, 0, 0, mem); err != nil {
		t.Fatal(err)
	}
	cpu, err := vm.CreateVCPU(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cpu.Close() })
	ents, err := s.SupportedCPUID()
	if err != nil {
		t.Fatal(err)
	}
	if err := cpu.SetCPUID2(ents); err != nil {
		t.Fatal(err)
	}
	return &testVM{vm: vm, cpu: cpu, mem: mem}
}

func (tv *testVM) runUntil(t *testing.T, want ExitReason) {
	t.Helper()
	for i := 0; i < 100; i++ {
		r, err := tv.cpu.Run()
		if err != nil {
			t.Fatal(err)
		}
		if r == ExitIntr {
			continue
		}
		if r != want {
			regs, _ := tv.cpu.Regs()
			t.Fatalf("exit %v (%v), want %v; rip=%#x", r, tv.cpu.Exit(), want, regs.RIP)
		}
		return
	}
	t.Fatalf("no %v exit after 100 runs", want)
}

func TestSystemQueries(t *testing.T) {
	s := openOrSkip(t)
	if v, err := s.APIVersion(); err != nil || v != APIVersion {
		t.Fatalf("APIVersion = %d, %v", v, err)
	}
	if s.CheckExtension(CapUserMemory) == 0 {
		t.Error("KVM_CAP_USER_MEMORY missing")
	}
	if n, err := s.VCPUMmapSize(); err != nil || n < 4096 {
		t.Errorf("VCPUMmapSize = %d, %v", n, err)
	}
	ents, err := s.SupportedCPUID()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range ents {
		if e.Function == 0 {
			found = true
			vendor := string(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, e.EBX), e.EDX), e.ECX))
			if len(vendor) != 12 {
				t.Errorf("vendor %q", vendor)
			}
		}
	}
	if !found {
		t.Error("no CPUID leaf 0 in supported CPUID")
	}
	msrs, err := s.MSRIndexList()
	if err != nil {
		t.Fatal(err)
	}
	hasEFER := false
	for _, m := range msrs {
		if m == 0xc0000080 {
			hasEFER = true
		}
	}
	if !hasEFER && len(msrs) > 0 {
		t.Logf("MSR index list (%d entries) lacks EFER", len(msrs))
	}
}

// TestRealMode runs 16-bit code: out to a port, an MMIO read from unbacked
// memory, then hlt.
func TestRealMode(t *testing.T) {
	tv := newTestVM(t, 1<<20)
	code := []byte{
		0xb0, 'K', // mov al, 'K'
		0xe6, 0x10, // out 0x10, al
		0xa0, 0x00, 0x00, // mov al, [0]  (DS base set to unbacked memory below)
		0xe6, 0x11, // out 0x11, al
		0xf4, // hlt
	}
	copy(tv.mem[0x1000:], code)
	sregs, err := tv.cpu.Sregs()
	if err != nil {
		t.Fatal(err)
	}
	sregs.CS.Base, sregs.CS.Selector = 0, 0
	sregs.DS.Base, sregs.DS.Selector = 0x200000, 0x2000 // first MiB is RAM; 2 MiB is not
	if err := tv.cpu.SetSregs(sregs); err != nil {
		t.Fatal(err)
	}
	if err := tv.cpu.SetRegs(Regs{RIP: 0x1000, RFLAGS: 2}); err != nil {
		t.Fatal(err)
	}

	tv.runUntil(t, ExitIO)
	io := tv.cpu.IO()
	if !io.Out || io.Port != 0x10 || io.Size != 1 || io.Count != 1 || string(io.Data) != "K" {
		t.Fatalf("io exit %v data %q", io, io.Data)
	}
	tv.runUntil(t, ExitMMIO)
	mmio := tv.cpu.MMIO()
	if mmio.Write || mmio.Addr != 0x200000 || len(mmio.Data) != 1 {
		t.Fatalf("mmio exit %v", mmio)
	}
	mmio.Data[0] = 0x5a
	tv.runUntil(t, ExitIO)
	if io := tv.cpu.IO(); io.Port != 0x11 || io.Data[0] != 0x5a {
		t.Fatalf("second io exit %v data %x", io, io.Data)
	}
	tv.runUntil(t, ExitHLT)
}

// TestLongMode runs 64-bit code with paging: a 64-bit immediate load and an
// IN whose value the host supplies.
func TestLongMode(t *testing.T) {
	tv := newTestVM(t, 4<<20)
	const pml4, pdpt, pd = 0x2000, 0x3000, 0x4000
	le := binary.LittleEndian
	le.PutUint64(tv.mem[pml4:], pdpt|3)
	le.PutUint64(tv.mem[pdpt:], pd|3)
	le.PutUint64(tv.mem[pd:], 0|0x83) // 2 MiB page at 0, present+writable+PS
	le.PutUint64(tv.mem[pd+8:], 0x200000|0x83)
	code := []byte{
		0x48, 0xb8, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, // mov rax, 0x1122334455667788
		0x48, 0x89, 0xc3, // mov rbx, rax
		0xe5, 0x20, // in eax, 0x20
		0xf4, // hlt
	}
	copy(tv.mem[0x10000:], code)
	sregs, err := tv.cpu.Sregs()
	if err != nil {
		t.Fatal(err)
	}
	code64 := Segment{Base: 0, Limit: 0xffffffff, Selector: 8, Type: 11, Present: 1, S: 1, L: 1, G: 1}
	data64 := Segment{Base: 0, Limit: 0xffffffff, Selector: 16, Type: 3, Present: 1, S: 1, DB: 1, G: 1}
	sregs.CS = code64
	sregs.DS, sregs.ES, sregs.FS, sregs.GS, sregs.SS = data64, data64, data64, data64, data64
	sregs.CR3 = pml4
	sregs.CR4 = 1 << 5                     // PAE
	sregs.CR0 = 1<<0 | 1<<4 | 1<<5 | 1<<31 // PE ET NE PG
	sregs.EFER = 1<<8 | 1<<10              // LME LMA
	if err := tv.cpu.SetSregs(sregs); err != nil {
		t.Fatal(err)
	}
	if err := tv.cpu.SetRegs(Regs{RIP: 0x10000, RFLAGS: 2, RSP: 0x100000}); err != nil {
		t.Fatal(err)
	}
	tv.runUntil(t, ExitIO)
	io := tv.cpu.IO()
	if io.Out || io.Port != 0x20 || io.Size != 4 {
		t.Fatalf("io exit %v", io)
	}
	le.PutUint32(io.Data, 0xcafef00d)
	tv.runUntil(t, ExitHLT)
	regs, err := tv.cpu.Regs()
	if err != nil {
		t.Fatal(err)
	}
	if regs.RBX != 0x1122334455667788 {
		t.Errorf("rbx = %#x, want 0x1122334455667788", regs.RBX)
	}
	if regs.RAX != 0xcafef00d {
		t.Errorf("rax = %#x, want 0xcafef00d (in eax zero-extends)", regs.RAX)
	}
	s2, err := tv.cpu.Sregs()
	if err != nil {
		t.Fatal(err)
	}
	if s2.EFER&(1<<10) == 0 {
		t.Errorf("EFER.LMA clear after running 64-bit code: %#x", s2.EFER)
	}
}

func TestIRQChipAndEventFDs(t *testing.T) {
	s := openOrSkip(t)
	vm, err := s.CreateVM()
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	if err := vm.CreateIRQChip(); err != nil {
		t.Fatal(err)
	}
	if err := vm.CreatePIT2(PITSpeakerDummy); err != nil {
		t.Fatal(err)
	}
	if err := vm.IRQLine(4, true); err != nil {
		t.Fatal(err)
	}
	if err := vm.IRQLine(4, false); err != nil {
		t.Fatal(err)
	}
	routes := []IRQRoute{IRQChipRoute(4, IRQChipIOAPIC, 4), MSIRoute(24, 0xfee00000, 0x30)}
	if err := vm.SetGSIRouting(routes); err != nil {
		t.Fatal(err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	if err := vm.IRQFD(efd, 24, 0); err != nil {
		t.Fatal(err)
	}
	if err := vm.IRQFD(efd, 24, IRQFDFlagDeassign); err != nil {
		t.Fatal(err)
	}
	if err := vm.IOEventFD(IOEventFD{Addr: 0xd0000000, Len: 4, FD: efd}, false); err != nil {
		t.Fatal(err)
	}
	if err := vm.IOEventFD(IOEventFD{Addr: 0xd0000000, Len: 4, FD: efd}, true); err != nil {
		t.Fatal(err)
	}
	c, err := vm.Clock()
	if err != nil {
		t.Fatal(err)
	}
	if err := vm.SetClock(ClockData{Clock: c.Clock}); err != nil {
		t.Fatal(err)
	}
}

func TestVCPUStateRoundTrip(t *testing.T) {
	tv := newTestVM(t, 1<<20)
	if err := tv.vm.SetTSSAddr(0xfffbd000); err != nil {
		t.Log(err) // not every KVM flavour needs it
	}
	fpu, err := tv.cpu.FPU()
	if err != nil {
		t.Fatal(err)
	}
	fpu.FCW = 0x37f
	fpu.MXCSR = 0x1f80
	if err := tv.cpu.SetFPU(fpu); err != nil {
		t.Fatal(err)
	}
	msrs := []MSR{{Index: 0x174}} // IA32_SYSENTER_CS
	msrs[0].Data = 0x10
	if err := tv.cpu.SetMSRs(msrs); err != nil {
		t.Fatal(err)
	}
	got := []MSR{{Index: 0x174}}
	if n, err := tv.cpu.MSRs(got); err != nil || n != 1 || got[0].Data != 0x10 {
		t.Fatalf("MSRs = %d %+v %v", n, got, err)
	}
	if st, err := tv.cpu.MPState(); err != nil || st != MPStateRunnable {
		t.Errorf("MPState = %d, %v", st, err)
	}
	ev, err := tv.cpu.VCPUEvents()
	if err != nil {
		t.Fatal(err)
	}
	if err := tv.cpu.SetVCPUEvents(ev); err != nil {
		t.Fatal(err)
	}
}

func TestExitReasonString(t *testing.T) {
	if s := ExitIO.String(); s != "KVM_EXIT_IO" {
		t.Errorf("ExitIO = %q", s)
	}
	if s := ExitReason(999).String(); s != "KVM_EXIT_999" {
		t.Errorf("999 = %q", s)
	}
	// As seen on a PVM host for a 32-bit iret: flags 1, insn_size 15, cf ...
	e := InternalErrorExit{Suberror: 1, Data: []uint64{1, 0x000400000004cf0f, 0x6558000000120000}}
	if b := e.InstructionBytes(); len(b) != 15 || b[0] != 0xcf || b[1] != 0x04 || b[14] != 0x65 {
		t.Errorf("InstructionBytes = % x", b)
	}
}
