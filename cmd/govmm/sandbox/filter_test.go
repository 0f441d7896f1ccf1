//go:build linux && amd64

package sandbox

import (
	"testing"

	"golang.org/x/sys/unix"
)

const (
	allow = unix.SECCOMP_RET_ALLOW
	kill  = unix.SECCOMP_RET_KILL_PROCESS
	eperm = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	enosy = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
)

// Clone flag sets seen in the wild.
const (
	goThread    = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_SYSVSEM | unix.CLONE_THREAD | unix.CLONE_SETTLS
	glibcThread = goThread | unix.CLONE_PARENT_SETTID | unix.CLONE_CHILD_CLEARTID
	glibcFork   = unix.CLONE_CHILD_SETTID | unix.CLONE_CHILD_CLEARTID | uint64(unix.SIGCHLD)
	goForkExec  = unix.CLONE_VM | unix.CLONE_VFORK | uint64(unix.SIGCHLD)
)

func call(nr uint32, args ...uint64) seccompData {
	d := seccompData{nr: nr, arch: unix.AUDIT_ARCH_X86_64, ip: 0x401000}
	copy(d.args[:], args)
	return d
}

// The expectations are written out from QEMU's list rather than taken
// from denyList, so a slip in the table shows up here.
var (
	defaultDenied  = []uint32{unix.SYS_REBOOT, unix.SYS_SWAPON, unix.SYS_SWAPOFF, unix.SYS_SYSLOG, unix.SYS_MOUNT, unix.SYS_KEXEC_LOAD, unix.SYS_AFS_SYSCALL, unix.SYS_GETPMSG, unix.SYS_PUTPMSG, unix.SYS_SECURITY, unix.SYS_TUXCALL, unix.SYS_VSERVER}
	obsoleteDenied = []uint32{unix.SYS__SYSCTL, unix.SYS_CREATE_MODULE, unix.SYS_GET_KERNEL_SYMS, unix.SYS_QUERY_MODULE, unix.SYS_SYSFS, unix.SYS_USELIB, unix.SYS_USTAT}
	privDenied     = []uint32{unix.SYS_SETUID, unix.SYS_SETGID, unix.SYS_SETPGID, unix.SYS_SETSID, unix.SYS_SETREUID, unix.SYS_SETREGID, unix.SYS_SETRESUID, unix.SYS_SETRESGID, unix.SYS_SETFSUID, unix.SYS_SETFSGID}
	spawnDenied    = []uint32{unix.SYS_FORK, unix.SYS_VFORK, unix.SYS_EXECVE, unix.SYS_EXECVEAT, unix.SYS_SETNS, unix.SYS_UNSHARE}
	resctlDenied   = []uint32{unix.SYS_SETPRIORITY, unix.SYS_SCHED_SETPARAM, unix.SYS_SCHED_SETAFFINITY}
)

// expected is the decision for a call with no special arguments (clone's
// and sched_setscheduler's are tested apart).
func expected(o Options, nr uint32) uint32 {
	in := func(l []uint32) bool {
		for _, n := range l {
			if n == nr {
				return true
			}
		}
		return false
	}
	switch {
	case in(defaultDenied):
		return kill
	case in(obsoleteDenied) && o.Obsolete != "allow":
		return kill
	case in(privDenied) && (o.ElevatePrivileges == "deny" || o.ElevatePrivileges == "children"):
		return kill
	case in(spawnDenied) && o.Spawn == "deny":
		return kill
	case nr == unix.SYS_CLONE3 && o.Spawn == "deny":
		return enosy
	case in(resctlDenied) && o.ResourceControl == "deny":
		return eperm
	}
	return allow
}

var optionSets = []Options{
	{},
	{Obsolete: "deny"},
	{Obsolete: "allow"},
	{ElevatePrivileges: "deny"},
	{ElevatePrivileges: "children"},
	{ElevatePrivileges: "allow"},
	{Spawn: "deny"},
	{ResourceControl: "deny"},
	{Obsolete: "allow", ElevatePrivileges: "deny", Spawn: "deny", ResourceControl: "deny"},
	{Obsolete: "deny", ElevatePrivileges: "children", Spawn: "deny", ResourceControl: "deny"},
}

func TestDecisionsBySyscallNumber(t *testing.T) {
	for _, o := range optionSets {
		prog, err := build(o, kill)
		if err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
		// Every number the kernel has, and some past the end.
		for nr := uint32(0); nr < 600; nr++ {
			if nr == unix.SYS_CLONE || nr == unix.SYS_SCHED_SETSCHEDULER {
				continue
			}
			got, err := runBPF(prog, call(nr))
			if err != nil {
				t.Fatalf("%+v nr %d: %v", o, nr, err)
			}
			if want := expected(o, nr); got != want {
				t.Errorf("%+v: syscall %d: got %#x, want %#x", o, nr, got, want)
			}
		}
	}
}

func TestSpotChecks(t *testing.T) {
	all := Options{ElevatePrivileges: "deny", Spawn: "deny", ResourceControl: "deny"}
	tests := []struct {
		o    Options
		d    seccompData
		want uint32
	}{
		// Everyday calls stay allowed under the strictest set.
		{all, call(unix.SYS_READ, 0, 0, 0), allow},
		{all, call(unix.SYS_IOCTL, 3, 0xae01), allow},
		{all, call(unix.SYS_MMAP), allow},
		{all, call(unix.SYS_FUTEX), allow},
		{all, call(unix.SYS_TGKILL), allow},
		{all, call(unix.SYS_RT_SIGACTION), allow},
		{all, call(unix.SYS_SCHED_GETAFFINITY), allow},
		{all, call(unix.SYS_GETPRIORITY), allow},
		{all, call(unix.SYS_SECCOMP), allow},
		{all, call(unix.SYS_PRCTL), allow},
		// QEMU lists umount, which x86_64 does not have: umount2 passes.
		{all, call(unix.SYS_UMOUNT2), allow},
		{Options{}, call(unix.SYS_REBOOT), kill},
		{Options{}, call(unix.SYS_USELIB), kill},
		{Options{Obsolete: "allow"}, call(unix.SYS_USELIB), allow},
		{Options{}, call(unix.SYS_SETUID), allow},
		{Options{}, call(unix.SYS_EXECVE), allow},
		{Options{}, call(unix.SYS_CLONE, glibcFork), allow},
		{Options{}, call(unix.SYS_SETPRIORITY), allow},
	}
	for _, tt := range tests {
		prog, err := build(tt.o, kill)
		if err != nil {
			t.Fatal(err)
		}
		got, err := runBPF(prog, tt.d)
		if err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("%+v nr %d args %x: got %#x, want %#x", tt.o, tt.d.nr, tt.d.args, got, tt.want)
		}
	}
}

func TestCloneFlags(t *testing.T) {
	prog, err := build(Options{Spawn: "deny"}, kill)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		flags uint64
		want  uint32
	}{
		{"go runtime thread", goThread, allow},
		{"go thread without m (no SETTLS)", goThread &^ unix.CLONE_SETTLS, allow},
		{"glibc pthread", glibcThread, allow},
		{"upper half ignored by the kernel", goThread | 0xffffffff00000000, allow},
		{"glibc fork", glibcFork, kill},
		{"plain SIGCHLD", uint64(unix.SIGCHLD), kill},
		{"no flags", 0, kill},
		{"go os/exec vfork", goForkExec, kill},
		{"go os/exec with pidfd", goForkExec | unix.CLONE_PIDFD, kill},
		{"thread without CLONE_THREAD", goThread &^ unix.CLONE_THREAD, kill},
		{"thread without CLONE_SYSVSEM", goThread &^ unix.CLONE_SYSVSEM, kill},
		{"thread without CLONE_FILES", goThread &^ unix.CLONE_FILES, kill},
		{"thread in new netns", goThread | unix.CLONE_NEWNET, kill},
		{"thread in new user ns", goThread | unix.CLONE_NEWUSER, kill},
		{"thread with CLONE_IO", goThread | unix.CLONE_IO, kill},
		{"thread with CLONE_PTRACE", goThread | unix.CLONE_PTRACE, kill},
		{"thread with CLONE_VFORK", goThread | unix.CLONE_VFORK, kill},
		{"thread with CLONE_PARENT", goThread | unix.CLONE_PARENT, kill},
		{"thread with CLONE_UNTRACED", goThread | unix.CLONE_UNTRACED, kill},
	}
	for _, tt := range tests {
		got, err := runBPF(prog, call(unix.SYS_CLONE, tt.flags))
		if err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("%s (%#x): got %#x, want %#x", tt.name, tt.flags, got, tt.want)
		}
	}
	// clone3 gets ENOSYS whatever its arguments.
	if got, _ := runBPF(prog, call(unix.SYS_CLONE3, 0, 88)); got != enosy {
		t.Errorf("clone3: got %#x, want ENOSYS", got)
	}
}

func TestSchedSetscheduler(t *testing.T) {
	prog, err := build(Options{ResourceControl: "deny"}, kill)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		policy uint64
		want   uint32
	}{
		{unix.SCHED_IDLE, allow},
		{0, eperm}, // SCHED_OTHER,
		{unix.SCHED_FIFO, eperm},
		{unix.SCHED_RR, eperm},
		{unix.SCHED_BATCH, eperm},
		{1<<32 | unix.SCHED_IDLE, eperm}, // libseccomp compares all 64 bits
	}
	for _, tt := range tests {
		got, err := runBPF(prog, call(unix.SYS_SCHED_SETSCHEDULER, 0, tt.policy, 0))
		if err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("policy %#x: got %#x, want %#x", tt.policy, got, tt.want)
		}
	}
	// Without resourcecontrol=deny the policy does not matter.
	prog, _ = build(Options{}, kill)
	if got, _ := runBPF(prog, call(unix.SYS_SCHED_SETSCHEDULER, 0, unix.SCHED_FIFO)); got != allow {
		t.Errorf("default options: got %#x, want allow", got)
	}
}

func TestForeignArchitecturesAreKilled(t *testing.T) {
	prog, err := build(Options{}, unix.SECCOMP_RET_TRAP)
	if err != nil {
		t.Fatal(err)
	}
	// i386's read through int 0x80: number 3, which x86_64 reads as close.
	d := call(3)
	d.arch = unix.AUDIT_ARCH_I386
	if got, _ := runBPF(prog, d); got != unix.SECCOMP_RET_TRAP {
		t.Errorf("i386: got %#x, want the kill action", got)
	}
	// x32's read, and the x32 bit on an otherwise allowed number.
	for _, nr := range []uint32{x32ABIBit, x32ABIBit | unix.SYS_GETPID, 0xffffffff} {
		if got, _ := runBPF(prog, call(nr)); got != unix.SECCOMP_RET_TRAP {
			t.Errorf("nr %#x: got %#x, want the kill action", nr, got)
		}
	}
	// The kill action given is the one used for denied calls.
	if got, _ := runBPF(prog, call(unix.SYS_REBOOT)); got != unix.SECCOMP_RET_TRAP {
		t.Errorf("reboot: got %#x, want TRAP", got)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		o    Options
		want string
	}{
		{Options{}, ""},
		{Options{Obsolete: "allow", ElevatePrivileges: "children", Spawn: "deny", ResourceControl: "allow"}, ""},
		{Options{Spawn: "maybe"}, "invalid argument for spawn"},
		{Options{Spawn: ""}, ""},
		{Options{Spawn: "Deny"}, "invalid argument for spawn"},
		{Options{Obsolete: "children"}, "invalid argument for obsolete"},
		{Options{Spawn: "children"}, "invalid argument for spawn"},
		{Options{ResourceControl: "on"}, "invalid argument for resourcecontrol"},
		{Options{ElevatePrivileges: "y"}, "invalid argument for elevateprivileges"},
		// QEMU checks in this order and reports the first.
		{Options{Obsolete: "x", Spawn: "x"}, "invalid argument for obsolete"},
		{Options{ElevatePrivileges: "x", ResourceControl: "x"}, "invalid argument for elevateprivileges"},
		{Options{Spawn: "x", ResourceControl: "x"}, "invalid argument for spawn"},
	}
	for _, tt := range tests {
		err := tt.o.Validate()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("%+v: got %q, want %q", tt.o, got, tt.want)
		}
		if _, berr := build(tt.o, kill); (berr == nil) != (tt.want == "") {
			t.Errorf("%+v: build error %v, want one iff Validate fails", tt.o, berr)
		}
	}
}

func TestErrorText(t *testing.T) {
	e := &Error{Msg: "failed to load seccomp syscall filter in kernel", Err: unix.EINVAL}
	if got, want := e.Error(), "failed to load seccomp syscall filter in kernel: Invalid argument"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	e = &Error{Msg: "failed to set no_new_privs aborting"}
	if got, want := e.Error(), "failed to set no_new_privs aborting"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// FuzzFilter: for any option strings and any seccomp_data, building never
// panics, fails exactly when Validate does, and the program always runs to
// a return with one of the four actions; a foreign arch is always killed.
func FuzzFilter(f *testing.F) {
	f.Add("", "", "", "", uint32(unix.SYS_CLONE), uint32(unix.AUDIT_ARCH_X86_64), uint64(goThread), uint64(0))
	f.Add("allow", "children", "deny", "deny", uint32(unix.SYS_SCHED_SETSCHEDULER), uint32(unix.AUDIT_ARCH_X86_64), uint64(0), uint64(unix.SCHED_IDLE))
	f.Add("deny", "deny", "deny", "deny", uint32(unix.SYS_CLONE), uint32(unix.AUDIT_ARCH_I386), uint64(glibcFork), uint64(0))
	f.Add("x", "", "maybe", "", uint32(0x40000001), uint32(unix.AUDIT_ARCH_X86_64), uint64(0), uint64(0))
	f.Fuzz(func(t *testing.T, obs, elev, spawn, res string, nr, arch uint32, a0, a1 uint64) {
		o := Options{Obsolete: obs, ElevatePrivileges: elev, Spawn: spawn, ResourceControl: res}
		// All four given on the command line: FromOpts agrees with
		// Validate except that it also refuses empty values.
		kv := map[string]string{"obsolete": obs, "elevateprivileges": elev, "spawn": spawn, "resourcecontrol": res}
		fo, ferr := FromOpts(func(k string) (string, bool) { return kv[k], true })
		empty := obs == "" || elev == "" || spawn == "" || res == ""
		if (ferr == nil) != (o.Validate() == nil && !empty) || (ferr == nil && fo != o) {
			t.Fatalf("FromOpts %+v %v, Validate %v", fo, ferr, o.Validate())
		}
		prog, err := build(o, kill)
		if (err == nil) != (o.Validate() == nil) {
			t.Fatalf("build error %v, Validate %v", err, o.Validate())
		}
		if err != nil {
			return
		}
		d := call(nr, a0, a1)
		d.arch = arch
		got, err := runBPF(prog, d)
		if err != nil {
			t.Fatal(err)
		}
		switch got {
		case allow, kill, eperm, enosy:
		default:
			t.Fatalf("unexpected action %#x", got)
		}
		if arch != unix.AUDIT_ARCH_X86_64 && got != kill {
			t.Fatalf("arch %#x: got %#x, want kill", arch, got)
		}
	})
}

func TestFromOpts(t *testing.T) {
	tests := []struct {
		kv   map[string]string
		want Options
		err  string
	}{
		{map[string]string{}, Options{}, ""},
		{map[string]string{"obsolete": "allow", "elevateprivileges": "children", "spawn": "deny", "resourcecontrol": "deny"},
			Options{Obsolete: "allow", ElevatePrivileges: "children", Spawn: "deny", ResourceControl: "deny"}, ""},
		{map[string]string{"spawn": ""}, Options{}, "invalid argument for spawn"},
		{map[string]string{"spawn": "on"}, Options{}, "invalid argument for spawn"}, // short form "spawn"
		{map[string]string{"spawn": "", "obsolete": "x"}, Options{}, "invalid argument for obsolete"},
		{map[string]string{"resourcecontrol": "x", "elevateprivileges": ""}, Options{}, "invalid argument for elevateprivileges"},
		{map[string]string{"resourcecontrol": "maybe"}, Options{}, "invalid argument for resourcecontrol"},
	}
	for _, tt := range tests {
		o, err := FromOpts(func(k string) (string, bool) { v, ok := tt.kv[k]; return v, ok })
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.err || o != tt.want {
			t.Errorf("%v: got %+v, %q; want %+v, %q", tt.kv, o, got, tt.want, tt.err)
		}
	}
}
