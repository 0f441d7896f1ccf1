package cli

import (
	"fmt"
	"github.com/govmm/govmm/machine/cpuid"
	"strings"
)

func (p *parser) smp(arg string) error {
	o, err := ParseOpts(arg, "cpus")
	if err != nil {
		return err
	}
	// -smp options merge like -machine's.
	if p.smpOcc != nil {
		o.List = append(p.smpOcc.opts.List, o.List...)
	}
	p.smpOcc = &deferred{occ: p.cur, opts: o}
	return nil
}

// smpLate is QEMU 7.2's machine_parse_smp_config for x86 (dies supported,
// clusters not, cores preferred over sockets). Its errors have no location.
func (p *parser) smpLate(mt *machineType) error {
	if p.smpOcc == nil {
		return p.maxCPUCheck(mt, 1, 1)
	}
	o := p.smpOcc.opts
	vals := map[string]uint64{}
	given := map[string]bool{}
	for _, k := range []string{"cpus", "sockets", "dies", "clusters", "cores", "threads", "maxcpus"} {
		v, ok := o.Get(k)
		if !ok {
			continue
		}
		n, ok := parseUint(v)
		if !ok {
			return errNoLoc(fmt.Sprintf("Parameter 'smp.%s' expects integer", k))
		}
		if n > 1<<32-1 {
			return errNoLoc(fmt.Sprintf("Parameter 'smp.%s' expects uint32_t", k))
		}
		vals[k] = n
		given[k] = true
	}
	if k, ok := o.Unused(); ok {
		return errNoLoc(fmt.Sprintf("Parameter 'smp.%s' is unexpected", k))
	}
	// Explicit zeros are deprecated and treated as omitted.
	for k := range given {
		if vals[k] == 0 {
			p.warn(nil, "Deprecated CPU topology (considered invalid): CPU topology parameters must be greater than zero")
			break
		}
	}
	if vals["clusters"] > 1 {
		return errNoLoc("clusters not supported by this machine's CPU topology")
	}
	if mt.name == "none" && vals["dies"] > 1 {
		return errNoLoc("dies not supported by this machine's CPU topology")
	}
	cpus, sockets, dies, cores, threads, maxcpus := vals["cpus"], vals["sockets"], vals["dies"], vals["cores"], vals["threads"], vals["maxcpus"]
	if dies == 0 {
		dies = 1
	}
	or1 := func(v uint64) uint64 {
		if v == 0 {
			return 1
		}
		return v
	}
	if cpus == 0 && maxcpus == 0 {
		sockets, cores, threads = or1(sockets), or1(cores), or1(threads)
	} else {
		if maxcpus == 0 {
			maxcpus = cpus
		}
		if cores == 0 {
			sockets, threads = or1(sockets), or1(threads)
			cores = maxcpus / (sockets * dies * threads)
		} else if sockets == 0 {
			threads = or1(threads)
			sockets = maxcpus / (dies * cores * threads)
		}
		if threads == 0 {
			threads = maxcpus / (sockets * dies * cores)
		}
	}
	product := sockets * dies * cores * threads
	if maxcpus == 0 {
		maxcpus = product
	}
	if cpus == 0 {
		cpus = maxcpus
	}
	hier := func() string {
		s := fmt.Sprintf("sockets (%d)", sockets)
		if mt.name != "none" {
			s += fmt.Sprintf(" * dies (%d)", dies)
		}
		return s + fmt.Sprintf(" * cores (%d) * threads (%d)", cores, threads)
	}
	// QEMU computes in unsigned 32 bits; an overflowed product cannot match.
	if product != maxcpus || product > 1<<32-1 {
		return errNoLoc(fmt.Sprintf("Invalid CPU topology: product of the hierarchy must match maxcpus: %s != maxcpus (%d)", hier(), maxcpus))
	}
	if maxcpus < cpus {
		return errNoLoc(fmt.Sprintf("Invalid CPU topology: maxcpus must be equal to or greater than smp: %s == maxcpus (%d) < smp_cpus (%d)", hier(), maxcpus, cpus))
	}
	if err := p.maxCPUCheck(mt, cpus, maxcpus); err != nil {
		return err
	}
	p.cfg.CPUs = int(cpus)
	p.cfg.Topology.Sockets = int(sockets)
	p.cfg.Topology.Dies = int(dies)
	p.cfg.Topology.Cores = int(cores)
	p.cfg.Topology.Threads = int(threads)
	p.cfg.Topology.MaxCPUs = int(maxcpus)
	return nil
}

func (p *parser) maxCPUCheck(mt *machineType, cpus, maxcpus uint64) error {
	if maxcpus > uint64(mt.maxCPUs) {
		return errNoLoc(fmt.Sprintf("Invalid SMP CPUs %d. The max CPUs supported by machine '%s' is %d", maxcpus, mt.full, mt.maxCPUs))
	}
	return nil
}

// CPU models govmm offers.
var cpuModels = []struct{ name, desc string }{
	{"host", "processor with all supported host features"},
	{"max", "Enables all features supported by the accelerator in the current host"},
	{"qemu64", "QEMU Virtual CPU version 2.5+"},
}

// cpuProps are -cpu properties that are not CPUID flags, with their kind.
var cpuProps = map[string]string{
	"pmu": "bool", "enforce": "bool", "check": "bool", "host-phys-bits": "bool", "phys-bits": "int",
	"host-phys-bits-limit": "int", "l3-cache": "bool", "kvm": "bool", "level": "int", "xlevel": "int",
	"min-level": "int", "min-xlevel": "int", "vendor": "str", "model-id": "str", "family": "int",
	"model": "int", "stepping": "int", "tsc-frequency": "int", "fill-mtrr-mask": "bool",
	"full-cpuid-auto-level": "bool", "cpuid-0xb": "bool", "legacy-cache": "bool", "x-force-features": "bool",
	"hv-relaxed": "bool", "hv-vapic": "bool", "hv-time": "bool", "hv-crash": "bool", "hv-reset": "bool",
	"hv-vpindex": "bool", "hv-runtime": "bool", "hv-synic": "bool", "hv-stimer": "bool", "hv-frequencies": "bool",
	"hv-reenlightenment": "bool", "hv-tlbflush": "bool", "hv-evmcs": "bool", "hv-ipi": "bool",
	"hv-stimer-direct": "bool", "hv-spinlocks": "int", "hv-passthrough": "bool", "hv-vendor-id": "str",
	"kvm-no-smi-migration": "bool", "kvm-pv-enforce-cpuid": "bool", "lbr-fmt": "int", "ucode-rev": "int",
}

// hostOnlyProps exist only on host and max.
var hostOnlyProps = map[string]bool{"migratable": true}

func cpuHelp() string {
	var b strings.Builder
	b.WriteString("Available CPUs:\n")
	for _, m := range cpuModels {
		fmt.Fprintf(&b, "x86 %-20s  %s\n", m.name, m.desc)
	}
	b.WriteString("\nRecognized CPUID flags:\n")
	names := sortedKeys(cpuFlags)
	line := " "
	for _, n := range names {
		if len(line)+1+len(n) > 76 {
			b.WriteString(line + "\n")
			line = " "
		}
		line += " " + n
	}
	b.WriteString(line + "\n")
	return b.String()
}

func (p *parser) cpu(arg string) error {
	// -cpu is not QemuOpts: "model,+feat,-feat,feat=val,feat".
	model, rest, _ := strings.Cut(arg, ",")
	if isHelp(model) {
		p.res.Exit = true
		p.res.Output = cpuHelp()
		return nil
	}
	p.cpuOcc = &deferred{occ: p.cur, opts: &Opts{List: []Opt{{Key: "model", Value: model}, {Key: "features", Value: rest}}}}
	return nil
}

// cpuLate checks the model and features (QEMU does it at machine creation,
// as "global" properties, hence the wording of its messages).
func (p *parser) cpuLate() error {
	if p.cpuOcc == nil {
		return nil
	}
	model := p.cpuOcc.opts.List[0].Value
	rest := p.cpuOcc.opts.List[1].Value
	found := false
	for _, m := range cpuModels {
		if m.name == model {
			found = true
		}
	}
	if !found {
		return errNoLoc(fmt.Sprintf("unable to find CPU model '%s'", model))
	}
	cls := model + "-x86_64-cpu"
	var feats []string
	if rest != "" {
		feats = strings.Split(rest, ",")
	}
	p.cfg.CPU.Name = model
	p.cfg.CPU.Features = nil
	for _, f := range feats {
		if f == "" {
			continue
		}
		name, val := f, "on"
		switch {
		case strings.HasPrefix(f, "+"):
			name = f[1:]
		case strings.HasPrefix(f, "-"):
			name, val = f[1:], "off"
		default:
			if k, v, ok := strings.Cut(f, "="); ok {
				name, val = k, v
			}
		}
		global := fmt.Sprintf("can't apply global %s.%s=%s: ", cls, name, val)
		// QEMU accepts "_" for "-" in feature names.
		canon := strings.ReplaceAll(name, "_", "-")
		if cpuFlags[canon] || cpuid.Known(canon) { // cpuid knows QEMU's aliases too (sse3, pclmuldq, ...)
			on, err := parseBool(name, val)
			if err != nil {
				return errNoLoc(global + err.Error())
			}
			p.cfg.CPU.Features = append(p.cfg.CPU.Features, featureOf(canon, on))
			continue
		}
		kind, ok := cpuProps[canon]
		if !ok && hostOnlyProps[canon] && model != "qemu64" {
			kind, ok = "bool", true
		}
		if !ok {
			return errNoLoc(global + fmt.Sprintf("Property '%s.%s' not found", cls, name))
		}
		switch kind {
		case "bool":
			if _, err := parseBool(name, val); err != nil {
				return errNoLoc(global + err.Error())
			}
		case "int":
			if _, ok := parseUint(val); !ok {
				return errNoLoc(global + fmt.Sprintf("Parameter '%s' expects an integer", name))
			}
		}
	}
	return nil
}
