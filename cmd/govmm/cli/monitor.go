package cli

import (
	"fmt"
	"strconv"
	"strings"
)

// monitorDef is a -mon/-monitor/-qmp before its chardev is resolved.
type monitorDef struct {
	occ     *occurrence
	id      string
	chardev string      // chardev ID to look up
	def     *chardevDef // compat form: backend created for it
	control bool
	pretty  bool
}

func (p *parser) mon(arg string) error {
	o, err := ParseOpts(arg, "chardev")
	if err != nil {
		return err
	}
	for _, f := range o.Flags() {
		p.shortBoolWarning(f)
	}
	p.res.NoDefaultMonitor = true
	m := &monitorDef{occ: p.cur, id: o.Str("id", "")}
	m.chardev = o.Str("chardev", "")
	switch mode := o.Str("mode", "readline"); mode {
	case "readline":
	case "control":
		m.control = true
	default:
		return errf(fmt.Sprintf("Parameter 'mode' does not accept value '%s'", mode))
	}
	if m.pretty, err = o.Bool("pretty", false); err != nil {
		return err
	}
	if err := o.checkKnown(); err != nil {
		return err
	}
	p.monitors = append(p.monitors, m)
	return nil
}

func (p *parser) monitor(arg string) error {
	p.res.NoDefaultMonitor = true
	if strings.HasPrefix(arg, "none") {
		return nil
	}
	return p.compatMonitor(arg, false, false)
}

func (p *parser) qmp(arg string) error {
	p.res.NoDefaultMonitor = true
	return p.compatMonitor(arg, true, p.cur.opt.name == "qmp-pretty")
}

// compatMonitor is QEMU's monitor_parse: "chardev:ID" or a backend in the
// legacy syntax, created as chardev compat_monitorN.
func (p *parser) compatMonitor(arg string, control, pretty bool) error {
	m := &monitorDef{occ: p.cur, control: control, pretty: pretty}
	if id, ok := strings.CutPrefix(arg, "chardev:"); ok {
		m.chardev = id
	} else {
		label := "compat_monitor" + strconv.Itoa(p.compatMonitors)
		p.compatMonitors++
		d, err := p.compatChardev(label, arg, true)
		if err != nil {
			return err
		}
		m.def = d
		m.chardev = label
	}
	p.monitors = append(p.monitors, m)
	return nil
}

// monitorsLate creates the monitors' backends and resolves chardev IDs.
func (p *parser) monitorsLate() error {
	for _, m := range p.monitors {
		if m.def != nil {
			if err := p.createChardev(m.def); err != nil {
				return p.fail(m.occ, err)
			}
			p.chardevIDs[m.chardev] = m.def
		}
		d, ok := p.chardevIDs[m.chardev]
		if !ok || d.spec == nil {
			return p.fail(m.occ, errf(fmt.Sprintf("chardev \"%s\" not found", m.chardev)))
		}
		p.res.Monitors = append(p.res.Monitors, &Monitor{ID: m.id, Chardev: d.spec, Control: m.control, Pretty: m.pretty})
	}
	return nil
}

func (p *parser) serial(arg string) error {
	p.serials = append(p.serials, p.cur)
	return nil
}

// serialsLate creates the -serial backends (QEMU's serial_parse), in order.
func (p *parser) serialsLate() error {
	var list []*occurrence
	list = append(list, p.serials...)
	for i, oc := range list {
		p.cur = oc
		if oc.arg == "none" {
			p.cfg.Serial = append(p.cfg.Serial, nil)
			continue
		}
		if len(p.cfg.Serial) >= 4 {
			return p.fail(oc, errf("too many serial ports"))
		}
		label := "serial" + strconv.Itoa(i)
		fail := func(err error) error {
			e := p.fail(oc, err)
			e.Hint = joinHint(e.Hint, fmt.Sprintf("%s: %s: could not connect serial device to character backend '%s'", p.prog, oc.Text(), oc.arg))
			return e
		}
		if id, ok := strings.CutPrefix(oc.arg, "chardev:"); ok {
			d, ok := p.chardevIDs[id]
			if !ok || d.spec == nil {
				return p.fail(oc, errf(fmt.Sprintf("could not connect serial device to character backend '%s'", oc.arg)))
			}
			p.cfg.Serial = append(p.cfg.Serial, d.spec)
			continue
		}
		d, err := p.compatChardev(label, oc.arg, true)
		if err != nil {
			return fail(err)
		}
		if err := p.createChardev(d); err != nil {
			return fail(err)
		}
		p.res.origins[d.spec] = origin{opt: oc.Text(), serial: true, value: oc.arg}
		p.chardevIDs[label] = d
		p.cfg.Serial = append(p.cfg.Serial, d.spec)
		// mon:X also puts a monitor on the same (muxed) backend.
		if strings.HasPrefix(oc.arg, "mon:") {
			p.res.Monitors = append(p.res.Monitors, &Monitor{Chardev: d.spec})
		}
	}
	return nil
}

func joinHint(a, b string) string {
	if a == "" {
		return b
	}
	return a + "\n" + b
}

var displayTypes = map[string]bool{
	"none": true, "gtk": false, "sdl": false, "curses": false, "egl-headless": false,
	"spice-app": false, "dbus": false, "cocoa": false, "vnc": false, "default": false,
}

func (p *parser) display(arg string) error {
	o, err := ParseOpts(arg, "type")
	if err != nil {
		return err
	}
	t := o.Str("type", "")
	if isHelp(t) {
		p.res.Exit = true
		p.res.Output = "Available display backend types:\nnone\n"
		return nil
	}
	impl, known := displayTypes[t]
	if !known {
		return errf(fmt.Sprintf("Parameter 'type' does not accept value '%s'", t))
	}
	if !impl {
		return errf(fmt.Sprintf("display '%s' is not supported by govmm", t))
	}
	p.res.Display = t
	return nil
}

func (p *parser) vnc(arg string) error {
	o, err := ParseOpts(arg, "vnc")
	if err != nil {
		return err
	}
	v := o.Str("vnc", "")
	cfg := &VNCConfig{}
	switch {
	case v == "none":
		cfg.None = true
	case strings.HasPrefix(v, "unix:"):
		cfg.Unix = v[5:]
	default:
		i := strings.LastIndexByte(v, ':')
		if i < 0 {
			return errf("no vnc port specified")
		}
		cfg.Host = strings.Trim(v[:i], "[]")
		n, err := strconv.Atoi(v[i+1:])
		if err != nil || n < 0 {
			return errf("can't convert to a number: " + v[i+1:])
		}
		cfg.Display = n
	}
	if cfg.Password, err = o.Bool("password", false); err != nil {
		return err
	}
	cfg.Websocket = o.Str("websocket", "")
	cfg.Share = o.Str("share", "")
	if t, ok := o.Get("to"); ok {
		n, err := strconv.Atoi(t)
		if err != nil {
			return errf("Parameter 'to' expects uint32_t")
		}
		cfg.To = n
	}
	o.Get("id")
	o.Get("lossy")
	o.Get("non-adaptive")
	o.Get("key-delay-ms")
	if err := o.checkKnown(); err != nil {
		return err
	}
	p.res.VNC = cfg
	p.vncOcc = p.cur
	if !VNCSupported && !cfg.None {
		return errf("VNC is not supported by govmm yet")
	}
	return nil
}
