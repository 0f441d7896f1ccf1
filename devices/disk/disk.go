// Package disk defines the block-device backend interface that virtio-blk
// serves, and the image formats that implement it (raw, qcow2).
package disk

import "io"

// Disk is an open disk image. Offsets and lengths are in bytes. Methods are
// safe for concurrent use: virtio-blk serves many requests at once.
type Disk interface {
	io.ReaderAt
	io.WriterAt
	// Size is the virtual disk size in bytes.
	Size() int64
	// Flush makes every completed write durable.
	Flush() error
	// Discard tells the image the range is unused; reads after it return
	// zeros or the old data (as the format allows), never garbage.
	Discard(off, n int64) error
	// WriteZeroes makes the range read as zeros.
	WriteZeroes(off, n int64) error
	// ReadOnly reports whether writes are refused.
	ReadOnly() bool
	// Close releases the image and its locks.
	Close() error
}
