package disk

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// fileID identifies a file for backing-loop detection.
type fileID struct {
	dev, ino uint64
	path     string
}

// Open opens an image as a Disk: raw, qcow2 or probed (Format ""), with
// its backing chain.
func Open(path string, opts Options) (Disk, error) {
	return openChain(path, opts, nil)
}

func openChain(path string, opts Options, chain []fileID) (Disk, error) {
	switch opts.Format {
	case "", "raw", "qcow2":
	default:
		return nil, fmt.Errorf("Unknown driver '%s'", opts.Format)
	}
	f, err := openRaw(path, opts, opts.ReadOnly)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.f.Fd()), &st); err != nil {
		f.Close()
		return nil, openErr(path, err)
	}
	id := fileID{dev: st.Dev, ino: st.Ino, path: path}
	for i, c := range chain {
		if c.dev == id.dev && c.ino == id.ino {
			f.Close()
			var names []string
			for _, c := range chain[i:] {
				names = append(names, c.path)
			}
			return nil, fmt.Errorf("Backing file loop detected: %s -> %s", strings.Join(names, " -> "), path)
		}
	}
	if len(chain) >= 64 {
		f.Close()
		return nil, fmt.Errorf("Backing chain of '%s' is deeper than 64 images", chain[0].path)
	}
	format := opts.Format
	if format == "" {
		format = probe(f)
	}
	if opts.Lock {
		if err := f.lock(format); err != nil {
			f.Close()
			return nil, err
		}
	}
	if format == "raw" {
		return f, nil
	}
	q, err := openQcow2(f, opts, append(chain, id))
	if err != nil {
		f.Close()
		return nil, err
	}
	return q, nil
}

// probe tells qcow2 from raw by the magic, like QEMU's format probing.
func probe(f *Raw) string {
	var m [4]byte
	if _, err := f.ReadAt(m[:], 0); err == nil && binary.BigEndian.Uint32(m[:]) == qcowMagic {
		return "qcow2"
	}
	return "raw"
}

// openBacking opens an overlay's backing file read-only. A relative name
// is relative to the overlay's directory.
func openBacking(overlay, name, format string, opts Options, chain []fileID) (Disk, error) {
	path := name
	if !filepath.IsAbs(name) {
		path = filepath.Join(filepath.Dir(overlay), name)
	}
	bopts := opts
	bopts.ReadOnly = true
	bopts.Format = format
	d, err := openChain(path, bopts, chain)
	if err != nil {
		if strings.HasPrefix(err.Error(), "Backing file loop") {
			return nil, err
		}
		return nil, fmt.Errorf("Could not open backing file: %v", err)
	}
	return d, nil
}

// Create makes an empty qcow2 v3 image of size bytes with 2^clusterBits
// byte clusters (0 means 64 KiB) and 16-bit refcounts.
func Create(path string, size int64, clusterBits int) error {
	return create(path, size, clusterBits, "", "")
}

// CreateOverlay makes a qcow2 v3 image backed by backingPath (format
// backingFmt, "" to probe). size <= 0 takes the backing image's size.
// backingPath is stored as given: relative names resolve against the
// overlay's directory when it is opened.
func CreateOverlay(path, backingPath, backingFmt string, size int64) error {
	if size <= 0 {
		bp := backingPath
		if !filepath.IsAbs(bp) {
			bp = filepath.Join(filepath.Dir(path), bp)
		}
		b, err := Open(bp, Options{ReadOnly: true, Format: backingFmt})
		if err != nil {
			return fmt.Errorf("Could not open backing image: %v", err)
		}
		size = b.Size()
		b.Close()
	}
	return create(path, size, 16, backingPath, backingFmt)
}

func create(path string, size int64, clusterBits int, backing, backingFmt string) error {
	if clusterBits == 0 {
		clusterBits = 16
	}
	if clusterBits < minClusterBits || clusterBits > maxClusterBits {
		return fmt.Errorf("Cluster size must be a power of two between 512 and 2048k")
	}
	if size < 0 || size > maxImageSize {
		return fmt.Errorf("Invalid image size %d", size)
	}
	if len(backing) > maxBackingName {
		return fmt.Errorf("Backing file name too long")
	}
	cs := int64(1) << clusterBits
	const headerLen = 112
	hdr := make([]byte, headerLen, cs)
	be := binary.BigEndian
	// Extensions: backing format, then the end marker, then the name.
	if backingFmt != "" {
		hdr = be.AppendUint32(hdr, extBackingFmt)
		hdr = be.AppendUint32(hdr, uint32(len(backingFmt)))
		hdr = append(hdr, backingFmt...)
		for len(hdr)%8 != 0 {
			hdr = append(hdr, 0)
		}
	}
	hdr = append(hdr, make([]byte, 8)...)
	backingOff := int64(0)
	if backing != "" {
		backingOff = int64(len(hdr))
		hdr = append(hdr, backing...)
	}
	if int64(len(hdr)) > cs {
		return fmt.Errorf("Backing file name too long for a %d-byte cluster", cs)
	}

	l2Cover := cs * (cs / 8)
	l1Size := divUp64(size, l2Cover)
	if l1Size*8 > maxL1Bytes {
		return fmt.Errorf("Image size %d too large for %d-byte clusters", size, cs)
	}
	l1Clusters := max(1, divUp64(l1Size*8, cs))
	start := 1 + l1Clusters
	counts := make([]uint64, start)
	for i := range counts {
		counts[i] = 1
	}
	const refBits = 16
	blocks, table, nT, err := refLayout(counts, start, cs, refBits)
	if err != nil {
		return err
	}
	tOff := (start + int64(len(blocks))) * cs

	be.PutUint32(hdr[0:], qcowMagic)
	be.PutUint32(hdr[4:], 3)
	be.PutUint64(hdr[8:], uint64(backingOff))
	be.PutUint32(hdr[16:], uint32(len(backing)))
	be.PutUint32(hdr[20:], uint32(clusterBits))
	be.PutUint64(hdr[24:], uint64(size))
	be.PutUint32(hdr[36:], uint32(l1Size))
	be.PutUint64(hdr[40:], uint64(cs))
	be.PutUint64(hdr[48:], uint64(tOff))
	be.PutUint32(hdr[56:], uint32(nT))
	be.PutUint32(hdr[96:], 4) // refcount_order: 16 bits
	be.PutUint32(hdr[100:], headerLen)

	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return openErr(path, err)
	}
	defer f.Close()
	img := make([]byte, (tOff/cs+nT)*cs)
	copy(img, hdr)
	for i, b := range blocks {
		copy(img[(start+int64(i))*cs:], b)
	}
	for i, v := range table {
		be.PutUint64(img[tOff+int64(i)*8:], v)
	}
	if _, err := f.WriteAt(img, 0); err != nil {
		return err
	}
	return f.Sync()
}
