package emulate

import (
	"errors"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/govmm/govmm/kvm"
)

func TestInt3InjectsBreakpointAfterInstruction(t *testing.T) {
	m := newMachine(t)
	m.mustRun(t, 0xcc)
	m.wantRIP(t, codeAddr+1)
	m.wantException(t, vecBP, 0)
	if m.cpu.events.Exception.HasErrorCode != 0 {
		t.Error("#BP injected with an error code")
	}
	if got := m.em.Counts()["int3"]; got != 1 {
		t.Errorf("Counts[int3] = %d", got)
	}
}

func TestInt3RefusesPendingException(t *testing.T) {
	m := newMachine(t)
	m.cpu.events.Exception.Injected = 1
	m.cpu.events.Exception.Nr = 14
	if err := m.run(t, 0xcc); err == nil {
		t.Fatal("int3 injected over a pending #PF")
	}
}

func TestClacStac(t *testing.T) {
	m := newMachine(t)
	m.mustRun(t, 0x0f, 0x01, 0xcb) // stac
	if m.cpu.regs.RFLAGS&flagAC == 0 {
		t.Fatalf("stac: RFLAGS = %#x", m.cpu.regs.RFLAGS)
	}
	m.wantRIP(t, codeAddr+3)
	m.mustRun(t, 0x0f, 0x01, 0xca) // clac
	if m.cpu.regs.RFLAGS != 2 {
		t.Fatalf("clac: RFLAGS = %#x", m.cpu.regs.RFLAGS)
	}
	m.wantRIP(t, codeAddr+6)
	c := m.em.Counts()
	if c["clac"] != 1 || c["stac"] != 1 {
		t.Errorf("Counts = %v", c)
	}

	// At CPL 3 both are #UD, and RIP stays.
	m.cpu.sregs.SS.DPL, m.cpu.sregs.CS.DPL = 3, 3
	m.mustRun(t, 0x0f, 0x01, 0xcb)
	m.wantException(t, vecUD, 0)
	m.wantRIP(t, codeAddr+6)
	if m.cpu.regs.RFLAGS&flagAC != 0 {
		t.Error("stac at CPL 3 set AC")
	}
}

func TestPopcnt(t *testing.T) {
	cases := []struct {
		name      string
		code      []byte
		rax, rbx  uint64
		wantRAX   uint64
		wantZF    bool
		memAt     uint64 // linear address for rbx to point at, 0 for none
		memVal    uint64
		modeSetup func(*machine)
	}{
		{name: "r64", code: []byte{0xf3, 0x48, 0x0f, 0xb8, 0xc3}, rax: 5, rbx: 0xff00_0000_0000_0f0f, wantRAX: 16},
		{name: "r64 zero", code: []byte{0xf3, 0x48, 0x0f, 0xb8, 0xc3}, rax: 5, rbx: 0, wantRAX: 0, wantZF: true},
		{name: "r32 zero-extends", code: []byte{0xf3, 0x0f, 0xb8, 0xc3}, rax: 0xdead_beef_0000_0000, rbx: 0xffff_ffff_0000_0003, wantRAX: 2},
		{name: "r32 zero source", code: []byte{0xf3, 0x0f, 0xb8, 0xc3}, rax: 0xdead_beef_0000_0000, rbx: 0xffff_ffff_0000_0000, wantRAX: 0, wantZF: true},
		{name: "r16 keeps upper", code: []byte{0x66, 0xf3, 0x0f, 0xb8, 0xc3}, rax: 0x1234_5678_9abc_def0, rbx: 0xffff_0007, wantRAX: 0x1234_5678_9abc_0003},
		{name: "m64 via 4K page", code: []byte{0xf3, 0x48, 0x0f, 0xb8, 0x03}, memAt: highLinear + 0x1008, memVal: math.MaxUint64, wantRAX: 64},
		{name: "m32 via 2M page", code: []byte{0xf3, 0x0f, 0xb8, 0x03}, memAt: 0x30000, memVal: 0xffff_ffff_8000_0001, wantRAX: 2},
		{name: "m16 disp8 rip-rel", code: []byte{0x66, 0xf3, 0x0f, 0xb8, 0x05, 0x10, 0, 0, 0}, rax: 0xffff_0000, memAt: 0, wantRAX: 0xffff_0004},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newMachine(t)
			m.cpu.regs.RFLAGS = 2 | flagCF | flagOF | flagSF | flagPF | flagAF | flagZF
			m.cpu.regs.RAX, m.cpu.regs.RBX = c.rax, c.rbx
			if c.memAt != 0 {
				m.cpu.regs.RBX = c.memAt
				gpa, err := m.walk(c.memAt)
				if err != nil {
					t.Fatal(err)
				}
				le.PutUint64(m.ram[gpa:], c.memVal)
			}
			if c.name == "m16 disp8 rip-rel" {
				le.PutUint16(m.ram[codeAddr+9+0x10:], 0x0f00)
			}
			m.mustRun(t, c.code...)
			if m.cpu.regs.RAX != c.wantRAX {
				t.Errorf("RAX = %#x, want %#x", m.cpu.regs.RAX, c.wantRAX)
			}
			wantFlags := uint64(2)
			if c.wantZF {
				wantFlags |= flagZF
			}
			if m.cpu.regs.RFLAGS != wantFlags {
				t.Errorf("RFLAGS = %#x, want %#x", m.cpu.regs.RFLAGS, wantFlags)
			}
			m.wantRIP(t, codeAddr+uint64(len(c.code)))
		})
	}
}

// walk translates a linear address with the machine's current state.
func (m *machine) walk(la uint64) (uint64, error) {
	s := m.cpu.sregs
	w := &walker{mem: m.mem, cr0: s.CR0, cr3: s.CR3, cr4: s.CR4, efer: s.EFER}
	return w.translate(la, accRead)
}

func TestPopcntPageFaultInjectsPF(t *testing.T) {
	m := newMachine(t)
	m.cpu.regs.RBX = highLinear + 8*pageSize + 0x10 // not present
	m.mustRun(t, 0xf3, 0x48, 0x0f, 0xb8, 0x03)
	m.wantException(t, vecPF, 0) // not present, read, supervisor
	if m.cpu.sregs.CR2 != highLinear+8*pageSize+0x10 {
		t.Errorf("CR2 = %#x", m.cpu.sregs.CR2)
	}
	m.wantRIP(t, codeAddr)
	if m.cpu.setRegs != 0 {
		t.Error("registers written although the instruction faulted")
	}
}

func TestPopcntNonCanonicalIsGP(t *testing.T) {
	m := newMachine(t)
	m.cpu.regs.RBX = 0x0000_8000_0000_0000
	m.mustRun(t, 0xf3, 0x48, 0x0f, 0xb8, 0x03)
	m.wantException(t, vecGP, 0)
}

func TestFetchFromGuestMemoryWhenKVMGaveNoBytes(t *testing.T) {
	m := newMachine(t)
	// The instruction sits in a 4K page, straddling into the next one.
	m.cpu.regs.RIP = highLinear + 2*pageSize - 2
	code := []byte{0xf3, 0x48, 0x0f, 0xb8, 0xc3}
	for i, b := range code {
		gpa, err := m.walk(m.cpu.regs.RIP + uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		m.ram[gpa] = b
	}
	m.cpu.regs.RBX = 0x7
	if err := m.em.Handle(m.cpu, m.mem, kvm.InternalErrorExit{Suberror: kvm.InternalErrorEmulation, Data: []uint64{0}}); err != nil {
		t.Fatal(err)
	}
	if m.cpu.regs.RAX != 3 {
		t.Errorf("RAX = %d", m.cpu.regs.RAX)
	}
	m.wantRIP(t, highLinear+2*pageSize+3)
}

func TestFetchFaultInjectsPF(t *testing.T) {
	m := newMachine(t)
	m.cpu.regs.RIP = highLinear + 8*pageSize
	if err := m.em.Handle(m.cpu, m.mem, kvm.InternalErrorExit{Suberror: kvm.InternalErrorEmulation}); err != nil {
		t.Fatal(err)
	}
	m.wantException(t, vecPF, 0x10) // not present, instruction fetch (NXE on)
}

func TestFwait(t *testing.T) {
	m := newMachine(t)
	m.mustRun(t, 0x9b)
	m.wantRIP(t, codeAddr+1)
	if n, _, _ := m.injected(); n != -1 {
		t.Fatalf("clean fwait injected %d", n)
	}

	// Pending unmasked exception with CR0.NE: #MF, RIP at the fwait.
	m.cpu.fpu.FSW = fswES | fswB | 1<<2 // ZE
	m.mustRun(t, 0x9b)
	m.wantException(t, vecMF, 0)
	m.wantRIP(t, codeAddr+1)

	// Without CR0.NE the pending exception is not delivered as #MF.
	m.cpu.events = kvm.VCPUEvents{}
	m.cpu.sregs.CR0 &^= cr0NE
	m.mustRun(t, 0x9b)
	m.wantRIP(t, codeAddr+2)
	if n, _, _ := m.injected(); n != -1 {
		t.Fatalf("fwait without CR0.NE injected %d", n)
	}

	// CR0.TS and CR0.MP: #NM.
	m.cpu.sregs.CR0 |= cr0TS | cr0MP
	m.mustRun(t, 0x9b)
	m.wantException(t, vecNM, 0)
}

func TestFnclex(t *testing.T) {
	m := newMachine(t)
	m.cpu.fpu.FSW = 0xffff
	m.mustRun(t, 0xdb, 0xe2)
	if m.cpu.fpu.FSW != 0x7f00 {
		t.Errorf("FSW = %#x, want 0x7f00 (TOP and C0-C3 kept)", m.cpu.fpu.FSW)
	}
	m.wantRIP(t, codeAddr+2)
	if n, _, _ := m.injected(); n != -1 {
		t.Errorf("fnclex injected %d (it must not wait)", n)
	}
}

func TestEmms(t *testing.T) {
	m := newMachine(t)
	m.cpu.fpu.FTWX = 0xa5
	m.cpu.fpu.FSW = 3 << 11
	m.mustRun(t, 0x0f, 0x77)
	if m.cpu.fpu.FTWX != 0 || m.cpu.fpu.FSW != 3<<11 {
		t.Errorf("FTWX = %#x FSW = %#x", m.cpu.fpu.FTWX, m.cpu.fpu.FSW)
	}
	m.wantRIP(t, codeAddr+2)
	m.cpu.sregs.CR0 |= cr0EM
	m.mustRun(t, 0x0f, 0x77)
	m.wantException(t, vecUD, 0)
}

func TestX87FromInt(t *testing.T) {
	cases := []struct {
		v       int64
		mant    uint64
		signExp uint16
	}{
		{0, 0, 0},
		{1, 1 << 63, 0x3fff},
		{-1, 1 << 63, 0xbfff},
		{2, 1 << 63, 0x4000},
		{12345, 0xc0e4_0000_0000_0000, 0x400c},
		{math.MinInt64, 1 << 63, 0xc03e},
		{math.MaxInt64, 0xffff_ffff_ffff_fffe, 0x403d},
		{-32768, 1 << 63, 0xc00e},
	}
	for _, c := range cases {
		b := x87FromInt(c.v)
		if m, se := le.Uint64(b[0:]), le.Uint16(b[8:]); m != c.mant || se != c.signExp {
			t.Errorf("x87FromInt(%d) = %#x/%#x, want %#x/%#x", c.v, m, se, c.mant, c.signExp)
		}
	}
}

func TestFildPushesInStackOrder(t *testing.T) {
	m := newMachine(t)
	f := &m.cpu.fpu
	// One value on the stack: TOP = 7, physical R7 valid, ST(0) = 1.0.
	f.FSW = 7<<11 | fswC1
	f.FTWX = 1 << 7
	one := x87FromInt(1)
	copy(f.FPR[0][:], one[:])
	f.FPR[7][0] = 0xee // stale content of the empty ST(7)

	// fild word ptr [rbx]: -2
	m.cpu.regs.RBX = 0x30000
	le.PutUint16(m.ram[0x30000:], 0xfffe)
	m.mustRun(t, 0xdf, 0x03)
	m.wantRIP(t, codeAddr+2)
	if top := f.FSW >> 11 & 7; top != 6 {
		t.Fatalf("TOP = %d, want 6", top)
	}
	if f.FSW&fswC1 != 0 {
		t.Error("C1 not cleared")
	}
	if f.FTWX != 1<<7|1<<6 {
		t.Errorf("FTWX = %#x, want 0xc0", f.FTWX)
	}
	st0 := x87FromInt(-2)
	if got := f.FPR[0]; [10]byte(got[:10]) != st0 || got[10] != 0 {
		t.Errorf("ST(0) = % x, want % x", got, st0)
	}
	if got := f.FPR[1]; [10]byte(got[:10]) != one {
		t.Errorf("ST(1) = % x, want 1.0", got)
	}
	if f.LastOpcode != 0x703 || f.LastDP != 0x30000 || f.LastIP != codeAddr {
		t.Errorf("FOP %#x FDP %#x FIP %#x", f.LastOpcode, f.LastDP, f.LastIP)
	}

	// fild dword ptr [rbx+4] through a 4K page; fild qword ptr [rbx+8].
	m.cpu.regs.RBX = highLinear + 0x3000
	gpa, _ := m.walk(highLinear + 0x3000)
	le.PutUint32(m.ram[gpa+4:], uint32(0x7fffffff))
	le.PutUint64(m.ram[gpa+8:], 1<<63)
	m.mustRun(t, 0xdb, 0x43, 0x04)
	m.mustRun(t, 0xdf, 0x6b, 0x08)
	if top := f.FSW >> 11 & 7; top != 4 || f.FTWX != 0xf0 {
		t.Fatalf("TOP = %d FTWX = %#x", top, f.FTWX)
	}
	want := [][10]byte{x87FromInt(math.MinInt64), x87FromInt(math.MaxInt32), st0, one}
	for i, w := range want {
		if got := [10]byte(f.FPR[i][:10]); got != w {
			t.Errorf("ST(%d) = % x, want % x", i, got, w)
		}
	}
	if c := m.em.Counts()["fild"]; c != 3 {
		t.Errorf("Counts[fild] = %d", c)
	}
}

func TestFildStackOverflow(t *testing.T) {
	m := newMachine(t)
	f := &m.cpu.fpu
	f.FTWX = 0xff // full
	f.FSW = 0
	m.cpu.regs.RBX = 0x30000
	m.mustRun(t, 0xdf, 0x03) // masked (FCW 0x37f): pushes the indefinite
	if f.FSW&(fswIE|fswSF|fswC1) != fswIE|fswSF|fswC1 || f.FSW>>11&7 != 7 {
		t.Errorf("FSW = %#x", f.FSW)
	}
	if [10]byte(f.FPR[0][:10]) != x87Indefinite() {
		t.Errorf("ST(0) = % x, want indefinite", f.FPR[0])
	}

	// Unmasked: stack untouched, ES set; the next waiting instruction faults.
	f.FCW = 0x37e
	f.FSW = 0
	m.mustRun(t, 0xdf, 0x03)
	if f.FSW&fswES == 0 || f.FSW>>11&7 != 0 {
		t.Errorf("FSW = %#x", f.FSW)
	}
	m.mustRun(t, 0x9b)
	m.wantException(t, vecMF, 0)
}

func TestCmpxchg16b(t *testing.T) {
	m := newMachine(t)
	const addr = 0x30010
	le.PutUint64(m.ram[addr:], 0x1111)
	le.PutUint64(m.ram[addr+8:], 0x2222)
	r := &m.cpu.regs
	r.RSI = addr
	r.RAX, r.RDX = 0x1111, 0x2222
	r.RBX, r.RCX = 0x3333, 0x4444
	m.mustRun(t, 0xf0, 0x48, 0x0f, 0xc7, 0x0e) // lock cmpxchg16b [rsi]
	if le.Uint64(m.ram[addr:]) != 0x3333 || le.Uint64(m.ram[addr+8:]) != 0x4444 {
		t.Errorf("memory = % x", m.ram[addr:addr+16])
	}
	if r.RFLAGS&flagZF == 0 {
		t.Error("ZF clear after a match")
	}
	m.wantRIP(t, codeAddr+5)

	// Mismatch: memory unchanged, RDX:RAX loaded, ZF clear.
	r.RAX, r.RDX = 0x1111, 0x2222
	m.mustRun(t, 0xf0, 0x48, 0x0f, 0xc7, 0x0e)
	if r.RFLAGS&flagZF != 0 || r.RAX != 0x3333 || r.RDX != 0x4444 {
		t.Errorf("after mismatch: ZF=%v RAX=%#x RDX=%#x", r.RFLAGS&flagZF != 0, r.RAX, r.RDX)
	}
	if le.Uint64(m.ram[addr:]) != 0x3333 {
		t.Error("memory changed on mismatch")
	}

	// Misaligned: #GP(0).
	r.RSI = addr + 8
	m.mustRun(t, 0xf0, 0x48, 0x0f, 0xc7, 0x0e)
	m.wantException(t, vecGP, 0)
}

func TestCmpxchg16bReadOnlyPageFaults(t *testing.T) {
	m := newMachine(t)
	le.PutUint64(m.ram[ptAddr+8*3:], uint64(highPhys+3*pageSize)|1) // present, read-only
	m.cpu.regs.RSI = highLinear + 3*pageSize
	m.mustRun(t, 0xf0, 0x48, 0x0f, 0xc7, 0x0e)
	m.wantException(t, vecPF, 0x3) // protection, write
}

func TestCmpxchg16bConcurrentIsAtomic(t *testing.T) {
	// Several "vCPUs" increment one 128-bit counter with cmpxchg16b
	// retry loops; no increment may be lost.
	base := newMachine(t)
	// Accessed/dirty bits already set: the walks only read the tables.
	for _, a := range []int{pml4Addr, pdptAddr, pdAddr} {
		base.ram[a] |= 0x60
	}
	const addr = 0x30000
	const workers, iters = 4, 300
	var wg sync.WaitGroup
	var em Emulator
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cpu := &fakeCPU{sregs: base.cpu.sregs}
			for i := 0; i < iters; {
				lo, hi := le.Uint64(base.ram[addr:]), le.Uint64(base.ram[addr+8:]) // racy snapshot, as a guest would
				cpu.regs = kvm.Regs{RIP: codeAddr, RFLAGS: 2, RSI: addr, RAX: lo, RDX: hi, RBX: lo + 1, RCX: hi}
				if err := em.Handle(cpu, base.mem, exitWith([]byte{0xf0, 0x48, 0x0f, 0xc7, 0x0e})); err != nil {
					t.Error(err)
					return
				}
				if cpu.regs.RFLAGS&flagZF != 0 {
					i++
				}
			}
		}()
	}
	wg.Wait()
	if got := le.Uint64(base.ram[addr:]); got != workers*iters {
		t.Errorf("counter = %d, want %d", got, workers*iters)
	}
}

func TestCmpxchg8b32BitAcrossPages(t *testing.T) {
	m := newMachine(t)
	m.to32()
	const addr = 0x3fffc // crosses a page boundary: non-atomic fallback
	le.PutUint64(m.ram[addr:], 0x0000_0002_0000_0001)
	r := &m.cpu.regs
	r.RDI = addr
	r.RAX, r.RDX = 0xaaaa_0000_0000_0001, 2
	r.RBX, r.RCX = 5, 6
	m.mustRun(t, 0x0f, 0xc7, 0x0f) // cmpxchg8b [edi]
	if got := le.Uint64(m.ram[addr:]); got != 0x0000_0006_0000_0005 || r.RFLAGS&flagZF == 0 {
		t.Errorf("memory %#x ZF %v", got, r.RFLAGS&flagZF != 0)
	}
	r.RAX = 0xaaaa_0000_0000_0000
	m.mustRun(t, 0x0f, 0xc7, 0x0f)
	if r.RFLAGS&flagZF != 0 || r.RAX != 0xaaaa_0000_0000_0005 || r.RDX != 6 {
		t.Errorf("mismatch: RAX %#x RDX %#x", r.RAX, r.RDX)
	}
}

func TestIretd32SamePrivilege(t *testing.T) {
	m := newMachine(t)
	m.to32()
	r := &m.cpu.regs
	r.RIP = 0x2000
	r.RSP = 0x7ff4
	r.RFLAGS = 2 | flagIF
	le.PutUint32(m.ram[0x7ff4:], 0x12345)
	le.PutUint32(m.ram[0x7ff8:], 0x08)
	le.PutUint32(m.ram[0x7ffc:], 2|flagCF|flagAC|flagIOPL)
	m.mustRun(t, 0xcf)
	m.wantRIP(t, 0x12345)
	if r.RSP != 0x8000 {
		t.Errorf("RSP = %#x", r.RSP)
	}
	if r.RFLAGS != 2|flagCF|flagAC|flagIOPL {
		t.Errorf("RFLAGS = %#x", r.RFLAGS)
	}
	cs := m.cpu.sregs.CS
	want := kvm.Segment{Selector: 8, Type: 11, Present: 1, S: 1, DB: 1, G: 1, Limit: 0xffffffff}
	if cs != want {
		t.Errorf("CS = %+v, want %+v", cs, want)
	}
	if m.ram[0x800+8+5] != 0x9b {
		t.Errorf("descriptor access byte = %#x, want accessed bit set", m.ram[0x800+8+5])
	}
	if m.em.Counts()["iretd"] != 1 {
		t.Errorf("Counts = %v", m.em.Counts())
	}
}

func TestIretd32ToRing3(t *testing.T) {
	m := newMachine(t)
	m.to32()
	r := &m.cpu.regs
	r.RSP = 0x7fec
	r.RFLAGS = 2
	m.cpu.events.NMI.Masked = 1
	for i, v := range []uint32{0x400000, 0x1b, 2 | flagIF | flagIOPL, 0x90000, 0x23} {
		le.PutUint32(m.ram[0x7fec+4*i:], v)
	}
	m.mustRun(t, 0xcf)
	m.wantRIP(t, 0x400000)
	if r.RSP != 0x90000 {
		t.Errorf("RSP = %#x", r.RSP)
	}
	if r.RFLAGS != 2|flagIF|flagIOPL {
		t.Errorf("RFLAGS = %#x", r.RFLAGS)
	}
	s := m.cpu.sregs
	if s.CS.Selector != 0x1b || s.CS.DPL != 3 || s.SS.Selector != 0x23 || s.SS.DPL != 3 {
		t.Errorf("CS %+v SS %+v", s.CS, s.SS)
	}
	if s.DS.Unusable == 0 || s.ES.Unusable == 0 || s.DS.Selector != 0 {
		t.Errorf("ring-0 data segments kept: DS %+v", s.DS)
	}
	if m.cpu.events.NMI.Masked != 0 {
		t.Error("NMI still masked after iret")
	}

	// At CPL 3 with IOPL 0, neither IOPL nor IF may change.
	r.RFLAGS = 2 | flagIF
	r.RSP = 0x9000
	for i, v := range []uint32{0x400010, 0x1b, 2 | flagIOPL | flagCF, 0x9100, 0x23} {
		le.PutUint32(m.ram[0x9000+4*i:], v)
	}
	m.mustRun(t, 0xcf)
	if r.RFLAGS != 2|flagIF|flagCF {
		t.Errorf("at CPL 3: RFLAGS = %#x, want IF kept, IOPL 0, CF set", r.RFLAGS)
	}
	m.wantRIP(t, 0x400010)
	if r.RSP != 0x900c {
		t.Errorf("RSP = %#x (same-privilege return pops 3 words)", r.RSP)
	}
}

func TestIretd32Faults(t *testing.T) {
	cases := []struct {
		name   string
		cs     uint32
		vector int
		code   uint32
	}{
		{"null selector", 0, vecGP, 0},
		{"beyond GDT limit", 0x28, vecGP, 0x28},
		{"data segment as code", 0x10, vecGP, 0x10},
		{"RPL below DPL", 0x19, vecGP, 0x18},
		{"LDT without LDT", 0x0c, vecGP, 0x0c},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newMachine(t)
			m.to32()
			m.cpu.regs.RSP = 0x7ff4
			le.PutUint32(m.ram[0x7ff4:], 0x1000)
			le.PutUint32(m.ram[0x7ff8:], c.cs)
			le.PutUint32(m.ram[0x7ffc:], 2)
			m.mustRun(t, 0xcf)
			m.wantException(t, c.vector, c.code)
			m.wantRIP(t, codeAddr)
			if m.cpu.regs.RSP != 0x7ff4 {
				t.Error("RSP changed by a faulting iret")
			}
		})
	}
	m := newMachine(t)
	m.to32()
	le.PutUint64(m.ram[0x800+8:], 0x00cf1a000000ffff) // not present
	m.cpu.regs.RSP = 0x7ff4
	le.PutUint32(m.ram[0x7ff8:], 8)
	m.mustRun(t, 0xcf)
	m.wantException(t, vecNP, 8)
}

func TestIretq64(t *testing.T) {
	m := newMachine(t)
	// GDT at 0x800 (identity-mapped): 0x08 64-bit code, 0x10 data.
	m.cpu.sregs.GDT = kvm.DTable{Base: 0x800, Limit: 0x17}
	le.PutUint64(m.ram[0x808:], 0x00af9b000000ffff)
	le.PutUint64(m.ram[0x810:], 0x00cf93000000ffff)
	r := &m.cpu.regs
	r.RSP = 0x7fd8
	for i, v := range []uint64{0xffff_8000_0000_1234, 0x08, 2 | flagIF, 0x6000, 0x10} {
		le.PutUint64(m.ram[0x7fd8+8*i:], v)
	}
	m.mustRun(t, 0x48, 0xcf)
	m.wantRIP(t, 0xffff_8000_0000_1234)
	if r.RSP != 0x6000 || r.RFLAGS != 2|flagIF {
		t.Errorf("RSP %#x RFLAGS %#x", r.RSP, r.RFLAGS)
	}
	if cs := m.cpu.sregs.CS; cs.L != 1 || cs.DB != 0 || cs.Selector != 8 {
		t.Errorf("CS = %+v", cs)
	}
	if ss := m.cpu.sregs.SS; ss.Selector != 0x10 || ss.Unusable != 0 {
		t.Errorf("SS = %+v", ss)
	}

	// A null SS is fine returning to 64-bit ring 0.
	r.RIP = codeAddr
	r.RSP = 0x7fd8
	for i, v := range []uint64{0x1000, 0x08, 2, 0x5000, 0} {
		le.PutUint64(m.ram[0x7fd8+8*i:], v)
	}
	m.mustRun(t, 0x48, 0xcf)
	if ss := m.cpu.sregs.SS; ss.Unusable != 1 || r.RSP != 0x5000 {
		t.Errorf("null SS: %+v RSP %#x", ss, r.RSP)
	}
}

func TestUnhandledError(t *testing.T) {
	m := newMachine(t)
	m.cpu.regs.RAX = 0x1234abcd
	err := m.run(t, 0x0f, 0xae, 0x2f) // xrstor [rdi]
	var ue *UnhandledError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v, want *UnhandledError", err)
	}
	if ue.Inst != "xrstor ptr [rdi]" && !strings.HasPrefix(ue.Inst, "xrstor") {
		t.Errorf("Inst = %q", ue.Inst)
	}
	if ue.Mode != 64 || ue.RIP != codeAddr || ue.Linear != codeAddr || ue.CS != 8 || len(ue.Bytes) != 3 {
		t.Errorf("%+v", ue)
	}
	msg := err.Error()
	for _, want := range []string{"xrstor", "0f ae 2f", "0008:0000000000010000", "64-bit", "RAX=000000001234abcd", "CR3="} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if m.cpu.setRegs+m.cpu.setSregs+m.cpu.setEvents != 0 {
		t.Error("state written for an unhandled instruction")
	}

	// Undecodable bytes and other suberrors.
	if err := m.run(t, 0x0f, 0x0b); !errors.As(err, &ue) { // ud2 decodes: still unhandled
		t.Errorf("ud2: %v", err)
	}
	m.cpu.regs.RIP = highLinear + 8*pageSize // unmapped, so no fallback fetch either
	err = m.em.Handle(m.cpu, m.mem, kvm.InternalErrorExit{Suberror: kvm.InternalErrorDeliveryEv})
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "event delivery") {
		t.Errorf("suberror 3: %v", err)
	}
}

func TestModes(t *testing.T) {
	cases := []struct {
		cr0, efer uint64
		l, db     uint8
		rflags    uint64
		want      int
	}{
		{0, 0, 0, 0, 2, 16},
		{cr0PE, 0, 0, 1, 2, 32},
		{cr0PE, 0, 0, 0, 2, 16},
		{cr0PE, 0, 0, 1, 2 | flagVM, 16},
		{cr0PE | cr0PG, eferLMA, 1, 0, 2, 64},
		{cr0PE | cr0PG, eferLMA, 0, 1, 2, 32},
	}
	for _, c := range cases {
		var s kvm.Sregs
		s.CR0, s.EFER, s.CS.L, s.CS.DB = c.cr0, c.efer, c.l, c.db
		if got := cpuMode(s, c.rflags); got != c.want {
			t.Errorf("cpuMode(%+v) = %d, want %d", c, got, c.want)
		}
	}
}

func TestRealModeSegmentBase(t *testing.T) {
	// popcnt in real mode: CS base, DS base, 16-bit addressing.
	m := newMachine(t)
	c := m.cpu
	c.sregs.CR0, c.sregs.CR4, c.sregs.EFER = 0, 0, 0
	c.sregs.CS = kvm.Segment{Selector: 0x1000, Base: 0x10000, Limit: 0xffff, Type: 11, Present: 1, S: 1}
	c.sregs.DS = kvm.Segment{Selector: 0x2000, Base: 0x20000, Limit: 0xffff, Type: 3, Present: 1, S: 1}
	c.regs.RIP = 0x100
	c.regs.RBX = 0x10
	le.PutUint16(m.ram[0x20010:], 0x00ff)
	m.mustRun(t, 0xf3, 0x0f, 0xb8, 0x07) // popcnt ax, [bx]
	if c.regs.RAX&0xffff != 8 {
		t.Errorf("AX = %#x", c.regs.RAX)
	}
	m.wantRIP(t, 0x104)
}

func TestTruncatedReportFetchesFromMemory(t *testing.T) {
	m := newMachine(t)
	code := []byte{0xf3, 0x48, 0x0f, 0xb8, 0xc3}
	copy(m.ram[codeAddr:], code)
	m.cpu.regs.RBX = 0xf
	if err := m.em.Handle(m.cpu, m.mem, exitWith(code[:3])); err != nil {
		t.Fatal(err)
	}
	if m.cpu.regs.RAX != 4 {
		t.Errorf("RAX = %d", m.cpu.regs.RAX)
	}
	m.wantRIP(t, codeAddr+5)
}

func TestUndecodableReportIsUnhandled(t *testing.T) {
	m := newMachine(t)
	err := m.em.Handle(m.cpu, m.mem, exitWith([]byte{0x0f, 0x04})) // reserved opcode
	var ue *UnhandledError
	if !errors.As(err, &ue) || ue.Inst != "" || !strings.Contains(err.Error(), "undecodable") || !strings.Contains(err.Error(), "0f 04") {
		t.Fatalf("err = %v", err)
	}
}

func TestLockPrefix(t *testing.T) {
	m := newMachine(t)
	m.mustRun(t, 0xf0, 0xf3, 0x48, 0x0f, 0xb8, 0xc3) // lock popcnt: #UD
	m.wantException(t, vecUD, 0)
	m.wantRIP(t, codeAddr)
	// A locked instruction this package does not cover stays unhandled.
	var ue *UnhandledError
	if err := m.run(t, 0xf0, 0x48, 0x0f, 0xc1, 0x03); !errors.As(err, &ue) { // lock xadd [rbx], rax
		t.Errorf("lock xadd: %v", err)
	}
}
