package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/govmm/govmm/guest/agent/proto"
)

// allChecks lists the device checks in the order they run.
var allChecks = []string{
	proto.CheckKernel, proto.CheckPCI, proto.CheckVirtio,
	proto.CheckBlk, proto.CheckRNG, proto.CheckConsole,
}

// Exit actions after the "done" line (agent.exit=).
const (
	exitPowerOff = "poweroff"
	exitReboot   = "reboot" // with QEMU's -no-reboot, a reset ends the VMM
	exitHalt     = "halt"
	exitNone     = "none" // sleep forever; the host kills the VM
	// exitPowerButton waits for the ACPI power button (QMP
	// system_powerdown), then powers off, as an init with acpid would.
	exitPowerButton = "powerbutton"
)

const blkAlign = 4096 // O_DIRECT needs buffers, offsets and sizes aligned to the logical block size

// config is what the agent was asked to do on the kernel command line.
type config struct {
	checks []string
	// modulesSet is set when agent.modules= was given (even empty): it
	// overrides /etc/agent.modules.
	modulesSet bool
	// explicit is set when agent.checks named the checks: a missing device
	// is then a failure instead of a skip.
	explicit  bool
	modules   []string
	shell     bool
	disk      string
	blkOffset int64
	blkLength int64
	blkSeed   uint64
	timeout   time.Duration
	exit      string
}

func defaultConfig() config {
	return config{
		checks:    slices.Clone(allChecks),
		disk:      "/dev/vda",
		blkOffset: 0,
		blkLength: 64 * 1024,
		blkSeed:   0x676f766d6d, // "govmm"
		timeout:   60 * time.Second,
		exit:      exitPowerOff,
	}
}

// splitCmdline splits a kernel command line into parameters the way the
// kernel does (lib/cmdline.c next_arg): whitespace separates parameters,
// double quotes group, and the quotes themselves are dropped.
func splitCmdline(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, inParam := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			inParam = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n' || r == '\r'):
			if inParam {
				out = append(out, cur.String())
				cur.Reset()
				inParam = false
			}
		default:
			cur.WriteRune(r)
			inParam = true
		}
	}
	if inParam {
		out = append(out, cur.String())
	}
	return out
}

// parseConfig reads the agent.* parameters of a kernel command line. Other
// parameters are ignored. Every bad agent.* parameter is reported; the
// defaults stay in force for it.
func parseConfig(cmdline string) (config, []error) {
	c := defaultConfig()
	var errs []error
	bad := func(key, val, why string) {
		errs = append(errs, fmt.Errorf("%s=%q: %s", key, val, why))
	}
	for _, p := range splitCmdline(cmdline) {
		key, val, hasVal := strings.Cut(p, "=")
		if !strings.HasPrefix(key, "agent.") {
			continue
		}
		switch key {
		case "agent.checks":
			list := splitList(val)
			if len(list) == 0 {
				bad(key, val, "empty list")
				continue
			}
			if len(list) == 1 && list[0] == "all" {
				c.checks = slices.Clone(allChecks)
				c.explicit = false
				continue
			}
			var checks []string
			ok := true
			for _, name := range list {
				if !slices.Contains(allChecks, name) {
					bad(key, val, fmt.Sprintf("unknown check %q (known: %s, all)", name, strings.Join(allChecks, ",")))
					ok = false
					break
				}
				if !slices.Contains(checks, name) {
					checks = append(checks, name)
				}
			}
			if ok {
				c.checks, c.explicit = checks, true
			}
		case "agent.modules":
			c.modulesSet = true
			for _, m := range splitList(val) {
				if strings.ContainsAny(m, "/\\") || m == "." || m == ".." {
					bad(key, val, fmt.Sprintf("module name %q is not a plain name", m))
					continue
				}
				c.modules = append(c.modules, m)
			}
		case "agent.shell":
			b, err := parseBool(val, hasVal)
			if err != nil {
				bad(key, val, err.Error())
				continue
			}
			c.shell = b
		case "agent.disk":
			if !strings.HasPrefix(val, "/") {
				bad(key, val, "want an absolute device path")
				continue
			}
			c.disk = val
		case "agent.blk.offset", "agent.blk.length":
			n, err := strconv.ParseInt(val, 0, 64)
			if err != nil || n < 0 || n%blkAlign != 0 {
				bad(key, val, fmt.Sprintf("want a non-negative multiple of %d", blkAlign))
				continue
			}
			if key == "agent.blk.offset" {
				c.blkOffset = n
			} else {
				if n == 0 || n > 16<<20 {
					bad(key, val, "want a length between 4096 and 16 MiB")
					continue
				}
				c.blkLength = n
			}
		case "agent.blk.seed":
			n, err := strconv.ParseUint(val, 0, 64)
			if err != nil {
				bad(key, val, "want an unsigned integer")
				continue
			}
			c.blkSeed = n
		case "agent.timeout":
			n, err := strconv.Atoi(val)
			if err != nil || n <= 0 || n > 24*3600 {
				bad(key, val, "want seconds, 1 to 86400")
				continue
			}
			c.timeout = time.Duration(n) * time.Second
		case "agent.exit":
			switch val {
			case exitPowerOff, exitReboot, exitHalt, exitNone, exitPowerButton:
				c.exit = val
			default:
				bad(key, val, "want poweroff, reboot, halt, none or powerbutton")
			}
		default:
			errs = append(errs, fmt.Errorf("unknown parameter %s", key))
		}
	}
	return c, errs
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseBool(val string, hasVal bool) (bool, error) {
	if !hasVal {
		return true, nil // a bare "agent.shell" means on
	}
	switch val {
	case "1", "y", "yes", "on", "true":
		return true, nil
	case "0", "n", "no", "off", "false":
		return false, nil
	}
	return false, fmt.Errorf("want a boolean")
}
