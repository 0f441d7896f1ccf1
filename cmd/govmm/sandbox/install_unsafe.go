//go:build linux

package sandbox

import (
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Install builds the filter for o and loads it into the kernel for every
// thread of the process (SECCOMP_FILTER_FLAG_TSYNC: the Go runtime runs
// goroutines on many threads, and threads created later inherit it). It
// first sets no_new_privs, as libseccomp does by default for QEMU, so no
// CAP_SYS_ADMIN is needed; TSYNC carries that to the other threads too.
//
// It cannot be undone. Errors carry QEMU's wording (see Error).
func Install(o Options) error {
	prog, err := Build(o)
	if err != nil {
		return err
	}
	// no_new_privs is a per-thread flag that the seccomp call checks on
	// the calling thread: both must run on the same one.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		if o.ElevatePrivileges == "children" {
			return &Error{Msg: "failed to set no_new_privs aborting"}
		}
		return &Error{Msg: "failed to load seccomp syscall filter in kernel", Err: err}
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if errno != 0 {
		return &Error{Msg: "failed to load seccomp syscall filter in kernel", Err: errno}
	}
	if r != 0 {
		// TSYNC failed: r is the id of a thread that could not take the
		// filter; libseccomp reports that as ESRCH.
		return &Error{Msg: "failed to load seccomp syscall filter in kernel", Err: unix.ESRCH}
	}
	return nil
}

var killOnce struct {
	sync.Once
	action uint32
}

// killAction is SECCOMP_RET_KILL_PROCESS if the kernel supports it, else
// SECCOMP_RET_TRAP, as QEMU chooses.
func killAction() uint32 {
	killOnce.Do(func() {
		killOnce.action = unix.SECCOMP_RET_TRAP
		act := uint32(unix.SECCOMP_RET_KILL_PROCESS)
		_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_ACTION_AVAIL, 0, uintptr(unsafe.Pointer(&act)))
		if errno == 0 {
			killOnce.action = unix.SECCOMP_RET_KILL_PROCESS
		}
	})
	return killOnce.action
}
