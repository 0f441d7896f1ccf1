package lifecycle

import (
	"bytes"
	"fmt"
	"os"
)

// SignalInfo is a terminating signal and who sent it (PID 0: the kernel or
// a terminal, e.g. ^C).
type SignalInfo struct {
	Signo int
	PID   int
	UID   int
}

// TerminationMessage is QEMU's report of a terminating signal (print it on
// stderr, then exit 0 as QEMU does).
func TerminationMessage(prog string, si SignalInfo) string {
	if si.PID == 0 {
		return fmt.Sprintf("%s: terminated by signal %d", prog, si.Signo)
	}
	return fmt.Sprintf("%s: terminating on signal %d from pid %d (%s)", prog, si.Signo, si.PID, processName(si.PID))
}

// processName is what QEMU shows: the sender's argv[0] from /proc.
func processName(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return "<unknown process>"
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
