package kvm

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctlPtr issues an ioctl whose argument is a pointer to a Go value laid out
// as the kernel's structure. p must point to memory that stays live for the
// call (the Go compiler keeps p alive through the Syscall).
func ioctlPtr(fd int, req uintptr, p unsafe.Pointer) (uintptr, error) {
	for {
		r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(p))
		if e == unix.EINTR && req != kvmRun {
			continue
		}
		if e != 0 {
			return r, e
		}
		return r, nil
	}
}

// runIoctl is KVM_RUN. It uses RawSyscall: the vCPU goroutine keeps its P
// while in the guest instead of handing it to the scheduler and taking it
// back on every exit, which cost more than the exit itself (futex and
// nanosleep calls from sysmon, measured at 20-25% of the exit rate). A
// vCPU halted in the kernel then holds a P; the machine sizes GOMAXPROCS so
// that device goroutines still have Ps, and the runtime's preemption
// signal interrupts KVM_RUN (EINTR) when it needs the thread.
func runIoctl(fd int) error {
	_, _, e := unix.RawSyscall(unix.SYS_IOCTL, uintptr(fd), kvmRun, 0)
	if e != 0 {
		return e
	}
	return nil
}

// ioctlVal issues an ioctl whose argument is an integer.
func ioctlVal(fd int, req uintptr, v uintptr) (uintptr, error) {
	for {
		r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, v)
		if e == unix.EINTR && req != kvmRun {
			continue
		}
		if e != 0 {
			return r, e
		}
		return r, nil
	}
}

// hostAddr returns the host virtual address of b's first byte, for
// KVM_SET_USER_MEMORY_REGION. b must be memory that Go's GC does not move
// (an mmap'd mapping).
func hostAddr(b []byte) uint64 {
	return uint64(uintptr(unsafe.Pointer(&b[0])))
}

// The variable-length structures (kvm_cpuid2, kvm_msrs, kvm_msr_list,
// kvm_irq_routing) are a fixed header followed by an array. They are built
// in a []uint64 so the buffer is 8-byte aligned, then filled through byte
// views.

func u64buf(nbytes int) ([]uint64, []byte) {
	w := make([]uint64, (nbytes+7)/8)
	b := unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), len(w)*8)
	return w, b
}

func getSupportedCPUID(fd int, max int) ([]CPUIDEntry, error) {
	const entSize = int(unsafe.Sizeof(CPUIDEntry{}))
	w, b := u64buf(8 + max*entSize)
	binary.LittleEndian.PutUint32(b[0:], uint32(max))
	if _, err := ioctlPtr(fd, kvmGetSupportedCPUID, unsafe.Pointer(&w[0])); err != nil {
		return nil, err
	}
	n := int(binary.LittleEndian.Uint32(b[0:]))
	ents := unsafe.Slice((*CPUIDEntry)(unsafe.Pointer(&b[8])), n)
	return append([]CPUIDEntry(nil), ents...), nil
}

func setCPUID2(fd int, ents []CPUIDEntry) error {
	const entSize = int(unsafe.Sizeof(CPUIDEntry{}))
	w, b := u64buf(8 + max(len(ents), 1)*entSize)
	binary.LittleEndian.PutUint32(b[0:], uint32(len(ents)))
	copy(unsafe.Slice((*CPUIDEntry)(unsafe.Pointer(&b[8])), len(ents)), ents)
	_, err := ioctlPtr(fd, kvmSetCPUID2, unsafe.Pointer(&w[0]))
	return err
}

func getMSRIndexList(fd int) ([]uint32, error) {
	for n := 256; ; n *= 2 {
		w, b := u64buf(4 + 4*n)
		binary.LittleEndian.PutUint32(b[0:], uint32(n))
		_, err := ioctlPtr(fd, kvmGetMSRIndexList, unsafe.Pointer(&w[0]))
		if err == unix.E2BIG && n < 1<<16 {
			continue
		}
		if err != nil {
			return nil, err
		}
		cnt := int(binary.LittleEndian.Uint32(b[0:]))
		out := make([]uint32, cnt)
		for i := range out {
			out[i] = binary.LittleEndian.Uint32(b[4+4*i:])
		}
		return out, nil
	}
}

func msrsIoctl(fd int, req uintptr, msrs []MSR) (int, error) {
	const entSize = int(unsafe.Sizeof(MSR{}))
	w, b := u64buf(8 + max(len(msrs), 1)*entSize)
	binary.LittleEndian.PutUint32(b[0:], uint32(len(msrs)))
	ents := unsafe.Slice((*MSR)(unsafe.Pointer(&b[8])), len(msrs))
	copy(ents, msrs)
	r, err := ioctlPtr(fd, req, unsafe.Pointer(&w[0]))
	if err != nil {
		return 0, err
	}
	copy(msrs, ents)
	return int(r), nil
}

func setGSIRouting(fd int, routes []IRQRoute) error {
	const entSize = int(unsafe.Sizeof(IRQRoute{}))
	w, b := u64buf(8 + max(len(routes), 1)*entSize)
	binary.LittleEndian.PutUint32(b[0:], uint32(len(routes)))
	copy(unsafe.Slice((*IRQRoute)(unsafe.Pointer(&b[8])), len(routes)), routes)
	_, err := ioctlPtr(fd, kvmSetGSIRouting, unsafe.Pointer(&w[0]))
	return err
}

// Fixed-size structure ioctls.

func (v *VCPU) getRegs(r *Regs) error {
	_, err := ioctlPtr(v.fd, kvmGetRegs, unsafe.Pointer(r))
	return err
}
func (v *VCPU) setRegs(r *Regs) error {
	_, err := ioctlPtr(v.fd, kvmSetRegs, unsafe.Pointer(r))
	return err
}
func (v *VCPU) getSregs(s *Sregs) error {
	_, err := ioctlPtr(v.fd, kvmGetSregs, unsafe.Pointer(s))
	return err
}
func (v *VCPU) setSregs(s *Sregs) error {
	_, err := ioctlPtr(v.fd, kvmSetSregs, unsafe.Pointer(s))
	return err
}
func (v *VCPU) getFPU(f *FPU) error {
	_, err := ioctlPtr(v.fd, kvmGetFPU, unsafe.Pointer(f))
	return err
}
func (v *VCPU) setFPU(f *FPU) error {
	_, err := ioctlPtr(v.fd, kvmSetFPU, unsafe.Pointer(f))
	return err
}
func (v *VCPU) getLAPIC(l *LAPICState) error {
	_, err := ioctlPtr(v.fd, kvmGetLAPIC, unsafe.Pointer(l))
	return err
}
func (v *VCPU) setLAPIC(l *LAPICState) error {
	_, err := ioctlPtr(v.fd, kvmSetLAPIC, unsafe.Pointer(l))
	return err
}
func (v *VCPU) getMPState(s *uint32) error {
	_, err := ioctlPtr(v.fd, kvmGetMPState, unsafe.Pointer(s))
	return err
}
func (v *VCPU) setMPState(s *uint32) error {
	_, err := ioctlPtr(v.fd, kvmSetMPState, unsafe.Pointer(s))
	return err
}
func (v *VCPU) getVCPUEvents(e *VCPUEvents) error {
	_, err := ioctlPtr(v.fd, kvmGetVCPUEvents, unsafe.Pointer(e))
	return err
}
func (v *VCPU) setVCPUEvents(e *VCPUEvents) error {
	_, err := ioctlPtr(v.fd, kvmSetVCPUEvents, unsafe.Pointer(e))
	return err
}
func (v *VCPU) translate(t *translation) error {
	_, err := ioctlPtr(v.fd, kvmTranslate, unsafe.Pointer(t))
	return err
}

func (vm *VM) setUserMemoryRegion(r *UserMemoryRegion) error {
	_, err := ioctlPtr(vm.fd, kvmSetUserMemoryRegion, unsafe.Pointer(r))
	return err
}
func (vm *VM) setIdentityMapAddr(a *uint64) error {
	_, err := ioctlPtr(vm.fd, kvmSetIdentityMapAddr, unsafe.Pointer(a))
	return err
}
func (vm *VM) irqLine(l *irqLevel) error {
	_, err := ioctlPtr(vm.fd, kvmIRQLine, unsafe.Pointer(l))
	return err
}
func (vm *VM) irqfd(f *irqfd) error {
	_, err := ioctlPtr(vm.fd, kvmIRQFD, unsafe.Pointer(f))
	return err
}
func (vm *VM) ioeventfd(f *ioeventfd) error {
	_, err := ioctlPtr(vm.fd, kvmIOEventFD, unsafe.Pointer(f))
	return err
}
func (vm *VM) createPIT2(c *pitConfig) error {
	_, err := ioctlPtr(vm.fd, kvmCreatePIT2, unsafe.Pointer(c))
	return err
}
func (vm *VM) clock(req uintptr, c *ClockData) error {
	_, err := ioctlPtr(vm.fd, req, unsafe.Pointer(c))
	return err
}
func (vm *VM) signalMSI(m *msi) (uintptr, error) {
	return ioctlPtr(vm.fd, kvmSignalMSI, unsafe.Pointer(m))
}
func enableCapIoctl(fd int, c *enableCap) error {
	_, err := ioctlPtr(fd, kvmEnableCap, unsafe.Pointer(c))
	return err
}
