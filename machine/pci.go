package machine

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/govmm/govmm/devices/acpi"
	"github.com/govmm/govmm/devices/chardev"
	"github.com/govmm/govmm/devices/disk"
	"github.com/govmm/govmm/devices/pci"
	"github.com/govmm/govmm/kvm"
	"github.com/govmm/govmm/machine/runstate"
	"github.com/govmm/govmm/virtio"
	"github.com/govmm/govmm/virtio/blk"
	"github.com/govmm/govmm/virtio/console"
	virtiopci "github.com/govmm/govmm/virtio/pci"
	"github.com/govmm/govmm/virtio/rng"
	"golang.org/x/sys/unix"
)

// The PCI host's windows in the 32-bit hole: BARs are placed in [mmio32Base,
// ecamBase); the ECAM window follows (q35 only).
const (
	mmio32Base = 0xc0000000
	mmio32Size = 0x20000000
	ecamBase   = 0xe0000000
	pciIOBase  = 0xc000
	pciIOSize  = 0x4000
	// PCI INTx pins are routed to GSIs 16-19 (IOAPIC pins no ISA device
	// uses), swizzled by slot as the _PRT and MP table say.
	pciGSIBase = 16
)

// pciDevice is one virtio function on bus 0.
type pciDevice struct {
	name  string
	slot  int
	tr    *virtiopci.Transport
	efds  []*os.File // one eventfd per queue, for KVM_IOEVENTFD
	addrs []uint64   // where each eventfd is registered now (0: nowhere)
	disk  disk.Disk  // virtio-blk's image, closed with the machine
	drive *DriveConfig
}

type msiSender struct{ vm *kvm.VM }

func (s msiSender) SendMSI(addr uint64, data uint32) error {
	_, err := s.vm.SignalMSI(addr, data)
	return err
}

// setupPCI creates the host bridge and the virtio functions. The microvm
// machine has no PCI (as QEMU's microvm without pcie=on).
func (m *Machine) setupPCI() error {
	hasVirtio := len(m.cfg.VirtioBlk)+len(m.cfg.VirtioRNG)+len(m.cfg.VirtioSerial) > 0
	if m.cfg.MachineType == "microvm" {
		if hasVirtio {
			return fmt.Errorf("machine type 'microvm' has no PCI bus: use -M pc or -M q35 for virtio-pci devices")
		}
		return nil
	}
	numBuses := 1
	if m.cfg.MachineType == "q35" {
		numBuses = 256
	}
	root, err := pci.NewRoot(numBuses)
	if err != nil {
		return err
	}
	m.pciRoot = root
	bridgeID := uint16(pci.HostBridgeI440FX)
	if m.cfg.MachineType == "q35" {
		bridgeID = pci.HostBridgeQ35
		if err := m.mmio.Register(ecamBase, pci.ECAMSize(numBuses), root.ECAM(), "pci-ecam"); err != nil {
			return err
		}
	}
	root.Bus0.Add(0, 0, pci.NewHostBridge(bridgeID))
	root.OnResetControl = func(v byte) {
		if v&4 != 0 { // RST_CPU
			m.post(event{kind: evReset, cause: runstate.CauseGuestReset})
		}
	}
	if err := m.pio.Register(0xcf8, 4, root.AddressPort(), "pci-conf-addr"); err != nil {
		return err
	}
	if err := m.pio.Register(0xcfc, 4, root.DataPort(), "pci-conf-data"); err != nil {
		return err
	}
	m.mem32 = pci.NewAllocator(mmio32Base, mmio32Size)
	m.pciIO = pci.NewAllocator(pciIOBase, pciIOSize)
	m.slots = pci.NewSlotAllocator(0, 1)

	attached := map[*DriveConfig]bool{}
	for _, b := range m.cfg.VirtioBlk {
		attached[b.Drive] = true
		if err := m.addVirtioBlk(b); err != nil {
			return err
		}
	}
	// A drive no device uses is still opened and locked, as QEMU does.
	for _, d := range m.cfg.Drives {
		if !attached[d] {
			img, err := m.openDrive(d)
			if err != nil {
				return err
			}
			m.closers = append(m.closers, img)
		}
	}
	for _, r := range m.cfg.VirtioRNG {
		src, err := os.Open(r.Source)
		if err != nil {
			return fmt.Errorf("-object rng-random: could not open '%s': %s", r.Source, chardev.Strerror(err))
		}
		m.closers = append(m.closers, src)
		if err := m.addVirtio("virtio-rng-pci", r.Addr, rng.New(src), nil); err != nil {
			return err
		}
	}
	for _, s := range m.cfg.VirtioSerial {
		opts := console.Options{}
		next := 1
		for _, p := range s.Ports {
			cp := console.Port{Name: p.Name, Console: p.Console}
			if p.Console && !hasConsolePort(opts.Ports) {
				cp.ID = 0
			} else {
				cp.ID = next
				next++
			}
			if p.Chardev != nil && m.opts.Chardev != nil {
				if rw := m.opts.Chardev(p.Chardev); rw != nil {
					cp.In, cp.Out = rw, rw
				}
			}
			opts.Ports = append(opts.Ports, cp)
		}
		dev, err := console.New(opts)
		if err != nil {
			return fmt.Errorf("virtio-serial-pci: %w", err)
		}
		if err := m.addVirtio("virtio-serial-pci", s.Addr, dev, nil); err != nil {
			return err
		}
	}
	return nil
}

func hasConsolePort(ps []console.Port) bool {
	for _, p := range ps {
		if p.ID == 0 {
			return true
		}
	}
	return false
}

func (m *Machine) addVirtioBlk(b *VirtioBlkConfig) error {
	d := b.Drive
	img, err := m.openDrive(d)
	if err != nil {
		return err
	}
	serial := b.Serial
	if serial == "" {
		serial = d.Serial
	}
	counted := &countingDisk{Disk: img, ignoreDiscard: d.Discard != "unmap"}
	dev, err := blk.New(counted, blk.Options{Serial: serial, NumQueues: b.NumQueues, ReadOnly: d.ReadOnly})
	if err != nil {
		img.Close()
		return fmt.Errorf("virtio-blk-pci: %w", err)
	}
	return m.addVirtio("virtio-blk-pci", b.Addr, dev, func(p *pciDevice) { p.disk, p.drive = counted, d })
}

// openDrive opens a -drive image with QEMU's locking; -snapshot (or
// snapshot=on) puts a temporary qcow2 overlay in front of it, removed from
// the file system at once so nothing is left behind.
func (m *Machine) openDrive(d *DriveConfig) (disk.Disk, error) {
	opts := disk.Options{Format: d.Format, ReadOnly: d.ReadOnly, Cache: d.Cache, Lock: true}
	if !(d.Snapshot || m.cfg.Snapshot) || d.ReadOnly {
		img, err := disk.Open(d.File, opts)
		if err != nil {
			return nil, fmt.Errorf("-drive file=%s: %w", d.File, err)
		}
		return img, nil
	}
	abs, err := filepath.Abs(d.File)
	if err != nil {
		return nil, err
	}
	format := d.Format
	if format == "" {
		format = "raw"
	}
	tmp, err := os.CreateTemp("", "govmm-snapshot-*.qcow2")
	if err != nil {
		return nil, fmt.Errorf("-drive file=%s: snapshot overlay: %w", d.File, err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if err := disk.CreateOverlay(tmp.Name(), abs, format, 0); err != nil {
		return nil, fmt.Errorf("-drive file=%s: snapshot overlay: %w", d.File, err)
	}
	img, err := disk.Open(tmp.Name(), disk.Options{Format: "qcow2", Cache: "unsafe", Lock: false})
	if err != nil {
		return nil, fmt.Errorf("-drive file=%s: %w", d.File, err)
	}
	return img, nil
}

// addVirtio puts a virtio device behind a PCI transport on bus 0, places
// its BARs, and maps them (and its doorbells) as the guest moves them.
func (m *Machine) addVirtio(name, addr string, dev virtio.Device, init func(*pciDevice)) error {
	var want *pci.DevFn
	if addr != "" {
		df, err := pci.ParseDevFn(addr)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		want = &df
	}
	df, err := m.slots.Assign(want)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	tr, err := virtiopci.New(dev, m.mem, virtiopci.Options{MSI: msiSender{m.vm}})
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	p := &pciDevice{name: name, slot: df.Slot, tr: tr}
	if init != nil {
		init(p)
	}
	m.pciDevs = append(m.pciDevs, p)
	tr.Config().SetIRQ(m.IRQ(pciGSI(df.Slot, 0)))
	for q := 0; q < tr.NumQueues(); q++ {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			return fmt.Errorf("%s: eventfd: %w", name, err)
		}
		f := os.NewFile(uintptr(fd), fmt.Sprintf("%s-q%d", name, q))
		p.efds = append(p.efds, f)
		p.addrs = append(p.addrs, 0)
		go forwardDoorbell(f, tr, q)
	}
	tr.Config().OnBARChange = func(old, new pci.BARMapping) { m.remapBAR(p, old, new) }
	root := m.pciRoot
	root.Bus0.Add(df.Slot, df.Fn, tr)
	return pci.AssignBARs(tr.Config(), m.pciIO, m.mem32, nil)
}

// pciGSI is the GSI of a slot's INTx pin: the usual swizzle over four GSIs.
func pciGSI(slot, pin int) uint32 { return pciGSIBase + uint32((slot+pin)%4) }

// forwardDoorbell turns a queue's ioeventfd into Notify calls, so guest
// doorbell writes reach the device without an exit to this process.
func forwardDoorbell(f *os.File, tr *virtiopci.Transport, q int) {
	var buf [8]byte
	for {
		if _, err := io.ReadFull(f, buf[:]); err != nil {
			return // closed with the machine
		}
		tr.Notify(q)
	}
}

// remapBAR follows a BAR the guest (or AssignBARs) moved or toggled: the
// MMIO range moves on the bus and the doorbell eventfds move with BAR 4.
func (m *Machine) remapBAR(p *pciDevice, old, new pci.BARMapping) {
	bus := m.mmio
	if new.Kind == pci.BARIO {
		bus = m.pio
	}
	if old.Enabled {
		bus.Unregister(old.Addr)
	}
	if new.Enabled {
		if dev := p.tr.BAR(new.Index); dev != nil {
			if err := bus.Register(new.Addr, new.Size, dev, fmt.Sprintf("%s-bar%d", p.name, new.Index)); err != nil {
				fmt.Fprintf(m.log, "govmm: %v\n", err)
			}
		}
	}
	if new.Index != virtiopci.VirtioBAR {
		return
	}
	for q, f := range p.efds {
		if a := p.addrs[q]; a != 0 {
			m.vm.IOEventFD(kvm.IOEventFD{Addr: a, Len: 2, FD: int(f.Fd())}, true)
			p.addrs[q] = 0
		}
		if a, ok := p.tr.NotifyAddr(q); ok {
			if err := m.vm.IOEventFD(kvm.IOEventFD{Addr: a, Len: 2, FD: int(f.Fd())}, false); err == nil {
				p.addrs[q] = a
			}
		}
	}
}

// acpiPCI describes the PCI host for the ACPI tables, nil without PCI.
func (m *Machine) acpiPCI() *acpi.PCI {
	if m.pciRoot == nil {
		return nil
	}
	p := &acpi.PCI{BusStart: 0, BusEnd: 0, MMIO32: acpi.Window{Base: mmio32Base, Size: mmio32Size}}
	if m.cfg.MachineType == "q35" {
		p.ECAMBase, p.BusEnd = ecamBase, 255
	}
	for slot := 0; slot < 32; slot++ {
		for pin := 0; pin < 4; pin++ {
			p.Routes = append(p.Routes, acpi.Route{Device: uint8(slot), Pin: uint8(pin), GSI: pciGSI(slot, pin)})
		}
	}
	return p
}

// resetPCI resets every virtio function: its queues stop and its device
// goroutines end.
func (m *Machine) resetPCI() error {
	// BARs keep the addresses firmware gave them: a guest reads them again
	// when it boots.
	for _, p := range m.pciDevs {
		p.tr.Reset()
	}
	return nil
}

func (m *Machine) closePCI() {
	for _, p := range m.pciDevs {
		p.tr.Reset()
		for _, f := range p.efds {
			f.Close()
		}
		if p.disk != nil {
			p.disk.Close()
		}
	}
	for _, c := range m.closers {
		c.Close()
	}
}
