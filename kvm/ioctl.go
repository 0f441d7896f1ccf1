// Package kvm is a thin, typed wrapper over the Linux KVM API (/dev/kvm).
// It has no policy: it opens the system device, creates VMs and vCPUs, and
// turns ioctls and the shared kvm_run page into Go values. Files that touch
// unsafe pointers are named *_unsafe.go.
package kvm

// ioctl request encoding from include/uapi/asm-generic/ioctl.h, computed here
// so the package needs no cgo.
const (
	iocNone  = 0
	iocWrite = 1
	iocRead  = 2

	kvmio = 0xAE
)

func ioc(dir, nr, size uintptr) uintptr {
	return dir<<30 | size<<16 | kvmio<<8 | nr
}

func io_(nr uintptr) uintptr        { return ioc(iocNone, nr, 0) }
func ior(nr, size uintptr) uintptr  { return ioc(iocRead, nr, size) }
func iow(nr, size uintptr) uintptr  { return ioc(iocWrite, nr, size) }
func iowr(nr, size uintptr) uintptr { return ioc(iocRead|iocWrite, nr, size) }

// Request numbers, with the sizes of the structures they carry.
var (
	kvmGetAPIVersion       = io_(0x00)
	kvmCreateVM            = io_(0x01)
	kvmGetMSRIndexList     = iowr(0x02, 4)
	kvmCheckExtension      = io_(0x03)
	kvmGetVCPUMmapSize     = io_(0x04)
	kvmGetSupportedCPUID   = iowr(0x05, 8)
	kvmCreateVCPU          = io_(0x41)
	kvmSetUserMemoryRegion = iow(0x46, 32)
	kvmSetTSSAddr          = io_(0x47)
	kvmSetIdentityMapAddr  = iow(0x48, 8)
	kvmCreateIRQChip       = io_(0x60)
	kvmIRQLine             = iow(0x61, 8)
	kvmSetGSIRouting       = iow(0x6a, 8)
	kvmIRQFD               = iow(0x76, 32)
	kvmCreatePIT2          = iow(0x77, 64)
	kvmIOEventFD           = iow(0x79, 64)
	kvmSetClock            = iow(0x7b, 48)
	kvmGetClock            = ior(0x7c, 48)
	kvmSignalMSI           = iow(0xa5, 32)
	kvmEnableCap           = iow(0xa3, 104)

	kvmRun           = io_(0x80)
	kvmGetRegs       = ior(0x81, 144)
	kvmSetRegs       = iow(0x82, 144)
	kvmGetSregs      = ior(0x83, 312)
	kvmSetSregs      = iow(0x84, 312)
	kvmTranslate     = iowr(0x85, 24)
	kvmGetMSRs       = iowr(0x88, 8)
	kvmSetMSRs       = iow(0x89, 8)
	kvmGetFPU        = ior(0x8c, 416)
	kvmSetFPU        = iow(0x8d, 416)
	kvmGetLAPIC      = ior(0x8e, 1024)
	kvmSetLAPIC      = iow(0x8f, 1024)
	kvmSetCPUID2     = iow(0x90, 8)
	kvmGetCPUID2     = iowr(0x91, 8)
	kvmGetMPState    = ior(0x98, 4)
	kvmSetMPState    = iow(0x99, 4)
	kvmGetVCPUEvents = ior(0x9f, 64)
	kvmSetVCPUEvents = iow(0xa0, 64)
)

// Capabilities for CheckExtension (include/uapi/linux/kvm.h).
const (
	CapIRQChip          = 0
	CapHLT              = 1
	CapUserMemory       = 3
	CapSetTSSAddr       = 4
	CapExtCPUID         = 7
	CapNrVCPUs          = 9
	CapNrMemSlots       = 10
	CapPIT2             = 33
	CapSetIdentityMap   = 37
	CapIRQRouting       = 25
	CapIRQFD            = 32
	CapIOEventFD        = 36
	CapAdjustClock      = 39
	CapVCPUEvents       = 41
	CapSignalMSI        = 77
	CapMaxVCPUs         = 66
	CapTSCDeadlineTimer = 72
	CapImmediateExit    = 136
	CapX2APICAPI        = 129
)

// KVM_SET_GUEST_DEBUG carries struct kvm_guest_debug (see debug.go).
var kvmSetGuestDebug = iow(0x9b, 72)
