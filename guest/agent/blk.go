package main

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/govmm/govmm/guest/agent/proto"
)

// alignedBuf returns a page-aligned buffer of n bytes, as O_DIRECT needs.
// Anonymous mmap memory is page aligned without any pointer arithmetic.
func alignedBuf(n int) ([]byte, func(), error) {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap %d bytes: %w", n, err)
	}
	return b, func() { unix.Munmap(b) }, nil
}

// deviceSize is the size of a block device or regular file: seeking to
// the end works for both.
func deviceSize(fd int) (int64, error) {
	n, err := unix.Seek(fd, 0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("seek to end: %w", err)
	}
	return n, nil
}

// blkPattern writes the proto pattern to [off, off+length) of path with
// O_DIRECT, flushes (a virtio-blk FLUSH request), reads the range back with
// O_DIRECT into a zeroed buffer and verifies it. The write bypasses the page
// cache, so the read really goes to the device.
func blkPattern(path string, off, length int64, seed uint64) (proto.BlkDetail, error) {
	d := proto.BlkDetail{Device: path, Offset: off, Length: length, Seed: seed}
	if off%blkAlign != 0 || length%blkAlign != 0 || length <= 0 {
		return d, fmt.Errorf("offset %d and length %d must be positive multiples of %d", off, length, blkAlign)
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return d, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	if d.Size, err = deviceSize(fd); err != nil {
		return d, err
	}
	if off+length > d.Size {
		return d, fmt.Errorf("range [%d, %d) is beyond the end of %s (%d bytes)", off, off+length, path, d.Size)
	}
	buf, free, err := alignedBuf(int(length))
	if err != nil {
		return d, err
	}
	defer free()

	proto.Fill(buf, seed, off)
	if err := pwriteFull(fd, buf, off); err != nil {
		return d, fmt.Errorf("write: %w", err)
	}
	if err := unix.Fsync(fd); err != nil {
		return d, fmt.Errorf("fsync: %w", err)
	}
	clear(buf)
	if err := preadFull(fd, buf, off); err != nil {
		return d, fmt.Errorf("read: %w", err)
	}
	return d, proto.Verify(buf, seed, off)
}

func pwriteFull(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("short write at offset %d", off)
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

func preadFull(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pread(fd, b, off)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("unexpected end of device at offset %d", off)
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}
