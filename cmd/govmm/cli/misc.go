package cli

import (
	"bufio"
	"fmt"
	"github.com/govmm/govmm/cmd/govmm/sandbox"
	"os"
	"strings"

	"github.com/govmm/govmm/devices/chardev"
)

func (p *parser) version(string) error {
	p.res.Exit = true
	p.res.Output = fmt.Sprintf("QEMU emulator version %s (govmm %s)\nCopyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n", QEMUVersion, Version)
	return nil
}

func (p *parser) help(string) error {
	p.res.Exit = true
	p.res.Output = fmt.Sprintf("QEMU emulator version %s (govmm %s)\nCopyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n", QEMUVersion, Version) +
		"usage: " + p.prog + " [options]\n\n" + helpText
	return nil
}

const helpText = `govmm runs x86-64 guests with KVM and accepts QEMU's command line.
Supported options (see cmd/govmm/cli/OPTIONS.md for details):

-h, -help, -version
-name [guest=]NAME[,debug-threads=on|off]
-uuid UUID
-machine/-M [type=]pc|q35|microvm[,accel=kvm][,prop=value...]
-accel kvm, -enable-kvm
-cpu host|max|qemu64[,+feat][,-feat][,feat=on|off]
-smp [cpus=]N[,maxcpus=M][,sockets=S][,dies=D][,cores=C][,threads=T]
-m [size=]N[k|M|G|T|P|E][,slots=n,maxmem=size]
-kernel FILE, -initrd FILE, -append CMDLINE
-serial DEV, -chardev BACKEND,id=ID[,...], -mon [chardev=]ID[,mode=readline|control][,pretty=on|off]
-monitor DEV, -qmp DEV, -qmp-pretty DEV, -nographic, -display none
-drive file=FILE[,if=virtio|none][,format=raw|qcow2][,id=ID][,readonly=on|off][,...]
-blockdev driver=raw|qcow2|file,node-name=NAME,...
-device isa-debug-exit|virtio-blk-pci|virtio-rng-pci|virtio-serial-pci|virtconsole|virtserialport[,...]
-object rng-random,id=ID[,filename=FILE], -object rng-builtin,id=ID
-netdev TYPE,id=ID (parsed; no network device yet)
-rtc [base=utc|localtime|DATE][,clock=host|rt|vm][,driftfix=none|slew]
-boot [order=DRIVES][,...]
-S, -no-reboot, -no-shutdown, -snapshot, -nodefaults, -no-user-config
-daemonize, -pidfile FILE, -D FILE, -d ITEMS, -sandbox on|off, -readconfig FILE
`

var logItems = []struct{ name, desc string }{
	{"out_asm", "show generated host assembly code for each compiled TB"},
	{"in_asm", "show target assembly code for each compiled TB"},
	{"op", "show micro ops for each compiled TB"},
	{"op_opt", "show micro ops after optimization"},
	{"op_ind", "show micro ops before indirect lowering"},
	{"int", "show interrupts/exceptions in short format"},
	{"exec", "show trace before each executed TB (lots of logs)"},
	{"cpu", "show CPU registers before entering a TB (lots of logs)"},
	{"fpu", "include FPU registers in the 'cpu' logging"},
	{"mmu", "log MMU-related activities"},
	{"pcall", "x86 only: show protected mode far calls/returns/exceptions"},
	{"cpu_reset", "show CPU state before CPU resets"},
	{"unimp", "log unimplemented functionality"},
	{"guest_errors", "log when the guest OS does something invalid (eg accessing a\nnon-existent register)"},
	{"page", "dump pages at beginning of user mode emulation"},
	{"nochain", "do not chain compiled TBs so that \"exec\" and \"cpu\" show\ncomplete traces"},
	{"plugin", "output from TCG plugins\n"},
	{"strace", "log every user-mode syscall, its input, and its result"},
	{"tid", "open a separate log file per thread; filename must contain '%d'"},
	{"trace:PATTERN", "enable trace events"},
}

func logItemsText() string {
	var b strings.Builder
	b.WriteString("Log items (comma separated):\n")
	for _, it := range logItems {
		fmt.Fprintf(&b, "%-15s %s\n", it.name, it.desc)
	}
	b.WriteString("\nUse \"-d trace:help\" to get a list of trace events.\n")
	return b.String()
}

func (p *parser) logItems(arg string) error {
	var items []string
	for _, it := range strings.Split(arg, ",") {
		if strings.HasPrefix(it, "trace:") {
			items = append(items, it)
			continue
		}
		if it == "help" || it == "?" {
			p.res.Exit = true
			p.res.Output = logItemsText()
			return nil
		}
		ok := it == "all"
		for _, l := range logItems {
			ok = ok || l.name == it
		}
		if !ok {
			// QEMU prints the list (no prefix) and exits 1.
			return &Error{Prog: p.prog, Text: strings.TrimSuffix(logItemsText(), "\n")}
		}
		items = append(items, it)
	}
	p.res.LogItems = items
	return nil
}

func (p *parser) sandbox(arg string) error {
	o, err := ParseOpts(arg, "enable")
	if err != nil {
		return err
	}
	on, err := o.Bool("enable", false)
	if err != nil {
		return err
	}
	so, serr := sandbox.FromOpts(o.Get)
	if err := o.checkKnown(); err != nil {
		return err
	}
	if !on {
		return nil
	}
	if serr != nil {
		return errf(serr.Error())
	}
	p.res.Sandbox = append(p.res.Sandbox, so)
	return nil
}

func (p *parser) msg(arg string) error {
	o, err := ParseOpts(arg, "")
	if err != nil {
		return err
	}
	ts, err := o.Bool("timestamp", false)
	if err != nil {
		return err
	}
	gn, err := o.Bool("guest-name", false)
	if err != nil {
		return err
	}
	p.res.MsgTimestamp, p.res.MsgGuestName = ts, gn
	return o.checkKnown()
}

func (p *parser) overcommit(arg string) error {
	o, err := ParseOpts(arg, "")
	if err != nil {
		return err
	}
	ml, err := o.Bool("mem-lock", false)
	if err != nil {
		return err
	}
	p.cfg.MemLock = ml
	pm, err := o.Bool("cpu-pm", false)
	if err != nil {
		return err
	}
	p.cfg.CPUPM = pm
	return o.checkKnown()
}

// readconfigGroups maps QEMU's -readconfig sections to options and the key a
// section's quoted name sets.
var readconfigGroups = map[string]string{
	"machine": "machine", "memory": "m", "smp-opts": "smp", "chardev": "chardev", "device": "device",
	"drive": "drive", "mon": "mon", "name": "name", "rtc": "rtc", "boot-opts": "boot", "netdev": "netdev",
	"object": "object", "accel": "accel", "sandbox": "sandbox", "msg": "msg", "overcommit": "overcommit",
}

// readconfig reads QEMU's ini-style config file:
//
//	# comment
//	[chardev "mon0"]
//	  backend = "socket"
//	  path = "/tmp/m.sock"
//
// Each section becomes the equivalent option, handled in file order.
func (p *parser) readconfig(arg string) error {
	if p.readDepth > 8 {
		return errf("-readconfig nested too deeply")
	}
	f, err := os.Open(arg)
	if err != nil {
		return errf(fmt.Sprintf("Could not open '%s': %s", arg, chardev.Strerror(err)))
	}
	defer f.Close()
	type section struct {
		opt  *option
		id   string
		keys []Opt
		line int
	}
	var secs []*section
	var cur *section
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		bad := errNoLoc(fmt.Sprintf("%s:%d: parse error", arg, lineNo))
		if line[0] == '[' {
			if !strings.HasSuffix(line, "]") {
				return bad
			}
			body := strings.TrimSpace(line[1 : len(line)-1])
			group, rest, _ := strings.Cut(body, " ")
			o := readconfigGroups[group]
			if o == "" {
				return errNoLoc(fmt.Sprintf("%s:%d: There is no option group '%s'", arg, lineNo, group))
			}
			cur = &section{opt: optionByName[o], line: lineNo}
			if rest = strings.TrimSpace(rest); rest != "" {
				id, ok := unquote(rest)
				if !ok {
					return bad
				}
				cur.id = id
			}
			secs = append(secs, cur)
			continue
		}
		if cur == nil {
			return errNoLoc(fmt.Sprintf("%s:%d: no group defined", arg, lineNo))
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return bad
		}
		val, ok := unquote(strings.TrimSpace(v))
		if !ok {
			return bad
		}
		cur.keys = append(cur.keys, Opt{Key: strings.TrimSpace(k), Value: val})
	}
	if err := sc.Err(); err != nil {
		return errf(fmt.Sprintf("Could not read '%s': %s", arg, chardev.Strerror(err)))
	}
	outer := p.cur
	p.readDepth++
	defer func() { p.readDepth--; p.cur = outer }()
	for _, s := range secs {
		var parts []string
		if s.id != "" {
			parts = append(parts, "id="+escapeOpt(s.id))
		}
		for _, kv := range s.keys {
			parts = append(parts, kv.Key+"="+escapeOpt(kv.Value))
		}
		text := strings.Join(parts, ",")
		// Errors point at the -readconfig option, as QEMU's do.
		p.cur = &occurrence{opt: outer.opt, given: outer.given, arg: outer.arg}
		if err := s.opt.handle(p, text); err != nil {
			return err
		}
		// Deferred defs keep the pointer; give them the section's text.
		p.cur = outer
	}
	return nil
}

func unquote(s string) (string, bool) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return "", false
	}
	return s[1 : len(s)-1], true
}

// escapeOpt doubles commas so a value survives QemuOpts parsing.
func escapeOpt(s string) string { return strings.ReplaceAll(s, ",", ",,") }
