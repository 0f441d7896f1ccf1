package disk

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// qcow2 on-disk constants (docs/interop/qcow2.txt).
const (
	qcowMagic = 0x514649fb // "QFI\xfb"

	qcowV2HeaderLen = 72
	qcowV3HeaderLen = 104

	// Incompatible feature bits.
	incompatDirty        = 1 << 0
	incompatCorrupt      = 1 << 1
	incompatExternalData = 1 << 2
	incompatCompression  = 1 << 3
	incompatExtendedL2   = 1 << 4
	incompatKnown        = incompatDirty | incompatCorrupt | incompatCompression

	compatLazyRefcounts = 1 << 0

	// Header extension types.
	extEnd         = 0x00000000
	extBackingFmt  = 0xe2792aca
	extFeatureName = 0x6803f857

	// L1/L2 entry bits.
	oflagCopied     = 1 << 63
	oflagCompressed = 1 << 62
	oflagZero       = 1 << 0
	offsetMask      = 0x00fffffffffffe00 // bits 9-55
	l1ReservedMask  = 0x7f000000000001ff
	refTableMask    = 0xfffffffffffffe00

	minClusterBits = 9
	maxClusterBits = 21
	// QEMU's limits on table sizes, which also bound what a hostile
	// header can make us allocate.
	maxL1Bytes       = 32 << 20
	maxRefTableBytes = 8 << 20
	maxBackingName   = 1023
	maxImageSize     = 1 << 61
)

// qcowHeader is the parsed fixed header plus the extensions we use.
type qcowHeader struct {
	version         uint32
	backingOffset   uint64
	backingSize     uint32
	clusterBits     uint32
	size            uint64
	cryptMethod     uint32
	l1Size          uint32
	l1Offset        uint64
	refTableOffset  uint64
	refTableCluster uint32
	nbSnapshots     uint32
	snapshotsOffset uint64
	incompat        uint64
	compat          uint64
	autoclear       uint64
	refcountOrder   uint32
	headerLen       uint32
	compression     uint8

	backingFile string
	backingFmt  string
	// featureNames maps "type/bit" to the name in the feature name table.
	featureNames map[[2]uint8]string
}

// parseQcowHeader parses the header and extensions from buf, the start of
// the file (at most one cluster). fileSize bounds the offsets it accepts.
// Every problem is one line naming it.
func parseQcowHeader(buf []byte, fileSize int64) (*qcowHeader, error) {
	if len(buf) < qcowV2HeaderLen {
		return nil, fmt.Errorf("image is not in qcow2 format (file too short)")
	}
	be := binary.BigEndian
	if be.Uint32(buf[0:]) != qcowMagic {
		return nil, fmt.Errorf("image is not in qcow2 format (bad magic)")
	}
	h := &qcowHeader{
		version:         be.Uint32(buf[4:]),
		backingOffset:   be.Uint64(buf[8:]),
		backingSize:     be.Uint32(buf[16:]),
		clusterBits:     be.Uint32(buf[20:]),
		size:            be.Uint64(buf[24:]),
		cryptMethod:     be.Uint32(buf[32:]),
		l1Size:          be.Uint32(buf[36:]),
		l1Offset:        be.Uint64(buf[40:]),
		refTableOffset:  be.Uint64(buf[48:]),
		refTableCluster: be.Uint32(buf[56:]),
		nbSnapshots:     be.Uint32(buf[60:]),
		snapshotsOffset: be.Uint64(buf[64:]),
		refcountOrder:   4,
		headerLen:       qcowV2HeaderLen,
	}
	switch h.version {
	case 2:
	case 3:
		if len(buf) < qcowV3HeaderLen {
			return nil, fmt.Errorf("qcow2 header truncated")
		}
		h.incompat = be.Uint64(buf[72:])
		h.compat = be.Uint64(buf[80:])
		h.autoclear = be.Uint64(buf[88:])
		h.refcountOrder = be.Uint32(buf[96:])
		h.headerLen = be.Uint32(buf[100:])
		if h.headerLen < qcowV3HeaderLen {
			return nil, fmt.Errorf("qcow2 header too small (%d bytes)", h.headerLen)
		}
	default:
		return nil, fmt.Errorf("Unsupported qcow2 version %d", h.version)
	}
	if h.clusterBits < minClusterBits || h.clusterBits > maxClusterBits {
		return nil, fmt.Errorf("Unsupported cluster size: 2^%d", h.clusterBits)
	}
	cs := uint64(1) << h.clusterBits
	if uint64(h.headerLen) > cs || int(h.headerLen) > len(buf) {
		return nil, fmt.Errorf("qcow2 header exceeds cluster size")
	}
	if h.headerLen > qcowV3HeaderLen {
		h.compression = buf[104]
	}
	if h.refcountOrder > 6 {
		return nil, fmt.Errorf("Reference count entry width too large; may not exceed 64 bits")
	}

	// Extensions run from the end of the header to the end of the first
	// cluster (or the backing file name, whichever is first).
	extEndOff := uint64(len(buf))
	if h.backingOffset != 0 && h.backingOffset < extEndOff {
		extEndOff = h.backingOffset
	}
	if err := h.parseExtensions(buf, uint64(h.headerLen), extEndOff); err != nil {
		return nil, err
	}

	if unknown := h.incompat &^ incompatKnown; unknown != 0 {
		return nil, fmt.Errorf("Unsupported qcow2 feature(s): %s", h.featureList(0, unknown))
	}
	if h.incompat&incompatCompression != 0 || h.compression != 0 {
		if h.compression == 1 {
			return nil, fmt.Errorf("qcow2 compression type zstd is not supported (only zlib)")
		}
		if h.compression != 0 {
			return nil, fmt.Errorf("Unknown qcow2 compression type %d", h.compression)
		}
	}
	if h.cryptMethod != 0 {
		return nil, fmt.Errorf("encrypted qcow2 images are not supported (crypt_method %d)", h.cryptMethod)
	}
	if h.size > maxImageSize {
		return nil, fmt.Errorf("Image is too big")
	}

	// L1 table: big enough for the disk, within limits and the file.
	l2Entries := cs / 8
	need := divUp(h.size, cs*l2Entries)
	if uint64(h.l1Size)*8 > maxL1Bytes {
		return nil, fmt.Errorf("Active L1 table too large")
	}
	if uint64(h.l1Size) < need {
		return nil, fmt.Errorf("L1 table is too small")
	}
	if h.l1Size > 0 {
		if h.l1Offset%cs != 0 {
			return nil, fmt.Errorf("Active L1 table offset invalid (not cluster aligned)")
		}
		if h.l1Offset+uint64(h.l1Size)*8 > uint64(fileSize) {
			return nil, fmt.Errorf("Active L1 table lies beyond the end of the file")
		}
	}
	if h.refTableOffset%cs != 0 || h.refTableOffset == 0 {
		return nil, fmt.Errorf("Reference count table offset invalid")
	}
	if uint64(h.refTableCluster)*cs > maxRefTableBytes {
		return nil, fmt.Errorf("Reference count table too large")
	}
	if h.refTableOffset+uint64(h.refTableCluster)*cs > uint64(fileSize) {
		return nil, fmt.Errorf("Reference count table lies beyond the end of the file")
	}
	if h.nbSnapshots > 0 && h.snapshotsOffset%cs != 0 {
		return nil, fmt.Errorf("Snapshot table offset invalid")
	}

	if h.backingOffset != 0 {
		if h.backingSize > maxBackingName || h.backingSize == 0 {
			return nil, fmt.Errorf("Backing file name too long")
		}
		end := h.backingOffset + uint64(h.backingSize)
		if end > uint64(len(buf)) || end < h.backingOffset {
			return nil, fmt.Errorf("Invalid backing file offset")
		}
		h.backingFile = string(buf[h.backingOffset:end])
	}
	return h, nil
}

func (h *qcowHeader) parseExtensions(buf []byte, off, end uint64) error {
	be := binary.BigEndian
	for off+8 <= end {
		typ := be.Uint32(buf[off:])
		n := uint64(be.Uint32(buf[off+4:]))
		off += 8
		if typ == extEnd {
			return nil
		}
		if n > end-off {
			return fmt.Errorf("qcow2 header extension 0x%x too large", typ)
		}
		data := buf[off : off+n]
		switch typ {
		case extBackingFmt:
			h.backingFmt = strings.TrimRight(string(data), "\x00")
		case extFeatureName:
			h.featureNames = map[[2]uint8]string{}
			for i := 0; i+48 <= len(data); i += 48 {
				name := strings.TrimRight(string(data[i+2:i+48]), "\x00")
				h.featureNames[[2]uint8{data[i], data[i+1]}] = name
			}
		}
		off += alignUp8(n)
	}
	return nil
}

// featureList names feature bits like QEMU's report_unsupported_feature:
// by the table's name when present, else by bit number.
func (h *qcowHeader) featureList(typ uint8, mask uint64) string {
	var parts []string
	for bit := 0; bit < 64; bit++ {
		if mask&(1<<bit) == 0 {
			continue
		}
		if name, ok := h.featureNames[[2]uint8{typ, uint8(bit)}]; ok && name != "" {
			parts = append(parts, name)
		} else {
			parts = append(parts, fmt.Sprintf("Unknown incompatible feature: %x", uint64(1)<<bit))
		}
	}
	return strings.Join(parts, ", ")
}

func divUp(a, b uint64) uint64 { return (a + b - 1) / b }
func alignUp8(n uint64) uint64 { return (n + 7) &^ 7 }
