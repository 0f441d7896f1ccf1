package disk

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Qcow2 is an open qcow2 (version 2 or 3) image.
//
// Concurrency: one mutex serialises every request, data I/O included.
// That is simple and safe (a discard cannot free a cluster under a
// concurrent read) at the cost of parallelism; finer locking can come later.
//
// Crash safety follows QEMU's ordering: a new data cluster is written and
// its refcount set before any L2 entry points to it; L2 tables are written
// (after a flush) before L1 entries point to them; a cluster's refcount is
// dropped only after the L2 entry that referenced it is durably cleared.
// L2 updates are cached and written back on Flush, eviction or Close, so a
// crash loses at most unflushed writes and leaks their clusters.
type Qcow2 struct {
	mu       sync.Mutex
	file     *Raw
	h        *qcowHeader
	readOnly bool
	cache    cacheMode

	clusterBits uint
	cs          int64 // cluster size
	l2Entries   int64
	size        int64
	backing     Disk

	l1      []uint64
	l1Dirty map[int]bool

	l2     map[uint64]*l2Table // by host offset
	l2Max  int
	l2Tick uint64

	refTable   []uint64
	refBlocks  map[uint64][]byte
	refBits    uint
	rbEntries  int64 // refcounts per refcount block
	fileEnd    int64 // cluster-aligned end of used file space
	free       []int64
	pendFree   []int64 // clusters to unref once the L2 update is durable
	compCache  []byte  // last decompressed cluster
	compCached uint64  // its L2 entry
	closed     bool
}

type l2Table struct {
	e     []uint64
	dirty bool
	used  uint64
}

// openQcow2 opens a qcow2 image on an already opened file. chain is the
// backing chain so far, for loop detection.
func openQcow2(file *Raw, opts Options, chain []fileID) (*Qcow2, error) {
	cm, _ := parseCache(opts.Cache)
	head := make([]byte, min(file.Size(), 1<<maxClusterBits))
	if _, err := io.ReadFull(io.NewSectionReader(file, 0, int64(len(head))), head); err != nil {
		return nil, fmt.Errorf("Could not read qcow2 header: %v", err)
	}
	h, err := parseQcowHeader(head, file.Size())
	if err != nil {
		return nil, err
	}
	q := &Qcow2{
		file:        file,
		h:           h,
		readOnly:    file.ReadOnly(),
		cache:       cm,
		clusterBits: uint(h.clusterBits),
		cs:          1 << h.clusterBits,
		l2Entries:   1 << (h.clusterBits - 3),
		size:        int64(h.size),
		l1Dirty:     map[int]bool{},
		l2:          map[uint64]*l2Table{},
		refBlocks:   map[uint64][]byte{},
		refBits:     1 << h.refcountOrder,
	}
	q.rbEntries = q.cs * 8 / int64(q.refBits)
	q.l2Max = max(4, int((4<<20)/q.cs))
	q.fileEnd = alignUp(file.Size(), q.cs)

	if !q.readOnly {
		if h.incompat&incompatCorrupt != 0 {
			return nil, fmt.Errorf("qcow2: Image is corrupt; cannot be opened read/write")
		}
		if h.nbSnapshots > 0 {
			return nil, fmt.Errorf("qcow2 images with internal snapshots can only be opened read-only")
		}
	}

	// L1 and refcount tables are read whole: their sizes were bounded by
	// the header parser.
	if q.l1, err = q.readTable(h.l1Offset, int64(h.l1Size)); err != nil {
		return nil, fmt.Errorf("Could not read L1 table: %v", err)
	}
	if q.refTable, err = q.readTable(h.refTableOffset, int64(h.refTableCluster)*q.cs/8); err != nil {
		return nil, fmt.Errorf("Could not read refcount table: %v", err)
	}

	if h.backingFile != "" {
		q.backing, err = openBacking(file.Path(), h.backingFile, h.backingFmt, opts, chain)
		if err != nil {
			return nil, err
		}
	}

	if !q.readOnly {
		if err := q.prepareWritable(); err != nil {
			q.closeBacking()
			return nil, err
		}
	}
	return q, nil
}

func (q *Qcow2) closeBacking() {
	if q.backing != nil {
		q.backing.Close()
	}
}

// prepareWritable repairs an image left dirty and drops autoclear bits for
// extensions we do not maintain (as QEMU does), before the first write.
func (q *Qcow2) prepareWritable() error {
	if q.h.incompat&incompatDirty != 0 {
		if err := q.rebuildRefcounts(); err != nil {
			return fmt.Errorf("Could not repair dirty image: %v", err)
		}
		q.h.incompat &^= incompatDirty
		if err := q.writeHeaderU64(72, q.h.incompat); err != nil {
			return err
		}
	}
	if q.h.version >= 3 && q.h.autoclear != 0 {
		q.h.autoclear = 0
		if err := q.writeHeaderU64(88, 0); err != nil {
			return err
		}
	}
	return q.file.Flush()
}

func (q *Qcow2) writeHeaderU64(off int64, v uint64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	_, err := q.file.WriteAt(b[:], off)
	return err
}

// readTable reads n big-endian u64 entries at off.
func (q *Qcow2) readTable(off uint64, n int64) ([]uint64, error) {
	buf := make([]byte, n*8)
	if _, err := q.file.ReadAt(buf, int64(off)); err != nil {
		return nil, err
	}
	t := make([]uint64, n)
	for i := range t {
		t[i] = binary.BigEndian.Uint64(buf[i*8:])
	}
	return t, nil
}

// Size is the virtual disk size.
func (q *Qcow2) Size() int64 { return q.size }

// ReadOnly reports whether writes are refused.
func (q *Qcow2) ReadOnly() bool { return q.readOnly }

// Version is the qcow2 version (2 or 3).
func (q *Qcow2) Version() int { return int(q.h.version) }

// Backing returns the backing image, or nil.
func (q *Qcow2) Backing() Disk { return q.backing }

func (q *Qcow2) checkRange(off int64, n int64) error {
	if off < 0 || n < 0 || off > q.size || n > q.size-off {
		return fmt.Errorf("request [%d, +%d) outside the %d-byte disk", off, n, q.size)
	}
	if q.closed {
		return errors.New("image is closed")
	}
	return nil
}

// ---- L2 lookup ----

// l2Table returns the L2 table for virtual offset vo; with alloc it
// creates one when the L1 entry is empty. It returns nil without alloc.
func (q *Qcow2) l2Table(vo int64, alloc bool) (*l2Table, error) {
	l1i := vo >> (q.clusterBits*2 - 3)
	if l1i >= int64(len(q.l1)) {
		return nil, fmt.Errorf("offset %d beyond L1 table", vo)
	}
	l1e := q.l1[l1i]
	off := l1e & offsetMask
	if off == 0 {
		if !alloc {
			return nil, nil
		}
		host, err := q.allocCluster()
		if err != nil {
			return nil, err
		}
		t := &l2Table{e: make([]uint64, q.l2Entries), dirty: true}
		if err := q.cacheL2(uint64(host), t); err != nil {
			return nil, err
		}
		q.l1[l1i] = uint64(host) | oflagCopied
		q.l1Dirty[int(l1i)] = true
		return t, nil
	}
	if alloc && l1e&oflagCopied == 0 {
		return nil, fmt.Errorf("L2 table at %#x is shared (refcount > 1): not supported for writing", off)
	}
	if t, ok := q.l2[off]; ok {
		q.l2Tick++
		t.used = q.l2Tick
		return t, nil
	}
	if off%uint64(q.cs) != 0 {
		return nil, fmt.Errorf("qcow2 corrupt: L2 table offset %#x unaligned", off)
	}
	if int64(off)+q.cs > q.file.Size() {
		return nil, fmt.Errorf("qcow2 corrupt: L2 table offset %#x beyond end of file", off)
	}
	e, err := q.readTable(off, q.l2Entries)
	if err != nil {
		return nil, fmt.Errorf("Could not read L2 table: %v", err)
	}
	t := &l2Table{e: e}
	return t, q.cacheL2(off, t)
}

func (q *Qcow2) cacheL2(off uint64, t *l2Table) error {
	if len(q.l2) >= q.l2Max {
		var victim uint64
		var oldest uint64 = ^uint64(0)
		for o, c := range q.l2 {
			if c.used < oldest {
				victim, oldest = o, c.used
			}
		}
		if q.l2[victim].dirty {
			if err := q.commit(); err != nil {
				return err
			}
		}
		delete(q.l2, victim)
	}
	q.l2Tick++
	t.used = q.l2Tick
	q.l2[off] = t
	return nil
}

func (q *Qcow2) l2Index(vo int64) int64 { return (vo >> q.clusterBits) & (q.l2Entries - 1) }

// entry returns the L2 entry for vo (0 if unallocated).
func (q *Qcow2) entry(vo int64) (uint64, error) {
	t, err := q.l2Table(vo, false)
	if err != nil || t == nil {
		return 0, err
	}
	return t.e[q.l2Index(vo)], nil
}

func (q *Qcow2) isZero(e uint64) bool {
	return q.h.version >= 3 && e&oflagCompressed == 0 && e&oflagZero != 0
}

// ---- reading ----

// ReadAt reads len(p) bytes at virtual offset off.
func (q *Qcow2) ReadAt(p []byte, off int64) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.checkRange(off, int64(len(p))); err != nil {
		return 0, err
	}
	done := 0
	for done < len(p) {
		vo := off + int64(done)
		in := vo & (q.cs - 1)
		n := min(int64(len(p)-done), q.cs-in)
		e, err := q.entry(vo)
		if err == nil {
			err = q.readEntry(p[done:done+int(n)], vo, e)
		}
		if err != nil {
			return done, err
		}
		done += int(n)
	}
	return done, nil
}

// readEntry fills p (within one cluster) at vo given its L2 entry.
func (q *Qcow2) readEntry(p []byte, vo int64, e uint64) error {
	in := vo & (q.cs - 1)
	switch {
	case e&oflagCompressed != 0:
		c, err := q.decompress(e)
		if err != nil {
			return err
		}
		copy(p, c[in:])
		return nil
	case q.isZero(e):
		clear(p)
		return nil
	case e&offsetMask == 0:
		return q.readBacking(p, vo)
	}
	host := e & offsetMask
	if err := q.checkData(host); err != nil {
		return err
	}
	if _, err := q.file.ReadAt(p, int64(host)+in); err != nil {
		if err == io.EOF {
			return fmt.Errorf("qcow2 corrupt: data cluster %#x beyond end of file", host)
		}
		return err
	}
	return nil
}

// checkData rejects a data cluster offset that is unaligned or past the
// space the image uses, so a hostile L2 entry cannot make us read or write
// outside the file.
func (q *Qcow2) checkData(host uint64) error {
	if host%uint64(q.cs) != 0 {
		return fmt.Errorf("qcow2 corrupt: data cluster offset %#x unaligned", host)
	}
	if host >= uint64(q.fileEnd) {
		return fmt.Errorf("qcow2 corrupt: data cluster %#x beyond end of file", host)
	}
	return nil
}

// readBacking reads from the backing file, zeros where there is none or
// past its end.
func (q *Qcow2) readBacking(p []byte, vo int64) error {
	n := int64(0)
	if q.backing != nil {
		n = max(0, min(int64(len(p)), q.backing.Size()-vo))
	}
	if n > 0 {
		if _, err := q.backing.ReadAt(p[:n], vo); err != nil {
			return err
		}
	}
	clear(p[n:])
	return nil
}

// compressedRange is the host byte range a compressed entry covers, as
// QEMU counts it for refcounts: whole 512-byte sectors.
func (q *Qcow2) compressedRange(e uint64) (start, end uint64) {
	x := 62 - (q.clusterBits - 8)
	off := e & (1<<x - 1)
	nsec := (e >> x) & (1<<(62-x) - 1)
	start = off &^ 511
	return start, start + (nsec+1)*512
}

func (q *Qcow2) decompress(e uint64) ([]byte, error) {
	if q.compCache != nil && q.compCached == e {
		return q.compCache, nil
	}
	x := 62 - (q.clusterBits - 8)
	off := e & (1<<x - 1)
	_, end := q.compressedRange(e)
	fsize := uint64(q.file.Size())
	if off >= fsize {
		return nil, fmt.Errorf("qcow2 corrupt: compressed cluster %#x beyond end of file", off)
	}
	end = min(end, fsize)
	src := make([]byte, end-off)
	if _, err := q.file.ReadAt(src, int64(off)); err != nil {
		return nil, err
	}
	out := make([]byte, q.cs)
	zr := flate.NewReader(bytes.NewReader(src))
	_, err := io.ReadFull(zr, out)
	zr.Close()
	if err != nil {
		return nil, fmt.Errorf("qcow2: bad compressed cluster at %#x: %v", off, err)
	}
	q.compCache, q.compCached = out, e
	return out, nil
}

// ---- writing ----

// WriteAt writes p at virtual offset off.
func (q *Qcow2) WriteAt(p []byte, off int64) (int, error) {
	if q.readOnly {
		return 0, errReadOnly
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.checkRange(off, int64(len(p))); err != nil {
		return 0, err
	}
	done := 0
	for done < len(p) {
		vo := off + int64(done)
		in := vo & (q.cs - 1)
		n := min(int64(len(p)-done), q.cs-in)
		if err := q.writeCluster(p[done:done+int(n)], vo); err != nil {
			return done, err
		}
		done += int(n)
	}
	return done, q.writeThrough()
}

func (q *Qcow2) writeThrough() error {
	if !q.cache.writeThrough {
		return nil
	}
	if err := q.commit(); err != nil {
		return err
	}
	return q.file.Flush()
}

// writeCluster writes p (within one cluster) at vo.
func (q *Qcow2) writeCluster(p []byte, vo int64) error {
	t, err := q.l2Table(vo, true)
	if err != nil {
		return err
	}
	idx := q.l2Index(vo)
	e := t.e[idx]
	in := vo & (q.cs - 1)
	host := e & offsetMask
	normal := e&oflagCompressed == 0 && host != 0 && !q.isZero(e)
	if normal {
		if e&oflagCopied == 0 {
			return fmt.Errorf("cluster at %#x is shared (refcount > 1): not supported for writing", host)
		}
		if err := q.checkData(host); err != nil {
			return err
		}
		_, err := q.file.WriteAt(p, int64(host)+in)
		return err
	}

	// Allocate: the new cluster gets its old content (backing, zeros or
	// decompressed data) merged with p, written whole.
	buf := make([]byte, q.cs)
	if int64(len(p)) != q.cs {
		base := vo &^ (q.cs - 1)
		if err := q.readEntry(buf[:min(q.cs, q.size-base)], base, e); err != nil {
			return err
		}
	}
	copy(buf[in:], p)
	fresh := host == 0 || e&oflagCompressed != 0
	if !fresh {
		if err := q.checkData(host); err != nil {
			return err
		}
	}
	if fresh {
		h, err := q.allocCluster()
		if err != nil {
			return err
		}
		if e&oflagCompressed != 0 {
			q.unrefCompressedLater(e)
		}
		host = uint64(h)
	}
	if _, err := q.file.WriteAt(buf, int64(host)); err != nil {
		return err
	}
	t.e[idx] = host | oflagCopied
	t.dirty = true
	if e&oflagCompressed != 0 && q.compCached == e {
		q.compCache = nil
	}
	return nil
}

func (q *Qcow2) unrefCompressedLater(e uint64) {
	start, end := q.compressedRange(e)
	for c := int64(start) &^ (q.cs - 1); c < int64(end); c += q.cs {
		q.pendFree = append(q.pendFree, c)
	}
}

// allocCluster returns a free cluster with its refcount set to 1 (written
// before anything can point to it).
func (q *Qcow2) allocCluster() (int64, error) {
	var c int64
	if n := len(q.free); n > 0 {
		c = q.free[n-1]
		q.free = q.free[:n-1]
	} else {
		c = q.fileEnd
		q.fileEnd += q.cs
	}
	if err := q.setRefcount(c, 1); err != nil {
		return 0, err
	}
	return c, nil
}

// commit writes cached metadata back in crash-safe order.
func (q *Qcow2) commit() error {
	var dirty []uint64
	for off, t := range q.l2 {
		if t.dirty {
			dirty = append(dirty, off)
		}
	}
	if len(dirty) > 0 || len(q.l1Dirty) > 0 {
		// Data and refcounts must be durable before L2 points at them.
		if err := q.file.Flush(); err != nil {
			return err
		}
		for _, off := range dirty {
			t := q.l2[off]
			buf := make([]byte, q.cs)
			for i, v := range t.e {
				binary.BigEndian.PutUint64(buf[i*8:], v)
			}
			if _, err := q.file.WriteAt(buf, int64(off)); err != nil {
				return err
			}
			t.dirty = false
		}
	}
	if len(q.l1Dirty) > 0 {
		if len(dirty) > 0 {
			if err := q.file.Flush(); err != nil {
				return err
			}
		}
		for i := range q.l1Dirty {
			var b [8]byte
			binary.BigEndian.PutUint64(b[:], q.l1[i])
			if _, err := q.file.WriteAt(b[:], int64(q.h.l1Offset)+int64(i)*8); err != nil {
				return err
			}
			delete(q.l1Dirty, i)
		}
	}
	if len(q.pendFree) > 0 {
		// The L2 entries that referenced these must be durably gone first.
		if err := q.file.Flush(); err != nil {
			return err
		}
		pend := q.pendFree
		q.pendFree = nil
		for _, c := range pend {
			if err := q.unref(c); err != nil {
				return err
			}
		}
	}
	return nil
}

func (q *Qcow2) unref(c int64) error {
	rc, err := q.refcount(c)
	if err != nil {
		return err
	}
	if rc == 0 {
		return fmt.Errorf("qcow2 corrupt: freeing cluster %#x with refcount 0", c)
	}
	if err := q.setRefcount(c, rc-1); err != nil {
		return err
	}
	if rc == 1 {
		q.free = append(q.free, c)
	}
	return nil
}

// ---- discard and zeroes ----

// Discard frees whole clusters in the range. With a backing file a
// discarded cluster becomes a zero cluster (v3) so old backing data does
// not reappear; v2 overlays keep their data.
func (q *Qcow2) Discard(off, n int64) error {
	return q.unmap(off, n, false)
}

// WriteZeroes makes the range read as zeros: whole clusters become zero
// clusters (v3) or unallocated (no backing), the rest is written.
func (q *Qcow2) WriteZeroes(off, n int64) error {
	return q.unmap(off, n, true)
}

func (q *Qcow2) unmap(off, n int64, zero bool) error {
	if q.readOnly {
		return errReadOnly
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.checkRange(off, n); err != nil {
		return err
	}
	end := off + n
	for vo := off; vo < end; {
		base := vo &^ (q.cs - 1)
		cend := min(base+q.cs, q.size)
		if vo != base || end < cend {
			// Partial cluster: discard may ignore it, zeroes must write.
			stop := min(end, cend)
			if zero {
				if err := q.writeCluster(make([]byte, stop-vo), vo); err != nil {
					return err
				}
			}
			vo = stop
			continue
		}
		if err := q.unmapCluster(vo, zero); err != nil {
			return err
		}
		vo = cend
	}
	if err := q.commit(); err != nil {
		return err
	}
	return q.writeThrough()
}

func (q *Qcow2) unmapCluster(vo int64, zero bool) error {
	var want uint64 // new entry
	switch {
	case q.backing == nil:
		want = 0
	case q.h.version >= 3:
		want = oflagZero
	case zero: // v2 with backing: no zero flag, write zeros
		return q.writeCluster(make([]byte, q.cs), vo)
	default:
		return nil
	}
	t, err := q.l2Table(vo, want != 0)
	if err != nil || t == nil {
		return err
	}
	idx := q.l2Index(vo)
	e := t.e[idx]
	if e == want {
		return nil
	}
	if e&oflagCompressed != 0 {
		q.unrefCompressedLater(e)
	} else if host := e & offsetMask; host != 0 {
		if e&oflagCopied == 0 {
			return fmt.Errorf("cluster at %#x is shared (refcount > 1): not supported", host)
		}
		q.pendFree = append(q.pendFree, int64(host))
	}
	t.e[idx] = want
	t.dirty = true
	q.compCache = nil
	return nil
}

// Flush writes back metadata and makes all completed writes durable.
func (q *Qcow2) Flush() error {
	if q.readOnly {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.commit(); err != nil {
		return err
	}
	return q.file.Flush()
}

// Close writes back metadata and releases the image, its backing chain
// and locks.
func (q *Qcow2) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil
	}
	q.closed = true
	var err error
	if !q.readOnly {
		err = q.commit()
		if err == nil {
			err = q.file.Flush()
		}
	}
	if cerr := q.file.Close(); err == nil {
		err = cerr
	}
	if q.backing != nil {
		if cerr := q.backing.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
