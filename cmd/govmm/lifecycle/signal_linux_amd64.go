package lifecycle

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Go's os/signal does not expose siginfo, so the sender's pid is lost. For
// SIGINT, SIGHUP and SIGTERM we install our own handler (assembly, in
// signal_linux_amd64.s): it writes the kernel's 128-byte siginfo to a pipe
// with one write(2), which is async-signal-safe and atomic for a pipe. A
// goroutine reads the records. Nothing else may call signal.Notify for
// these signals afterwards, or Go's handler would replace ours.

// Set from Go before the handler is installed; read by the handler.
var sigPipeFD int64

// Addresses of the assembly functions (ABI0 entry points), filled in by a
// DATA directive in the .s file.
var sigHandlerAddr, sigRestorerAddr uintptr

func sigHandler()
func sigRestorer()

const siginfoSize = 128

type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

const (
	saSiginfo  = 0x4
	saOnstack  = 0x08000000
	saRestart  = 0x10000000
	saRestorer = 0x04000000
)

var sigOnce sync.Once
var sigCh chan SignalInfo
var sigErr error

// NotifyTermination routes SIGINT, SIGHUP and SIGTERM to the returned
// channel with the sender's pid, instead of killing the process.
func NotifyTermination() (<-chan SignalInfo, error) {
	sigOnce.Do(func() {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			sigErr = err
			return
		}
		// Only the write end is non-blocking: a full pipe drops the signal
		// instead of blocking inside the handler.
		if err := unix.SetNonblock(p[1], true); err != nil {
			sigErr = err
			return
		}
		sigPipeFD = int64(p[1])
		sigCh = make(chan SignalInfo, 8)
		r := os.NewFile(uintptr(p[0]), "signal-pipe")
		go readSignals(r, sigCh)
		for _, s := range []unix.Signal{unix.SIGINT, unix.SIGHUP, unix.SIGTERM} {
			act := kernelSigaction{
				handler:  sigHandlerAddr,
				flags:    saSiginfo | saOnstack | saRestart | saRestorer,
				restorer: sigRestorerAddr,
			}
			_, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(s), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
			if e != 0 {
				sigErr = e
				return
			}
		}
	})
	if sigErr != nil {
		return nil, sigErr
	}
	if sigCh == nil {
		return nil, errors.New("signal pipe not set up")
	}
	return sigCh, nil
}

func readSignals(r io.Reader, ch chan<- SignalInfo) {
	buf := make([]byte, siginfoSize)
	for {
		if _, err := io.ReadFull(r, buf); err != nil {
			return
		}
		// struct siginfo: si_signo, si_errno, si_code (int32 each), pad,
		// then for kill()/sigqueue(): si_pid, si_uid.
		ch <- SignalInfo{
			Signo: int(int32(binary.LittleEndian.Uint32(buf[0:]))),
			PID:   int(int32(binary.LittleEndian.Uint32(buf[16:]))),
			UID:   int(binary.LittleEndian.Uint32(buf[20:])),
		}
	}
}
