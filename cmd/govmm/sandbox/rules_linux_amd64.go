package sandbox

import "golang.org/x/sys/unix"

// The filter only runs x86_64 system calls; anything else (i386 through
// int 0x80, or x32) is killed, as libseccomp does for a filter built for
// one architecture.
const auditArch = unix.AUDIT_ARCH_X86_64

// x32ABIBit marks x32 system call numbers, which share AUDIT_ARCH_X86_64.
const x32ABIBit = 0x40000000

// QEMU's deny list (softmmu/qemu-seccomp.c) restricted to the system calls
// that exist on x86_64: libseccomp drops the others (umount, break, ftime,
// gtty, lock, mpx, prof, profil, stty, ulimit, readdir, bdflush, sgetmask,
// ssetmask) without error, so QEMU denies none of them here. Note that QEMU
// lists umount, not umount2, so umount2 stays allowed on x86_64.
var denyList = []rule{
	// default
	{name: "reboot", nr: unix.SYS_REBOOT, group: groupDefault},
	{name: "swapon", nr: unix.SYS_SWAPON, group: groupDefault},
	{name: "swapoff", nr: unix.SYS_SWAPOFF, group: groupDefault},
	{name: "syslog", nr: unix.SYS_SYSLOG, group: groupDefault},
	{name: "mount", nr: unix.SYS_MOUNT, group: groupDefault},
	{name: "kexec_load", nr: unix.SYS_KEXEC_LOAD, group: groupDefault},
	{name: "afs_syscall", nr: unix.SYS_AFS_SYSCALL, group: groupDefault},
	{name: "getpmsg", nr: unix.SYS_GETPMSG, group: groupDefault},
	{name: "putpmsg", nr: unix.SYS_PUTPMSG, group: groupDefault},
	{name: "security", nr: unix.SYS_SECURITY, group: groupDefault},
	{name: "tuxcall", nr: unix.SYS_TUXCALL, group: groupDefault},
	{name: "vserver", nr: unix.SYS_VSERVER, group: groupDefault},

	// obsolete
	{name: "_sysctl", nr: unix.SYS__SYSCTL, group: groupObsolete},
	{name: "create_module", nr: unix.SYS_CREATE_MODULE, group: groupObsolete},
	{name: "get_kernel_syms", nr: unix.SYS_GET_KERNEL_SYMS, group: groupObsolete},
	{name: "query_module", nr: unix.SYS_QUERY_MODULE, group: groupObsolete},
	{name: "sysfs", nr: unix.SYS_SYSFS, group: groupObsolete},
	{name: "uselib", nr: unix.SYS_USELIB, group: groupObsolete},
	{name: "ustat", nr: unix.SYS_USTAT, group: groupObsolete},

	// elevateprivileges
	{name: "setuid", nr: unix.SYS_SETUID, group: groupPrivileged},
	{name: "setgid", nr: unix.SYS_SETGID, group: groupPrivileged},
	{name: "setpgid", nr: unix.SYS_SETPGID, group: groupPrivileged},
	{name: "setsid", nr: unix.SYS_SETSID, group: groupPrivileged},
	{name: "setreuid", nr: unix.SYS_SETREUID, group: groupPrivileged},
	{name: "setregid", nr: unix.SYS_SETREGID, group: groupPrivileged},
	{name: "setresuid", nr: unix.SYS_SETRESUID, group: groupPrivileged},
	{name: "setresgid", nr: unix.SYS_SETRESGID, group: groupPrivileged},
	{name: "setfsuid", nr: unix.SYS_SETFSUID, group: groupPrivileged},
	{name: "setfsgid", nr: unix.SYS_SETFSGID, group: groupPrivileged},

	// spawn
	{name: "fork", nr: unix.SYS_FORK, group: groupSpawn},
	{name: "vfork", nr: unix.SYS_VFORK, group: groupSpawn},
	{name: "execve", nr: unix.SYS_EXECVE, group: groupSpawn},
	// clone is allowed only when it makes a thread: all of threadFlags set
	// and none of the flags that mean a new process or namespace. The
	// flags word is clone's first argument on x86_64; the kernel reads
	// only its low 32 bits.
	{name: "clone", nr: unix.SYS_CLONE, group: groupSpawn,
		cond: cond{kind: condMaskedNE, arg: 0, mask: cloneRequired | cloneForbidden, value: cloneRequired}},
	// QEMU answers ENOSYS so that libc falls back to clone, whose flags
	// a filter can see (clone3 passes them in memory).
	{name: "clone3", nr: unix.SYS_CLONE3, group: groupSpawn, act: actENOSYS},
	{name: "execveat", nr: unix.SYS_EXECVEAT, group: groupSpawn},
	{name: "setns", nr: unix.SYS_SETNS, group: groupSpawn},
	{name: "unshare", nr: unix.SYS_UNSHARE, group: groupSpawn},

	// resourcecontrol
	{name: "setpriority", nr: unix.SYS_SETPRIORITY, group: groupResourceControl, act: actEPERM},
	{name: "sched_setparam", nr: unix.SYS_SCHED_SETPARAM, group: groupResourceControl, act: actEPERM},
	{name: "sched_setscheduler", nr: unix.SYS_SCHED_SETSCHEDULER, group: groupResourceControl, act: actEPERM,
		cond: cond{kind: condNE, arg: 1, value: unix.SCHED_IDLE}},
	{name: "sched_setaffinity", nr: unix.SYS_SCHED_SETAFFINITY, group: groupResourceControl, act: actEPERM},
}

// cloneRequired are the flags every thread-creating clone sets. QEMU also
// requires CLONE_SETTLS, CLONE_PARENT_SETTID and CLONE_CHILD_CLEARTID, as
// glibc's pthread_create passes them; the Go runtime does not pass the
// last two (runtime.newosproc), and not CLONE_SETTLS either when it starts
// a thread without an m (newosproc0), so they cannot be required here.
// CLONE_THREAD already implies a thread: the kernel refuses it without
// CLONE_SIGHAND, which it refuses without CLONE_VM.
const cloneRequired = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES |
	unix.CLONE_SIGHAND | unix.CLONE_THREAD | unix.CLONE_SYSVSEM

// cloneForbidden are QEMU's flags that mean a process, a namespace or
// other unwanted sharing even alongside CLONE_THREAD.
const cloneForbidden = unix.CLONE_PIDFD | unix.CLONE_PTRACE | unix.CLONE_VFORK |
	unix.CLONE_PARENT | unix.CLONE_NEWNS | unix.CLONE_UNTRACED |
	unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_IO
