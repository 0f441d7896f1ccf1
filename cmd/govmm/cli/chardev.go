package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/govmm/govmm/devices/chardev"
)

// chardevDef is a -chardev (or a backend implied by another option) between
// parsing and creation.
type chardevDef struct {
	id   string
	occ  *occurrence
	opts *Opts
	spec *chardev.Spec
	// compat: created from the legacy syntax of -serial/-monitor/-qmp.
	compat bool
}

// knownChardevs are QEMU's char drivers; only some are implemented.
var knownChardevs = map[string]bool{
	"null": true, "stdio": true, "file": true, "pty": true, "pipe": true, "socket": true,
	"vc": false, "ringbuf": false, "memory": false, "udp": false, "serial": false, "tty": false,
	"parallel": false, "parport": false, "msmouse": false, "wctablet": false, "braille": false,
	"testdev": false, "spicevmc": false, "spiceport": false, "qemu-vdagent": false, "dbus": false,
	"mux": false,
}

func (p *parser) chardev(arg string) error {
	o, err := ParseOpts(arg, "backend")
	if err != nil {
		return err
	}
	for _, f := range o.Flags() {
		p.shortBoolWarning(f)
	}
	if v, ok := o.Get("backend"); ok && isHelp(v) {
		p.res.Exit = true
		p.res.Output = "Available chardev backend types:\n  file\n  null\n  pipe\n  pty\n  socket\n  stdio\n"
		return nil
	}
	id, hasID := o.Get("id")
	if hasID && !validID(id) {
		return idError()
	}
	if hasID {
		if _, dup := p.chardevIDs[id]; dup {
			return errf(fmt.Sprintf("Duplicate ID '%s' for chardev", id))
		}
	}
	d := &chardevDef{id: id, occ: p.cur, opts: o}
	if hasID {
		p.chardevIDs[id] = d
	}
	p.chardevs = append(p.chardevs, d)
	return nil
}

// createChardev turns parsed opts into a Spec (QEMU's qemu_chr_new_from_opts).
func (p *parser) createChardev(d *chardevDef) error {
	o := d.opts
	backend, ok := o.Get("backend")
	if !ok {
		return errf("chardev: \"\" missing backend")
	}
	if !d.compat && d.id == "" {
		return errf("chardev: no id specified")
	}
	impl, known := knownChardevs[backend]
	if !known {
		return errf(fmt.Sprintf("'%s' is not a valid char driver name", backend))
	}
	if !impl {
		return errf(fmt.Sprintf("char driver '%s' is not supported by govmm", backend))
	}
	s := &chardev.Spec{ID: d.id, Kind: chardev.Kind(backend), FD: -1}
	var err error
	if s.Mux, err = o.Bool("mux", false); err != nil {
		return err
	}
	s.Logfile = o.Str("logfile", "")
	if s.LogAppend, err = o.Bool("logappend", false); err != nil {
		return err
	}
	switch s.Kind {
	case chardev.Stdio:
		if s.Signal, err = o.Bool("signal", true); err != nil {
			return err
		}
		if p.res.Daemonize {
			return errf("cannot use stdio with -daemonize")
		}
		if p.stdioInUse() {
			return errf("cannot use stdio by multiple character devices")
		}
	case chardev.File:
		s.Path = o.Str("path", "")
		if s.Path == "" {
			return errf("chardev: file: no filename given")
		}
		s.In = o.Str("input-path", "")
		if s.Append, err = o.Bool("append", false); err != nil {
			return err
		}
	case chardev.Pipe:
		s.Path = o.Str("path", "")
		if s.Path == "" {
			return errf("chardev: pipe: no filename given")
		}
	case chardev.Socket:
		if err := socketOpts(s, o); err != nil {
			return err
		}
	}
	if err := o.checkKnown(); err != nil {
		return err
	}
	d.spec = s
	p.res.Chardevs = append(p.res.Chardevs, s)
	p.res.origins[s] = origin{opt: d.occ.Text()}
	return nil
}

func socketOpts(s *chardev.Spec, o *Opts) error {
	var err error
	s.Path = o.Str("path", "")
	s.Host = o.Str("host", "")
	s.Port = o.Str("port", "")
	fd := o.Str("fd", "")
	// Presence counts, not value: the compat form "tcp::4444" sets an
	// empty host (all addresses / localhost).
	n := 0
	for _, k := range []string{"path", "host", "fd"} {
		if o.Has(k) {
			n++
		}
	}
	if n > 1 {
		return errf("None or one of 'path', 'fd' or 'host' option required.")
	}
	if n == 0 && s.Port != "" {
		// QEMU 7.2 falls through to the fd case with an empty number.
		return errf("Unable to parse FD number ")
	}
	if n == 0 {
		return errf("Unable to parse FD number ")
	}
	if fd != "" {
		v, err := strconv.Atoi(fd)
		if err != nil || v < 0 {
			return errf("Unable to parse FD number " + fd)
		}
		s.FD = v
	}
	if o.Has("host") && s.Port == "" {
		return errf("chardev: socket: no port given")
	}
	if s.Server, err = o.Bool("server", false); err != nil {
		return err
	}
	if s.Wait, err = o.Bool("wait", true); err != nil {
		return err
	}
	if !s.Server {
		s.Wait = false
	}
	if s.Nodelay, err = o.Bool("nodelay", false); err != nil {
		return err
	}
	if t, err := o.Bool("telnet", false); err != nil {
		return err
	} else if t {
		return errf("telnet sockets are not supported by govmm")
	}
	if t, err := o.Bool("websocket", false); err != nil {
		return err
	} else if t {
		return errf("websocket sockets are not supported by govmm")
	}
	if v := o.Str("reconnect", "0"); v != "0" {
		return errf("reconnect= is not supported by govmm")
	}
	// Accepted and ignored, as they change nothing for a local socket.
	o.Get("ipv4")
	o.Get("ipv6")
	o.Get("to")
	o.Get("abstract")
	o.Get("tight")
	return nil
}

// compatChardev parses the legacy backend syntax of -serial, -monitor and
// -qmp (QEMU's qemu_chr_parse_compat): "stdio", "pty", "file:PATH",
// "unix:PATH[,opts]", "tcp:[HOST]:PORT[,opts]", "mon:X", "chardev:ID", ...
// It returns the def to create, or an existing chardev for "chardev:ID".
func (p *parser) compatChardev(label, value string, permitMux bool) (*chardevDef, error) {
	o := &Opts{used: map[string]bool{}}
	set := func(k, v string) { o.List = append(o.List, Opt{Key: k, Value: v}) }
	invalid := fmt.Errorf("'%s' is not a valid char driver", value)
	v := value
	if strings.HasPrefix(v, "mon:") {
		if !permitMux {
			return nil, errf("mon: isn't supported in this context")
		}
		v = v[4:]
		set("mux", "on")
		if v == "stdio" {
			// Ctrl-C goes to the guest when the monitor shares stdio.
			set("signal", "off")
		}
	}
	switch {
	case v == "null" || v == "stdio" || v == "pty" || v == "vc" || v == "msmouse" || v == "braille" || v == "testdev":
		set("backend", v)
	case strings.HasPrefix(v, "vc:"):
		set("backend", "vc")
	case strings.HasPrefix(v, "file:"):
		set("backend", "file")
		set("path", v[5:])
	case strings.HasPrefix(v, "pipe:"):
		set("backend", "pipe")
		set("path", v[5:])
	case strings.HasPrefix(v, "unix:"):
		set("backend", "socket")
		rest, err := ParseOpts(v[5:], "path")
		if err != nil {
			return nil, err
		}
		o.List = append(o.List, rest.List...)
	case strings.HasPrefix(v, "tcp:") || strings.HasPrefix(v, "telnet:"):
		telnet := strings.HasPrefix(v, "telnet:")
		r := v[strings.IndexByte(v, ':')+1:]
		hp, opts, _ := strings.Cut(r, ",")
		host, port, ok := strings.Cut(hp, ":")
		if !ok || port == "" || strings.Contains(port, ":") {
			return nil, errf(invalid.Error())
		}
		set("backend", "socket")
		set("host", host)
		set("port", port)
		if telnet {
			set("telnet", "on")
		}
		if opts != "" {
			rest, err := ParseOpts(opts, "")
			if err != nil {
				return nil, err
			}
			o.List = append(o.List, rest.List...)
		}
	case strings.HasPrefix(v, "udp:"):
		set("backend", "udp")
	case strings.HasPrefix(v, "/dev/"):
		set("backend", "serial")
		set("path", v)
	default:
		return nil, errf(invalid.Error())
	}
	return &chardevDef{id: label, occ: p.cur, opts: o, compat: true}, nil
}

// Origin is the option a chardev came from ("-serial pty"), for messages.
func (r *Result) Origin(s *chardev.Spec) string { return r.origins[s].opt }
