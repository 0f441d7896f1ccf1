// Package lifecycle holds the process-level helpers of a QEMU-compatible
// VMM: the pid file, -daemonize, and the report of a terminating signal.
package lifecycle

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// PIDFile is a locked pid file, as QEMU's -pidfile: the file holds the pid,
// and a write lock on it tells a second instance (QEMU or govmm) that it is
// in use. The lock is an OFD lock: it conflicts with QEMU's lockf lock but,
// unlike it, is not dropped when this process opens and closes the file.
type PIDFile struct {
	path string
	f    *os.File
}

func strerror(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		s := errno.Error()
		return strings.ToUpper(s[:1]) + s[1:]
	}
	return err.Error()
}

// CreatePIDFile creates (or reuses) path, locks it and writes the pid.
// Error messages are QEMU's, to be printed after "PROG: ".
func CreatePIDFile(path string) (*PIDFile, error) {
	for {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("cannot create PID file: Could not create '%s': %s", path, strerror(err))
		}
		lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
		if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
			f.Close()
			return nil, fmt.Errorf("cannot create PID file: Cannot lock pid file: %s", strerror(err))
		}
		// The file may have been unlinked by its previous owner between
		// our open and lock; then lock a fresh one, as QEMU does.
		var st1, st2 unix.Stat_t
		if unix.Fstat(int(f.Fd()), &st1) != nil || unix.Stat(path, &st2) != nil || st1.Ino != st2.Ino || st1.Dev != st2.Dev {
			f.Close()
			continue
		}
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, fmt.Errorf("cannot create PID file: Failed to truncate pid file: %s", strerror(err))
		}
		if _, err := f.WriteString(strconv.Itoa(os.Getpid()) + "\n"); err != nil {
			f.Close()
			return nil, fmt.Errorf("cannot create PID file: Failed to write pid file: %s", strerror(err))
		}
		// Keep the absolute path: a daemon changes to / before it exits.
		abs, err := filepath.Abs(path)
		if err != nil {
			abs = path
		}
		return &PIDFile{path: abs, f: f}, nil
	}
}

// Remove deletes the file (if it is still ours) and drops the lock.
func (p *PIDFile) Remove() error {
	if p == nil || p.f == nil {
		return nil
	}
	var st1, st2 unix.Stat_t
	var err error
	if unix.Fstat(int(p.f.Fd()), &st1) == nil && unix.Stat(p.path, &st2) == nil && st1.Ino == st2.Ino && st1.Dev == st2.Dev {
		err = os.Remove(p.path)
	}
	p.f.Close()
	p.f = nil
	return err
}
