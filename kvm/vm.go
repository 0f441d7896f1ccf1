package kvm

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// VM is a KVM virtual machine.
type VM struct {
	fd      int
	sys     *System
	runSize int
}

// Close closes the VM fd. vCPUs must be closed first.
func (vm *VM) Close() error { return unix.Close(vm.fd) }

// CheckExtension is KVM_CHECK_EXTENSION on the VM (some capabilities are per VM).
func (vm *VM) CheckExtension(cap int) int {
	r, err := ioctlVal(vm.fd, kvmCheckExtension, uintptr(cap))
	if err != nil {
		return 0
	}
	return int(r)
}

// SetUserMemoryRegion maps host memory mem at guest-physical gpa in slot.
// mem must be an mmap'd mapping that outlives the VM. An empty mem deletes
// the slot.
func (vm *VM) SetUserMemoryRegion(slot uint32, flags uint32, gpa uint64, mem []byte) error {
	r := UserMemoryRegion{Slot: slot, Flags: flags, GuestPhysAddr: gpa, MemorySize: uint64(len(mem))}
	if len(mem) > 0 {
		r.UserspaceAddr = hostAddr(mem)
	}
	if err := vm.setUserMemoryRegion(&r); err != nil {
		return fmt.Errorf("KVM_SET_USER_MEMORY_REGION slot %d at %#x size %#x: %w", slot, gpa, len(mem), err)
	}
	return nil
}

// SetTSSAddr is KVM_SET_TSS_ADDR (three pages Intel VMX needs for real mode).
func (vm *VM) SetTSSAddr(addr uint64) error {
	if _, err := ioctlVal(vm.fd, kvmSetTSSAddr, uintptr(addr)); err != nil {
		return fmt.Errorf("KVM_SET_TSS_ADDR: %w", err)
	}
	return nil
}

// SetIdentityMapAddr is KVM_SET_IDENTITY_MAP_ADDR (one page, Intel VMX).
func (vm *VM) SetIdentityMapAddr(addr uint64) error {
	if err := vm.setIdentityMapAddr(&addr); err != nil {
		return fmt.Errorf("KVM_SET_IDENTITY_MAP_ADDR: %w", err)
	}
	return nil
}

// CreateIRQChip is KVM_CREATE_IRQCHIP: in-kernel PIC, IOAPIC and LAPICs.
func (vm *VM) CreateIRQChip() error {
	if _, err := ioctlVal(vm.fd, kvmCreateIRQChip, 0); err != nil {
		return fmt.Errorf("KVM_CREATE_IRQCHIP: %w", err)
	}
	return nil
}

// CreatePIT2 is KVM_CREATE_PIT2: the in-kernel i8254 timer.
func (vm *VM) CreatePIT2(flags uint32) error {
	if err := vm.createPIT2(&pitConfig{Flags: flags}); err != nil {
		return fmt.Errorf("KVM_CREATE_PIT2: %w", err)
	}
	return nil
}

// IRQLine is KVM_IRQ_LINE: set the level of a GSI on the in-kernel irqchip.
func (vm *VM) IRQLine(gsi uint32, high bool) error {
	l := irqLevel{IRQ: gsi}
	if high {
		l.Level = 1
	}
	if err := vm.irqLine(&l); err != nil {
		return fmt.Errorf("KVM_IRQ_LINE gsi %d: %w", gsi, err)
	}
	return nil
}

// SetGSIRouting is KVM_SET_GSI_ROUTING; it replaces the whole table.
func (vm *VM) SetGSIRouting(routes []IRQRoute) error {
	if err := setGSIRouting(vm.fd, routes); err != nil {
		return fmt.Errorf("KVM_SET_GSI_ROUTING (%d routes): %w", len(routes), err)
	}
	return nil
}

// IRQFD is KVM_IRQFD: writes to eventfd fd raise gsi.
func (vm *VM) IRQFD(fd int, gsi uint32, flags uint32) error {
	if err := vm.irqfd(&irqfd{FD: uint32(fd), GSI: gsi, Flags: flags}); err != nil {
		return fmt.Errorf("KVM_IRQFD gsi %d: %w", gsi, err)
	}
	return nil
}

// IOEventFD describes one KVM_IOEVENTFD registration.
type IOEventFD struct {
	Addr      uint64
	Len       uint32 // 0 (any length, MMIO only), 1, 2, 4 or 8
	FD        int
	PIO       bool
	Datamatch *uint64 // nil: any value
}

// IOEventFD is KVM_IOEVENTFD: guest writes to Addr signal the eventfd
// without an exit to userspace.
func (vm *VM) IOEventFD(e IOEventFD, deassign bool) error {
	a := ioeventfd{Addr: e.Addr, Len: e.Len, FD: int32(e.FD)}
	if e.PIO {
		a.Flags |= IOEventFDFlagPIO
	}
	if e.Datamatch != nil {
		a.Flags |= IOEventFDFlagDatamatch
		a.Datamatch = *e.Datamatch
	}
	if deassign {
		a.Flags |= IOEventFDFlagDeassign
	}
	if err := vm.ioeventfd(&a); err != nil {
		return fmt.Errorf("KVM_IOEVENTFD at %#x: %w", e.Addr, err)
	}
	return nil
}

// SignalMSI is KVM_SIGNAL_MSI. It reports whether the interrupt was delivered.
func (vm *VM) SignalMSI(addr uint64, data uint32) (bool, error) {
	r, err := vm.signalMSI(&msi{AddressLo: uint32(addr), AddressHi: uint32(addr >> 32), Data: data})
	if err != nil {
		return false, fmt.Errorf("KVM_SIGNAL_MSI: %w", err)
	}
	return r > 0, nil
}

// Clock is KVM_GET_CLOCK.
func (vm *VM) Clock() (ClockData, error) {
	var c ClockData
	if err := vm.clock(kvmGetClock, &c); err != nil {
		return c, fmt.Errorf("KVM_GET_CLOCK: %w", err)
	}
	return c, nil
}

// SetClock is KVM_SET_CLOCK.
func (vm *VM) SetClock(c ClockData) error {
	if err := vm.clock(kvmSetClock, &c); err != nil {
		return fmt.Errorf("KVM_SET_CLOCK: %w", err)
	}
	return nil
}

// EnableCap is KVM_ENABLE_CAP on the VM.
func (vm *VM) EnableCap(cap uint32, args ...uint64) error {
	c := enableCap{Cap: cap}
	copy(c.Args[:], args)
	if err := enableCapIoctl(vm.fd, &c); err != nil {
		return fmt.Errorf("KVM_ENABLE_CAP %d: %w", cap, err)
	}
	return nil
}

// CreateVCPU is KVM_CREATE_VCPU, and maps its kvm_run page.
func (vm *VM) CreateVCPU(id int) (*VCPU, error) {
	r, err := ioctlVal(vm.fd, kvmCreateVCPU, uintptr(id))
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_VCPU %d: %w", id, err)
	}
	fd := int(r)
	run, err := unix.Mmap(fd, 0, vm.runSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("mmap kvm_run for vCPU %d: %w", id, err)
	}
	return &VCPU{fd: fd, id: id, run: run}, nil
}
