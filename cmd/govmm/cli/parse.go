package cli

import (
	"fmt"
	"github.com/govmm/govmm/cmd/govmm/sandbox"
	"path/filepath"

	"github.com/govmm/govmm/devices/chardev"
	"github.com/govmm/govmm/machine"
)

// Version is govmm's own version, shown after QEMU's in -version.
var Version = "dev"

// QEMUVersion is the QEMU release whose command line govmm follows.
const QEMUVersion = "7.2.0"

// VNCSupported lets -vnc through once a display exists; until then -vnc is
// parsed and refused.
var VNCSupported = false

// Result is a parsed and validated command line.
type Result struct {
	Config *machine.Config

	// Exit, when set, means: print Output on stdout and exit 0 without
	// running anything (-version, -help, -machine help, ...).
	Exit   bool
	Output string

	Daemonize    bool
	PIDFile      string
	NoDefaults   bool
	NoUserConfig bool

	// NoDefaultMonitor: -monitor, -mon or -qmp was given.
	NoDefaultMonitor bool

	// Chardevs are all character backends to open before the guest starts,
	// in creation order: -chardev, then those implied by -serial, -monitor,
	// -qmp and -nographic. Config.Serial and Monitors point into this list.
	Chardevs []*chardev.Spec
	Monitors []*Monitor

	Display string     // "none"
	VNC     *VNCConfig // parsed -vnc (refused unless VNCSupported)

	Netdevs []*Netdev

	LogFile  string            // -D
	LogItems []string          // -d
	Sandbox  []sandbox.Options // each -sandbox on, in order: a seccomp filter each

	// -msg timestamp=on / guest-name=on: prefix messages as QEMU does.
	MsgTimestamp, MsgGuestName bool

	// Warnings are complete lines for stderr, already in QEMU's format.
	Warnings []string

	prog    string
	origins map[*chardev.Spec]origin
}

// origin records where a chardev came from, for error messages at open time.
type origin struct {
	opt    string // option as given
	serial bool   // created by -serial: QEMU adds a second line
	value  string // the -serial argument
}

// Monitor is a -mon, -monitor or -qmp: a monitor on a chardev.
type Monitor struct {
	ID      string
	Chardev *chardev.Spec
	Control bool // mode=control (QMP); false = readline (HMP)
	Pretty  bool
}

// VNCConfig is -vnc [HOST]:DISPLAY[,options] or -vnc none.
type VNCConfig struct {
	None      bool
	Host      string
	Display   int
	Unix      string // unix:PATH
	Password  bool
	Websocket string
	To        int
	Share     string
}

// Netdev is a -netdev backend. govmm has no network device yet, so a
// netdev is parsed and, like in QEMU, reported as having no peer.
type Netdev struct {
	ID     string
	Type   string // "user", "tap", ...
	Params map[string]string
}

// Parse parses QEMU's command line. prog is argv[0] (its basename prefixes
// messages); args excludes it. The returned error is an *Error.
func Parse(prog string, args []string) (*Result, error) {
	p := newParser(filepath.Base(prog))
	if err := p.run(args); err != nil {
		return nil, err
	}
	return p.res, nil
}

type parser struct {
	prog string
	res  *Result
	cfg  *machine.Config

	cur *occurrence // the option being handled

	nographic  bool
	kvmFlag    *occurrence // -enable-kvm
	accelOcc   *occurrence // -accel
	accelName  string
	machineAcc string
	machineOcc []*deferred
	memOcc     *deferred
	smpOcc     *deferred
	cpuOcc     *deferred
	rtcOcc     *deferred
	bootOcc    *deferred

	chardevs       []*chardevDef
	chardevIDs     map[string]*chardevDef
	serials        []*occurrence
	monitors       []*monitorDef
	drives         []*driveDef
	driveIDs       map[string]*driveDef
	devices        []*deferred
	objects        map[string]*objectDef
	objectList     []*objectDef
	netdevIDs      map[string]bool
	vncOcc         *occurrence
	compatMonitors int
	readDepth      int
}

// deferred is an option whose parsed opts are interpreted after the whole
// command line has been read.
type deferred struct {
	occ  *occurrence
	opts *Opts
	json bool
}

func newParser(prog string) *parser {
	cfg := &machine.Config{
		MachineType: "pc",
		MemBytes:    128 << 20,
		CPUs:        1,
		Topology:    machine.CPUTopology{Sockets: 1, Dies: 1, Cores: 1, Threads: 1, MaxCPUs: 1},
		CPU:         machine.CPUModel{Name: "qemu64"},
		RTC:         machine.RTCConfig{Base: "utc", Clock: "host", DriftFix: "none"},
		DebugExit:   nil,
	}
	return &parser{
		prog:       prog,
		cfg:        cfg,
		res:        &Result{Config: cfg, prog: prog, origins: map[*chardev.Spec]origin{}},
		chardevIDs: map[string]*chardevDef{},
		driveIDs:   map[string]*driveDef{},
		objects:    map[string]*objectDef{},
		netdevIDs:  map[string]bool{},
	}
}

// fail turns a translator error into an *Error at the current option.
func (p *parser) fail(occ *occurrence, err error) *Error {
	if e, ok := err.(*Error); ok {
		return e
	}
	e := &Error{Prog: p.prog, Msg: err.Error()}
	if oe, ok := err.(*optError); ok {
		e.Msg, e.Hint = oe.msg, oe.hint
		if oe.noLoc {
			return e
		}
	}
	if occ != nil {
		e.Opt = occ.Text()
	}
	return e
}

func (p *parser) warn(occ *occurrence, msg string) {
	prefix := p.prog + ": "
	if occ != nil {
		prefix += occ.Text() + ": "
	}
	p.res.Warnings = append(p.res.Warnings, prefix+"warning: "+msg)
}

func (p *parser) run(args []string) error {
	occs, positional, err := scan(args)
	if err != nil {
		oe := err.(*optError)
		if oe.hint != "" { // scan puts the offending word in hint
			return &Error{Prog: p.prog, Opt: oe.hint, Msg: oe.msg}
		}
		return &Error{Prog: p.prog, Msg: oe.msg}
	}
	err = p.handleAll(occs)
	if err == nil && !p.res.Exit {
		for _, a := range positional {
			if err = p.hda(a); err != nil {
				err = p.fail(nil, err)
				break
			}
		}
	}
	if err == nil && !p.res.Exit {
		err = p.finish()
	}
	if e, ok := err.(*Error); ok {
		e.Warnings = append(p.res.Warnings, e.Warnings...)
		return e
	}
	return err
}

func (p *parser) handleAll(occs []*occurrence) error {
	for _, oc := range occs {
		p.cur = oc
		if err := oc.opt.handle(p, oc.arg); err != nil {
			return p.fail(oc, err)
		}
		if p.res.Exit {
			return nil
		}
	}
	p.cur = nil
	return nil
}

// defer_ records the option's opts for later interpretation.
func (p *parser) deferOpts(arg, implied string, jsonOK bool) (*deferred, error) {
	var o *Opts
	var isJSON bool
	var err error
	if jsonOK {
		o, isJSON, err = parseOptsMaybeJSON(arg, implied)
	} else {
		o, err = ParseOpts(arg, implied)
	}
	if err != nil {
		return nil, err
	}
	if !isJSON {
		for _, f := range o.Flags() {
			if isHelp(f.Key) {
				continue
			}
			p.shortBoolWarning(f)
		}
	}
	return &deferred{occ: p.cur, opts: o, json: isJSON}, nil
}

func isHelp(k string) bool { return k == "help" || k == "?" }

// shortBoolWarning is QEMU 7.2's deprecation of "server" for "server=on".
func (p *parser) shortBoolWarning(f Opt) {
	p.warn(p.cur, fmt.Sprintf("short-form boolean option '%s' deprecated", f.FlagText))
	hint := fmt.Sprintf("Please use %s=%s instead", f.Key, f.Value)
	if f.Key == "delay" {
		hint = "Please use nodelay=" + map[string]string{"on": "off", "off": "on"}[f.Value] + " instead"
	}
	p.res.Warnings = append(p.res.Warnings, hint)
}

// Prog is the program name errors are prefixed with.
func (r *Result) Prog() string { return r.prog }
