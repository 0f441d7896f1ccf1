package kvm

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// VCPU is one virtual CPU. Run must be called from one OS thread
// (runtime.LockOSThread) for the vCPU's whole life; the other methods may be
// called from that thread while the vCPU is not running.
type VCPU struct {
	fd  int
	id  int
	run []byte // the mmap'd struct kvm_run
}

// ID is the vCPU index it was created with.
func (v *VCPU) ID() int { return v.id }

// Close unmaps kvm_run and closes the vCPU fd.
func (v *VCPU) Close() error {
	unix.Munmap(v.run)
	return unix.Close(v.fd)
}

// Run is KVM_RUN. It returns the exit reason; the exit's details are read
// with IO, MMIO, ... (no allocation) or Exit (decoded, allocates). An
// interrupted run (a signal, or SetImmediateExit) returns ExitIntr.
func (v *VCPU) Run() (ExitReason, error) {
	err := runIoctl(v.fd)
	if err == unix.EINTR || err == unix.EAGAIN {
		return ExitIntr, nil
	}
	if err != nil {
		return 0, fmt.Errorf("KVM_RUN on vCPU %d: %w", v.id, err)
	}
	return ExitReason(binary.LittleEndian.Uint32(v.run[runExitReason:])), nil
}

// SetImmediateExit sets kvm_run.immediate_exit: while set, Run returns at
// once with ExitIntr. Combined with a signal to the vCPU thread it kicks a
// vCPU out of the guest without a race.
func (v *VCPU) SetImmediateExit(on bool) {
	var b byte
	if on {
		b = 1
	}
	v.run[runImmediateExit] = b
}

// IO decodes the current KVM_EXIT_IO. The data offset comes from the kernel;
// it is checked against the mapping all the same.
func (v *VCPU) IO() IOExit {
	u := v.run[runUnion:]
	e := IOExit{
		Out:   u[0] == 1,
		Size:  int(u[1]),
		Port:  binary.LittleEndian.Uint16(u[2:]),
		Count: int(binary.LittleEndian.Uint32(u[4:])),
	}
	off := binary.LittleEndian.Uint64(u[8:])
	n := uint64(e.Size) * uint64(e.Count)
	if off < uint64(len(v.run)) && n <= uint64(len(v.run))-off {
		e.Data = v.run[off : off+n : off+n]
	}
	return e
}

// MMIO decodes the current KVM_EXIT_MMIO.
func (v *VCPU) MMIO() MMIOExit {
	u := v.run[runUnion:]
	n := binary.LittleEndian.Uint32(u[16:])
	if n > 8 {
		n = 8
	}
	return MMIOExit{
		Addr:  binary.LittleEndian.Uint64(u[0:]),
		Data:  u[8 : 8+n : 8+n],
		Write: u[20] != 0,
	}
}

func (v *VCPU) dataWords(off int) []uint64 {
	u := v.run[runUnion:]
	n := int(binary.LittleEndian.Uint32(u[off:]))
	if n > 16 {
		n = 16
	}
	d := make([]uint64, n)
	for i := range d {
		d[i] = binary.LittleEndian.Uint64(u[8+8*i:])
	}
	return d
}

// Exit decodes the current exit into its Go type.
func (v *VCPU) Exit() Exit {
	r := ExitReason(binary.LittleEndian.Uint32(v.run[runExitReason:]))
	u := v.run[runUnion:]
	switch r {
	case ExitIO:
		return v.IO()
	case ExitMMIO:
		return v.MMIO()
	case ExitInternalError:
		return InternalErrorExit{Suberror: binary.LittleEndian.Uint32(u[0:]), Data: v.dataWords(4)}
	case ExitSystemEvent:
		return SystemEventExit{Type: binary.LittleEndian.Uint32(u[0:]), Data: v.dataWords(4)}
	case ExitFailEntry:
		return FailEntryExit{HardwareReason: binary.LittleEndian.Uint64(u[0:]), CPU: binary.LittleEndian.Uint32(u[8:])}
	case ExitUnknown:
		return UnknownExit{HardwareReason: binary.LittleEndian.Uint64(u[0:])}
	case ExitDebug:
		return v.Debug()
	case ExitException:
		return ExceptionExit{Exception: binary.LittleEndian.Uint32(u[0:]), ErrorCode: binary.LittleEndian.Uint32(u[4:])}
	case ExitHypercall:
		e := HypercallExit{Nr: binary.LittleEndian.Uint64(u[0:])}
		for i := range e.Args {
			e.Args[i] = binary.LittleEndian.Uint64(u[8+8*i:])
		}
		return e
	}
	return SimpleExit(r)
}

// ReadyForInterruptInjection and IFFlag report kvm_run's fields of those names.
func (v *VCPU) ReadyForInterruptInjection() bool { return v.run[runReadyForIRQ] != 0 }

// IFFlag reports whether the guest had interrupts enabled at exit.
func (v *VCPU) IFFlag() bool { return v.run[runIFFlag] != 0 }

// Regs is KVM_GET_REGS.
func (v *VCPU) Regs() (Regs, error) {
	var r Regs
	if err := v.getRegs(&r); err != nil {
		return r, fmt.Errorf("KVM_GET_REGS: %w", err)
	}
	return r, nil
}

// SetRegs is KVM_SET_REGS.
func (v *VCPU) SetRegs(r Regs) error {
	if err := v.setRegs(&r); err != nil {
		return fmt.Errorf("KVM_SET_REGS: %w", err)
	}
	return nil
}

// Sregs is KVM_GET_SREGS.
func (v *VCPU) Sregs() (Sregs, error) {
	var s Sregs
	if err := v.getSregs(&s); err != nil {
		return s, fmt.Errorf("KVM_GET_SREGS: %w", err)
	}
	return s, nil
}

// SetSregs is KVM_SET_SREGS.
func (v *VCPU) SetSregs(s Sregs) error {
	if err := v.setSregs(&s); err != nil {
		return fmt.Errorf("KVM_SET_SREGS: %w", err)
	}
	return nil
}

// FPU is KVM_GET_FPU.
func (v *VCPU) FPU() (FPU, error) {
	var f FPU
	if err := v.getFPU(&f); err != nil {
		return f, fmt.Errorf("KVM_GET_FPU: %w", err)
	}
	return f, nil
}

// SetFPU is KVM_SET_FPU.
func (v *VCPU) SetFPU(f FPU) error {
	if err := v.setFPU(&f); err != nil {
		return fmt.Errorf("KVM_SET_FPU: %w", err)
	}
	return nil
}

// LAPIC is KVM_GET_LAPIC.
func (v *VCPU) LAPIC() (LAPICState, error) {
	var l LAPICState
	if err := v.getLAPIC(&l); err != nil {
		return l, fmt.Errorf("KVM_GET_LAPIC: %w", err)
	}
	return l, nil
}

// SetLAPIC is KVM_SET_LAPIC.
func (v *VCPU) SetLAPIC(l LAPICState) error {
	if err := v.setLAPIC(&l); err != nil {
		return fmt.Errorf("KVM_SET_LAPIC: %w", err)
	}
	return nil
}

// MPState is KVM_GET_MP_STATE.
func (v *VCPU) MPState() (uint32, error) {
	var s uint32
	if err := v.getMPState(&s); err != nil {
		return 0, fmt.Errorf("KVM_GET_MP_STATE: %w", err)
	}
	return s, nil
}

// SetMPState is KVM_SET_MP_STATE.
func (v *VCPU) SetMPState(s uint32) error {
	if err := v.setMPState(&s); err != nil {
		return fmt.Errorf("KVM_SET_MP_STATE: %w", err)
	}
	return nil
}

// VCPUEvents is KVM_GET_VCPU_EVENTS.
func (v *VCPU) VCPUEvents() (VCPUEvents, error) {
	var e VCPUEvents
	if err := v.getVCPUEvents(&e); err != nil {
		return e, fmt.Errorf("KVM_GET_VCPU_EVENTS: %w", err)
	}
	return e, nil
}

// SetVCPUEvents is KVM_SET_VCPU_EVENTS.
func (v *VCPU) SetVCPUEvents(e VCPUEvents) error {
	if err := v.setVCPUEvents(&e); err != nil {
		return fmt.Errorf("KVM_SET_VCPU_EVENTS: %w", err)
	}
	return nil
}

// SetCPUID2 is KVM_SET_CPUID2.
func (v *VCPU) SetCPUID2(ents []CPUIDEntry) error {
	if err := setCPUID2(v.fd, ents); err != nil {
		return fmt.Errorf("KVM_SET_CPUID2 (%d entries): %w", len(ents), err)
	}
	return nil
}

// MSRs is KVM_GET_MSRS: it fills Data for each requested Index and returns
// how many were read (KVM stops at the first it cannot read).
func (v *VCPU) MSRs(msrs []MSR) (int, error) {
	n, err := msrsIoctl(v.fd, kvmGetMSRs, msrs)
	if err != nil {
		return 0, fmt.Errorf("KVM_GET_MSRS: %w", err)
	}
	return n, nil
}

// SetMSRs is KVM_SET_MSRS; it fails unless every MSR was written.
func (v *VCPU) SetMSRs(msrs []MSR) error {
	n, err := msrsIoctl(v.fd, kvmSetMSRs, msrs)
	if err != nil {
		return fmt.Errorf("KVM_SET_MSRS: %w", err)
	}
	if n != len(msrs) {
		return fmt.Errorf("KVM_SET_MSRS: MSR %#x refused (%d of %d set)", msrs[n].Index, n, len(msrs))
	}
	return nil
}

// Translate is KVM_TRANSLATE: guest-virtual to guest-physical through the
// vCPU's current page tables.
func (v *VCPU) Translate(gva uint64) (gpa uint64, valid, writeable, user bool, err error) {
	t := translation{LinearAddress: gva}
	if err := v.translate(&t); err != nil {
		return 0, false, false, false, fmt.Errorf("KVM_TRANSLATE: %w", err)
	}
	return t.PhysicalAddress, t.Valid != 0, t.Writeable != 0, t.Usermode != 0, nil
}
