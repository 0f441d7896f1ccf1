package disk

import (
	"encoding/binary"
	"fmt"
)

// Refcount entries are refBits wide (1..64), packed big-endian; entries
// narrower than a byte fill each byte from its least significant bit, as
// in QEMU.

func getRef(b []byte, i int64, bits uint) uint64 {
	switch bits {
	case 1, 2, 4:
		per := int64(8 / bits)
		return uint64(b[i/per]>>(uint(i%per)*bits)) & (1<<bits - 1)
	case 8:
		return uint64(b[i])
	case 16:
		return uint64(binary.BigEndian.Uint16(b[i*2:]))
	case 32:
		return uint64(binary.BigEndian.Uint32(b[i*4:]))
	default:
		return binary.BigEndian.Uint64(b[i*8:])
	}
}

// putRef stores v and returns the byte range it touched.
func putRef(b []byte, i int64, bits uint, v uint64) (start, n int64) {
	switch bits {
	case 1, 2, 4:
		per := int64(8 / bits)
		shift := uint(i%per) * bits
		mask := byte(1<<bits-1) << shift
		b[i/per] = b[i/per]&^mask | byte(v<<shift)&mask
		return i / per, 1
	case 8:
		b[i] = byte(v)
		return i, 1
	case 16:
		binary.BigEndian.PutUint16(b[i*2:], uint16(v))
		return i * 2, 2
	case 32:
		binary.BigEndian.PutUint32(b[i*4:], uint32(v))
		return i * 4, 4
	default:
		binary.BigEndian.PutUint64(b[i*8:], v)
		return i * 8, 8
	}
}

func (q *Qcow2) maxRefcount() uint64 {
	if q.refBits == 64 {
		return ^uint64(0)
	}
	return 1<<q.refBits - 1
}

// refBlock returns the cached refcount block at host offset off.
func (q *Qcow2) refBlock(off uint64) ([]byte, error) {
	if b, ok := q.refBlocks[off]; ok {
		return b, nil
	}
	if off%uint64(q.cs) != 0 || int64(off)+q.cs > q.file.Size() {
		return nil, fmt.Errorf("qcow2 corrupt: refcount block offset %#x invalid", off)
	}
	b := make([]byte, q.cs)
	if _, err := q.file.ReadAt(b, int64(off)); err != nil {
		return nil, fmt.Errorf("Could not read refcount block: %v", err)
	}
	if len(q.refBlocks) >= 1024 { // all clean (write-through): drop any
		clear(q.refBlocks)
	}
	q.refBlocks[off] = b
	return b, nil
}

// refcount returns the refcount of the cluster at host offset c.
func (q *Qcow2) refcount(c int64) (uint64, error) {
	ci := c / q.cs
	ti := ci / q.rbEntries
	if ti >= int64(len(q.refTable)) || q.refTable[ti]&refTableMask == 0 {
		return 0, nil
	}
	b, err := q.refBlock(q.refTable[ti] & refTableMask)
	if err != nil {
		return 0, err
	}
	return getRef(b, ci%q.rbEntries, q.refBits), nil
}

// setRefcount sets and writes the refcount of the cluster at c, creating
// refcount blocks and growing the refcount table as needed.
func (q *Qcow2) setRefcount(c int64, v uint64) error {
	if v > q.maxRefcount() {
		return fmt.Errorf("qcow2: refcount overflow for cluster %#x (%d-bit refcounts)", c, q.refBits)
	}
	ci := c / q.cs
	ti := ci / q.rbEntries
	if ti >= int64(len(q.refTable)) {
		if err := q.growRefTable(ti); err != nil {
			return err
		}
	}
	if q.refTable[ti]&refTableMask == 0 {
		if err := q.newRefBlock(ti); err != nil {
			return err
		}
	}
	boff := q.refTable[ti] & refTableMask
	b, err := q.refBlock(boff)
	if err != nil {
		return err
	}
	start, n := putRef(b, ci%q.rbEntries, q.refBits, v)
	_, err = q.file.WriteAt(b[start:start+n], int64(boff)+start)
	return err
}

// newRefBlock creates the refcount block for table index ti at the end of
// the file. The block counts itself when it lies in its own range.
func (q *Qcow2) newRefBlock(ti int64) error {
	off := q.fileEnd
	q.fileEnd += q.cs
	b := make([]byte, q.cs)
	self := off/q.cs/q.rbEntries == ti
	if self {
		putRef(b, off/q.cs%q.rbEntries, q.refBits, 1)
	}
	if _, err := q.file.WriteAt(b, off); err != nil {
		return err
	}
	if !self {
		if err := q.setRefcount(off, 1); err != nil {
			return err
		}
	}
	// The block must be durable before the table points to it.
	if err := q.file.Flush(); err != nil {
		return err
	}
	q.refBlocks[uint64(off)] = b
	q.refTable[ti] = uint64(off)
	var e [8]byte
	binary.BigEndian.PutUint64(e[:], uint64(off))
	_, err := q.file.WriteAt(e[:], int64(q.h.refTableOffset)+ti*8)
	return err
}

// growRefTable moves the refcount table to the end of the file with room
// for index need, together with refcount blocks for its own clusters, then
// switches the header to it and frees the old table.
func (q *Qcow2) growRefTable(need int64) error {
	old := q.refTable
	oldOff, oldClusters := int64(q.h.refTableOffset), int64(q.h.refTableCluster)
	start := q.fileEnd / q.cs // first cluster index of the new region
	nT := max(divUp64((need+1)*8, q.cs), oldClusters*2)
	var blocks []int64 // table indices that get a new block here
	for {
		if nT*q.cs > maxRefTableBytes {
			return fmt.Errorf("qcow2: refcount table would exceed %d bytes", maxRefTableBytes)
		}
		last := start + nT + int64(len(blocks)) - 1
		var want []int64
		for ti := start / q.rbEntries; ti <= last/q.rbEntries; ti++ {
			if ti >= int64(len(old)) || old[ti]&refTableMask == 0 {
				want = append(want, ti)
			}
		}
		if len(want) == len(blocks) && last/q.rbEntries < nT*q.cs/8 {
			break
		}
		blocks = want
		if last/q.rbEntries >= nT*q.cs/8 {
			nT++
		}
	}
	table := make([]uint64, nT*q.cs/8)
	copy(table, old)
	newBlocks := map[int64][]byte{}
	for i, ti := range blocks {
		table[ti] = uint64((start + nT + int64(i)) * q.cs)
		newBlocks[ti] = make([]byte, q.cs)
	}
	end := start + nT + int64(len(blocks))
	for ci := start; ci < end; ci++ {
		ti := ci / q.rbEntries
		if b, ok := newBlocks[ti]; ok {
			putRef(b, ci%q.rbEntries, q.refBits, 1)
		} else if err := q.setRefcount(ci*q.cs, 1); err != nil {
			return err
		}
	}
	for ti, b := range newBlocks {
		if _, err := q.file.WriteAt(b, int64(table[ti])); err != nil {
			return err
		}
	}
	if err := q.writeTable(start*q.cs, table); err != nil {
		return err
	}
	if err := q.file.Flush(); err != nil {
		return err
	}
	if err := q.switchRefTable(start*q.cs, nT); err != nil {
		return err
	}
	q.fileEnd = end * q.cs
	q.refTable = table
	for ti, b := range newBlocks {
		q.refBlocks[table[ti]] = b
	}
	for c := oldOff; c < oldOff+oldClusters*q.cs; c += q.cs {
		if err := q.unref(c); err != nil {
			return err
		}
	}
	return nil
}

// switchRefTable points the header at a new refcount table in one 12-byte
// write (offset and cluster count are adjacent) and flushes.
func (q *Qcow2) switchRefTable(off, clusters int64) error {
	var hb [12]byte
	binary.BigEndian.PutUint64(hb[0:], uint64(off))
	binary.BigEndian.PutUint32(hb[8:], uint32(clusters))
	if _, err := q.file.WriteAt(hb[:], 48); err != nil {
		return err
	}
	q.h.refTableOffset, q.h.refTableCluster = uint64(off), uint32(clusters)
	return q.file.Flush()
}

func (q *Qcow2) writeTable(off int64, t []uint64) error {
	buf := make([]byte, alignUp(int64(len(t))*8, q.cs))
	for i, v := range t {
		binary.BigEndian.PutUint64(buf[i*8:], v)
	}
	_, err := q.file.WriteAt(buf, off)
	return err
}

func divUp64(a, b int64) int64 { return (a + b - 1) / b }

// refLayout places a complete refcount structure (blocks then table) at
// cluster index start for a file whose clusters [0, start) have the given
// counts. It returns the encoded blocks, the table and its cluster count.
func refLayout(counts []uint64, start, cs int64, refBits uint) (blocks [][]byte, table []uint64, nT int64, err error) {
	rb := cs * 8 / int64(refBits)
	var nB int64
	nT = 1
	for {
		total := start + nB + nT
		nB2 := divUp64(total, rb)
		nT2 := divUp64(nB2*8, cs)
		if nB2 <= nB && nT2 <= nT {
			break
		}
		nB, nT = max(nB, nB2), max(nT, nT2)
	}
	if nT*cs > maxRefTableBytes {
		return nil, nil, 0, fmt.Errorf("refcount table would exceed %d bytes", maxRefTableBytes)
	}
	var maxRef uint64 = ^uint64(0)
	if refBits < 64 {
		maxRef = 1<<refBits - 1
	}
	table = make([]uint64, nT*cs/8)
	blocks = make([][]byte, nB)
	for i := range blocks {
		blocks[i] = make([]byte, cs)
		table[i] = uint64((start + int64(i)) * cs)
	}
	end := start + nB + nT
	for ci := int64(0); ci < end; ci++ {
		v := uint64(1)
		if ci < start {
			v = counts[ci]
		}
		if v == 0 {
			continue
		}
		if v > maxRef {
			return nil, nil, 0, fmt.Errorf("refcount overflow: cluster %#x has %d references, %d-bit refcounts hold at most %d", ci*cs, v, refBits, maxRef)
		}
		putRef(blocks[ci/rb], ci%rb, refBits, v)
	}
	return blocks, table, nT, nil
}

// rebuildRefcounts recomputes every refcount from the L1/L2 tables (an
// image left dirty with lazy refcounts may have stale ones) and writes a
// fresh refcount structure at the end of the file.
func (q *Qcow2) rebuildRefcounts() error {
	if q.h.nbSnapshots > 0 {
		return fmt.Errorf("images with internal snapshots are not supported")
	}
	n := q.fileEnd / q.cs
	counts := make([]uint64, n)
	inc := func(start, end uint64, what string) error {
		if end <= start {
			return nil
		}
		for ci := start / uint64(q.cs); ci <= (end-1)/uint64(q.cs); ci++ {
			if ci >= uint64(n) {
				return fmt.Errorf("%s at %#x beyond end of file", what, start)
			}
			counts[ci]++
		}
		return nil
	}
	inc(0, 1, "header")
	if err := inc(q.h.l1Offset, q.h.l1Offset+uint64(len(q.l1))*8, "L1 table"); err != nil {
		return err
	}
	for _, l1e := range q.l1 {
		off := l1e & offsetMask
		if off == 0 {
			continue
		}
		if off%uint64(q.cs) != 0 {
			return fmt.Errorf("L2 table offset %#x unaligned", off)
		}
		if err := inc(off, off+uint64(q.cs), "L2 table"); err != nil {
			return err
		}
		l2, err := q.readTable(off, q.l2Entries)
		if err != nil {
			return err
		}
		for _, e := range l2 {
			if e&oflagCompressed != 0 {
				s, end := q.compressedRange(e)
				if err := inc(s, end, "compressed cluster"); err != nil {
					return err
				}
			} else if host := e & offsetMask; host != 0 {
				if host%uint64(q.cs) != 0 {
					return fmt.Errorf("data cluster offset %#x unaligned", host)
				}
				if err := inc(host, host+uint64(q.cs), "data cluster"); err != nil {
					return err
				}
			}
		}
	}
	blocks, table, nT, err := refLayout(counts, n, q.cs, q.refBits)
	if err != nil {
		return err
	}
	for i, b := range blocks {
		if _, err := q.file.WriteAt(b, (n+int64(i))*q.cs); err != nil {
			return err
		}
	}
	tOff := (n + int64(len(blocks))) * q.cs
	if err := q.writeTable(tOff, table); err != nil {
		return err
	}
	if err := q.file.Flush(); err != nil {
		return err
	}
	if err := q.switchRefTable(tOff, nT); err != nil {
		return err
	}
	q.refTable = table
	clear(q.refBlocks)
	q.fileEnd = tOff + nT*q.cs
	// Clusters of the old structure are now free: remember them.
	for ci := int64(1); ci < n; ci++ {
		if counts[ci] == 0 {
			q.free = append(q.free, ci*q.cs)
		}
	}
	// Hand them out lowest first.
	for i, j := 0, len(q.free)-1; i < j; i, j = i+1, j-1 {
		q.free[i], q.free[j] = q.free[j], q.free[i]
	}
	return nil
}
