package pci

import (
	"testing"
)

// FuzzConfigWrites applies a stream of guest configuration writes and reads
// (offset, size, value) to a function with BARs and MSI-X, through mechanism
// #1 and ECAM. Nothing may panic and the read-only identity must survive.
func FuzzConfigWrites(f *testing.F) {
	f.Add([]byte{0x10, 4, 0xff, 0xff, 0xff, 0xff, 0x04, 2, 0x07, 0x00})
	f.Add([]byte{0x40, 2, 0x00, 0xc0, 0x00, 1, 0x01})
	f.Fuzz(func(t *testing.T, ops []byte) {
		r, _ := NewRoot(2)
		c := NewConfigSpace(testHeader())
		c.SetBAR(0, BAR{Kind: BARIO, Size: 0x20})
		c.SetBAR(1, BAR{Kind: BARMem32, Size: 0x1000})
		c.SetBAR(4, BAR{Kind: BARMem64, Size: 0x4000})
		m, err := NewMSIX(c, 4, 1, 0, 0x800, &msiRec{})
		if err != nil {
			t.Fatal(err)
		}
		c.OnBARChange = func(old, new BARMapping) {
			if old == new {
				t.Fatal("callback without change")
			}
		}
		r.Bus0.Add(2, 0, c)
		addr, data, ecam := r.AddressPort(), r.DataPort(), r.ECAM()
		for len(ops) >= 3 {
			off, size, v := ops[0], int(ops[1]%4)+1, ops[2:]
			if size == 3 {
				size = 4
			}
			if len(v) < size {
				break
			}
			ops = ops[2+size:]
			reg := uint32(off)
			if off&1 != 0 { // mechanism #1
				put(addr, 0, 4, 1<<31|2<<11|reg&0xFC)
				data.Write(uint64(reg&3), v[:size])
				buf := make([]byte, size)
				data.Read(uint64(reg&3), buf)
			} else { // ECAM, any alignment (misaligned ones are dropped)
				ecam.Write(2<<15|uint64(reg), v[:size])
			}
			m.Notify(int(off % 5))
			m.Device().Write(uint64(off)*8, v[:size])
		}
		if got := rd(c, 0, 4); got != 0x10421af4 {
			t.Fatalf("identity changed to %#x", got)
		}
		if len(c.Capabilities()) != 1 {
			t.Fatal("capability list changed")
		}
	})
}
