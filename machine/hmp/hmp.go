// Package hmp is QEMU's human monitor: a banner, a "(qemu) " prompt and a
// line editor over any stream, and the commands management tools and
// people type most (info status/version/name/uuid/kvm/block/cpus/chardev,
// stop, cont, system_reset, system_powerdown, quit, help). Output matches
// QEMU 7.2's text, CRLF line ends included.
package hmp

import (
	"errors"
	"fmt"
	"github.com/govmm/govmm/machine/emulate"
	"io"
	"net"
	"strings"

	"github.com/govmm/govmm/machine/qmp"
	"github.com/govmm/govmm/machine/runstate"
)

// Monitor runs human monitor commands against a machine.
type Monitor struct {
	m       qmp.Machine
	version qmp.Version
}

// New returns a Monitor for m; the zero Version means qmp.DefaultVersion.
func New(m qmp.Machine, v qmp.Version) *Monitor {
	if v == (qmp.Version{}) {
		v = qmp.DefaultVersion
	}
	return &Monitor{m: m, version: v}
}

// Banner is the first line QEMU prints on a monitor, without its CRLF.
func (mon *Monitor) Banner() string {
	return fmt.Sprintf("QEMU %d.%d.%d monitor - type 'help' for more information",
		mon.version.Major, mon.version.Minor, mon.version.Micro)
}

// Prompt is QEMU's monitor prompt.
const Prompt = "(qemu) "

type cmdDef struct {
	names  string // "stop|s": the name, then aliases
	params string // shown by help
	help   string
	run    func(mon *Monitor, out *strings.Builder) bool // false: quit was requested
}

func (c *cmdDef) matches(name string) bool {
	for _, n := range strings.Split(c.names, "|") {
		if n == name {
			return true
		}
	}
	return false
}

func (c *cmdDef) helpLine(prefix string) string {
	return prefix + c.names + " " + c.params + " -- " + c.help + "\n"
}

// commands are kept sorted by name, as QEMU's help lists them.
var commands = []*cmdDef{
	{"cont|c", "", "resume emulation", func(mon *Monitor, out *strings.Builder) bool {
		report(out, mon.m.Cont())
		return true
	}},
	{"help|?", "[cmd]", "show the help", nil},
	{"info", "[subcommand]", "show various information about the system state", nil},
	{"quit|q", "", "quit the emulator", func(mon *Monitor, out *strings.Builder) bool {
		report(out, mon.m.Quit())
		return false
	}},
	{"stop|s", "", "stop emulation", func(mon *Monitor, out *strings.Builder) bool {
		report(out, mon.m.Stop())
		return true
	}},
	{"system_powerdown", "", "send system power down event", func(mon *Monitor, out *strings.Builder) bool {
		report(out, mon.m.SystemPowerdown())
		return true
	}},
	{"system_reset", "", "reset the system", func(mon *Monitor, out *strings.Builder) bool {
		report(out, mon.m.SystemReset())
		return true
	}},
}

var infoCommands = []*cmdDef{
	{"block", "[-n] [-v] [device]", "show info of one block device or all block devices (-n: show named nodes; -v: show details)", (*Monitor).infoBlock},
	{"chardev", "", "show the character devices", (*Monitor).infoChardev},
	{"cpus", "", "show infos for each CPU", (*Monitor).infoCPUs},
	{"emulation", "", "show the instructions govmm emulated for KVM, by mnemonic", (*Monitor).infoEmulation},
	{"kvm", "", "show KVM information", (*Monitor).infoKVM},
	{"name", "", "show the current VM name", (*Monitor).infoName},
	{"status", "", "show the current VM status (running|paused)", (*Monitor).infoStatus},
	{"uuid", "", "show the current VM UUID", (*Monitor).infoUUID},
	{"version", "", "show the version of QEMU", (*Monitor).infoVersion},
}

// report prints an error as QEMU's hmp_handle_error.
func report(out *strings.Builder, err error) {
	if err != nil {
		fmt.Fprintf(out, "Error: %s\n", err)
	}
}

// Execute runs one command line and returns its output with CRLF line
// ends, as human-monitor-command returns it.
func (mon *Monitor) Execute(line string) string {
	out, _ := mon.execute(line)
	return out
}

// execute also reports whether the monitor should go on reading (false
// after quit).
func (mon *Monitor) execute(line string) (string, bool) {
	var out strings.Builder
	more := mon.run(line, &out)
	return strings.ReplaceAll(out.String(), "\n", "\r\n"), more
}

// splitName is QEMU's get_command_name: skip blanks, then take characters
// up to a blank or '/'.
func splitName(s string) (name, rest string) {
	s = strings.TrimLeft(s, " \t\n\r\v\f")
	i := strings.IndexAny(s, " \t\n\r\v\f/")
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

func blank(s string) bool { return strings.TrimSpace(s) == "" }

func (mon *Monitor) run(line string, out *strings.Builder) bool {
	name, rest := splitName(line)
	if name == "" {
		return true
	}
	var cmd *cmdDef
	for _, c := range commands {
		if c.matches(name) {
			cmd = c
		}
	}
	if cmd == nil {
		fmt.Fprintf(out, "unknown command: '%s'\n", name)
		return true
	}
	switch cmd.names {
	case "help|?":
		mon.help(rest, out)
		return true
	case "info":
		sub, subRest := splitName(rest)
		if sub == "" {
			for _, c := range infoCommands {
				out.WriteString(c.helpLine("info "))
			}
			return true
		}
		for _, c := range infoCommands {
			if c.matches(sub) {
				if c.names == "block" {
					dev := ""
					for _, f := range strings.Fields(subRest) {
						if !strings.HasPrefix(f, "-") {
							dev = f
						}
					}
					return mon.infoBlockArgs(dev, out)
				}
				if !blank(subRest) {
					extraneous(out, c.names, "info "+sub)
					return true
				}
				return c.run(mon, out)
			}
		}
		fmt.Fprintf(out, "unknown command: 'info %s'\n", sub)
		return true
	}
	if !blank(rest) {
		extraneous(out, cmd.names, name)
		return true
	}
	return cmd.run(mon, out)
}

func extraneous(out *strings.Builder, names, helpArg string) {
	fmt.Fprintf(out, "%s: extraneous characters at the end of line\nTry \"help %s\" for more information\n", names, helpArg)
}

func (mon *Monitor) help(arg string, out *strings.Builder) {
	name, rest := splitName(arg)
	if name == "" {
		for _, c := range commands {
			out.WriteString(c.helpLine(""))
		}
		return
	}
	for _, c := range commands {
		if !c.matches(name) {
			continue
		}
		if c.names == "info" {
			sub, _ := splitName(rest)
			for _, ic := range infoCommands {
				if sub == "" || ic.matches(sub) {
					out.WriteString(ic.helpLine("info "))
				}
			}
			return
		}
		out.WriteString(c.helpLine(""))
		return
	}
	fmt.Fprintf(out, "unknown command: '%s'\n", name)
}

func (mon *Monitor) infoStatus(out *strings.Builder) bool {
	st := mon.m.Status()
	if st == runstate.Running {
		out.WriteString("VM status: running\n")
	} else if st == runstate.Paused {
		out.WriteString("VM status: paused\n")
	} else {
		fmt.Fprintf(out, "VM status: paused (%s)\n", st)
	}
	return true
}

func (mon *Monitor) infoVersion(out *strings.Builder) bool {
	v := mon.version
	fmt.Fprintf(out, "%d.%d.%d%s\n", v.Major, v.Minor, v.Micro, v.Package)
	return true
}

func (mon *Monitor) infoName(out *strings.Builder) bool {
	if n := mon.m.Name(); n != "" {
		fmt.Fprintf(out, "%s\n", n)
	}
	return true
}

func (mon *Monitor) infoUUID(out *strings.Builder) bool {
	u := mon.m.UUID()
	if u == "" {
		u = "00000000-0000-0000-0000-000000000000"
	}
	fmt.Fprintf(out, "%s\n", u)
	return true
}

// EmulationCounter is implemented by machines that count the instructions
// they emulate after KVM emulation failures (govmm's PVM support).
type EmulationCounter interface {
	EmulationCounts() map[string]uint64
}

func (mon *Monitor) infoEmulation(out *strings.Builder) bool {
	ec, ok := mon.m.(EmulationCounter)
	if !ok {
		out.WriteString("no instruction emulation in this machine\n")
		return true
	}
	out.WriteString(emulate.FormatCounts(ec.EmulationCounts()))
	return true
}

func (mon *Monitor) infoKVM(out *strings.Builder) bool {
	k := mon.m.KVM()
	switch {
	case !k.Present:
		out.WriteString("kvm support: not compiled\n")
	case k.Enabled:
		out.WriteString("kvm support: enabled\n")
	default:
		out.WriteString("kvm support: disabled\n")
	}
	return true
}

func (mon *Monitor) infoCPUs(out *strings.Builder) bool {
	for i, c := range mon.m.CPUs() {
		active := ' '
		if i == 0 { // the monitor's current CPU is the first one
			active = '*'
		}
		fmt.Fprintf(out, "%c CPU #%d: thread_id=%d\n", active, c.Index, c.ThreadID)
	}
	return true
}

func (mon *Monitor) infoChardev(out *strings.Builder) bool {
	for _, c := range mon.m.Chardevs() {
		fmt.Fprintf(out, "%s: filename=%s\n", c.Label, c.Filename)
	}
	return true
}

// infoBlock is QEMU's hmp_info_block/print_block_info for the default
// (no -n, no -v) listing, optionally of one device.
func (mon *Monitor) infoBlock(out *strings.Builder) bool {
	return mon.infoBlockArgs("", out)
}

func (mon *Monitor) infoBlockArgs(device string, out *strings.Builder) bool {
	first := true
	for _, b := range mon.m.Blocks() {
		if device != "" && b.Device != device {
			continue
		}
		if !first {
			out.WriteString("\n")
		}
		first = false
		in := b.Inserted
		switch {
		case b.Device != "":
			out.WriteString(b.Device)
			if in != nil && in.NodeName != "" {
				fmt.Fprintf(out, " (%s)", in.NodeName)
			}
		case in != nil && in.NodeName != "":
			out.WriteString(in.NodeName)
		case b.QDev != "":
			out.WriteString(b.QDev)
		default:
			out.WriteString("<anonymous>")
		}
		if in != nil {
			ro, enc := "", ""
			if in.ReadOnly {
				ro = ", read-only"
			}
			if in.Encrypted {
				enc = ", encrypted"
			}
			fmt.Fprintf(out, ": %s (%s%s%s)\n", in.File, in.Driver, ro, enc)
		} else {
			out.WriteString(": [not inserted]\n")
		}
		if b.QDev != "" {
			fmt.Fprintf(out, "    Attached to:      %s\n", b.QDev)
		}
		if b.IOStatus != "" && b.IOStatus != "ok" {
			fmt.Fprintf(out, "    I/O status:       %s\n", b.IOStatus)
		}
		if b.Removable {
			locked, tray := "not ", "closed"
			if b.Locked {
				locked = ""
			}
			if b.TrayOpen {
				tray = "open"
			}
			fmt.Fprintf(out, "    Removable device: %slocked, tray %s\n", locked, tray)
		}
		if in == nil {
			continue
		}
		mode := "writethrough"
		if in.Cache.Writeback {
			mode = "writeback"
		}
		if in.Cache.Direct {
			mode += ", direct"
		}
		if in.Cache.NoFlush {
			mode += ", ignore flushes"
		}
		fmt.Fprintf(out, "    Cache mode:       %s\n", mode)
		if in.BackingFile != "" {
			fmt.Fprintf(out, "    Backing file:     %s (chain depth: %d)\n", in.BackingFile, in.BackingFileDepth)
		}
		if in.DetectZeroes != "" && in.DetectZeroes != "off" {
			fmt.Fprintf(out, "    Detect zeroes:    %s\n", in.DetectZeroes)
		}
	}
	return true
}

// Serve runs an interactive monitor on rw: the banner, then a prompt per
// command, echoing input the way QEMU's line editor does (so a client
// expecting QEMU's bytes sees the same). It returns at end of input, on an
// I/O error, or after "quit" (nil).
func (mon *Monitor) Serve(rw io.ReadWriter) error {
	if _, err := io.WriteString(rw, mon.Banner()+"\r\n"+Prompt); err != nil {
		return err
	}
	var ed editor
	buf := make([]byte, 1024)
	for {
		n, rerr := rw.Read(buf)
		var out []byte
		for _, b := range buf[:n] {
			echo, line, done := ed.feed(b)
			out = append(out, echo...)
			if !done {
				continue
			}
			res, more := mon.execute(line)
			out = append(out, res...)
			if !more {
				_, err := rw.Write(out)
				return err
			}
			out = append(out, Prompt...)
		}
		if len(out) > 0 {
			if _, err := rw.Write(out); err != nil {
				return err
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return nil
			}
			return rerr
		}
	}
}

// ServeListener serves an interactive monitor on each connection accepted
// from l until l is closed.
func (mon *Monitor) ServeListener(l net.Listener) error {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			mon.Serve(c)
		}()
	}
}

// editor is the part of QEMU's readline that shows on the wire: each
// keystroke redraws the line (cursor left over the old text, the new text,
// erase to end of line), Enter ends the line with CRLF, backspace deletes.
// Escape sequences (arrow keys) are read and ignored; history and
// completion are not offered.
type editor struct {
	buf  []byte
	last int // length drawn on the terminal
	esc  int // 0 normal, 1 after ESC, 2 inside ESC [
}

func (e *editor) feed(b byte) (echo []byte, line string, done bool) {
	switch e.esc {
	case 1:
		e.esc = 0
		if b == '[' || b == 'O' {
			e.esc = 2
		}
		return nil, "", false
	case 2:
		if b >= 0x40 && b <= 0x7E {
			e.esc = 0
		}
		return nil, "", false
	}
	switch {
	case b == '\r' || b == '\n':
		line = string(e.buf)
		e.buf, e.last = e.buf[:0], 0
		return []byte("\r\n"), line, true
	case b == 27:
		e.esc = 1
		return nil, "", false
	case b == 8 || b == 127:
		if len(e.buf) == 0 {
			return nil, "", false
		}
		e.buf = e.buf[:len(e.buf)-1]
	case b >= 32:
		e.buf = append(e.buf, b)
	default:
		return nil, "", false
	}
	echo = []byte(strings.Repeat("\033[D", e.last))
	echo = append(echo, e.buf...)
	echo = append(echo, "\033[K"...)
	e.last = len(e.buf)
	return echo, "", false
}
