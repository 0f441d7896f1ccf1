package proto

import "fmt"

// PatternByte is the byte the "blk" check writes at absolute disk offset
// off with the given seed. Each aligned 8-byte word is one splitmix64 output,
// so the pattern differs in every sector and a misplaced sector is caught.
func PatternByte(seed uint64, off int64) byte {
	w := splitmix64(seed + uint64(off)/8)
	return byte(w >> (8 * (uint64(off) % 8)))
}

// Fill writes the pattern for disk offsets [off, off+len(buf)) into buf.
func Fill(buf []byte, seed uint64, off int64) {
	for i := range buf {
		buf[i] = PatternByte(seed, off+int64(i))
	}
}

// Verify checks that buf holds the pattern for disk offsets
// [off, off+len(buf)) and names the first wrong byte otherwise.
func Verify(buf []byte, seed uint64, off int64) error {
	for i, b := range buf {
		if want := PatternByte(seed, off+int64(i)); b != want {
			return fmt.Errorf("pattern mismatch at disk offset %d: got %#02x, want %#02x", off+int64(i), b, want)
		}
	}
	return nil
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
