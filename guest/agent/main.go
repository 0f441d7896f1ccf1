// Command agent is /init for govmm's Linux test VMs. It mounts /proc, /sys
// and /dev, loads kernel modules named on the command line, checks the
// virtual hardware (CPUs, memory, PCI, virtio-blk/rng/console), prints one
// JSON line per check on the console (see package proto) and powers off.
//
// Kernel command line parameters (all optional):
//
//	agent.checks=kernel,pci,virtio,blk,rng,console|all  which checks run (default all);
//	                          when named, a missing device fails instead of being skipped
//	agent.modules=a,b,...     modules to load from /lib/modules, in this order
//	                          (default: the list in /etc/agent.modules, if any)
//	agent.shell               start /bin/sh (or a built-in shell) instead of checking
//	agent.disk=/dev/vda       disk for the blk check; it WRITES to this disk
//	agent.blk.offset=0        byte offset of the pattern (multiple of 4096)
//	agent.blk.length=65536    pattern length (multiple of 4096, at most 16 MiB)
//	agent.blk.seed=N          pattern seed (default 0x676f766d6d)
//	agent.timeout=60          seconds per check
//	agent.exit=poweroff|reboot|halt|none|powerbutton   what to do after the done line
package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govmm/govmm/guest/agent/proto"
)

func main() {
	if os.Getpid() != 1 {
		// The blk check writes to a disk: never run it on a host by accident.
		fmt.Fprintln(os.Stderr, "agent: must run as /init (pid 1) inside a test VM")
		os.Exit(2)
	}
	a := &agent{root: "/", out: os.Stdout, uname: uname}

	if err := mountAll(); err != nil {
		a.report(proto.CheckInit, nil, err)
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		a.report(proto.CheckInit, nil, err)
	}
	cfg, errs := parseConfig(cmdlineString(cmdline))
	a.cfg = cfg
	if len(errs) > 0 {
		a.report(proto.CheckConfig, nil, errors.Join(errs...))
	}

	if cfg.shell {
		a.loadModules()
		shell(a) // returns only when the built-in shell ends
	} else {
		a.run()
	}
	exit(cfg.exit)
}

func uname() (release, version string, err error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", "", err
	}
	return unix.ByteSliceToString(u.Release[:]), unix.ByteSliceToString(u.Version[:]), nil
}

// mountAll mounts the pseudo file systems the checks read. A mount point
// that is already mounted (EBUSY) is fine.
func mountAll() error {
	var errs []error
	for _, m := range []struct{ fstype, target string }{
		{"proc", "/proc"},
		{"sysfs", "/sys"},
		{"devtmpfs", "/dev"},
	} {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		err := unix.Mount(m.fstype, m.target, m.fstype, unix.MS_NOSUID|unix.MS_NOEXEC, "")
		if err != nil && !errors.Is(err, unix.EBUSY) {
			errs = append(errs, fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err))
		}
	}
	return errors.Join(errs...)
}

// exit ends the VM. PID 1 must never return: the kernel would panic.
func exit(how string) {
	unix.Sync()
	var cmd int
	switch how {
	case exitReboot:
		cmd = unix.LINUX_REBOOT_CMD_RESTART
	case exitHalt:
		cmd = unix.LINUX_REBOOT_CMD_HALT
	case exitNone:
		cmd = -1
	case exitPowerButton:
		if err := waitPowerButton("/dev/input"); err != nil {
			fmt.Fprintf(os.Stdout, "agent: power button: %v\n", err)
		} else {
			fmt.Fprintln(os.Stdout, "agent: power button pressed, powering off")
		}
		unix.Sync()
		cmd = unix.LINUX_REBOOT_CMD_POWER_OFF
	default:
		cmd = unix.LINUX_REBOOT_CMD_POWER_OFF
	}
	if cmd != -1 {
		if err := unix.Reboot(cmd); err != nil {
			fmt.Fprintf(os.Stdout, "agent: reboot(%s): %v\n", how, err)
		}
	}
	for {
		time.Sleep(time.Hour)
	}
}
