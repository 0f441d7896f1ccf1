package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Invocation is one VMM process to start.
type Invocation struct {
	Path    string
	Args    []string
	Timeout time.Duration
	// StopAt, when set, kills the process as soon as a line containing it
	// has arrived (the Linux boot measurement needs only the first line).
	StopAt string
}

func (inv Invocation) String() string {
	return strings.Join(append([]string{inv.Path}, inv.Args...), " ")
}

// Result is what one run measured.
type Result struct {
	Lines     []Line
	FirstByte time.Duration // -1 when the guest printed nothing
	Exit      time.Duration // process start to wait4 returning
	CPU       time.Duration // user + system, all threads
	MaxRSSKiB int64
	Status    int  // exit status, -1 when killed by a signal
	Stopped   bool // killed by us after StopAt was seen
	Stderr    string
}

// Run starts the VMM with stdout on a pipe that a goroutine reads, so each
// chunk of guest serial output gets the time its read returned. The pipe
// is an *os.File given to the child directly: Wait then has no copying
// goroutines to drain and returns as soon as the process is reaped.
func Run(inv Invocation) (*Result, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer pr.Close()
	errf, err := os.CreateTemp("", "vmbench-stderr-*")
	if err != nil {
		pw.Close()
		return nil, err
	}
	defer os.Remove(errf.Name())
	defer errf.Close()

	cmd := exec.Command(inv.Path, inv.Args...)
	cmd.Stdout = pw
	cmd.Stderr = errf
	// Stdin stays /dev/null: -nographic would otherwise put a terminal
	// into raw mode.

	resetPeakRSS()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		pw.Close()
		return nil, err
	}
	pw.Close()

	var chunks []Chunk
	stopped := false
	readDone := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		var tail []byte // recent output, to find StopAt across chunk borders
		for {
			n, err := pr.Read(buf)
			at := time.Since(start)
			if n > 0 {
				data := append([]byte(nil), buf[:n]...)
				chunks = append(chunks, Chunk{At: at, Data: data})
				if inv.StopAt != "" && !stopped {
					tail = append(tail, data...)
					if strings.Contains(string(tail), inv.StopAt) {
						stopped = true
						cmd.Process.Kill()
					}
					if keep := len(inv.StopAt); len(tail) > keep {
						tail = tail[len(tail)-keep:]
					}
				}
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				readDone <- err
				return
			}
		}
	}()

	var timedOut atomic.Bool
	timer := time.AfterFunc(inv.Timeout, func() {
		timedOut.Store(true)
		cmd.Process.Kill()
	})
	waitErr := cmd.Wait()
	exit := time.Since(start)
	timer.Stop()
	// The guest's output ends when the VMM exits; a child that kept the
	// pipe open (none should) is reported rather than waited for.
	select {
	case err = <-readDone:
	case <-time.After(5 * time.Second):
		return nil, fmt.Errorf("%s: stdout still open 5s after exit", inv.Path)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s output: %w", inv.Path, err)
	}
	errf.Seek(0, io.SeekStart)
	stderr, _ := io.ReadAll(io.LimitReader(errf, 64<<10))

	r := &Result{
		Lines:     SplitLines(chunks),
		FirstByte: -1,
		Exit:      exit,
		Status:    cmd.ProcessState.ExitCode(),
		Stopped:   stopped,
		Stderr:    string(stderr),
	}
	if len(chunks) > 0 {
		r.FirstByte = chunks[0].At
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		r.MaxRSSKiB = ru.Maxrss
	}
	if timedOut.Load() && !stopped {
		return r, fmt.Errorf("%s timed out after %v", inv, inv.Timeout)
	}
	var ee *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &ee) {
		return r, waitErr
	}
	return r, nil
}

// resetPeakRSS makes the next child's ru_maxrss its own. Go starts children
// with vfork semantics, and exec folds the high-water RSS of the address
// space being left, which is this process's, into the child's maxrss. So
// the harness returns freed memory to the OS and resets its own high-water
// mark to its current RSS (clear_refs 5, Linux 4.0+). What remains, this
// process's current RSS (a few MiB), is a floor under every maxrss sample;
// the report gives it as "harness floor".
func resetPeakRSS() {
	debug.FreeOSMemory()
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}
