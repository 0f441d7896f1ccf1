package cli

import (
	"fmt"
	"os"

	"github.com/govmm/govmm/devices/chardev"
)

// finish runs the checks QEMU does after reading the whole command line, in
// QEMU's order: early backends (chardevs), the machine (type, accelerator,
// -smp, -m), monitors, serial ports, the CPU model, devices.
func (p *parser) finish() error {
	if p.nographic && p.res.Daemonize {
		return &Error{Prog: p.prog, Msg: "-nographic cannot be used with -daemonize"}
	}
	if p.nographic {
		p.res.Display = "none"
	}
	if p.res.Display == "" {
		// govmm has no window: the default display is none.
		p.res.Display = "none"
	}
	for _, d := range p.chardevs {
		if err := p.createChardev(d); err != nil {
			return p.fail(d.occ, err)
		}
	}
	if err := p.machineLate(); err != nil {
		return p.fail(nil, err)
	}
	mt := findMachine(p.cfg.MachineType)
	if err := p.smpLate(mt); err != nil {
		return p.fail(nil, err)
	}
	if err := p.memoryLate(); err != nil {
		return p.fail(nil, err)
	}
	p.addDefaults()
	if err := p.monitorsLate(); err != nil {
		return err
	}
	if err := p.serialsLate(); err != nil {
		return err
	}
	if err := p.cpuLate(); err != nil {
		return p.fail(nil, err)
	}
	if err := p.devicesLate(); err != nil {
		return err
	}
	if err := p.rtcLate(); err != nil {
		return p.fail(nil, err)
	}
	if err := p.bootLate(); err != nil {
		return p.fail(nil, err)
	}
	return nil
}

// addDefaults is QEMU's qemu_create_default_devices for what govmm has: a
// COM1 and, with -nographic, a monitor on stdio.
func (p *parser) addDefaults() {
	defSerial := len(p.serials) == 0 && !p.res.NoDefaults
	defMonitor := !p.res.NoDefaultMonitor && !p.res.NoDefaults
	synth := func(opt, arg string) *occurrence {
		return &occurrence{opt: optionByName[opt], given: "-" + opt, arg: arg}
	}
	if p.nographic {
		switch {
		case defSerial && defMonitor:
			p.serials = append(p.serials, synth("serial", "mon:stdio"))
		default:
			if defSerial {
				p.serials = append(p.serials, synth("serial", "stdio"))
			}
			if defMonitor {
				oc := synth("monitor", "stdio")
				saved := p.cur
				p.cur = oc
				p.compatMonitor("stdio", false, false)
				p.cur = saved
			}
		}
		return
	}
	if defSerial {
		// QEMU's default is a virtual console; without a display its
		// output goes nowhere.
		p.serials = append(p.serials, synth("serial", "null"))
	}
}

// stdioUsers counts stdio backends; QEMU allows one.
func (p *parser) stdioInUse() bool {
	for _, s := range p.res.Chardevs {
		if s.Kind == chardev.Stdio {
			return true
		}
	}
	return false
}

// OpenChardevs opens every backend in Chardevs, in order, before the guest
// starts. Muxed backends (mon:stdio, -nographic, mux=on) are opened once;
// callers attach front ends with chardev.NewMux. On error everything opened
// so far is closed and the error reads as QEMU's. env may be the zero Env.
func (r *Result) OpenChardevs(env chardev.Env) (map[*chardev.Spec]chardev.Backend, error) {
	out := map[*chardev.Spec]chardev.Backend{}
	if env.Info == nil {
		env.Info = func(string) {}
	}
	for _, s := range r.Chardevs {
		o := r.origins[s]
		e := env
		inner := env.Info
		e.Info = func(msg string) {
			if o.opt != "" {
				inner(fmt.Sprintf("%s: %s: info: %s", r.prog, o.opt, msg))
			} else {
				inner(fmt.Sprintf("%s: info: %s", r.prog, msg))
			}
		}
		b, err := chardev.OpenEnv(s, e)
		if err != nil {
			for _, ob := range out {
				ob.Close()
			}
			ce := &Error{Prog: r.prog, Opt: o.opt, Msg: err.Error()}
			if o.serial {
				ce.Hint = fmt.Sprintf("%s: %s: could not connect serial device to character backend '%s'", r.prog, o.opt, o.value)
			}
			return nil, ce
		}
		out[s] = b
	}
	return out, nil
}

// InfoToStderr is an Env.Info that prints QEMU's info lines on stderr.
func InfoToStderr(msg string) { fmt.Fprintln(os.Stderr, msg) }
