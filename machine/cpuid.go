package machine

import (
	"encoding/binary"

	"github.com/govmm/govmm/kvm"
)

// CPUID policy: start from what KVM supports, then make each vCPU's identity
// and topology match the machine: its APIC ID, the -smp topology, and the
// hypervisor leaves that say "KVM".

// cpuidFor returns the CPUID table for the vCPU with the given APIC ID.
func cpuidFor(supported []kvm.CPUIDEntry, apicID uint32, topo CPUTopology) []kvm.CPUIDEntry {
	threads := max(topo.Threads, 1)
	cores := max(topo.Cores, 1) * max(topo.Dies, 1)
	logicalPerPkg := uint32(threads * cores)
	smtShift := bitsFor(uint32(threads))
	coreShift := smtShift + bitsFor(uint32(cores))

	out := make([]kvm.CPUIDEntry, 0, len(supported)+2)
	for _, e := range supported {
		switch e.Function {
		case 1:
			// EBX[31:24] initial APIC ID, [23:16] logical processors per package.
			e.EBX = e.EBX&0x0000ffff | apicID<<24 | min(logicalPerPkg, 255)<<16
			e.ECX |= 1 << 31 // hypervisor present
			if logicalPerPkg > 1 {
				e.EDX |= 1 << 28 // HTT: the count field is valid
			}
		case 4:
			// Deterministic cache parameters: cores per package - 1 in EAX[31:26].
			if e.EAX&0x1f != 0 {
				e.EAX = e.EAX&0x03ffffff | (uint32(cores)-1)<<26
			}
		case 0xb, 0x1f:
			e.EDX = apicID
			switch e.Index {
			case 0: // SMT level
				e.EAX, e.EBX, e.ECX = smtShift, uint32(threads), 1<<8
			case 1: // core level
				e.EAX, e.EBX, e.ECX = coreShift, logicalPerPkg, 2<<8|1
			default:
				e.EAX, e.EBX, e.ECX = 0, 0, e.Index
			}
		case 0x40000000:
			// Hypervisor vendor leaf: "KVMKVMKVM\0\0\0".
			e.EBX = binary.LittleEndian.Uint32([]byte("KVMK"))
			e.ECX = binary.LittleEndian.Uint32([]byte("VMKV"))
			e.EDX = binary.LittleEndian.Uint32([]byte("M\x00\x00\x00"))
		}
		out = append(out, e)
	}
	return out
}

// bitsFor is the number of bits needed to number n items (0 for n <= 1).
func bitsFor(n uint32) uint32 {
	b := uint32(0)
	for (uint32(1) << b) < n {
		b++
	}
	return b
}
