package disk

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// QEMU's block permission bits (include/block/block-common.h). The lock
// bytes below are numbered by these, so they must not change.
const (
	permConsistentRead = 1 << 0
	permWrite          = 1 << 1
	permWriteUnchanged = 1 << 2
	permResize         = 1 << 3
	permGraphMod       = 1 << 4
	permAll            = 0x1f

	// file-posix leaves bytes below 100 to libvirt.
	lockPermBase   = 100 // shared lock on 100+i: "I use permission i"
	lockSharedBase = 200 // shared lock on 200+i: "I do not share permission i"
)

var permNames = [...]string{"consistent read", "write", "write unchanged", "resize", "change children"}

// LockError is QEMU's image locking failure. Error() gives the message and
// QEMU's hint line, so "prog: -drive ...: " + err.Error() matches QEMU's
// output line for line.
type LockError struct {
	Msg  string // e.g. Failed to get "write" lock
	Path string
}

func (e *LockError) Error() string { return e.Msg + "\n" + e.Hint() }

// Hint is the second line QEMU prints.
func (e *LockError) Hint() string {
	return fmt.Sprintf("Is another process using the image [%s]?", e.Path)
}

// lockPerms returns the permissions an opener takes and shares, as QEMU
// 7.2 computes them on the file node for a guest device (seen in
// /proc/locks): a device never shares write; qcow2 also takes resize
// (it grows the file) and so does not share it either.
func lockPerms(format string, readOnly bool) (perm, shared uint64) {
	perm, shared = permConsistentRead, permAll&^permWrite
	if format == "qcow2" {
		shared &^= permResize
		if !readOnly {
			perm |= permResize
		}
	}
	if !readOnly {
		perm |= permWrite
	}
	return perm, shared
}

// lock takes the image locks for format.
func (r *Raw) lock(format string) error {
	perm, shared := lockPerms(format, r.readOnly)
	if err := applyLocks(int(r.f.Fd()), r.path, perm, shared); err != nil {
		return err
	}
	return nil
}

// applyLocks takes QEMU-compatible OFD locks on fd. OFD locks belong to
// the open file description, so closing fd drops them and another fd of
// this process conflicts like another process would (as in QEMU).
func applyLocks(fd int, path string, perm, shared uint64) error {
	// Take our bytes first, then test the others' bytes: the same order
	// as QEMU's raw_handle_perm_lock, so two openers racing cannot both
	// succeed.
	for i := 0; i < len(permNames); i++ {
		bit := uint64(1) << i
		if perm&bit != 0 {
			if err := ofdLock(fd, lockPermBase+int64(i), unix.F_RDLCK); err != nil {
				return lockErr(err, fmt.Sprintf("Failed to lock byte %d", lockPermBase+i), path)
			}
		}
	}
	for i := 0; i < len(permNames); i++ {
		bit := uint64(1) << i
		if shared&bit == 0 {
			if err := ofdLock(fd, lockSharedBase+int64(i), unix.F_RDLCK); err != nil {
				return lockErr(err, fmt.Sprintf("Failed to lock byte %d", lockSharedBase+i), path)
			}
		}
	}
	for i := 0; i < len(permNames); i++ {
		bit := uint64(1) << i
		if perm&bit != 0 {
			if busy, err := ofdTest(fd, lockSharedBase+int64(i)); err != nil || busy {
				return lockErr(err, fmt.Sprintf("Failed to get %q lock", permNames[i]), path)
			}
		}
	}
	for i := 0; i < len(permNames); i++ {
		bit := uint64(1) << i
		if shared&bit == 0 {
			if busy, err := ofdTest(fd, lockPermBase+int64(i)); err != nil || busy {
				return lockErr(err, fmt.Sprintf("Failed to get shared %q lock", permNames[i]), path)
			}
		}
	}
	return nil
}

func lockErr(err error, msg, path string) error {
	if err != nil && err != unix.EAGAIN && err != unix.EACCES {
		msg += ": " + errText(err)
	}
	return &LockError{Msg: msg, Path: path}
}

// errText renders an errno like QEMU's error_setg_errno (strerror text).
func errText(err error) string {
	s := err.Error()
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func ofdLock(fd int, off int64, typ int16) error {
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: off, Len: 1}
	return unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk)
}

// ofdTest reports whether someone else holds a lock that conflicts with
// an exclusive lock on byte off (our own OFD locks never conflict).
func ofdTest(fd int, off int64) (bool, error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: off, Len: 1}
	if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &lk); err != nil {
		return false, err
	}
	return lk.Type != unix.F_UNLCK, nil
}
