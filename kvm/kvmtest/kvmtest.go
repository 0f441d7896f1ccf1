// Package kvmtest sets up the smallest VM a test can run guest code in:
// guest RAM at address 0 and one vCPU with KVM's supported CPUID. It skips
// the test, with the reason, where /dev/kvm cannot be used.
package kvmtest

import (
	"errors"
	"testing"

	"github.com/govmm/govmm/kvm"
	"github.com/govmm/govmm/machine/guestmem"
	"golang.org/x/sys/unix"
)

// Guest is a VM with memSize bytes of RAM at guest-physical 0 and vCPU 0.
// Everything is released when the test ends.
type Guest struct {
	VM  *kvm.VM
	CPU *kvm.VCPU
	RAM []byte           // the host mapping of guest RAM
	Mem *guestmem.Memory // the same RAM, bounds-checked
}

// New creates a Guest, or skips t when KVM is not available.
func New(t testing.TB, memSize int) *Guest {
	t.Helper()
	sys, err := kvm.Open()
	if errors.Is(err, kvm.ErrNoKVM) {
		t.Skipf("skipping: %v (this test runs guest code on /dev/kvm)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Close() })
	vm, err := sys.CreateVM()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Close() })
	ram, err := unix.Mmap(-1, 0, memSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(ram) })
	if err := vm.SetUserMemoryRegion(0, 0, 0, ram); err != nil {
		t.Fatal(err)
	}
	mem, err := guestmem.New(guestmem.Region{GPA: 0, Data: ram})
	if err != nil {
		t.Fatal(err)
	}
	cpu, err := vm.CreateVCPU(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cpu.Close() })
	ents, err := sys.SupportedCPUID()
	if err != nil {
		t.Fatal(err)
	}
	if err := cpu.SetCPUID2(ents); err != nil {
		t.Fatal(err)
	}
	return &Guest{VM: vm, CPU: cpu, RAM: ram, Mem: mem}
}
