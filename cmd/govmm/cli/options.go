package cli

import (
	"strings"

	"github.com/spf13/pflag"
)

// option describes one QEMU command-line option.
type option struct {
	name   string
	hasArg bool
	handle func(p *parser, arg string) error
}

// occurrence is one option as it appeared on the command line.
type occurrence struct {
	opt   *option
	given string // the option as typed, e.g. "-m" or "--m"
	arg   string
}

// Text is how QEMU shows the option in messages: "-m 12Q", "-S".
func (o occurrence) Text() string {
	if o.opt.hasArg {
		return o.given + " " + o.arg
	}
	return o.given
}

// recorder is the pflag.Value behind every option: pflag does the scanning
// (which words are options, which are their arguments) and the recorder
// keeps the order, which QEMU semantics depend on.
type recorder struct {
	opt  *option
	seen *[]*occurrence
	// pending holds the spellings of this option in argv order, so each
	// Set can be matched with the text the user typed.
	pending *[]string
}

func (r *recorder) String() string { return "" }
func (r *recorder) Type() string   { return "string" }
func (r *recorder) Set(v string) error {
	given := "-" + r.opt.name
	if len(*r.pending) > 0 {
		given = (*r.pending)[0]
		*r.pending = (*r.pending)[1:]
	}
	if !r.opt.hasArg {
		v = ""
	}
	*r.seen = append(*r.seen, &occurrence{opt: r.opt, given: given, arg: v})
	return nil
}

// noArgValue marks an option given without argument; pflag needs some
// NoOptDefVal to treat a flag as taking none.
const noArgValue = "\x00"

// scan splits args into option occurrences using pflag. QEMU's single-dash
// long options are rewritten to pflag's double-dash form first; an unknown
// option or a missing argument is reported in QEMU's words. Words that are
// not options (QEMU's disk image) are returned separately.
func scan(args []string) ([]*occurrence, []string, error) {
	fs := pflag.NewFlagSet("qemu", pflag.ContinueOnError)
	fs.SetInterspersed(true)
	fs.Usage = func() {}
	fs.SetOutput(discard{})

	var seen []*occurrence
	pending := map[string]*[]string{}
	for _, o := range optionTable {
		pend := new([]string)
		pending[o.name] = pend
		f := fs.VarPF(&recorder{opt: o, seen: &seen, pending: pend}, o.name, "", "")
		if !o.hasArg {
			f.NoOptDefVal = noArgValue
		}
	}

	var norm []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if len(a) < 2 || a[0] != '-' {
			// A positional word. A leading "-" alone is also positional
			// for QEMU, but pflag would read it as stdin; keep it ours.
			norm = append(norm, "--"+posOpt.name, a)
			pending[posOpt.name] = appendStr(pending[posOpt.name], a)
			continue
		}
		name := strings.TrimPrefix(a[1:], "-")
		o := optionByName[name]
		if o == nil || o == posOpt {
			return nil, nil, &optError{msg: "invalid option", hint: a}
		}
		*pending[o.name] = append(*pending[o.name], a)
		norm = append(norm, "--"+o.name)
		if o.hasArg {
			if i+1 >= len(args) {
				return nil, nil, &optError{msg: "requires an argument", hint: a}
			}
			i++
			norm = append(norm, args[i])
		}
	}
	if err := fs.Parse(norm); err != nil {
		return nil, nil, &optError{msg: err.Error()}
	}
	var positional []string
	var out []*occurrence
	for _, oc := range seen {
		if oc.opt == posOpt {
			positional = append(positional, oc.arg)
			continue
		}
		out = append(out, oc)
	}
	return out, positional, nil
}

func appendStr(p *[]string, s string) *[]string {
	*p = append(*p, s)
	return p
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// posOpt carries positional words through pflag (it is not a QEMU option
// and cannot be typed: its name is not reachable from a single dash).
var posOpt = &option{name: "\x01positional", hasArg: true, handle: func(*parser, string) error { return nil }}

var optionTable []*option
var optionByName map[string]*option

func init() {
	optionTable = []*option{
		{"h", false, (*parser).help},
		{"help", false, (*parser).help},
		{"version", false, (*parser).version},
		{"name", true, (*parser).name},
		{"uuid", true, (*parser).uuid},
		{"m", true, (*parser).memory},
		{"smp", true, (*parser).smp},
		{"cpu", true, (*parser).cpu},
		{"machine", true, (*parser).machine},
		{"M", true, (*parser).machine},
		{"enable-kvm", false, (*parser).enableKVM},
		{"accel", true, (*parser).accel},
		{"kernel", true, func(p *parser, a string) error { p.cfg.Kernel = a; return nil }},
		{"initrd", true, func(p *parser, a string) error { p.cfg.Initrd = a; return nil }},
		{"append", true, func(p *parser, a string) error { p.cfg.Cmdline = a; return nil }},
		{"serial", true, (*parser).serial},
		{"chardev", true, (*parser).chardev},
		{"mon", true, (*parser).mon},
		{"monitor", true, (*parser).monitor},
		{"qmp", true, (*parser).qmp},
		{"qmp-pretty", true, (*parser).qmp},
		{"display", true, (*parser).display},
		{"vnc", true, (*parser).vnc},
		{"nographic", false, func(p *parser, _ string) error { p.nographic = true; return nil }},
		{"daemonize", false, func(p *parser, _ string) error { p.res.Daemonize = true; return nil }},
		{"pidfile", true, func(p *parser, a string) error { p.res.PIDFile = a; return nil }},
		{"no-reboot", false, func(p *parser, _ string) error { p.cfg.NoReboot = true; return nil }},
		{"no-shutdown", false, func(p *parser, _ string) error { p.cfg.NoShutdown = true; return nil }},
		{"S", false, func(p *parser, _ string) error { p.cfg.StartPaused = true; return nil }},
		{"snapshot", false, func(p *parser, _ string) error { p.cfg.Snapshot = true; return nil }},
		{"nodefaults", false, func(p *parser, _ string) error { p.res.NoDefaults = true; return nil }},
		{"no-user-config", false, func(p *parser, _ string) error { p.res.NoUserConfig = true; return nil }},
		{"nodefconfig", false, func(p *parser, _ string) error { p.res.NoUserConfig = true; return nil }},
		{"rtc", true, (*parser).rtc},
		{"boot", true, (*parser).boot},
		{"D", true, func(p *parser, a string) error { p.res.LogFile = a; return nil }},
		{"d", true, (*parser).logItems},
		{"sandbox", true, (*parser).sandbox},
		{"readconfig", true, (*parser).readconfig},
		{"drive", true, (*parser).drive},
		{"blockdev", true, (*parser).blockdev},
		{"netdev", true, (*parser).netdev},
		{"device", true, (*parser).device},
		{"object", true, (*parser).object},
		{"msg", true, (*parser).msg},
		{"overcommit", true, (*parser).overcommit},
		{"hda", true, (*parser).hda},
		posOpt,
	}
	optionByName = map[string]*option{}
	for _, o := range optionTable {
		optionByName[o.name] = o
	}
}
