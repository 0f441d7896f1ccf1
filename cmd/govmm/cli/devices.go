package cli

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/govmm/govmm/devices/chardev"
	"github.com/govmm/govmm/machine"
)

type driveDef struct {
	occ   *occurrence
	drive *machine.DriveConfig
	used  bool
}

var driveKeys = map[string]bool{
	"file": true, "if": true, "format": true, "id": true, "readonly": true, "read-only": true, "cache": true,
	"aio": true, "discard": true, "snapshot": true, "serial": true, "media": true, "index": true,
	"bus": true, "unit": true, "werror": true, "rerror": true, "detect-zeroes": true, "auto-read-only": true,
	"cache.direct": true, "cache.no-flush": true, "node-name": true, "driver": true,
}

func (p *parser) drive(arg string) error {
	o, err := ParseOpts(arg, "")
	if err != nil {
		return err
	}
	for _, f := range o.Flags() {
		p.shortBoolWarning(f)
	}
	id, hasID := o.Get("id")
	if hasID && !validID(id) {
		return idError()
	}
	if hasID && p.driveIDs[id] != nil {
		return errf(fmt.Sprintf("Duplicate ID '%s' for drive", id))
	}
	d := &machine.DriveConfig{ID: id, Index: -1, Cache: "writeback", AIO: "threads", Discard: "ignore", Media: "disk"}
	d.File = o.Str("file", "")
	d.Format = o.Str("format", "")
	switch d.Format {
	case "", "raw", "qcow2":
	default:
		return errf(fmt.Sprintf("Unknown driver '%s'", d.Format))
	}
	d.Interface = o.Str("if", "ide")
	switch d.Interface {
	case "virtio", "none":
	case "ide", "scsi", "floppy", "pflash", "mtd", "sd", "xen":
		return errf(fmt.Sprintf("if=%s is not supported by govmm (use if=virtio or if=none with -device virtio-blk-pci)", d.Interface))
	default:
		return errf(fmt.Sprintf("unsupported bus type '%s'", d.Interface))
	}
	if d.ReadOnly, err = o.Bool("readonly", false); err != nil {
		return err
	}
	if v, ok := o.Get("read-only"); ok {
		if d.ReadOnly, err = parseBool("read-only", v); err != nil {
			return err
		}
	}
	if d.Snapshot, err = o.Bool("snapshot", false); err != nil {
		return err
	}
	switch d.Cache = o.Str("cache", "writeback"); d.Cache {
	case "writeback", "none", "writethrough", "directsync", "unsafe":
	default:
		return errf("invalid cache option")
	}
	switch d.AIO = o.Str("aio", "threads"); d.AIO {
	case "threads", "native", "io_uring":
	default:
		return errf(fmt.Sprintf("invalid aio option"))
	}
	switch d.Discard = o.Str("discard", "ignore"); d.Discard {
	case "ignore", "off":
		d.Discard = "ignore"
	case "unmap", "on":
		d.Discard = "unmap"
	default:
		return errf(fmt.Sprintf("Invalid discard option"))
	}
	switch d.Media = o.Str("media", "disk"); d.Media {
	case "disk", "cdrom":
	default:
		return errf(fmt.Sprintf("'%s' invalid media", d.Media))
	}
	d.Serial = o.Str("serial", "")
	if v, ok := o.Get("index"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errf(fmt.Sprintf("Parameter 'index' expects a number"))
		}
		d.Index = n
	}
	for _, x := range o.List {
		if !driveKeys[x.Key] {
			f := d.Format
			if f == "" {
				f = "raw"
			}
			return errf(fmt.Sprintf("Block format '%s' does not support the option '%s'", f, x.Key))
		}
	}
	if d.File == "" {
		return errf("govmm needs file= for -drive (empty drives are not supported)")
	}
	if _, err := os.Stat(d.File); err != nil {
		return errf(fmt.Sprintf("Could not open '%s': %s", d.File, chardev.Strerror(err)))
	}
	if d.ID == "" {
		// QEMU's automatic names: virtio0, none0, ...
		n := 0
		for _, x := range p.drives {
			if x.drive.Interface == d.Interface {
				n++
			}
		}
		d.ID = fmt.Sprintf("%s%d", d.Interface, n)
	}
	def := &driveDef{occ: p.cur, drive: d}
	p.drives = append(p.drives, def)
	p.driveIDs[d.ID] = def
	p.cfg.Drives = append(p.cfg.Drives, d)
	if d.Interface == "virtio" {
		def.used = true
		p.cfg.VirtioBlk = append(p.cfg.VirtioBlk, &machine.VirtioBlkConfig{Drive: d, Serial: d.Serial})
	}
	return nil
}

func (p *parser) hda(arg string) error {
	return errf(fmt.Sprintf("IDE disks are not supported by govmm: use -drive file=%s,if=virtio", arg))
}

// blockdev maps QEMU's node graph for the simple shapes govmm supports:
// a format node (raw/qcow2) over a file node, given nested or by reference.
func (p *parser) blockdev(arg string) error {
	o, _, err := parseOptsMaybeJSON(arg, "")
	if err != nil {
		return err
	}
	drv, ok := o.Get("driver")
	if !ok {
		return errf("Parameter 'driver' is missing")
	}
	node := o.Str("node-name", "")
	d := &machine.DriveConfig{ID: node, Index: -1, Interface: "none", Cache: "writeback", AIO: "threads", Discard: "ignore", Media: "disk"}
	switch drv {
	case "file", "host_device":
		d.File, ok = o.Get("filename")
		if !ok {
			return errf("Parameter 'filename' is missing")
		}
		d.Format = "raw"
		d.File = o.Str("filename", "")
	case "raw", "qcow2":
		d.Format = drv
		if ref, ok := o.Get("file"); ok {
			base := p.driveIDs[ref]
			if base == nil {
				return errf(fmt.Sprintf("Cannot find device='' nor node-name='%s'", ref))
			}
			base.used = true
			d.File = base.drive.File
		} else if fd, ok := o.Get("file.driver"); ok {
			if fd != "file" && fd != "host_device" {
				return errf(fmt.Sprintf("file.driver=%s is not supported by govmm", fd))
			}
			if d.File, ok = o.Get("file.filename"); !ok {
				return errf("Parameter 'file.filename' is missing")
			}
			o.Get("file.aio")
			o.Get("file.locking")
		} else {
			return errf("Parameter 'file' is missing")
		}
	default:
		return errf(fmt.Sprintf("Parameter 'driver' does not accept value '%s'", drv))
	}
	if d.ReadOnly, err = o.Bool("read-only", false); err != nil {
		return err
	}
	if v, ok := o.Get("discard"); ok {
		if v == "unmap" || v == "on" {
			d.Discard = "unmap"
		}
	}
	for _, k := range []string{"cache.direct", "cache.no-flush", "auto-read-only", "detect-zeroes", "force-share"} {
		o.Get(k)
	}
	if node == "" {
		return errf("node-name is required for -blockdev in govmm")
	}
	if !validID(node) {
		return errf("Invalid node-name: '" + node + "'")
	}
	if p.driveIDs[node] != nil {
		return errf(fmt.Sprintf("Duplicate nodes with node-name='%s'", node))
	}
	if err := o.checkKnown(); err != nil {
		return err
	}
	if _, err := os.Stat(d.File); err != nil {
		return errf(fmt.Sprintf("Could not open '%s': %s", d.File, chardev.Strerror(err)))
	}
	def := &driveDef{occ: p.cur, drive: d}
	p.drives = append(p.drives, def)
	p.driveIDs[node] = def
	p.cfg.Drives = append(p.cfg.Drives, d)
	return nil
}

var netdevTypes = map[string]bool{
	"user": true, "tap": true, "bridge": true, "socket": true, "stream": true, "dgram": true,
	"l2tpv3": true, "vde": true, "netmap": true, "vhost-user": true, "vhost-vdpa": true, "hubport": true,
}

func (p *parser) netdev(arg string) error {
	o, _, err := parseOptsMaybeJSON(arg, "type")
	if err != nil {
		return err
	}
	t := o.Str("type", "")
	if isHelp(t) {
		p.res.Exit = true
		p.res.Output = "Available netdev backend types:\nuser\ntap\n"
		return nil
	}
	if !netdevTypes[t] {
		return errf(fmt.Sprintf("Parameter 'type' does not accept value '%s'", t))
	}
	id, ok := o.Get("id")
	if !ok {
		return errf("Parameter 'id' is missing")
	}
	if !validID(id) {
		return idError()
	}
	if p.netdevIDs[id] {
		return errf(fmt.Sprintf("Duplicate ID '%s' for netdev", id))
	}
	p.netdevIDs[id] = true
	n := &Netdev{ID: id, Type: t, Params: map[string]string{}}
	for _, x := range o.List {
		if x.Key != "type" && x.Key != "id" {
			n.Params[x.Key] = x.Value
		}
	}
	p.res.Netdevs = append(p.res.Netdevs, n)
	// No network device can use it yet, as QEMU says of a netdev no
	// -device refers to.
	p.warn(nil, fmt.Sprintf("netdev %s has no peer", id))
	return nil
}

type objectDef struct {
	occ      *occurrence
	id, typ  string
	filename string
	used     bool
}

var objectTypes = map[string]bool{
	"rng-random": true, "rng-builtin": true, "rng-egd": false, "memory-backend-ram": false,
	"memory-backend-file": false, "memory-backend-memfd": false, "iothread": false, "secret": false,
	"tls-creds-x509": false, "tls-creds-psk": false, "tls-creds-anon": false, "throttle-group": false,
	"filter-buffer": false, "filter-dump": false, "authz-simple": false, "cryptodev-backend-builtin": false,
	"main-loop": false, "input-linux": false, "sev-guest": false, "dbus-vmstate": false,
}

func (p *parser) object(arg string) error {
	o, _, err := parseOptsMaybeJSON(arg, "qom-type")
	if err != nil {
		return err
	}
	t := o.Str("qom-type", "")
	if isHelp(t) {
		p.res.Exit = true
		p.res.Output = "List of user creatable objects:\n  rng-builtin\n  rng-random\n"
		return nil
	}
	impl, known := objectTypes[t]
	if !known {
		return errf(fmt.Sprintf("Parameter 'qom-type' does not accept value '%s'", t))
	}
	id, ok := o.Get("id")
	if !ok {
		return errf("Parameter 'id' is missing")
	}
	if !validID(id) {
		return idError()
	}
	if !impl {
		return errf(fmt.Sprintf("object type '%s' is not supported by govmm", t))
	}
	if p.objects[id] != nil {
		return errf(fmt.Sprintf("attempt to add duplicate property '%s' to object (type 'container')", id))
	}
	def := &objectDef{occ: p.cur, id: id, typ: t, filename: "/dev/urandom"}
	if t == "rng-random" {
		def.filename = o.Str("filename", "/dev/urandom")
		if _, err := os.Stat(def.filename); err != nil {
			return errf(fmt.Sprintf("Could not open '%s': %s", def.filename, chardev.Strerror(err)))
		}
	}
	if err := o.checkKnownOnly("qom-type", "id", "filename"); err != nil {
		return errf(fmt.Sprintf("Property '%s.%s' not found", t, o.List[firstUnknown(o, "qom-type", "id", "filename")].Key))
	}
	p.objects[id] = def
	p.objectList = append(p.objectList, def)
	return nil
}

func firstUnknown(o *Opts, keys ...string) int {
	for i, x := range o.List {
		ok := false
		for _, k := range keys {
			ok = ok || x.Key == k
		}
		if !ok {
			return i
		}
	}
	return 0
}

// deviceModels govmm implements, with their properties.
var deviceModels = map[string]struct {
	bus, desc string
	props     []string
}{
	"isa-debug-exit":    {"ISA", "", []string{"iobase", "iosize"}},
	"virtio-blk-pci":    {"PCI", "Virtio block device", []string{"drive", "serial", "num-queues", "addr", "bus", "bootindex", "logical_block_size", "physical_block_size", "write-cache", "discard", "multifunction", "disable-legacy", "disable-modern"}},
	"virtio-rng-pci":    {"PCI", "Virtio rng device", []string{"rng", "addr", "bus", "max-bytes", "period", "multifunction", "disable-legacy", "disable-modern"}},
	"virtio-serial-pci": {"PCI", "Virtio serial device", []string{"addr", "bus", "max_ports", "multifunction", "disable-legacy", "disable-modern", "vectors"}},
	"virtconsole":       {"virtio-serial-bus", "Virtio console", []string{"chardev", "name", "bus", "nr"}},
	"virtserialport":    {"virtio-serial-bus", "Virtio serial port", []string{"chardev", "name", "bus", "nr"}},
}

// deviceAliases are QEMU's short names.
var deviceAliases = map[string]string{"virtio-blk": "virtio-blk-pci", "virtio-rng": "virtio-rng-pci", "virtio-serial": "virtio-serial-pci"}

func deviceHelp() string {
	var b strings.Builder
	b.WriteString("Misc devices:\n")
	for _, n := range sortedKeys(deviceModels) {
		m := deviceModels[n]
		fmt.Fprintf(&b, "name \"%s\", bus %s", n, m.bus)
		for a, t := range deviceAliases {
			if t == n {
				fmt.Fprintf(&b, ", alias \"%s\"", a)
			}
		}
		if m.desc != "" {
			fmt.Fprintf(&b, ", desc \"%s\"", m.desc)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func (p *parser) device(arg string) error {
	d, err := p.deferOpts(arg, "driver", true)
	if err != nil {
		return err
	}
	drv := d.opts.Str("driver", "")
	if isHelp(drv) {
		p.res.Exit = true
		p.res.Output = deviceHelp()
		return nil
	}
	if a, ok := deviceAliases[drv]; ok {
		drv = a
	}
	if _, ok := deviceModels[drv]; !ok {
		return errf(fmt.Sprintf("'%s' is not a valid device model name", drv))
	}
	if id, ok := d.opts.Get("id"); ok && !d.json {
		if !validID(id) {
			return idError()
		}
		for _, x := range p.devices {
			if xid, ok := x.opts.Get("id"); ok && xid == id {
				return errf(fmt.Sprintf("Duplicate ID '%s' for device", id))
			}
		}
	}
	d.opts.List = append(d.opts.List, Opt{Key: "\x00model", Value: drv})
	p.devices = append(p.devices, d)
	return nil
}

// devicesLate creates the devices in order (QEMU's device_add).
func (p *parser) devicesLate() error {
	var lastSerial *machine.VirtioSerialConfig
	ids := map[string]bool{}
	for _, d := range p.devices {
		o := d.opts
		drv := o.Str("\x00model", "")
		m := deviceModels[drv]
		id := o.Str("id", "")
		if id != "" {
			if ids[id] {
				return p.fail(d.occ, errf(fmt.Sprintf("Duplicate ID '%s' for device", id)))
			}
			ids[id] = true
		}
		o.Get("driver")
		for _, x := range o.List {
			if x.Key == "driver" || x.Key == "id" || x.Key == "\x00model" {
				continue
			}
			known := false
			for _, k := range m.props {
				known = known || k == x.Key
			}
			if !known {
				return p.fail(d.occ, errf(fmt.Sprintf("Property '%s.%s' not found", drv, x.Key)))
			}
		}
		if m.bus == "PCI" && p.cfg.MachineType == "none" {
			return p.fail(d.occ, errf(fmt.Sprintf("No 'PCI' bus found for device '%s'", drv)))
		}
		addr := o.Str("addr", "")
		switch drv {
		case "isa-debug-exit":
			if p.cfg.MachineType == "none" {
				return p.fail(d.occ, errf("No 'ISA' bus found for device 'isa-debug-exit'"))
			}
			base, size := uint64(0x501), uint64(2)
			if v, ok := o.Get("iobase"); ok {
				if base, ok = parseUint(v); !ok || base > 0xffffffff {
					return p.fail(d.occ, errf(fmt.Sprintf("Property 'isa-debug-exit.iobase' doesn't take value '%s'", v)))
				}
			}
			if v, ok := o.Get("iosize"); ok {
				if size, ok = parseUint(v); !ok || size > 0xffffffff {
					return p.fail(d.occ, errf(fmt.Sprintf("Property 'isa-debug-exit.iosize' doesn't take value '%s'", v)))
				}
			}
			if base > 0xffff || size > 0x10000 || base+size > 0x10000 {
				return p.fail(d.occ, errf("isa-debug-exit: I/O range outside the 64 KiB port space"))
			}
			if p.cfg.DebugExit != nil {
				return p.fail(d.occ, errf("govmm supports one isa-debug-exit device"))
			}
			p.cfg.DebugExit = &machine.DebugExitConfig{IOBase: uint16(base), IOSize: uint16(size)}
		case "virtio-blk-pci":
			ref, ok := o.Get("drive")
			if !ok {
				return p.fail(d.occ, errf("drive property not set"))
			}
			def := p.driveIDs[ref]
			if def == nil {
				return p.fail(d.occ, errf(fmt.Sprintf("Property 'virtio-blk-device.drive' can't find value '%s'", ref)))
			}
			if def.used {
				return p.fail(d.occ, errf(fmt.Sprintf("Property 'virtio-blk-device.drive' can't take value '%s', it's in use", ref)))
			}
			def.used = true
			cfg := &machine.VirtioBlkConfig{ID: id, Drive: def.drive, Serial: o.Str("serial", def.drive.Serial), Addr: addr}
			if v, ok := o.Get("num-queues"); ok {
				n, ok := parseUint(v)
				if !ok || n == 0 || n > 1024 {
					return p.fail(d.occ, errf(fmt.Sprintf("Property 'virtio-blk-pci.num-queues' doesn't take value '%s'", v)))
				}
				cfg.NumQueues = int(n)
			}
			p.cfg.VirtioBlk = append(p.cfg.VirtioBlk, cfg)
		case "virtio-rng-pci":
			cfg := &machine.VirtioRNGConfig{ID: id, Source: "/dev/urandom", Addr: addr}
			if ref, ok := o.Get("rng"); ok {
				obj := p.objects[ref]
				if obj == nil {
					return p.fail(d.occ, errf(fmt.Sprintf("Device '%s' not found", ref)))
				}
				obj.used = true
				cfg.Source = obj.filename
			}
			p.cfg.VirtioRNG = append(p.cfg.VirtioRNG, cfg)
		case "virtio-serial-pci":
			if v, ok := o.Get("max_ports"); ok {
				if _, ok := parseUint(v); !ok {
					return p.fail(d.occ, errf(fmt.Sprintf("Property 'virtio-serial-pci.max_ports' doesn't take value '%s'", v)))
				}
			}
			lastSerial = &machine.VirtioSerialConfig{ID: id, Addr: addr}
			p.cfg.VirtioSerial = append(p.cfg.VirtioSerial, lastSerial)
		case "virtconsole", "virtserialport":
			if lastSerial == nil {
				return p.fail(d.occ, errf(fmt.Sprintf("No 'virtio-serial-bus' bus found for device '%s'", drv)))
			}
			port := &machine.VirtioSerialPort{ID: id, Console: drv == "virtconsole", Name: o.Str("name", "")}
			if ref, ok := o.Get("chardev"); ok {
				cd := p.chardevIDs[ref]
				if cd == nil || cd.spec == nil {
					return p.fail(d.occ, errf(fmt.Sprintf("Property '%s.chardev' can't find value '%s'", drv, ref)))
				}
				port.Chardev = cd.spec
			}
			lastSerial.Ports = append(lastSerial.Ports, port)
		}
	}
	return nil
}
