package virtq

// Helpers to treat a chain's scattered buffers as one byte stream.

// CopyFrom copies readable bytes starting at stream offset off into p and
// returns how many it copied (short when the chain is shorter).
func (c *Chain) CopyFrom(p []byte, off uint64) int {
	return copyScattered(p, c.Readable, off, false)
}

// CopyTo copies p into the writable buffers starting at stream offset off
// and returns how many bytes it copied.
func (c *Chain) CopyTo(p []byte, off uint64) int {
	return copyScattered(p, c.Writable, off, true)
}

func copyScattered(p []byte, bufs [][]byte, off uint64, toBufs bool) int {
	n := 0
	for _, b := range bufs {
		if len(p) == 0 {
			break
		}
		if off >= uint64(len(b)) {
			off -= uint64(len(b))
			continue
		}
		var k int
		if toBufs {
			k = copy(b[off:], p)
		} else {
			k = copy(p, b[off:])
		}
		p = p[k:]
		n += k
		off = 0
	}
	return n
}

// Sub returns the part [off, off+n) of a buffer list as a new list of
// sub-slices (no copying). It returns fewer than n bytes when bufs is short.
func Sub(bufs [][]byte, off, n uint64) [][]byte {
	var out [][]byte
	for _, b := range bufs {
		if n == 0 {
			break
		}
		if off >= uint64(len(b)) {
			off -= uint64(len(b))
			continue
		}
		b = b[off:]
		off = 0
		if uint64(len(b)) > n {
			b = b[:n]
		}
		out = append(out, b)
		n -= uint64(len(b))
	}
	return out
}
