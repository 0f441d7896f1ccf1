package qmp

import (
	"github.com/govmm/govmm/machine/runstate"
)

// Machine is what the QMP server (and the human monitor) needs from the
// virtual machine. The machine package implements it; tests use a fake.
//
// The control methods return after the state change is done and its events
// have been delivered to Subscribe's callbacks, so that QMP sends an event
// before the reply of the command that caused it. Errors are sent as
// GenericError unless they are (or wrap) an *Error with another class.
type Machine interface {
	Status() runstate.State
	Stop() error            // "stop": pause the vCPUs (nothing when not running)
	Cont() error            // "cont": runstate.ErrResetRequired after shutdown / internal error
	SystemReset() error     // "system_reset": reset with cause host-qmp-system-reset
	SystemPowerdown() error // "system_powerdown": POWERDOWN event and ACPI power button
	// Quit is "quit": send SHUTDOWN (guest false, reason host-qmp-quit) and
	// arrange for the process to end. It must return without waiting for
	// that: the caller still has to send its reply. The machine should call
	// Server.Close, which flushes replies, before it exits.
	Quit() error

	Name() string // -name guest=..., "" when not given
	UUID() string // -uuid, "" when not given
	KVM() KVMInfo
	CPUs() []CPUInfo
	Chardevs() []ChardevInfo
	Blocks() []BlockInfo
	BlockStats() []BlockStats

	// Subscribe registers fn for every run-state event and returns a
	// function that removes it. fn is called synchronously and must be quick.
	Subscribe(fn func(runstate.Event)) (cancel func())
}

// Version is what query-version and the greeting report.
type Version struct {
	Major, Minor, Micro int
	Package             string
}

// DefaultVersion claims QEMU 7.2.0, the version whose command line and QMP
// govmm follows.
var DefaultVersion = Version{Major: 7, Minor: 2, Micro: 0, Package: "govmm"}

// KVMInfo is query-kvm's reply.
type KVMInfo struct {
	Enabled bool // KVM acceleration is in use
	Present bool // KVM is available on the host
}

// CPUInfo is one vCPU for query-cpus-fast and "info cpus".
type CPUInfo struct {
	Index    int    // cpu-index
	QOMPath  string // e.g. "/machine/unattached/device[0]"
	ThreadID int    // host thread id of the vCPU thread
	SocketID int
	CoreID   int
	Thread   int    // thread-id within the core (props)
	Target   string // "" means "x86_64"
}

// ChardevInfo is one character device for query-chardev and "info chardev".
type ChardevInfo struct {
	Label        string // e.g. "serial0", "compat_monitor0", or -chardev id
	Filename     string // e.g. "null", "stdio", "unix:/path,server=on", "pty:/dev/pts/3"
	FrontendOpen bool
}

// BlockInfo is one block device for query-block and "info block".
type BlockInfo struct {
	Device    string // drive id ("" for -blockdev-only devices)
	QDev      string // attached device's QOM path or id; "" when not attached
	Removable bool
	Locked    bool
	TrayOpen  bool   // reported only for removable devices
	IOStatus  string // "ok", "failed", "nospace"; "" when the device has no I/O status
	Inserted  *BlockDeviceInfo
}

// BlockDeviceInfo is the medium in a block device (BlockInfo.Inserted).
type BlockDeviceInfo struct {
	File             string
	NodeName         string
	ReadOnly         bool
	Driver           string // "qcow2", "raw"
	BackingFile      string // "" when none
	BackingFileDepth int
	Encrypted        bool
	DetectZeroes     string // "" means "off"
	Image            ImageInfo
	Cache            BlockCache
	WriteThreshold   int64
}

// BlockCache is a medium's cache mode.
type BlockCache struct {
	Writeback, Direct, NoFlush bool
}

// ImageInfo describes an image file.
type ImageInfo struct {
	Filename    string
	Format      string
	VirtualSize int64
	ActualSize  int64 // bytes allocated on the host; < 0 when unknown
	ClusterSize int64 // 0 when the format has none
	DirtyFlag   bool
	Qcow2       *Qcow2Info // format-specific data for qcow2 images
}

// Qcow2Info is the qcow2 "format-specific" data.
type Qcow2Info struct {
	Compat          string // "1.1" for version 3, "0.10" for version 2
	LazyRefcounts   bool
	Corrupt         bool
	RefcountBits    int
	CompressionType string // "zlib"
	ExtendedL2      bool
}

// BlockStats is one entry of query-blockstats.
type BlockStats struct {
	Device   string
	NodeName string
	QDev     string
	Stats    BlockDeviceStats
	// Parent, when set, is the protocol layer under the format layer
	// (QEMU's "file" node); its Device and QDev are not reported.
	Parent *BlockStats
	// FileDriver marks a "file" protocol node: it gets QEMU's
	// driver-specific discard counters (all zero).
	FileDriver bool
}

// BlockDeviceStats are the I/O counters of a block node.
type BlockDeviceStats struct {
	RdBytes, WrBytes, UnmapBytes                                     int64
	RdOperations, WrOperations, FlushOperations, UnmapOperations     int64
	RdTotalTimeNs, WrTotalTimeNs, FlushTotalTimeNs, UnmapTotalTimeNs int64
	WrHighestOffset                                                  int64
	RdMerged, WrMerged, UnmapMerged                                  int64
	IdleTimeNs                                                       int64 // reported only when HasIdleTime
	HasIdleTime                                                      bool  // false until the first I/O
	FailedRdOperations, FailedWrOperations                           int64
	FailedFlushOperations, FailedUnmapOperations                     int64
	InvalidRdOperations, InvalidWrOperations                         int64
	InvalidFlushOperations, InvalidUnmapOperations                   int64
	AccountInvalid, AccountFailed                                    bool
}

// Error is a QMP error with its class. Machines return it to choose a
// class other than GenericError.
type Error struct {
	Class string // "GenericError", "CommandNotFound", "DeviceNotFound", "DeviceNotActive", ...
	Desc  string
}

func (e *Error) Error() string { return e.Desc }

// Error classes QEMU 7.2 uses.
const (
	ClassGeneric         = "GenericError"
	ClassCommandNotFound = "CommandNotFound"
	ClassDeviceNotFound  = "DeviceNotFound"
	ClassDeviceNotActive = "DeviceNotActive"
	ClassKVMMissingCap   = "KVMMissingCap"
)
