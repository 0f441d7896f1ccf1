package disk

import "unsafe"

// isAligned reports whether p starts on a directAlign boundary in memory,
// as O_DIRECT needs.
func isAligned(p []byte) bool {
	return len(p) == 0 || uintptr(unsafe.Pointer(&p[0]))%directAlign == 0
}

// alignedBuf returns a zeroed n-byte slice aligned to directAlign.
func alignedBuf(n int) []byte {
	b := make([]byte, n+directAlign)
	skip := int(directAlign-uintptr(unsafe.Pointer(&b[0]))%directAlign) % directAlign
	return b[skip : skip+n : skip+n]
}
