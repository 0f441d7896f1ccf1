package machine

import (
	"encoding/binary"
	"fmt"

	"github.com/govmm/govmm/kvm"
	"github.com/govmm/govmm/machine/cpuid"
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

	intel := cpuid.Vendor(supported) == "GenuineIntel"
	out := make([]kvm.CPUIDEntry, 0, len(supported)+2)
	for _, e := range supported {
		switch e.Function {
		case 1:
			// EBX[31:24] initial APIC ID, [23:16] logical processors per package.
			e.EBX = e.EBX&0x0000ffff | apicID<<24 | min(logicalPerPkg, 255)<<16
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
		case 0x80000001:
			// CmpLegacy: AMD's way to say the HTT count is cores.
			if logicalPerPkg > 1 && !intel {
				e.ECX |= 1 << 1
			}
		case 0x80000008:
			// ApicIdCoreIdSize and NC, as QEMU fills them.
			if logicalPerPkg > 1 {
				e.ECX = e.ECX&^0xf0ff | coreShift<<12 | (logicalPerPkg-1)&0xff
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

// cpuModel builds the machine-wide CPUID table for -cpu (default qemu64,
// as QEMU's): the model's identity and features over what KVM supports,
// with QEMU's warnings for features the host lacks.
func cpuModel(supported []kvm.CPUIDEntry, cfg Config) ([]kvm.CPUIDEntry, []string, error) {
	feats := make([]cpuid.Feature, len(cfg.CPU.Features))
	for i, f := range cfg.CPU.Features {
		feats[i] = cpuid.Feature{Name: f.Name, On: f.On}
	}
	name := cfg.CPU.Name
	if name == "" {
		name = cpuid.ModelQEMU64
	}
	table, warns, err := cpuid.Apply(supported, name, feats)
	if err != nil {
		return nil, nil, fmt.Errorf("-cpu %s: %w", name, err)
	}
	if cfg.MachineType == "microvm" {
		// QEMU's microvm shows the host's physical address width.
		host := leaf(supported, 0x80000008, 0)
		for i := range table {
			if table[i].Function == 0x80000008 && host != nil {
				table[i].EAX = table[i].EAX&^0xff | host.EAX&0xff
			}
		}
	}
	return table, warns, nil
}

func leaf(t []kvm.CPUIDEntry, fn, idx uint32) *kvm.CPUIDEntry {
	for i := range t {
		if t[i].Function == fn && t[i].Index == idx {
			return &t[i]
		}
	}
	return nil
}

// bitsFor is the number of bits needed to number n items (0 for n <= 1).
func bitsFor(n uint32) uint32 {
	b := uint32(0)
	for (uint32(1) << b) < n {
		b++
	}
	return b
}
