package kvm

import (
	"encoding/binary"
	"fmt"
)

// KVM_SET_GUEST_DEBUG control bits (KVM_GUESTDBG_*).
const (
	GuestDebugEnable     = 1 << 0
	GuestDebugSingleStep = 1 << 1
	GuestDebugUseSWBP    = 1 << 16
	GuestDebugUseHWBP    = 1 << 17
)

// SetGuestDebug is KVM_SET_GUEST_DEBUG. debugRegs are DR0-DR7 as the x86
// kvm_guest_debug_arch carries them (DR4 and DR5 unused): with
// GuestDebugUseHWBP, DR0-DR3 hold breakpoint addresses and DR7 enables
// them. Exits the debug setup causes are KVM_EXIT_DEBUG, read with Debug.
// control 0 turns guest debugging off.
func (v *VCPU) SetGuestDebug(control uint32, debugRegs [8]uint64) error {
	d := guestDebug{Control: control, DebugReg: debugRegs}
	if err := v.setGuestDebug(&d); err != nil {
		return fmt.Errorf("KVM_SET_GUEST_DEBUG %#x: %w", control, err)
	}
	return nil
}

// DebugExit is KVM_EXIT_DEBUG: a breakpoint or single-step the VMM asked
// for with SetGuestDebug (x86 struct kvm_debug_exit_arch).
type DebugExit struct {
	Exception uint32 // 1 (#DB) or 3 (#BP)
	PC        uint64 // linear address of the next instruction to run
	DR6, DR7  uint64
}

func (DebugExit) Reason() ExitReason { return ExitDebug }
func (e DebugExit) String() string {
	return fmt.Sprintf("debug: exception %d pc %#x dr6 %#x dr7 %#x", e.Exception, e.PC, e.DR6, e.DR7)
}

// Debug decodes the current KVM_EXIT_DEBUG.
func (v *VCPU) Debug() DebugExit {
	return decodeDebug(v.run[runUnion:])
}

// decodeDebug reads struct kvm_debug_exit_arch: exception u32, pad u32,
// pc, dr6, dr7 u64.
func decodeDebug(u []byte) DebugExit {
	return DebugExit{
		Exception: binary.LittleEndian.Uint32(u[0:]),
		PC:        binary.LittleEndian.Uint64(u[8:]),
		DR6:       binary.LittleEndian.Uint64(u[16:]),
		DR7:       binary.LittleEndian.Uint64(u[24:]),
	}
}
