package machine

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// setThreadName names the calling OS thread (prctl PR_SET_NAME; the kernel
// keeps 15 bytes), as QEMU's -name debug-threads=on does for vCPU threads.
func setThreadName(name string) error {
	b := append([]byte(name), 0)
	err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&b[0])), 0, 0, 0)
	runtime.KeepAlive(b)
	return err
}
