// Package virtiopci is the virtio 1.x modern PCI transport (virtio spec 4.1):
// it wraps a virtio.Device in a PCI function whose capabilities point at the
// common, notify, ISR and device configuration structures in BAR 4, with the
// MSI-X table and PBA in BAR 1, as QEMU lays out virtio-*-pci devices.
//
// The transport never does device work on the caller's goroutine: a queue
// notification (an MMIO write to the notify area, or Notify called by an
// ioeventfd loop) is a non-blocking signal to the device's own goroutine.
package virtiopci

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/govmm/govmm/devices"
	"github.com/govmm/govmm/devices/pci"
	"github.com/govmm/govmm/machine/guestmem"
	"github.com/govmm/govmm/virtio"
	"github.com/govmm/govmm/virtio/virtq"
)

// Layout, as QEMU: MSI-X in BAR 1, the virtio structures in 64-bit BAR 4.
const (
	MSIXBAR       = 1
	MSIXBARSize   = 0x1000
	msixPBAOff    = 0x800
	VirtioBAR     = 4
	VirtioBARSize = 0x4000

	commonOff = 0x0000
	isrOff    = 0x1000
	deviceOff = 0x2000
	notifyOff = 0x3000
	regionLen = 0x1000

	// NotifyMultiplier is notify_off_multiplier: queue q's doorbell is at
	// notifyOff + q*NotifyMultiplier within BAR 4.
	NotifyMultiplier = 4

	// NoVector is VIRTIO_MSI_NO_VECTOR.
	NoVector = 0xFFFF

	maxQueues = regionLen / NotifyMultiplier
)

// virtio_pci_cap cfg_type values.
const (
	capCommon = 1
	capNotify = 2
	capISR    = 3
	capDevice = 4
	capPCICfg = 5
)

// Options configure a transport.
type Options struct {
	// MSI delivers MSI-X messages (the machine backs it with irqfd or
	// KVM_SIGNAL_MSI). Required.
	MSI devices.MSISender
	// IRQ is the INTx line used when the guest does not enable MSI-X. It
	// may also be set later through Config().SetIRQ.
	IRQ devices.IRQLine
	// Vectors is the MSI-X table size; 0 means one per queue plus one for
	// configuration changes (QEMU's default).
	Vectors int
}

type queueState struct {
	max, size uint16
	vector    uint16
	enabled   bool
	desc      uint64
	driver    uint64
	device    uint64
}

// Transport is one virtio PCI function.
type Transport struct {
	dev   virtio.Device
	mem   *guestmem.Memory
	cs    *pci.ConfigSpace
	msix  *pci.MSIX
	kicks []chan struct{}

	pciCfgCap int // offset of the VIRTIO_PCI_CAP_PCI_CFG capability

	mu          sync.Mutex // common configuration state
	offered     uint64
	status      uint8
	devFeatSel  uint32
	drvFeatSel  uint32
	drvFeatures uint64
	queueSel    uint16
	queues      []queueState
	active      bool
	generation  atomic.Uint32
	needsReset  atomic.Bool

	irqMu     sync.Mutex // interrupt routing state, taken after mu
	isr       uint8
	cfgVector uint16
	qVectors  []uint16
}

// New wraps dev in a PCI function. The BARs are declared but not placed:
// firmware-style placement is pci.AssignBARs(t.Config(), ...), or the guest
// does it.
func New(dev virtio.Device, mem *guestmem.Memory, opts Options) (*Transport, error) {
	sizes := dev.QueueMaxSizes()
	if len(sizes) == 0 || len(sizes) > maxQueues {
		return nil, fmt.Errorf("virtio-pci: %d queues unsupported", len(sizes))
	}
	if opts.MSI == nil {
		return nil, fmt.Errorf("virtio-pci: no MSI sender")
	}
	nvec := opts.Vectors
	if nvec == 0 {
		nvec = len(sizes) + 1
	}
	t := &Transport{
		dev:       dev,
		mem:       mem,
		offered:   dev.Features() | virtio.FeatureVersion1 | virtio.FeatureIndirectDesc | virtio.FeatureEventIdx,
		queues:    make([]queueState, len(sizes)),
		qVectors:  make([]uint16, len(sizes)),
		cfgVector: NoVector,
	}
	for i, s := range sizes {
		if s == 0 || s > virtq.MaxSize || s&(s-1) != 0 {
			return nil, fmt.Errorf("virtio-pci: queue %d max size %d invalid", i, s)
		}
		t.queues[i] = queueState{max: s, size: s, vector: NoVector}
		t.qVectors[i] = NoVector
		t.kicks = append(t.kicks, make(chan struct{}, 1))
	}
	t.cs = pci.NewConfigSpace(pci.Header{
		VendorID:     0x1af4,
		DeviceID:     0x1040 + dev.Type(),
		Revision:     1,
		Class:        classFor(dev.Type()),
		SubsysVendor: 0x1af4,
		Subsys:       0x1100,
		InterruptPin: 1,
	})
	if err := t.cs.SetBAR(MSIXBAR, pci.BAR{Kind: pci.BARMem32, Size: MSIXBARSize}); err != nil {
		return nil, err
	}
	if err := t.cs.SetBAR(VirtioBAR, pci.BAR{Kind: pci.BARMem64, Size: VirtioBARSize, Prefetchable: true}); err != nil {
		return nil, err
	}
	if opts.IRQ != nil {
		t.cs.SetIRQ(opts.IRQ)
	}
	var err error
	t.msix, err = pci.NewMSIX(t.cs, nvec, MSIXBAR, 0, msixPBAOff, opts.MSI)
	if err != nil {
		return nil, err
	}
	for _, c := range []struct {
		typ       byte
		off, size uint32
	}{
		{capCommon, commonOff, regionLen},
		{capISR, isrOff, regionLen},
		{capDevice, deviceOff, regionLen},
	} {
		if _, err := t.cs.AddCapability(pci.CapIDVendor, virtioCap(16, c.typ, VirtioBAR, c.off, c.size, nil), nil, nil); err != nil {
			return nil, err
		}
	}
	mult := make([]byte, 4)
	binary.LittleEndian.PutUint32(mult, NotifyMultiplier)
	if _, err := t.cs.AddCapability(pci.CapIDVendor, virtioCap(20, capNotify, VirtioBAR, notifyOff, regionLen, mult), nil, nil); err != nil {
		return nil, err
	}
	// VIRTIO_PCI_CAP_PCI_CFG: a window into the BARs through config space.
	// bar, offset, length and the data are writable.
	wm := make([]byte, 18)
	wm[2] = 0xFF
	for i := 6; i < 18; i++ {
		wm[i] = 0xFF
	}
	t.pciCfgCap, err = t.cs.AddCapability(pci.CapIDVendor, virtioCap(20, capPCICfg, 0, 0, 0, make([]byte, 4)), wm, nil)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// virtioCap is the body of a struct virtio_pci_cap after cap_vndr/cap_next.
func virtioCap(capLen, typ, bar byte, off, length uint32, extra []byte) []byte {
	b := make([]byte, 14, 14+len(extra))
	b[0], b[1], b[2] = capLen, typ, bar
	binary.LittleEndian.PutUint32(b[6:], off)
	binary.LittleEndian.PutUint32(b[10:], length)
	return append(b, extra...)
}

func classFor(typ uint16) uint32 {
	switch typ {
	case virtio.TypeNet:
		return 0x020000
	case virtio.TypeBlock:
		return 0x010000
	case virtio.TypeConsole:
		return 0x078000
	default:
		return 0xff0000
	}
}

// Config is the function's configuration space (for BAR placement, the
// INTx line and OnBARChange).
func (t *Transport) Config() *pci.ConfigSpace { return t.cs }

// MSIX is the function's MSI-X capability.
func (t *Transport) MSIX() *pci.MSIX { return t.msix }

// NumQueues is the number of virtqueues.
func (t *Transport) NumQueues() int { return len(t.queues) }

// BAR returns the MMIO device for BAR i (MSIXBAR or VirtioBAR), nil for
// others. Map it at Config().Mapping(i) while that mapping is enabled.
func (t *Transport) BAR(i int) devices.Device {
	switch i {
	case MSIXBAR:
		return t.msix.Device()
	case VirtioBAR:
		return virtioBAR{t}
	}
	return nil
}

// NotifyOffset is queue q's doorbell within BAR 4 (a 2-byte register): the
// machine may register an ioeventfd at BAR 4's address plus this offset and
// call Notify(q) when it fires.
func (t *Transport) NotifyOffset(q int) uint64 {
	return notifyOff + uint64(q)*NotifyMultiplier
}

// NotifyAddr is queue q's doorbell as a guest-physical address, while BAR 4
// is mapped (ok false otherwise). Re-read it after every OnBARChange.
func (t *Transport) NotifyAddr(q int) (addr uint64, ok bool) {
	m := t.cs.Mapping(VirtioBAR)
	if !m.Enabled || q < 0 || q >= len(t.queues) {
		return 0, false
	}
	return m.Addr + t.NotifyOffset(q), true
}

// Notify signals queue q's device goroutine. It never blocks and never does
// device work itself; repeated notifications coalesce.
func (t *Transport) Notify(q int) {
	if q < 0 || q >= len(t.kicks) {
		return
	}
	select {
	case t.kicks[q] <- struct{}{}:
	default:
	}
}

// ReadConfig implements pci.Function.
func (t *Transport) ReadConfig(off uint16, data []byte) {
	t.cs.ReadConfig(off, data)
	// Reads of pci_cfg_data go through to the BAR the capability selects.
	dataOff := uint16(t.pciCfgCap + 16)
	if off == dataOff && len(data) <= 4 {
		if bar, boff, n, ok := t.pciCfgTarget(); ok && int(n) == len(data) {
			if d := t.BAR(bar); d != nil {
				d.Read(boff, data)
			}
		}
	}
}

// WriteConfig implements pci.Function.
func (t *Transport) WriteConfig(off uint16, data []byte) {
	t.cs.WriteConfig(off, data)
	dataOff := uint16(t.pciCfgCap + 16)
	if off == dataOff && len(data) <= 4 {
		if bar, boff, n, ok := t.pciCfgTarget(); ok && int(n) == len(data) {
			if d := t.BAR(bar); d != nil {
				d.Write(boff, data)
			}
		}
	}
}

func (t *Transport) pciCfgTarget() (bar int, off uint64, n uint32, ok bool) {
	b := t.cs.Bytes(t.pciCfgCap, 16)
	bar = int(b[4])
	off = uint64(binary.LittleEndian.Uint32(b[8:]))
	n = binary.LittleEndian.Uint32(b[12:])
	ok = (n == 1 || n == 2 || n == 4) && off%uint64(n) == 0
	return
}

// Reset resets the device as a write of 0 to device_status does, and
// returns MSI-X to its power-on state (a PCI-level reset, for machine reset).
func (t *Transport) Reset() {
	t.mu.Lock()
	t.resetLocked()
	t.mu.Unlock()
	t.msix.Reset()
}

type virtioBAR struct{ t *Transport }

func (b virtioBAR) Read(off uint64, data []byte) {
	for i := range data {
		data[i] = 0
	}
	switch {
	case off >= commonOff && off < commonOff+regionLen:
		b.t.readCommon(off-commonOff, data)
	case off >= isrOff && off < isrOff+regionLen:
		if off == isrOff {
			data[0] = b.t.readISR()
		}
	case off >= deviceOff && off < deviceOff+regionLen:
		b.t.dev.ReadConfig(off-deviceOff, data)
	}
}

func (b virtioBAR) Write(off uint64, data []byte) {
	switch {
	case off >= commonOff && off < commonOff+regionLen:
		b.t.writeCommon(off-commonOff, data)
	case off >= deviceOff && off < deviceOff+regionLen:
		b.t.dev.WriteConfig(off-deviceOff, data)
	case off >= notifyOff && off < notifyOff+regionLen:
		b.t.Notify(int((off - notifyOff) / NotifyMultiplier))
	}
}

func (t *Transport) readISR() uint8 {
	t.irqMu.Lock()
	defer t.irqMu.Unlock()
	v := t.isr
	t.isr = 0
	t.cs.SetINTx(false)
	return v
}

// Common configuration structure (struct virtio_pci_common_cfg) offsets.
const (
	ccDeviceFeatureSelect = 0
	ccDeviceFeature       = 4
	ccDriverFeatureSelect = 8
	ccDriverFeature       = 12
	ccConfigMSIXVector    = 16
	ccNumQueues           = 18
	ccDeviceStatus        = 20
	ccConfigGeneration    = 21
	ccQueueSelect         = 22
	ccQueueSize           = 24
	ccQueueMSIXVector     = 26
	ccQueueEnable         = 28
	ccQueueNotifyOff      = 30
	ccQueueDesc           = 32
	ccQueueDriver         = 40
	ccQueueDevice         = 48
	ccSize                = 60
)

// commonImage renders the common configuration structure as the guest sees
// it for the selected queue.
func (t *Transport) commonImage() [ccSize]byte {
	var b [ccSize]byte
	le := binary.LittleEndian
	le.PutUint32(b[ccDeviceFeatureSelect:], t.devFeatSel)
	if t.devFeatSel < 2 {
		le.PutUint32(b[ccDeviceFeature:], uint32(t.offered>>(32*t.devFeatSel)))
	}
	le.PutUint32(b[ccDriverFeatureSelect:], t.drvFeatSel)
	if t.drvFeatSel < 2 {
		le.PutUint32(b[ccDriverFeature:], uint32(t.drvFeatures>>(32*t.drvFeatSel)))
	}
	t.irqMu.Lock()
	le.PutUint16(b[ccConfigMSIXVector:], t.cfgVector)
	t.irqMu.Unlock()
	le.PutUint16(b[ccNumQueues:], uint16(len(t.queues)))
	b[ccDeviceStatus] = t.statusLocked()
	b[ccConfigGeneration] = uint8(t.generation.Load())
	le.PutUint16(b[ccQueueSelect:], t.queueSel)
	if int(t.queueSel) < len(t.queues) {
		q := &t.queues[t.queueSel]
		le.PutUint16(b[ccQueueSize:], q.size)
		le.PutUint16(b[ccQueueMSIXVector:], q.vector)
		if q.enabled {
			le.PutUint16(b[ccQueueEnable:], 1)
		}
		le.PutUint16(b[ccQueueNotifyOff:], t.queueSel)
		le.PutUint64(b[ccQueueDesc:], q.desc)
		le.PutUint64(b[ccQueueDriver:], q.driver)
		le.PutUint64(b[ccQueueDevice:], q.device)
	}
	return b
}

func (t *Transport) statusLocked() uint8 {
	s := t.status
	if t.needsReset.Load() {
		s |= virtio.StatusNeedsReset
	}
	return s
}

func (t *Transport) readCommon(off uint64, data []byte) {
	t.mu.Lock()
	img := t.commonImage()
	t.mu.Unlock()
	if off < ccSize {
		copy(data, img[off:])
	}
}

// writeCommon overlays the written bytes on the current image and applies
// each field the write touched, in offset order.
func (t *Transport) writeCommon(off uint64, data []byte) {
	if off >= ccSize {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	img := t.commonImage()
	n := copy(img[off:], data)
	end := off + uint64(n)
	touched := func(field, size uint64) bool { return off < field+size && field < end }
	le := binary.LittleEndian

	if touched(ccDeviceFeatureSelect, 4) {
		t.devFeatSel = le.Uint32(img[ccDeviceFeatureSelect:])
	}
	if touched(ccDriverFeatureSelect, 4) {
		t.drvFeatSel = le.Uint32(img[ccDriverFeatureSelect:])
	}
	if touched(ccDriverFeature, 4) && t.status&virtio.StatusFeaturesOK == 0 && t.drvFeatSel < 2 {
		shift := 32 * t.drvFeatSel
		t.drvFeatures = t.drvFeatures&^(uint64(0xFFFFFFFF)<<shift) | uint64(le.Uint32(img[ccDriverFeature:]))<<shift
	}
	if touched(ccConfigMSIXVector, 2) {
		v := t.checkVector(le.Uint16(img[ccConfigMSIXVector:]))
		t.irqMu.Lock()
		t.cfgVector = v
		t.irqMu.Unlock()
	}
	if touched(ccDeviceStatus, 1) {
		t.writeStatus(img[ccDeviceStatus])
	}
	if touched(ccQueueSelect, 2) {
		t.queueSel = le.Uint16(img[ccQueueSelect:])
	}
	if int(t.queueSel) >= len(t.queues) {
		return
	}
	q := &t.queues[t.queueSel]
	if touched(ccQueueMSIXVector, 2) {
		q.vector = t.checkVector(le.Uint16(img[ccQueueMSIXVector:]))
		t.irqMu.Lock()
		t.qVectors[t.queueSel] = q.vector
		t.irqMu.Unlock()
	}
	// The ring configuration is frozen once the queue is enabled.
	if q.enabled || t.active {
		return
	}
	if touched(ccQueueSize, 2) {
		if s := le.Uint16(img[ccQueueSize:]); s <= q.max {
			q.size = s
		}
	}
	if touched(ccQueueDesc, 8) {
		q.desc = le.Uint64(img[ccQueueDesc:])
	}
	if touched(ccQueueDriver, 8) {
		q.driver = le.Uint64(img[ccQueueDriver:])
	}
	if touched(ccQueueDevice, 8) {
		q.device = le.Uint64(img[ccQueueDevice:])
	}
	if touched(ccQueueEnable, 2) && le.Uint16(img[ccQueueEnable:]) == 1 {
		q.enabled = true
	}
}

// checkVector returns v if the MSI-X table has it, else NO_VECTOR, which is
// how the device tells the driver a vector could not be assigned.
func (t *Transport) checkVector(v uint16) uint16 {
	if int(v) < t.msix.Vectors() {
		return v
	}
	return NoVector
}

func (t *Transport) writeStatus(v uint8) {
	if v == 0 {
		t.resetLocked()
		return
	}
	old := t.status
	if v&virtio.StatusFeaturesOK != 0 && old&virtio.StatusFeaturesOK == 0 {
		// Accept only a subset of what we offered, and only modern
		// drivers: this transport has no legacy interface.
		if t.drvFeatures&^t.offered != 0 || t.drvFeatures&virtio.FeatureVersion1 == 0 {
			v &^= virtio.StatusFeaturesOK
		}
	}
	if v&virtio.StatusDriverOK != 0 && old&virtio.StatusDriverOK == 0 {
		if v&virtio.StatusFeaturesOK == 0 {
			v &^= virtio.StatusDriverOK
		} else if err := t.activateLocked(); err != nil {
			t.status = v
			t.setNeedsReset()
			return
		}
	}
	t.status = v
}

func (t *Transport) activateLocked() error {
	qs := make([]*virtio.Queue, len(t.queues))
	for i := range t.queues {
		s := &t.queues[i]
		if !s.enabled {
			continue
		}
		vq, err := virtq.New(t.mem, virtq.Config{Size: s.size, DescAddr: s.desc, DriverAddr: s.driver, DeviceAddr: s.device}, t.drvFeatures)
		if err != nil {
			return fmt.Errorf("queue %d: %w", i, err)
		}
		qs[i] = &virtio.Queue{Queue: vq, Index: i, Kick: t.kicks[i]}
	}
	err := t.dev.Activate(virtio.Activation{Mem: t.mem, Features: t.drvFeatures, Queues: qs, Interrupt: interrupt{t}})
	if err != nil {
		return err
	}
	t.active = true
	// Serve whatever the driver queued before DRIVER_OK.
	for i, q := range qs {
		if q != nil {
			t.Notify(i)
		}
	}
	return nil
}

func (t *Transport) resetLocked() {
	if t.active {
		t.dev.Reset()
		t.active = false
	}
	t.status = 0
	t.devFeatSel, t.drvFeatSel, t.drvFeatures, t.queueSel = 0, 0, 0, 0
	for i := range t.queues {
		t.queues[i] = queueState{max: t.queues[i].max, size: t.queues[i].max, vector: NoVector}
	}
	t.needsReset.Store(false)
	t.irqMu.Lock()
	t.isr = 0
	t.cfgVector = NoVector
	for i := range t.qVectors {
		t.qVectors[i] = NoVector
	}
	t.cs.SetINTx(false)
	t.irqMu.Unlock()
	for _, k := range t.kicks {
		select {
		case <-k:
		default:
		}
	}
}

func (t *Transport) setNeedsReset() {
	t.needsReset.Store(true)
	t.configInterrupt()
}

// interrupt is the virtio.Interrupt handed to the device.
type interrupt struct{ t *Transport }

func (i interrupt) Queue(q int) {
	t := i.t
	t.irqMu.Lock()
	defer t.irqMu.Unlock()
	if q < 0 || q >= len(t.qVectors) {
		return
	}
	if t.msix.Enabled() {
		if v := t.qVectors[q]; v != NoVector {
			t.msix.Notify(int(v))
		}
		return
	}
	t.isr |= 1
	t.cs.SetINTx(true)
}

func (i interrupt) ConfigChanged() {
	i.t.generation.Add(1)
	i.t.configInterrupt()
}

func (i interrupt) NeedsReset() { i.t.setNeedsReset() }

func (t *Transport) configInterrupt() {
	t.irqMu.Lock()
	defer t.irqMu.Unlock()
	if t.msix.Enabled() {
		if t.cfgVector != NoVector {
			t.msix.Notify(int(t.cfgVector))
		}
		return
	}
	t.isr |= 2
	t.cs.SetINTx(true)
}
