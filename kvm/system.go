package kvm

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// APIVersion is the only KVM API version there has ever been.
const APIVersion = 12

// DevicePath is the KVM system device.
const DevicePath = "/dev/kvm"

// ErrNoKVM is returned (wrapped) by Open when /dev/kvm is missing or not
// accessible.
var ErrNoKVM = errors.New("KVM is not available")

// System is an open /dev/kvm.
type System struct {
	fd int
}

// Open opens /dev/kvm and checks the API version.
func Open() (*System, error) {
	fd, err := unix.Open(DevicePath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.ENXIO) {
			return nil, fmt.Errorf("%w: open %s: %v", ErrNoKVM, DevicePath, err)
		}
		return nil, fmt.Errorf("open %s: %w", DevicePath, err)
	}
	s := &System{fd: fd}
	v, err := s.APIVersion()
	if err != nil {
		s.Close()
		return nil, err
	}
	if v != APIVersion {
		s.Close()
		return nil, fmt.Errorf("KVM API version %d, want %d", v, APIVersion)
	}
	return s, nil
}

// Available reports whether /dev/kvm can be opened, and why not.
func Available() error {
	s, err := Open()
	if err != nil {
		return err
	}
	return s.Close()
}

// Close closes the system fd. VMs created from it stay valid.
func (s *System) Close() error { return unix.Close(s.fd) }

// APIVersion is KVM_GET_API_VERSION.
func (s *System) APIVersion() (int, error) {
	r, err := ioctlVal(s.fd, kvmGetAPIVersion, 0)
	if err != nil {
		return 0, fmt.Errorf("KVM_GET_API_VERSION: %w", err)
	}
	return int(r), nil
}

// CheckExtension is KVM_CHECK_EXTENSION: 0 when cap is absent, otherwise a
// capability-specific positive value.
func (s *System) CheckExtension(cap int) int {
	r, err := ioctlVal(s.fd, kvmCheckExtension, uintptr(cap))
	if err != nil {
		return 0
	}
	return int(r)
}

// VCPUMmapSize is KVM_GET_VCPU_MMAP_SIZE: the size of the kvm_run mapping.
func (s *System) VCPUMmapSize() (int, error) {
	r, err := ioctlVal(s.fd, kvmGetVCPUMmapSize, 0)
	if err != nil {
		return 0, fmt.Errorf("KVM_GET_VCPU_MMAP_SIZE: %w", err)
	}
	return int(r), nil
}

// SupportedCPUID is KVM_GET_SUPPORTED_CPUID.
func (s *System) SupportedCPUID() ([]CPUIDEntry, error) {
	ents, err := getSupportedCPUID(s.fd, 256)
	if err != nil {
		return nil, fmt.Errorf("KVM_GET_SUPPORTED_CPUID: %w", err)
	}
	return ents, nil
}

// MSRIndexList is KVM_GET_MSR_INDEX_LIST: the MSRs KVM saves and restores.
func (s *System) MSRIndexList() ([]uint32, error) {
	l, err := getMSRIndexList(s.fd)
	if err != nil {
		return nil, fmt.Errorf("KVM_GET_MSR_INDEX_LIST: %w", err)
	}
	return l, nil
}

// CreateVM is KVM_CREATE_VM.
func (s *System) CreateVM() (*VM, error) {
	r, err := ioctlVal(s.fd, kvmCreateVM, 0)
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_VM: %w", err)
	}
	mmapSize, err := s.VCPUMmapSize()
	if err != nil {
		unix.Close(int(r))
		return nil, err
	}
	return &VM{fd: int(r), sys: s, runSize: mmapSize}, nil
}

// File returns the fd as an *os.File (for tests and diagnostics).
func (s *System) File() *os.File { return os.NewFile(uintptr(s.fd), DevicePath) }
