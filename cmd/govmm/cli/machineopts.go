package cli

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

func (p *parser) name(arg string) error {
	o, err := ParseOpts(arg, "guest")
	if err != nil {
		return err
	}
	p.cfg.Name = o.Str("guest", "")
	p.cfg.ProcessName = o.Str("process", "")
	dt, err := o.Bool("debug-threads", false)
	if err != nil {
		return err
	}
	p.cfg.DebugThreads = dt
	return o.checkKnown()
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func (p *parser) uuid(arg string) error {
	if !uuidRE.MatchString(arg) {
		return errf("failed to parse UUID string: wrong format")
	}
	p.cfg.UUID = strings.ToLower(arg)
	return nil
}

func (p *parser) memory(arg string) error {
	o, err := ParseOpts(arg, "size")
	if err != nil {
		return err
	}
	// -m options merge: later values override earlier ones.
	if p.memOcc != nil {
		o.List = append(p.memOcc.opts.List, o.List...)
	}
	p.memOcc = &deferred{occ: p.cur, opts: o}
	return p.memoryNow(o)
}

// memoryNow checks what QEMU checks while parsing -m.
func (p *parser) memoryNow(o *Opts) error {
	if v, ok := o.Get("size"); ok {
		sz, ok := ParseSize(v, 1<<20)
		if !ok {
			return sizeError("size")
		}
		if sz == 0 {
			sz = 128 << 20 // QEMU: -m 0 means the default
		}
		// QEMU aligns RAM to 8 KiB.
		sz = (sz + 8191) &^ 8191
		if sz < 8192 {
			return errf("ram size too large")
		}
		p.cfg.MemBytes = sz
	}
	if v, ok := o.Get("maxmem"); ok {
		sz, ok := ParseSize(v, 1)
		if !ok {
			return sizeError("maxmem")
		}
		p.cfg.MaxMemBytes = sz
	}
	if v, ok := o.Get("slots"); ok {
		n, ok := parseUint(v)
		if !ok || n > 1<<31 {
			return errf("Parameter 'slots' expects uint64")
		}
		p.cfg.MemSlots = int(n)
	}
	return o.checkKnown()
}

// memoryLate is QEMU's memory check at machine creation (no location).
func (p *parser) memoryLate() error {
	c := p.cfg
	if c.MemSlots > 0 && c.MaxMemBytes == 0 {
		return errNoLoc("slots specified but no max-size")
	}
	if c.MaxMemBytes != 0 {
		if c.MaxMemBytes < c.MemBytes {
			return errNoLoc(fmt.Sprintf("invalid value of maxmem: maximum memory size (0x%x) must be at least the initial memory size (0x%x)", c.MaxMemBytes, c.MemBytes))
		}
		if c.MaxMemBytes > c.MemBytes && c.MemSlots == 0 {
			return errNoLoc(fmt.Sprintf("invalid value of maxmem: maximum memory size (0x%x) more than initial memory size (0x%x) requires slots", c.MaxMemBytes, c.MemBytes))
		}
	}
	return nil
}

// Machine types. QEMU names the versioned machine in property errors.
type machineType struct {
	name, full, desc string
	maxCPUs          int
	props            map[string]string // known property -> "bool", "str", "size"
}

var commonPCProps = map[string]string{
	"accel": "str", "usb": "bool", "dump-guest-core": "bool", "mem-merge": "bool", "graphics": "bool",
	"kernel-irqchip": "str", "kernel_irqchip": "str", "vmport": "auto", "smm": "auto", "hpet": "bool",
	"pit": "bool", "pic": "auto", "acpi": "auto", "nvdimm": "bool", "hmat": "bool", "suppress-vmdesc": "bool",
	"memory-backend": "str", "max-ram-below-4g": "size", "i8042": "bool", "sata": "bool", "smbus": "bool",
	"fd-bootindex": "str", "default-bus-bypass-iommu": "bool", "confidential-guest-support": "str",
	"dt-compatible": "str", "dumpdtb": "str", "phandle-start": "str", "firmware": "str", "kernel": "str",
	"initrd": "str", "append": "str", "dtb": "str", "mem-path": "str", "vmport-auto": "str", "sgx-epc": "str",
	"x-oem-id": "str", "x-oem-table-id": "str", "pcspk-audiodev": "str", "bus-lock-ratelimit": "str",
}

var microvmProps = map[string]string{
	"accel": "str", "usb": "bool", "dump-guest-core": "bool", "mem-merge": "bool", "graphics": "bool",
	"kernel-irqchip": "str", "kernel_irqchip": "str", "pit": "auto", "pic": "auto", "rtc": "auto",
	"isa-serial": "bool", "option-roms": "bool", "auto-kernel-cmdline": "bool", "x-option-roms": "bool",
	"ioapic2": "auto", "acpi": "auto", "pcie": "auto", "kernel": "str", "initrd": "str", "append": "str",
	"firmware": "str", "memory-backend": "str", "confidential-guest-support": "str",
}

var machineTypes = []*machineType{
	{name: "microvm", full: "microvm", desc: "microvm (i386)", maxCPUs: 288, props: microvmProps},
	{name: "pc", full: "pc-i440fx-7.2", desc: "Standard PC (i440FX + PIIX, 1996) (alias of pc-i440fx-7.2)", maxCPUs: 255, props: commonPCProps},
	{name: "q35", full: "pc-q35-7.2", desc: "Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-7.2)", maxCPUs: 288, props: commonPCProps},
	{name: "none", full: "none", desc: "empty machine", maxCPUs: 1, props: map[string]string{"accel": "str", "dump-guest-core": "bool", "mem-merge": "bool", "kernel": "str", "initrd": "str", "append": "str", "memory-backend": "str"}},
}

func findMachine(name string) *machineType {
	for _, m := range machineTypes {
		if m.name == name || m.full == name {
			return m
		}
	}
	return nil
}

func machineHelp() string {
	var b strings.Builder
	b.WriteString("Supported machines are:\n")
	for _, m := range machineTypes {
		fmt.Fprintf(&b, "%-20s %s\n", m.name, m.desc)
		if m.full != m.name {
			fmt.Fprintf(&b, "%-20s %s\n", m.full, strings.SplitN(m.desc, " (alias", 2)[0])
		}
	}
	return b.String()
}

func (p *parser) machine(arg string) error {
	o, err := ParseOpts(arg, "type")
	if err != nil {
		return err
	}
	for _, f := range o.Flags() {
		if !isHelp(f.Key) {
			p.shortBoolWarning(f)
		}
	}
	if v, _ := o.Get("type"); isHelp(v) {
		p.res.Exit = true
		p.res.Output = machineHelp()
		return nil
	}
	p.machineOcc = append(p.machineOcc, &deferred{occ: p.cur, opts: o})
	return nil
}

// machineLate merges all -machine options (QEMU merges them) and checks them.
func (p *parser) machineLate() error {
	merged := &Opts{used: map[string]bool{}}
	for _, d := range p.machineOcc {
		merged.List = append(merged.List, d.opts.List...)
	}
	typ := merged.Str("type", "pc")
	mt := findMachine(typ)
	if mt == nil {
		return errNoLocHint("unsupported machine type", "Use -machine help to list supported machines")
	}
	p.cfg.MachineType = mt.name
	for _, x := range merged.List {
		if x.Key == "type" {
			continue
		}
		kind, ok := mt.props[x.Key]
		if !ok {
			return errNoLoc(fmt.Sprintf("Property '%s-machine.%s' not found", mt.full, x.Key))
		}
		switch kind {
		case "bool":
			if _, err := parseBool(x.Key, x.Value); err != nil {
				return errNoLoc(err.Error())
			}
		case "auto":
			if x.Value != "auto" {
				if _, err := parseBool(x.Key, x.Value); err != nil {
					return errNoLoc(fmt.Sprintf("Parameter '%s' does not accept value '%s'", x.Key, x.Value))
				}
			}
		case "size":
			if _, ok := ParseSize(x.Value, 1); !ok {
				return errNoLoc(fmt.Sprintf("Parameter '%s' expects a non-negative number below 2^64", x.Key))
			}
		}
	}
	if v, ok := merged.Get("accel"); ok {
		if p.accelOcc != nil || p.kvmFlag != nil {
			return errNoLoc("The -accel and \"-machine accel=\" options are incompatible")
		}
		// "kvm:tcg" tries each in turn; govmm has only kvm.
		found := false
		for _, a := range strings.Split(v, ":") {
			switch a {
			case "kvm":
				found = true
			case "tcg", "xen", "qtest", "hax", "whpx", "nvmm", "hvf":
			default:
				return errNoLoc("invalid accelerator " + a)
			}
		}
		if !found {
			return errNoLoc(fmt.Sprintf("accelerator '%s' is not supported: govmm runs guests with KVM only", v))
		}
	}
	for _, k := range []string{"kernel", "initrd", "append"} {
		if v, ok := merged.Get(k); ok {
			switch k {
			case "kernel":
				p.cfg.Kernel = v
			case "initrd":
				p.cfg.Initrd = v
			case "append":
				p.cfg.Cmdline = v
			}
		}
	}
	return nil
}

func (p *parser) enableKVM(string) error {
	if p.accelOcc != nil {
		return errNoLoc("The -accel and \"-machine accel=\" options are incompatible")
	}
	p.kvmFlag = p.cur
	return nil
}

var kvmAccelProps = map[string]string{
	"kernel-irqchip": "str", "kvm-shadow-mem": "size", "dirty-ring-size": "size",
	"notify-vmexit": "str", "notify-window": "str", "xen-version": "str", "thread": "str",
	"tb-size": "size", "split-wx": "bool", "one-insn-per-tb": "bool",
}

func (p *parser) accel(arg string) error {
	o, err := ParseOpts(arg, "accel")
	if err != nil {
		return err
	}
	a := o.Str("accel", "")
	if isHelp(a) {
		p.res.Exit = true
		p.res.Output = "Accelerators supported in QEMU binary:\nkvm\n"
		return nil
	}
	switch a {
	case "kvm":
	case "tcg", "xen", "qtest", "hax", "whpx", "nvmm", "hvf":
		return errf(fmt.Sprintf("accelerator '%s' is not supported: govmm runs guests with KVM only", a))
	default:
		return errf("invalid accelerator " + a)
	}
	if p.kvmFlag != nil {
		return errNoLoc("The -accel and \"-machine accel=\" options are incompatible")
	}
	for _, x := range o.List {
		if x.Key == "accel" {
			continue
		}
		if _, ok := kvmAccelProps[x.Key]; !ok {
			return errf(fmt.Sprintf("Property 'kvm-accel.%s' not found", x.Key))
		}
	}
	p.accelOcc = p.cur
	p.accelName = a
	return nil
}

func (p *parser) rtc(arg string) error {
	o, err := ParseOpts(arg, "")
	if err != nil {
		return err
	}
	p.rtcOcc = &deferred{occ: p.cur, opts: o}
	if err := o.checkKnownOnly("base", "clock", "driftfix"); err != nil {
		return err
	}
	return nil
}

func (p *parser) rtcLate() error {
	if p.rtcOcc == nil {
		return nil
	}
	o := p.rtcOcc.opts
	if v, ok := o.Get("base"); ok {
		switch v {
		case "utc", "localtime":
		default:
			_, e1 := time.Parse("2006-01-02T15:04:05", v)
			_, e2 := time.Parse("2006-01-02", v)
			if e1 != nil && e2 != nil {
				return errNoLocHint("invalid datetime format", "valid formats: '2006-06-17T16:01:21' or '2006-06-17'")
			}
		}
		p.cfg.RTC.Base = v
	}
	if v, ok := o.Get("clock"); ok {
		switch v {
		case "host", "rt", "vm":
		default:
			return errNoLoc(fmt.Sprintf("invalid option value '%s'", v))
		}
		p.cfg.RTC.Clock = v
	}
	if v, ok := o.Get("driftfix"); ok {
		switch v {
		case "none", "slew":
		default:
			return errNoLoc(fmt.Sprintf("invalid option value '%s'", v))
		}
		p.cfg.RTC.DriftFix = v
	}
	return nil
}

// checkKnownOnly refuses keys outside the list (QEMU's "Invalid parameter").
func (o *Opts) checkKnownOnly(keys ...string) error {
	for _, x := range o.List {
		ok := false
		for _, k := range keys {
			if x.Key == k {
				ok = true
			}
		}
		if !ok {
			return errf(fmt.Sprintf("Invalid parameter '%s'", x.Key))
		}
	}
	return nil
}

func (p *parser) boot(arg string) error {
	o, err := ParseOpts(arg, "order")
	if err != nil {
		return err
	}
	if err := o.checkKnownOnly("order", "once", "menu", "splash", "splash-time", "reboot-timeout", "strict"); err != nil {
		return err
	}
	for _, k := range []string{"menu", "strict"} {
		if _, err := o.Bool(k, false); err != nil {
			return err
		}
	}
	p.bootOcc = &deferred{occ: p.cur, opts: o}
	return nil
}

func (p *parser) bootLate() error {
	if p.bootOcc == nil {
		return nil
	}
	o := p.bootOcc.opts
	for _, k := range []string{"order", "once"} {
		v, ok := o.Get(k)
		if !ok {
			continue
		}
		seen := map[rune]bool{}
		for _, c := range v {
			if seen[c] {
				return errNoLoc(fmt.Sprintf("Boot device '%c' was given twice", c))
			}
			seen[c] = true
			if c < 'a' || c > 'p' {
				return errNoLoc(fmt.Sprintf("Invalid boot device '%c'", c))
			}
		}
		if k == "order" {
			p.cfg.BootOrder = v
		}
	}
	return nil
}
