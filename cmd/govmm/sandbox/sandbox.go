// Package sandbox implements QEMU's -sandbox option: a seccomp-BPF filter,
// installed on every thread of the process, that denies the system calls a
// VMM should never need. The filter is built in Go (no libseccomp) from the
// same deny list as QEMU's softmmu/qemu-seccomp.c, in the same groups:
//
//   - default: always denied (reboot, swapon, mount, kexec_load, ...)
//   - obsolete: denied unless obsolete=allow (uselib, ustat, sysfs, _sysctl, ...)
//   - elevateprivileges=deny|children: the setuid family, setsid, setpgid
//   - spawn=deny: fork, vfork, execve, execveat, setns, unshare, clone3, and
//     clone unless it creates a thread
//   - resourcecontrol=deny: setpriority, sched_setparam, sched_setaffinity,
//     sched_setscheduler unless to SCHED_IDLE
//
// Denied calls kill the process (SECCOMP_RET_KILL_PROCESS, or a SIGSYS trap
// on kernels before 4.14), except resourcecontrol's, which fail with EPERM,
// and clone3, which fails with ENOSYS. Where QEMU differs:
//
//   - QEMU gives execveat, setns and unshare no action, which libseccomp
//     reads as KILL_THREAD; a Go process with a silently vanished thread
//     would hang, so here they kill the process like the rest of the group.
//   - QEMU also lets clone through only with CLONE_SETTLS,
//     CLONE_PARENT_SETTID and CLONE_CHILD_CLEARTID, which glibc passes but
//     the Go runtime does not; see cloneRequired.
//   - A foreign architecture or an x32 call kills the process; libseccomp's
//     default for QEMU kills the thread.
//
// Installing a filter cannot be undone and applies to the whole process.
package sandbox

import "errors"

// Options are the sub-options of one `-sandbox on,...`, with QEMU's values:
// Obsolete "allow" or "deny" (the default), ElevatePrivileges "allow" (the
// default), "deny" or "children", Spawn and ResourceControl "allow" (the
// default) or "deny". An empty string means the option was not given.
type Options struct {
	Obsolete          string
	ElevatePrivileges string
	Spawn             string
	ResourceControl   string
}

// FromOpts reads the sub-options of an enabled -sandbox as QEMU does: get
// returns the (last) value given for a key and whether the key was given
// at all. Keys are checked in QEMU's order and the first bad value is
// reported with QEMU's message; a key given with an empty value ("spawn=")
// is bad, unlike one not given.
func FromOpts(get func(key string) (string, bool)) (Options, error) {
	var o Options
	fields := []struct {
		key string
		dst *string
	}{
		{"obsolete", &o.Obsolete},
		{"elevateprivileges", &o.ElevatePrivileges},
		{"spawn", &o.Spawn},
		{"resourcecontrol", &o.ResourceControl},
	}
	for _, f := range fields {
		v, ok := get(f.key)
		if !ok {
			continue
		}
		if v == "" {
			return Options{}, errors.New("invalid argument for " + f.key)
		}
		*f.dst = v
		if _, err := o.groups(); err != nil {
			return Options{}, err
		}
	}
	return o, nil
}

// group is a set of deny-list entries that one sub-option turns on or off.
type group uint8

const (
	groupDefault group = 1 << iota
	groupObsolete
	groupPrivileged
	groupSpawn
	groupResourceControl
)

// Validate checks the values in the order QEMU does and returns QEMU's
// message for the first bad one, e.g. "invalid argument for spawn". QEMU
// prints it as "<prog>: -sandbox <arg>: <message>" and exits 1. Only an
// enabled sandbox (-sandbox on) is validated by QEMU; "off" ignores them.
func (o Options) Validate() error {
	_, err := o.groups()
	return err
}

// groups maps the options to the deny-list groups they enable.
func (o Options) groups() (group, error) {
	g := groupDefault | groupObsolete
	switch o.Obsolete {
	case "", "deny":
	case "allow":
		g &^= groupObsolete
	default:
		return 0, errors.New("invalid argument for obsolete")
	}
	switch o.ElevatePrivileges {
	case "", "allow":
	case "deny", "children":
		g |= groupPrivileged
	default:
		return 0, errors.New("invalid argument for elevateprivileges")
	}
	switch o.Spawn {
	case "", "allow":
	case "deny":
		g |= groupSpawn
	default:
		return 0, errors.New("invalid argument for spawn")
	}
	switch o.ResourceControl {
	case "", "allow":
	case "deny":
		g |= groupResourceControl
	default:
		return 0, errors.New("invalid argument for resourcecontrol")
	}
	return g, nil
}

// Error is a failure to install the filter, worded as QEMU words it.
type Error struct {
	Msg string // e.g. "failed to load seccomp syscall filter in kernel"
	Err error  // the system error, if any
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Msg
	}
	// QEMU appends strerror(), which glibc capitalises; Go's errno text is
	// the same words in lower case.
	s := e.Err.Error()
	if s != "" && s[0] >= 'a' && s[0] <= 'z' {
		s = string(s[0]-'a'+'A') + s[1:]
	}
	return e.Msg + ": " + s
}

func (e *Error) Unwrap() error { return e.Err }
