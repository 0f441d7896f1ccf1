package machine

import (
	"testing"

	"github.com/govmm/govmm/kvm"
)

func TestCPUIDPolicy(t *testing.T) {
	sup := []kvm.CPUIDEntry{
		{Function: 1, EBX: 0xff00_0800, ECX: 0x1},
		{Function: 0xb, Index: 0},
		{Function: 0xb, Index: 1},
		{Function: 0xb, Index: 2},
		{Function: 0x40000000, EAX: 0x40000001},
	}
	topo := CPUTopology{Sockets: 1, Cores: 2, Threads: 2, Dies: 1}
	got := cpuidFor(sup, 3, topo)
	if got[0].EBX>>24 != 3 || (got[0].EBX>>16)&0xff != 4 || got[0].EBX&0xffff != 0x0800 {
		t.Errorf("leaf 1 EBX = %#x, want APIC ID 3, 4 logical CPUs, low bits kept", got[0].EBX)
	}
	if got[0].EDX&(1<<28) == 0 {
		t.Errorf("leaf 1 HTT bit missing: edx %#x", got[0].EDX)
	}
	if got[1].EAX != 1 || got[1].EBX != 2 || got[1].EDX != 3 || got[1].ECX != 1<<8 {
		t.Errorf("leaf 0xb.0 = %+v", got[1])
	}
	if got[2].EAX != 2 || got[2].EBX != 4 || got[2].ECX != 2<<8|1 {
		t.Errorf("leaf 0xb.1 = %+v", got[2])
	}
	if got[3].EBX != 0 || got[3].ECX != 2 {
		t.Errorf("leaf 0xb.2 = %+v, want an invalid level", got[3])
	}
	if got[4].EBX != 0x4b4d564b || got[4].ECX != 0x564b4d56 || got[4].EDX != 0x4d {
		t.Errorf("leaf 0x40000000 signature = %#x %#x %#x", got[4].EBX, got[4].ECX, got[4].EDX)
	}
	if sup[0].EBX != 0xff00_0800 {
		t.Error("cpuidFor modified its input")
	}
}
