package disk

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Options says how to open an image.
type Options struct {
	// Format is "raw", "qcow2" or "" to probe (Open only).
	Format string
	// ReadOnly opens without write access.
	ReadOnly bool
	// Cache is QEMU's cache mode: writeback (default), writethrough, none,
	// directsync or unsafe.
	Cache string
	// Lock takes QEMU-compatible OFD image locks (QEMU's locking=on).
	Lock bool
}

// cacheMode is a parsed QEMU cache= value.
type cacheMode struct {
	direct       bool // O_DIRECT: bypass the host page cache
	writeThrough bool // every write is durable when it completes
	noFlush      bool // flushes are ignored (unsafe)
}

func parseCache(s string) (cacheMode, error) {
	switch s {
	case "", "writeback":
		return cacheMode{}, nil
	case "writethrough":
		return cacheMode{writeThrough: true}, nil
	case "none":
		return cacheMode{direct: true}, nil
	case "directsync":
		return cacheMode{direct: true, writeThrough: true}, nil
	case "unsafe":
		return cacheMode{noFlush: true}, nil
	}
	return cacheMode{}, fmt.Errorf("invalid cache option")
}

// directAlign is the alignment used for O_DIRECT offsets, lengths and
// buffers. 4096 covers both 512e and 4Kn disks.
const directAlign = 4096

// Raw is a raw image file (also the file layer under qcow2).
type Raw struct {
	f        *os.File
	path     string
	readOnly bool
	cache    cacheMode
	size     atomic.Int64
	// rmw serialises O_DIRECT read-modify-write of partial blocks against
	// other writes; aligned writes share it.
	rmw sync.RWMutex
}

// OpenRaw opens a raw image.
func OpenRaw(path string, opts Options) (*Raw, error) {
	r, err := openRaw(path, opts, opts.ReadOnly)
	if err != nil {
		return nil, err
	}
	if opts.Lock {
		if err := r.lock("raw"); err != nil {
			r.Close()
			return nil, err
		}
	}
	return r, nil
}

func openRaw(path string, opts Options, readOnly bool) (*Raw, error) {
	cm, err := parseCache(opts.Cache)
	if err != nil {
		return nil, err
	}
	flags := os.O_RDWR
	if readOnly {
		flags = os.O_RDONLY
	}
	if cm.direct {
		flags |= unix.O_DIRECT
	}
	if cm.writeThrough {
		flags |= unix.O_DSYNC
	}
	f, err := os.OpenFile(path, flags|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, openErr(path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, openErr(path, err)
	}
	if st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("'%s' is a directory", path)
	}
	r := &Raw{f: f, path: path, readOnly: readOnly, cache: cm}
	size, err := f.Seek(0, io.SeekEnd) // works for block devices too
	if err != nil {
		f.Close()
		return nil, openErr(path, err)
	}
	r.size.Store(size)
	return r, nil
}

// openErr words an open failure as QEMU does.
func openErr(path string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("Could not open '%s': %s", path, errText(err))
}

// ReadOnly reports whether writes are refused.
func (r *Raw) ReadOnly() bool { return r.readOnly }

// Size is the file size.
func (r *Raw) Size() int64 { return r.size.Load() }

// Path is the file name the image was opened with.
func (r *Raw) Path() string { return r.path }

// ReadAt reads len(p) bytes at off. Bytes past the end of the file read as
// an error (io.EOF), as for os.File.
func (r *Raw) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if !r.cache.direct || (isAligned(p) && off%directAlign == 0 && len(p)%directAlign == 0) {
		return r.f.ReadAt(p, off)
	}
	start := off &^ (directAlign - 1)
	end := alignUp(off+int64(len(p)), directAlign)
	buf := alignedBuf(int(end - start))
	n, err := r.f.ReadAt(buf, start)
	got := n - int(off-start)
	if got < 0 {
		got = 0
	}
	if got >= len(p) {
		copy(p, buf[off-start:])
		return len(p), nil
	}
	copy(p, buf[off-start:off-start+int64(got)])
	if err == nil {
		err = io.EOF
	}
	return got, err
}

// WriteAt writes p at off, growing the file if needed.
func (r *Raw) WriteAt(p []byte, off int64) (int, error) {
	if r.readOnly {
		return 0, errReadOnly
	}
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	var n int
	var err error
	if !r.cache.direct || (isAligned(p) && off%directAlign == 0 && len(p)%directAlign == 0) {
		r.rmw.RLock()
		n, err = r.f.WriteAt(p, off)
		r.rmw.RUnlock()
	} else {
		n, err = r.writeUnaligned(p, off)
	}
	r.grow(off + int64(n))
	return n, err
}

// writeUnaligned handles an O_DIRECT write that is not block aligned with
// an aligned bounce buffer, reading the partial head and tail blocks first.
func (r *Raw) writeUnaligned(p []byte, off int64) (int, error) {
	start := off &^ (directAlign - 1)
	end := alignUp(off+int64(len(p)), directAlign)
	buf := alignedBuf(int(end - start))
	r.rmw.Lock()
	defer r.rmw.Unlock()
	size := r.size.Load()
	if start != off || end != off+int64(len(p)) {
		// Past EOF the buffer stays zero; a short read is fine.
		if _, err := r.f.ReadAt(buf, start); err != nil && err != io.EOF {
			return 0, err
		}
	}
	copy(buf[off-start:], p)
	if _, err := r.f.WriteAt(buf, start); err != nil {
		return 0, err
	}
	// The aligned write may have extended the file past the caller's end.
	if want := off + int64(len(p)); end > size && end > want {
		if err := r.f.Truncate(max(want, size)); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (r *Raw) grow(end int64) {
	for {
		cur := r.size.Load()
		if end <= cur || r.size.CompareAndSwap(cur, end) {
			return
		}
	}
}

// Truncate sets the file size.
func (r *Raw) Truncate(size int64) error {
	if r.readOnly {
		return errReadOnly
	}
	r.rmw.Lock()
	defer r.rmw.Unlock()
	if err := r.f.Truncate(size); err != nil {
		return err
	}
	r.size.Store(size)
	return nil
}

// Flush makes completed writes durable (a no-op with cache=unsafe).
func (r *Raw) Flush() error {
	if r.cache.noFlush || r.readOnly {
		return nil
	}
	return unix.Fdatasync(int(r.f.Fd()))
}

// Discard punches a hole; the range then reads as zeros. Filesystems that
// cannot punch holes make it a no-op, which Discard allows.
func (r *Raw) Discard(off, n int64) error {
	if r.readOnly {
		return errReadOnly
	}
	if n <= 0 {
		return nil
	}
	err := unix.Fallocate(int(r.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if err == unix.EOPNOTSUPP || err == unix.ENOSYS {
		return nil
	}
	return err
}

// WriteZeroes makes the range read as zeros, without writing data where
// the filesystem can do it with fallocate.
func (r *Raw) WriteZeroes(off, n int64) error {
	if r.readOnly {
		return errReadOnly
	}
	if n <= 0 {
		return nil
	}
	fd := int(r.f.Fd())
	mode := uint32(unix.FALLOC_FL_ZERO_RANGE)
	if off+n <= r.size.Load() {
		mode |= unix.FALLOC_FL_KEEP_SIZE
	}
	err := unix.Fallocate(fd, mode, off, n)
	if err == nil {
		r.grow(off + n)
		return r.syncIfWriteThrough()
	}
	if err != unix.EOPNOTSUPP && err != unix.ENOSYS && err != unix.EINVAL {
		return err
	}
	if off+n <= r.size.Load() {
		if unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n) == nil {
			return r.syncIfWriteThrough()
		}
	}
	return writeZeros(r, off, n)
}

func (r *Raw) syncIfWriteThrough() error {
	if r.cache.writeThrough {
		return unix.Fdatasync(int(r.f.Fd()))
	}
	return nil
}

// writeZeros writes zeros with plain writes, in bounded chunks.
func writeZeros(w io.WriterAt, off, n int64) error {
	zero := alignedBuf(int(min(n, 1<<20)))
	for n > 0 {
		c := min(n, int64(len(zero)))
		if _, err := w.WriteAt(zero[:c], off); err != nil {
			return err
		}
		off += c
		n -= c
	}
	return nil
}

// Close releases the file and its locks.
func (r *Raw) Close() error { return r.f.Close() }

var errReadOnly = errors.New("image is read-only")

func alignUp(x, a int64) int64 { return (x + a - 1) &^ (a - 1) }
