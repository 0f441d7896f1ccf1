package emulate

import (
	"errors"
	"testing"

	"github.com/govmm/govmm/machine/guestmem"
)

func newRAM(t *testing.T) ([]byte, *guestmem.Memory) {
	t.Helper()
	ram := make([]byte, 1<<20)
	mem, err := guestmem.New(guestmem.Region{GPA: 0, Data: ram})
	if err != nil {
		t.Fatal(err)
	}
	return ram, mem
}

type walkCase struct {
	name   string
	la     uint64
	acc    access
	cpl    int
	want   uint64 // expected GPA when pfCode < 0
	pfCode int    // expected #PF error code, or -1
}

func runWalks(t *testing.T, w *walker, cases []walkCase) {
	t.Helper()
	for _, c := range cases {
		w.cpl = c.cpl
		got, err := w.translate(c.la, c.acc)
		var f *fault
		switch {
		case c.pfCode < 0 && err != nil:
			t.Errorf("%s: translate(%#x) error %v", c.name, c.la, err)
		case c.pfCode < 0 && got != c.want:
			t.Errorf("%s: translate(%#x) = %#x, want %#x", c.name, c.la, got, c.want)
		case c.pfCode >= 0 && !errors.As(err, &f):
			t.Errorf("%s: translate(%#x) = %#x, %v; want #PF(%#x)", c.name, c.la, got, err, c.pfCode)
		case c.pfCode >= 0 && (f.vector != vecPF || f.code != uint32(c.pfCode) || f.cr2 != c.la):
			t.Errorf("%s: fault %v cr2 %#x, want #PF(%#x) at %#x", c.name, f, f.cr2, c.pfCode, c.la)
		}
	}
}

func TestWalk4Level(t *testing.T) {
	ram, mem := newRAM(t)
	// PML4[0] -> PDPT 0x2000; PML4[511] -> PDPT 0x7000 (kernel half).
	le.PutUint64(ram[0x1000:], 0x2000|7)
	le.PutUint64(ram[0x1000+511*8:], 0x7000|3)
	// PDPT[0] -> PD 0x3000 (user), PDPT[1] 1G page at 0x4000_0000, PDPT 510 -> PD 0x8000.
	le.PutUint64(ram[0x2000:], 0x3000|7)
	le.PutUint64(ram[0x2008:], 0x4000_0000|0x83)
	le.PutUint64(ram[0x7000+510*8:], 0x8000|3)
	// PD 0x3000: [0] 2M page at 0x20_0000 (user, rw), [1] -> PT 0x4000 (user), [2] 2M NX.
	le.PutUint64(ram[0x3000:], 0x20_0000|0x87)
	le.PutUint64(ram[0x3008:], 0x4000|7)
	le.PutUint64(ram[0x3010:], 1<<63|0x60_0000|0x87)
	// PT 0x4000: [0] 4K at 0x9000 user rw, [1] 4K at 0xa000 user read-only, [2] not present.
	le.PutUint64(ram[0x4000:], 0x9000|7)
	le.PutUint64(ram[0x4008:], 0xa000|5)
	// PD 0x8000 (linear 0xffff_ffff_8000_0000): [0] 2M supervisor page at 0x100_0000.
	le.PutUint64(ram[0x8000:], 0x100_0000|0x83)

	w := &walker{mem: mem, cr0: cr0PE | cr0PG | cr0WP, cr3: 0x1000, cr4: cr4PAE, efer: eferLMA | eferNXE}
	runWalks(t, w, []walkCase{
		{name: "2M page", la: 0x1_2345, want: 0x21_2345, pfCode: -1},
		{name: "4K page", la: 0x20_0123, want: 0x9123, pfCode: -1},
		{name: "4K page 2", la: 0x20_1ff8, acc: accRead, cpl: 3, want: 0xaff8, pfCode: -1},
		{name: "1G page", la: 0x7654_3210, want: 0x7654_3210, pfCode: -1},
		{name: "kernel half 2M", la: 0xffff_ffff_8012_3456, want: 0x112_3456, pfCode: -1},
		{name: "PTE not present", la: 0x20_2000, pfCode: 0},
		{name: "PML4E not present, user write", la: 0x8000_0000_0000, acc: accWrite, cpl: 3, pfCode: 6},
		{name: "user to supervisor page", la: 0xffff_ffff_8000_0000, cpl: 3, pfCode: 5},
		{name: "user write read-only", la: 0x20_1000, acc: accWrite, cpl: 3, pfCode: 7},
		{name: "supervisor write read-only with WP", la: 0x20_1000, acc: accWrite, pfCode: 3},
		{name: "NX fetch", la: 0x40_0000, acc: accFetch, pfCode: 0x11},
		{name: "NX read is fine", la: 0x40_0010, want: 0x60_0010, pfCode: -1},
	})

	// Accessed bits on every level, dirty on the leaf of a write.
	w.cpl = 0
	if _, err := w.translate(0x20_0000, accWrite); err != nil {
		t.Fatal(err)
	}
	for _, a := range []int{0x1000, 0x2000, 0x3008} {
		if ram[a]&0x60 != 0x20 {
			t.Errorf("entry at %#x = %#x, want accessed and not dirty", a, ram[a])
		}
	}
	if ram[0x4000]&0x60 != 0x60 {
		t.Errorf("PTE = %#x, want accessed and dirty", ram[0x4000])
	}

	// Without CR0.WP the supervisor may write read-only pages.
	w.cr0 &^= cr0WP
	runWalks(t, w, []walkCase{{name: "no WP", la: 0x20_1000, acc: accWrite, want: 0xa000, pfCode: -1}})

	// SMAP: supervisor data access to a user page faults unless AC is set.
	w.cr4 |= cr4SMAP | cr4SMEP
	runWalks(t, w, []walkCase{
		{name: "SMAP", la: 0x1000, pfCode: 1},
		{name: "SMEP", la: 0x1000, acc: accFetch, pfCode: 0x11},
	})
	w.ac = true
	runWalks(t, w, []walkCase{
		{name: "SMAP with AC", la: 0x1000, want: 0x20_1000, pfCode: -1},
		{name: "SMAP implicit ignores AC", la: 0x1000, acc: accImplicit, pfCode: 1},
	})

	// A table outside guest RAM is an error, not a fault.
	le.PutUint64(ram[0x3018:], 0x4000_0000|3)
	w.cr4 &^= cr4SMAP | cr4SMEP
	if _, err := w.translate(0x60_0000, accRead); err == nil || errors.As(err, new(*fault)) {
		t.Errorf("walk through a table beyond RAM: %v", err)
	}
	// PS in a PML4E is reserved.
	le.PutUint64(ram[0x1008:], 0x2000|0x83)
	runWalks(t, w, []walkCase{{name: "PS in PML4E", la: 0x80_0000_0000, pfCode: 9}})
}

func TestWalk5Level(t *testing.T) {
	ram, mem := newRAM(t)
	le.PutUint64(ram[0x1000+8:], 0x2000|3) // PML5[1]
	le.PutUint64(ram[0x2000:], 0x3000|3)   // PML4[0]
	le.PutUint64(ram[0x3000:], 0x4000|3)   // PDPT[0]
	le.PutUint64(ram[0x4000:], 0x20_0000|0x83)
	w := &walker{mem: mem, cr0: cr0PE | cr0PG, cr3: 0x1000, cr4: cr4PAE | cr4LA57, efer: eferLMA}
	runWalks(t, w, []walkCase{{name: "5-level 2M", la: 1<<48 | 0x1234, want: 0x20_1234, pfCode: -1}})
}

func TestWalkPAE(t *testing.T) {
	ram, mem := newRAM(t)
	le.PutUint64(ram[0x1020+3*8:], 0x2000|1) // PDPTE[3] (CR3 = 0x1020, 32-byte aligned)
	le.PutUint64(ram[0x2000:], 0x3000|7)     // PD[0] -> PT
	le.PutUint64(ram[0x2008:], 0x40_0000|0x83)
	le.PutUint64(ram[0x3000+5*8:], 0x8000|3)
	w := &walker{mem: mem, cr0: cr0PE | cr0PG, cr3: 0x1020, cr4: cr4PAE}
	runWalks(t, w, []walkCase{
		{name: "PAE 4K", la: 0xc000_5abc, want: 0x8abc, pfCode: -1},
		{name: "PAE 2M", la: 0xc021_0000, want: 0x41_0000, pfCode: -1},
		{name: "PAE 4K supervisor", la: 0xc000_5000, cpl: 3, pfCode: 5},
		{name: "PAE PDPTE not present", la: 0x4000_0000, pfCode: 0},
		{name: "PAE upper bits dropped", la: 0x1_c000_5abc, want: 0x8abc, pfCode: -1},
	})
}

func TestWalk32Bit(t *testing.T) {
	ram, mem := newRAM(t)
	le.PutUint32(ram[0x1000:], 0x2000|7)                 // PDE[0] -> PT
	le.PutUint32(ram[0x1000+0x300*4:], 0x00c0_0000|0x83) // PDE[0x300]: 4M page at 12M
	le.PutUint32(ram[0x1000+0x301*4:], 0x0040_0000|0x2083)
	le.PutUint32(ram[0x2000+7*4:], 0x5000|3)
	w := &walker{mem: mem, cr0: cr0PE | cr0PG, cr3: 0x1000, cr4: cr4PSE}
	runWalks(t, w, []walkCase{
		{name: "32-bit 4K", la: 0x7123, want: 0x5123, pfCode: -1},
		{name: "32-bit 4M", la: 0xc012_3456, want: 0xd2_3456, pfCode: -1},
		{name: "32-bit 4M PSE-36", la: 0xc040_0010, want: 0x1_0040_0010, pfCode: -1},
		{name: "32-bit not present", la: 0x8000, pfCode: 0},
		{name: "32-bit user read to supervisor PTE", la: 0x7000, cpl: 3, pfCode: 5},
	})
	if le.Uint32(ram[0x2000+7*4:])&0x20 == 0 {
		t.Error("accessed bit not set in 32-bit PTE")
	}
	// Without CR4.PSE the PS bit is ignored: the PDE points to a table
	// (here at 12M, beyond RAM).
	w.cr4 = 0
	if _, err := w.translate(0xc000_0000, accRead); err == nil || errors.As(err, new(*fault)) {
		t.Errorf("PS without CR4.PSE: %v, want a table read beyond RAM", err)
	}

	// Paging off: linear is physical, truncated to 32 bits.
	w.cr0 = cr0PE
	runWalks(t, w, []walkCase{{name: "no paging", la: 0x1_0000_1234, want: 0x1234, pfCode: -1}})
}
