package emulate

import (
	"encoding/binary"
	"fmt"

	"github.com/govmm/govmm/machine/guestmem"
)

const pageSize = 4096

// access describes a memory access for the permission checks of a page walk.
type access uint8

const (
	accRead  access = 0
	accWrite access = 1 << iota
	accFetch
	// accImplicit is a supervisor access the CPU makes on its own
	// (descriptor tables), whatever the CPL.
	accImplicit
)

// addrMask selects the physical address bits 51:12 of a 64-bit entry.
const addrMask = 0x000f_ffff_ffff_f000

// walker translates linear addresses through the guest's page tables:
// 32-bit paging (4K and, with CR4.PSE, 4M pages), PAE paging (4K, 2M) and
// 4-/5-level paging (4K, 2M, 1G). It checks present, writable, user,
// execute-disable, SMEP and SMAP, and sets the accessed and dirty bits as
// the CPU does. Reserved bits are not checked (except a large-page bit in
// a PML4E/PML5E), nor protection keys.
type walker struct {
	mem                 *guestmem.Memory
	cr0, cr3, cr4, efer uint64
	cpl                 int
	ac                  bool // RFLAGS.AC, which lifts SMAP for explicit accesses
}

// pageEntry is a paging-structure entry used by a translation.
type pageEntry struct {
	addr  uint64
	val   uint64
	size  int // 4 or 8 bytes
	isPTE bool
}

// translate returns the guest-physical address of la for access acc. A
// translation the guest's tables refuse is a *fault (#PF); a table outside
// guest RAM is a plain error.
func (w *walker) translate(la uint64, acc access) (uint64, error) {
	long := w.efer&eferLMA != 0
	if !long {
		la = uint64(uint32(la))
	}
	if w.cr0&cr0PG == 0 {
		return la, nil
	}
	user := w.cpl == 3 && acc&accImplicit == 0
	write := acc&accWrite != 0
	fetch := acc&accFetch != 0
	nxe := w.efer&eferNXE != 0
	pf := func(present, rsvd bool) error {
		var code uint32
		if present {
			code |= 1
		}
		if write {
			code |= 2
		}
		if user {
			code |= 4
		}
		if rsvd {
			code |= 8
		}
		if fetch && (nxe || w.cr4&cr4SMEP != 0) {
			code |= 16
		}
		return &fault{vector: vecPF, code: code, hasCode: true, cr2: la}
	}

	var (
		table     uint64
		entrySize int
		idxBits   uint
		shifts    []uint
		pae       = !long && w.cr4&cr4PAE != 0
	)
	switch {
	case long:
		table, entrySize, idxBits = w.cr3&addrMask, 8, 9
		shifts = []uint{39, 30, 21, 12}
		if w.cr4&cr4LA57 != 0 {
			shifts = []uint{48, 39, 30, 21, 12}
		}
	case pae:
		// The four PDPTEs sit in a 32-byte aligned table at CR3.
		table, entrySize, idxBits = w.cr3&0xffff_ffe0, 8, 9
		shifts = []uint{30, 21, 12}
	default:
		table, entrySize, idxBits = w.cr3&0xffff_f000, 4, 10
		shifts = []uint{22, 12}
	}

	rw, us, nx := true, true, false
	var used []pageEntry
	for i, shift := range shifts {
		addr := table + ((la>>shift)&(1<<idxBits-1))*uint64(entrySize)
		e, err := readEntry(w.mem, addr, entrySize)
		if err != nil {
			return 0, fmt.Errorf("page walk for %#x: %w", la, err)
		}
		if e&1 == 0 {
			return 0, pf(false, false)
		}
		pdpte := pae && shift == 30 // PAE PDPTEs carry no permission bits
		if !pdpte {
			rw = rw && e&2 != 0
			us = us && e&4 != 0
			nx = nx || (entrySize == 8 && nxe && e>>63 != 0)
		}
		last := i == len(shifts)-1
		large := false
		if !last && e&0x80 != 0 {
			switch {
			case long && shift >= 39:
				return 0, pf(true, true)
			case long, pae && shift == 21, !pae && !long && w.cr4&cr4PSE != 0:
				large = true
			}
		}
		used = append(used, pageEntry{addr: addr, val: e, size: entrySize, isPTE: last || large})
		if !last && !large {
			if entrySize == 4 {
				table = e & 0xffff_f000
			} else {
				table = e & addrMask
			}
			continue
		}

		// Leaf: check the access against the accumulated rights.
		switch {
		case user && !us:
			return 0, pf(true, false)
		case write && !rw && (user || w.cr0&cr0WP != 0):
			return 0, pf(true, false)
		case fetch && nx:
			return 0, pf(true, false)
		case fetch && !user && us && w.cr4&cr4SMEP != 0:
			return 0, pf(true, false)
		case !fetch && !user && us && w.cr4&cr4SMAP != 0 && (acc&accImplicit != 0 || !w.ac):
			return 0, pf(true, false)
		}
		if err := w.setAccessed(used, write); err != nil {
			return 0, err
		}
		var base, off uint64
		switch {
		case entrySize == 4 && large: // 4M page; PSE-36 puts bits 39:32 in 20:13
			base = e&0xffc0_0000 | (e>>13&0xff)<<32
			off = la & 0x3f_ffff
		case entrySize == 4:
			base, off = e&0xffff_f000, la&0xfff
		default:
			base = e & addrMask &^ (1<<shift - 1)
			off = la & (1<<shift - 1)
		}
		return base | off, nil
	}
	return 0, fmt.Errorf("page walk for %#x: no leaf entry", la) // not reached: the last level is a leaf
}

// setAccessed sets the accessed bit of every entry of a translation, and
// the dirty bit of the leaf for a write, as the CPU does; with a locked
// host operation where possible, like the CPU's own locked update.
func (w *walker) setAccessed(used []pageEntry, write bool) error {
	for _, e := range used {
		set := uint64(0x20)
		if e.isPTE && write {
			set |= 0x40
		}
		if e.val&set == set {
			continue
		}
		b, err := w.mem.Slice(e.addr, uint64(e.size))
		if err != nil {
			return err
		}
		if atomicOr(b, set) {
			continue
		}
		v := e.val | set
		if e.size == 4 {
			binary.LittleEndian.PutUint32(b, uint32(v))
		} else {
			binary.LittleEndian.PutUint64(b, v)
		}
	}
	return nil
}

func readEntry(mem *guestmem.Memory, addr uint64, size int) (uint64, error) {
	if size == 4 {
		v, err := mem.Uint32(addr)
		return uint64(v), err
	}
	return mem.Uint64(addr)
}

func (st *state) walker() *walker {
	return &walker{
		mem: st.mem, cr0: st.sregs.CR0, cr3: st.sregs.CR3, cr4: st.sregs.CR4, efer: st.sregs.EFER,
		cpl: st.cpl, ac: st.regs.RFLAGS&flagAC != 0,
	}
}

// span is a piece of a linear range that lies in one page.
type span struct {
	gpa uint64
	n   int
}

// spans translates the linear range [la, la+n), page by page. All pages
// are checked before any is used, so a fault leaves memory untouched.
func (st *state) spans(la uint64, n int, acc access) ([]span, error) {
	w := st.walker()
	var out []span
	for n > 0 {
		if st.mode != 64 {
			la = uint64(uint32(la)) // 32-bit linear addresses wrap at 4G
		}
		k := min(n, int(pageSize-la&(pageSize-1)))
		gpa, err := w.translate(la, acc)
		if err != nil {
			return nil, err
		}
		if _, err := st.mem.Slice(gpa, uint64(k)); err != nil {
			return nil, fmt.Errorf("emulate: linear %#x: %w", la, err)
		}
		out = append(out, span{gpa, k})
		la += uint64(k)
		n -= k
	}
	return out, nil
}

// read copies n bytes of guest memory at linear address la.
func (st *state) read(la uint64, n int, acc access) ([]byte, error) {
	sp, err := st.spans(la, n, acc)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, n)
	for _, s := range sp {
		p, err := st.mem.Slice(s.gpa, uint64(s.n))
		if err != nil {
			return nil, err
		}
		b = append(b, p...)
	}
	return b, nil
}

// write stores b at linear address la.
func (st *state) write(la uint64, b []byte, acc access) error {
	sp, err := st.spans(la, len(b), acc|accWrite)
	if err != nil {
		return err
	}
	for _, s := range sp {
		if err := st.mem.WriteAt(b[:s.n], s.gpa); err != nil {
			return err
		}
		b = b[s.n:]
	}
	return nil
}

// readUint reads a little-endian value of size 2, 4 or 8 bytes.
func (st *state) readUint(la uint64, size int, acc access) (uint64, error) {
	b, err := st.read(la, size, acc)
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := size - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, nil
}

func putUint(b []byte, v uint64) {
	switch len(b) {
	case 2:
		binary.LittleEndian.PutUint16(b, uint16(v))
	case 4:
		binary.LittleEndian.PutUint32(b, uint32(v))
	case 8:
		binary.LittleEndian.PutUint64(b, v)
	}
}
