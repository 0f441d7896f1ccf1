package boot

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/govmm/govmm/machine/guestmem"
)

// A minimal ELF reader for what a loader needs: the entry point, PT_LOAD
// segments and the PVH note. It reads ELF32 and ELF64 little-endian x86 files
// and checks every offset against the file, so a hostile image is an error.

const (
	ptLoad           = 1
	ptNote           = 4
	shtNote          = 7
	xenElfnotePhys32 = 18
	maxPhdrs         = 4096
)

type elfSegment struct {
	off, paddr, filesz, memsz uint64
}

type elfFile struct {
	data     []byte
	entry    uint64
	segments []elfSegment
	pvhEntry uint64
}

func parseELF(k []byte) (*elfFile, error) {
	if len(k) < 0x34 {
		return nil, errors.New("ELF file truncated")
	}
	if k[5] != 1 {
		return nil, errors.New("ELF file is not little-endian")
	}
	le := binary.LittleEndian
	f := &elfFile{data: k}
	var phoff, phentsize, phnum, shoff, shentsize, shnum uint64
	switch k[4] {
	case 1: // ELFCLASS32
		if m := le.Uint16(k[18:]); m != 3 {
			return nil, fmt.Errorf("ELF machine %d is not x86", m)
		}
		f.entry = uint64(le.Uint32(k[24:]))
		phoff = uint64(le.Uint32(k[28:]))
		shoff = uint64(le.Uint32(k[32:]))
		phentsize, phnum = uint64(le.Uint16(k[42:])), uint64(le.Uint16(k[44:]))
		shentsize, shnum = uint64(le.Uint16(k[46:])), uint64(le.Uint16(k[48:]))
		if phnum > 0 && phentsize < 32 {
			return nil, errors.New("ELF program header entries too small")
		}
	case 2: // ELFCLASS64
		if len(k) < 0x40 {
			return nil, errors.New("ELF file truncated")
		}
		if m := le.Uint16(k[18:]); m != 62 {
			return nil, fmt.Errorf("ELF machine %d is not x86-64", m)
		}
		f.entry = le.Uint64(k[24:])
		phoff = le.Uint64(k[32:])
		shoff = le.Uint64(k[40:])
		phentsize, phnum = uint64(le.Uint16(k[54:])), uint64(le.Uint16(k[56:]))
		shentsize, shnum = uint64(le.Uint16(k[58:])), uint64(le.Uint16(k[60:]))
		if phnum > 0 && phentsize < 56 {
			return nil, errors.New("ELF program header entries too small")
		}
	default:
		return nil, fmt.Errorf("ELF class %d unknown", k[4])
	}
	is64 := k[4] == 2
	if phnum > maxPhdrs {
		return nil, fmt.Errorf("ELF file has %d program headers", phnum)
	}
	if phoff > uint64(len(k)) || phnum*phentsize > uint64(len(k))-phoff {
		return nil, errors.New("ELF program headers lie past the end of the file")
	}
	for i := uint64(0); i < phnum; i++ {
		h := k[phoff+i*phentsize:]
		var typ uint32
		var s elfSegment
		if is64 {
			typ = le.Uint32(h[0:])
			s = elfSegment{off: le.Uint64(h[8:]), paddr: le.Uint64(h[24:]), filesz: le.Uint64(h[32:]), memsz: le.Uint64(h[40:])}
		} else {
			typ = le.Uint32(h[0:])
			s = elfSegment{off: uint64(le.Uint32(h[4:])), paddr: uint64(le.Uint32(h[12:])), filesz: uint64(le.Uint32(h[16:])), memsz: uint64(le.Uint32(h[20:]))}
		}
		if typ != ptLoad && typ != ptNote {
			continue
		}
		if s.off > uint64(len(k)) || s.filesz > uint64(len(k))-s.off {
			return nil, fmt.Errorf("ELF segment %d (offset %#x, size %#x) lies past the end of the file", i, s.off, s.filesz)
		}
		switch typ {
		case ptLoad:
			if s.memsz < s.filesz {
				return nil, fmt.Errorf("ELF segment %d: memory size %#x below file size %#x", i, s.memsz, s.filesz)
			}
			f.segments = append(f.segments, s)
		case ptNote:
			f.scanNotes(k[s.off : s.off+s.filesz])
		}
	}
	if f.pvhEntry == 0 && shnum > 0 && shnum <= maxPhdrs {
		want := uint64(40)
		if is64 {
			want = 64
		}
		if shentsize >= want && shoff <= uint64(len(k)) && shnum*shentsize <= uint64(len(k))-shoff {
			for i := uint64(0); i < shnum; i++ {
				h := k[shoff+i*shentsize:]
				if le.Uint32(h[4:]) != shtNote {
					continue
				}
				var off, size uint64
				if is64 {
					off, size = le.Uint64(h[24:]), le.Uint64(h[32:])
				} else {
					off, size = uint64(le.Uint32(h[16:])), uint64(le.Uint32(h[20:]))
				}
				if off <= uint64(len(k)) && size <= uint64(len(k))-off {
					f.scanNotes(k[off : off+size])
				}
			}
		}
	}
	if len(f.segments) == 0 {
		return nil, errors.New("ELF file has no loadable segments")
	}
	return f, nil
}

// scanNotes looks for the Xen PHYS32_ENTRY note in a note area.
func (f *elfFile) scanNotes(b []byte) {
	le := binary.LittleEndian
	align4 := func(x uint64) uint64 { return (x + 3) &^ 3 }
	for len(b) >= 12 {
		namesz, descsz, typ := uint64(le.Uint32(b[0:])), uint64(le.Uint32(b[4:])), le.Uint32(b[8:])
		nameEnd := 12 + align4(namesz)
		if namesz > uint64(len(b)) || nameEnd > uint64(len(b)) || descsz > uint64(len(b))-nameEnd {
			return
		}
		name := b[12 : 12+namesz]
		desc := b[nameEnd : nameEnd+descsz]
		if typ == xenElfnotePhys32 && namesz == 4 && string(name) == "Xen\x00" {
			switch {
			case descsz >= 8:
				f.pvhEntry = le.Uint64(desc)
			case descsz >= 4:
				f.pvhEntry = uint64(le.Uint32(desc))
			}
		}
		next := nameEnd + align4(descsz)
		if next > uint64(len(b)) {
			return
		}
		b = b[next:]
	}
}

// loadSegments copies every PT_LOAD segment to its physical address and
// zeroes the rest of its memory size. It returns the highest end address.
func (f *elfFile) loadSegments(mem *guestmem.Memory) (uint64, error) {
	var end uint64
	for _, s := range f.segments {
		dst, err := mem.Slice(s.paddr, s.memsz)
		if err != nil {
			return 0, fmt.Errorf("kernel segment at %#x size %#x does not fit in guest RAM (%d MiB)", s.paddr, s.memsz, mem.Size()>>20)
		}
		n := copy(dst, f.data[s.off:s.off+s.filesz])
		clear(dst[n:])
		end = max(end, s.paddr+s.memsz)
	}
	return end, nil
}
