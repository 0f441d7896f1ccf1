package atomicmem

import (
	"testing"

	"github.com/govmm/govmm/machine/guestmem"
)

func TestLoadStore(t *testing.T) {
	mem, err := guestmem.New(guestmem.Region{GPA: 0x1000, Data: make([]byte, 16)})
	if err != nil {
		t.Fatal(err)
	}
	for _, gpa := range []uint64{0x1000, 0x1002, 0x1005, 0x100e} {
		if err := Store16(mem, gpa, 0xBEEF); err != nil {
			t.Fatal(err)
		}
		if v, err := Load16(mem, gpa); err != nil || v != 0xBEEF {
			t.Fatalf("%#x: %#x %v", gpa, v, err)
		}
		if v, _ := mem.Uint16(gpa); v != 0xBEEF {
			t.Fatalf("%#x: memory holds %#x", gpa, v)
		}
	}
	// The neighbouring half-word is untouched.
	if err := Store16(mem, 0x1008, 0x1111); err != nil {
		t.Fatal(err)
	}
	if err := Store16(mem, 0x100a, 0x2222); err != nil {
		t.Fatal(err)
	}
	if v, _ := mem.Uint32(0x1008); v != 0x22221111 {
		t.Fatalf("word %#x", v)
	}
	if _, err := Load16(mem, 0x1010); err == nil {
		t.Fatal("load outside RAM succeeded")
	}
	if err := Store16(mem, 0xfff, 1); err == nil {
		t.Fatal("store outside RAM succeeded")
	}
}
