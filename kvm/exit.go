package kvm

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// ExitReason is kvm_run.exit_reason (KVM_EXIT_*).
type ExitReason uint32

// Exit reasons.
const (
	ExitUnknown       ExitReason = 0
	ExitException     ExitReason = 1
	ExitIO            ExitReason = 2
	ExitHypercall     ExitReason = 3
	ExitDebug         ExitReason = 4
	ExitHLT           ExitReason = 5
	ExitMMIO          ExitReason = 6
	ExitIRQWindowOpen ExitReason = 7
	ExitShutdown      ExitReason = 8
	ExitFailEntry     ExitReason = 9
	ExitIntr          ExitReason = 10
	ExitSetTPR        ExitReason = 11
	ExitTPRAccess     ExitReason = 12
	ExitNMI           ExitReason = 16
	ExitInternalError ExitReason = 17
	ExitOSI           ExitReason = 18
	ExitPAPRHcall     ExitReason = 19
	ExitWatchdog      ExitReason = 21
	ExitEPR           ExitReason = 23
	ExitSystemEvent   ExitReason = 24
	ExitIOAPICEOI     ExitReason = 26
	ExitHyperV        ExitReason = 27
	ExitX86RDMSR      ExitReason = 29
	ExitX86WRMSR      ExitReason = 30
	ExitDirtyRingFull ExitReason = 31
	ExitAPResetHold   ExitReason = 32
	ExitX86BusLock    ExitReason = 33
	ExitXen           ExitReason = 34
	ExitNotify        ExitReason = 37
	ExitMemoryFault   ExitReason = 39
)

var exitNames = map[ExitReason]string{
	ExitUnknown: "UNKNOWN", ExitException: "EXCEPTION", ExitIO: "IO", ExitHypercall: "HYPERCALL",
	ExitDebug: "DEBUG", ExitHLT: "HLT", ExitMMIO: "MMIO", ExitIRQWindowOpen: "IRQ_WINDOW_OPEN",
	ExitShutdown: "SHUTDOWN", ExitFailEntry: "FAIL_ENTRY", ExitIntr: "INTR", ExitSetTPR: "SET_TPR",
	ExitTPRAccess: "TPR_ACCESS", ExitNMI: "NMI", ExitInternalError: "INTERNAL_ERROR", ExitOSI: "OSI",
	ExitPAPRHcall: "PAPR_HCALL", ExitWatchdog: "WATCHDOG", ExitEPR: "EPR", ExitSystemEvent: "SYSTEM_EVENT",
	ExitIOAPICEOI: "IOAPIC_EOI", ExitHyperV: "HYPERV", ExitX86RDMSR: "X86_RDMSR", ExitX86WRMSR: "X86_WRMSR",
	ExitDirtyRingFull: "DIRTY_RING_FULL", ExitAPResetHold: "AP_RESET_HOLD", ExitX86BusLock: "X86_BUS_LOCK",
	ExitXen: "XEN", ExitNotify: "NOTIFY", ExitMemoryFault: "MEMORY_FAULT",
}

func (r ExitReason) String() string {
	if n, ok := exitNames[r]; ok {
		return "KVM_EXIT_" + n
	}
	return fmt.Sprintf("KVM_EXIT_%d", uint32(r))
}

// Offsets into struct kvm_run.
const (
	runRequestIRQWindow = 0
	runImmediateExit    = 1
	runExitReason       = 8
	runReadyForIRQ      = 12
	runIFFlag           = 13
	runUnion            = 32
)

// Exit is one decoded vCPU exit. Each exit reason has its own type.
type Exit interface {
	Reason() ExitReason
	String() string
}

// IOExit is KVM_EXIT_IO: a port access. Data aliases the kvm_run page: for
// an IN the handler fills it before the next Run; it holds Size*Count bytes.
type IOExit struct {
	Out   bool
	Size  int // bytes per access: 1, 2 or 4
	Port  uint16
	Count int // > 1 for string instructions (rep ins/outs)
	Data  []byte
}

func (IOExit) Reason() ExitReason { return ExitIO }
func (e IOExit) String() string {
	dir := "in"
	if e.Out {
		dir = "out"
	}
	return fmt.Sprintf("io %s port %#x size %d count %d", dir, e.Port, e.Size, e.Count)
}

// MMIOExit is KVM_EXIT_MMIO: an access to guest-physical memory that no
// memory slot backs. Data aliases kvm_run; for a read the handler fills it.
type MMIOExit struct {
	Addr  uint64
	Write bool
	Data  []byte
}

func (MMIOExit) Reason() ExitReason { return ExitMMIO }
func (e MMIOExit) String() string {
	dir := "read"
	if e.Write {
		dir = "write"
	}
	return fmt.Sprintf("mmio %s %#x len %d", dir, e.Addr, len(e.Data))
}

// Internal error suberrors (KVM_INTERNAL_ERROR_*).
const (
	InternalErrorEmulation        = 1
	InternalErrorSimulEx          = 2
	InternalErrorDeliveryEv       = 3
	InternalErrorUnexpectedReason = 4
)

// InternalErrorExit is KVM_EXIT_INTERNAL_ERROR.
type InternalErrorExit struct {
	Suberror uint32
	Data     []uint64
}

func (InternalErrorExit) Reason() ExitReason { return ExitInternalError }

// SuberrorName names the suberror as KVM's header does.
func (e InternalErrorExit) SuberrorName() string {
	switch e.Suberror {
	case InternalErrorEmulation:
		return "emulation failure"
	case InternalErrorSimulEx:
		return "simultaneous exceptions"
	case InternalErrorDeliveryEv:
		return "event delivery failure"
	case InternalErrorUnexpectedReason:
		return "unexpected exit reason"
	}
	return fmt.Sprintf("suberror %d", e.Suberror)
}

// InstructionBytes returns the bytes of the instruction KVM failed to
// emulate, when KVM reported them: for an emulation failure with flag
// KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES, data[0] is the flags
// word and the next 16 bytes are insn_size (u8) then up to 15 bytes.
func (e InternalErrorExit) InstructionBytes() []byte {
	const flagInsnBytes = 1
	if e.Suberror != InternalErrorEmulation || len(e.Data) < 3 || e.Data[0]&flagInsnBytes == 0 {
		return nil
	}
	b := binary.LittleEndian.AppendUint64(nil, e.Data[1])
	b = binary.LittleEndian.AppendUint64(b, e.Data[2])
	n := min(int(b[0]), 15)
	return b[1 : 1+n]
}

func (e InternalErrorExit) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "internal error: %s", e.SuberrorName())
	if b := e.InstructionBytes(); b != nil {
		fmt.Fprintf(&sb, ", instruction bytes % x", b)
	}
	if len(e.Data) > 0 {
		fmt.Fprintf(&sb, ", data")
		for _, d := range e.Data {
			fmt.Fprintf(&sb, " %#x", d)
		}
	}
	return sb.String()
}

// System event types (KVM_SYSTEM_EVENT_*).
const (
	SystemEventShutdown = 1
	SystemEventReset    = 2
	SystemEventCrash    = 3
)

// SystemEventExit is KVM_EXIT_SYSTEM_EVENT.
type SystemEventExit struct {
	Type uint32
	Data []uint64
}

func (SystemEventExit) Reason() ExitReason { return ExitSystemEvent }
func (e SystemEventExit) String() string {
	switch e.Type {
	case SystemEventShutdown:
		return "system event: shutdown"
	case SystemEventReset:
		return "system event: reset"
	case SystemEventCrash:
		return "system event: crash"
	}
	return fmt.Sprintf("system event: type %d", e.Type)
}

// FailEntryExit is KVM_EXIT_FAIL_ENTRY: the hardware refused to enter the guest.
type FailEntryExit struct {
	HardwareReason uint64
	CPU            uint32
}

func (FailEntryExit) Reason() ExitReason { return ExitFailEntry }
func (e FailEntryExit) String() string {
	return fmt.Sprintf("entry failed: hardware reason %#x on cpu %d", e.HardwareReason, e.CPU)
}

// UnknownExit is KVM_EXIT_UNKNOWN.
type UnknownExit struct{ HardwareReason uint64 }

func (UnknownExit) Reason() ExitReason { return ExitUnknown }
func (e UnknownExit) String() string {
	return fmt.Sprintf("unknown exit: hardware reason %#x", e.HardwareReason)
}

// ExceptionExit is KVM_EXIT_EXCEPTION.
type ExceptionExit struct{ Exception, ErrorCode uint32 }

func (ExceptionExit) Reason() ExitReason { return ExitException }
func (e ExceptionExit) String() string {
	return fmt.Sprintf("exception %d error code %#x", e.Exception, e.ErrorCode)
}

// HypercallExit is KVM_EXIT_HYPERCALL.
type HypercallExit struct {
	Nr   uint64
	Args [6]uint64
}

func (HypercallExit) Reason() ExitReason { return ExitHypercall }
func (e HypercallExit) String() string   { return fmt.Sprintf("hypercall %d", e.Nr) }

// SimpleExit is an exit that carries no data of interest (HLT, SHUTDOWN,
// INTR, IRQ_WINDOW_OPEN, ...), or a reason this package does not decode.
type SimpleExit ExitReason

func (e SimpleExit) Reason() ExitReason { return ExitReason(e) }
func (e SimpleExit) String() string     { return ExitReason(e).String() }
