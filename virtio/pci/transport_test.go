package virtiopci_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/govmm/govmm/devices/pci"
	"github.com/govmm/govmm/machine/guestmem"
	"github.com/govmm/govmm/virtio"
	"github.com/govmm/govmm/virtio/blk"
	virtiopci "github.com/govmm/govmm/virtio/pci"
	"github.com/govmm/govmm/virtio/rng"
	"github.com/govmm/govmm/virtio/virtq/virtqtest"
)

// memDisk is an in-memory disk.Disk.
type memDisk struct {
	mu      sync.Mutex
	data    []byte
	flushes int
}

func (d *memDisk) ReadAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off < 0 || off+int64(len(p)) > int64(len(d.data)) {
		return 0, errors.New("out of range")
	}
	return copy(p, d.data[off:]), nil
}

func (d *memDisk) WriteAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off < 0 || off+int64(len(p)) > int64(len(d.data)) {
		return 0, errors.New("out of range")
	}
	return copy(d.data[off:], p), nil
}
func (d *memDisk) Size() int64                { return int64(len(d.data)) }
func (d *memDisk) ReadOnly() bool             { return false }
func (d *memDisk) Close() error               { return nil }
func (d *memDisk) Discard(off, n int64) error { return nil }
func (d *memDisk) WriteZeroes(off, n int64) error {
	return nil
}
func (d *memDisk) Flush() error {
	d.mu.Lock()
	d.flushes++
	d.mu.Unlock()
	return nil
}

type msi struct{ addr, data uint64 }

type msiChan chan msi

func (c msiChan) SendMSI(addr uint64, data uint32) error {
	c <- msi{addr, uint64(data)}
	return nil
}

type irqLine struct {
	mu    sync.Mutex
	level bool
	edges chan struct{}
}

func (l *irqLine) SetLevel(h bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h && !l.level {
		l.edges <- struct{}{}
	}
	l.level = h
}

// machine is the test's stand-in for the VMM: a PCI root, guest RAM, and an
// MMIO map kept up to date by OnBARChange.
type machine struct {
	t    *testing.T
	root *pci.Root
	mem  *guestmem.Memory
	mu   sync.Mutex
	mmio map[uint64]mapped // base -> region
}

type mapped struct {
	size uint64
	dev  interface {
		Read(uint64, []byte)
		Write(uint64, []byte)
	}
}

func newMachine(t *testing.T) *machine {
	root, err := pci.NewRoot(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Bus0.Add(0, 0, pci.NewHostBridge(pci.HostBridgeI440FX)); err != nil {
		t.Fatal(err)
	}
	mem, err := guestmem.New(guestmem.Region{GPA: 0, Data: make([]byte, 8<<20)})
	if err != nil {
		t.Fatal(err)
	}
	return &machine{t: t, root: root, mem: mem, mmio: map[uint64]mapped{}}
}

func (m *machine) plug(slot int, tr *virtiopci.Transport) {
	tr.Config().OnBARChange = func(old, new pci.BARMapping) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if old.Enabled {
			delete(m.mmio, old.Addr)
		}
		if new.Enabled {
			m.mmio[new.Addr] = mapped{new.Size, tr.BAR(new.Index)}
		}
	}
	if err := m.root.Bus0.Add(slot, 0, tr); err != nil {
		m.t.Fatal(err)
	}
}

func (m *machine) access(addr uint64, data []byte, write bool) {
	m.mu.Lock()
	var hit mapped
	var off uint64
	found := false
	for base, r := range m.mmio {
		if addr >= base && addr-base < r.size {
			hit, off, found = r, addr-base, true
		}
	}
	m.mu.Unlock()
	if !found {
		m.t.Fatalf("MMIO %#x unmapped", addr)
	}
	if write {
		hit.dev.Write(off, data)
	} else {
		hit.dev.Read(off, data)
	}
}

func (m *machine) r32(addr uint64) uint32 {
	b := make([]byte, 4)
	m.access(addr, b, false)
	return binary.LittleEndian.Uint32(b)
}
func (m *machine) r16(addr uint64) uint16 {
	b := make([]byte, 2)
	m.access(addr, b, false)
	return binary.LittleEndian.Uint16(b)
}
func (m *machine) r8(addr uint64) uint8 {
	b := make([]byte, 1)
	m.access(addr, b, false)
	return b[0]
}
func (m *machine) w32(addr uint64, v uint32) {
	b := binary.LittleEndian.AppendUint32(nil, v)
	m.access(addr, b, true)
}
func (m *machine) w16(addr uint64, v uint16) {
	m.access(addr, binary.LittleEndian.AppendUint16(nil, v), true)
}
func (m *machine) w8(addr uint64, v uint8) { m.access(addr, []byte{v}, true) }
func (m *machine) w64(addr uint64, v uint64) {
	m.w32(addr, uint32(v))
	m.w32(addr+4, uint32(v>>32))
}

// Config space through mechanism #1, as a guest does it.
func (m *machine) cfgRead(slot int, reg int, n int) uint32 {
	m.root.AddressPort().Write(0, binary.LittleEndian.AppendUint32(nil, 1<<31|uint32(slot)<<11|uint32(reg&^3)))
	b := make([]byte, 4)
	m.root.DataPort().Read(uint64(reg&3), b[:n])
	return binary.LittleEndian.Uint32(b)
}

func (m *machine) cfgWrite(slot int, reg int, n int, v uint32) {
	m.root.AddressPort().Write(0, binary.LittleEndian.AppendUint32(nil, 1<<31|uint32(slot)<<11|uint32(reg&^3)))
	m.root.DataPort().Write(uint64(reg&3), binary.LittleEndian.AppendUint32(nil, v)[:n])
}

// guestDev is what a guest driver learns about one virtio-pci function.
type guestDev struct {
	m                               *machine
	slot                            int
	common, isr, device, notifyBase uint64
	notifyMult                      uint32
	msixTable                       uint64
}

// probe enumerates slot like firmware plus the Linux virtio-pci driver:
// size and place the BARs, enable decoding, walk the capabilities.
func (m *machine) probe(slot int) *guestDev {
	t := m.t
	if id := m.cfgRead(slot, 0, 4); id>>16 < 0x1040 || id&0xFFFF != 0x1af4 {
		t.Fatalf("slot %d id %#x", slot, id)
	}
	if rev := m.cfgRead(slot, 8, 1); rev != 1 {
		t.Fatalf("revision %d", rev)
	}
	if sv := m.cfgRead(slot, 0x2c, 4); sv != 0x11001af4 {
		t.Fatalf("subsystem %#x", sv)
	}
	bars := map[int]uint64{}
	next := uint64(0xfe000000)
	for i := 0; i < 6; i++ {
		reg := 0x10 + 4*i
		orig := m.cfgRead(slot, reg, 4)
		m.cfgWrite(slot, reg, 4, 0xFFFFFFFF)
		sz := m.cfgRead(slot, reg, 4)
		m.cfgWrite(slot, reg, 4, orig)
		if sz == 0 {
			continue
		}
		if sz&1 != 0 {
			t.Fatalf("unexpected I/O BAR%d", i)
		}
		size := uint64(^(sz &^ 0xF) + 1)
		is64 := sz&6 == 4
		if is64 {
			m.cfgWrite(slot, reg+4, 4, 0xFFFFFFFF)
			hi := m.cfgRead(slot, reg+4, 4)
			m.cfgWrite(slot, reg+4, 4, 0)
			size = ^(uint64(hi)<<32 | uint64(sz&^0xF)) + 1
		}
		addr := (next + size - 1) &^ (size - 1)
		next = addr + size
		m.cfgWrite(slot, reg, 4, uint32(addr))
		if is64 {
			m.cfgWrite(slot, reg+4, 4, uint32(addr>>32))
		}
		bars[i] = addr
		if is64 {
			i++
		}
	}
	if len(bars) != 2 || bars[1] == 0 || bars[4] == 0 {
		t.Fatalf("BARs %v", bars)
	}
	m.cfgWrite(slot, 4, 2, pci.CmdMemory|pci.CmdBusMaster)
	g := &guestDev{m: m, slot: slot}
	if m.cfgRead(slot, 6, 2)&pci.StatusCapList == 0 {
		t.Fatal("no capability list")
	}
	for p := int(m.cfgRead(slot, 0x34, 1)); p != 0; p = int(m.cfgRead(slot, p+1, 1)) {
		switch m.cfgRead(slot, p, 1) {
		case pci.CapIDMSIX:
			tab := m.cfgRead(slot, p+4, 4)
			g.msixTable = bars[int(tab&7)] + uint64(tab&^7)
		case pci.CapIDVendor:
			typ := m.cfgRead(slot, p+3, 1)
			bar := int(m.cfgRead(slot, p+4, 1))
			off := uint64(m.cfgRead(slot, p+8, 4))
			addr := bars[bar] + off
			switch typ {
			case 1:
				g.common = addr
			case 2:
				g.notifyBase = addr
				g.notifyMult = m.cfgRead(slot, p+16, 4)
			case 3:
				g.isr = addr
			case 4:
				g.device = addr
			}
		}
	}
	if g.common == 0 || g.isr == 0 || g.device == 0 || g.notifyBase == 0 || g.msixTable == 0 {
		t.Fatalf("capabilities missing: %+v", g)
	}
	return g
}

// enableMSIX programs vector v to send data v+0x30 and enables MSI-X.
func (g *guestDev) enableMSIX(vectors int) {
	m := g.m
	for v := 0; v < vectors; v++ {
		e := g.msixTable + uint64(16*v)
		m.w32(e, 0xfee00000)
		m.w32(e+4, 0)
		m.w32(e+8, uint32(0x30+v))
		m.w32(e+12, 0)
	}
	for p := int(m.cfgRead(g.slot, 0x34, 1)); p != 0; p = int(m.cfgRead(g.slot, p+1, 1)) {
		if m.cfgRead(g.slot, p, 1) == pci.CapIDMSIX {
			m.cfgWrite(g.slot, p+2, 2, 0x8000)
		}
	}
}

// negotiate runs the status/feature handshake and returns the device features.
func (g *guestDev) negotiate(accept func(uint64) uint64) (offered uint64, ok bool) {
	m := g.m
	m.w8(g.common+20, 0)
	m.w8(g.common+20, virtio.StatusAcknowledge)
	m.w8(g.common+20, virtio.StatusAcknowledge|virtio.StatusDriver)
	for sel := uint32(0); sel < 2; sel++ {
		m.w32(g.common+0, sel)
		offered |= uint64(m.r32(g.common+4)) << (32 * sel)
	}
	want := accept(offered)
	for sel := uint32(0); sel < 2; sel++ {
		m.w32(g.common+8, sel)
		m.w32(g.common+12, uint32(want>>(32*sel)))
	}
	m.w8(g.common+20, virtio.StatusAcknowledge|virtio.StatusDriver|virtio.StatusFeaturesOK)
	return offered, m.r8(g.common+20)&virtio.StatusFeaturesOK != 0
}

// setupQueue configures queue q with a fake driver at base and returns it.
func (g *guestDev) setupQueue(q int, size uint16, base, data uint64, vector uint16) *virtqtest.Driver {
	m := g.m
	m.w16(g.common+22, uint16(q))
	if max := m.r16(g.common + 24); max < size {
		m.t.Fatalf("queue %d max size %d", q, max)
	}
	m.w16(g.common+24, size)
	d := virtqtest.New(m.mem, base, size, data, 0x100000)
	m.w64(g.common+32, d.Desc)
	m.w64(g.common+40, d.Avail)
	m.w64(g.common+48, d.Used)
	m.w16(g.common+26, vector)
	if got := m.r16(g.common + 26); got != vector {
		m.t.Fatalf("queue vector %#x reads %#x", vector, got)
	}
	m.w16(g.common+28, 1)
	return d
}

func (g *guestDev) notify(q int) {
	g.m.w16(g.common+22, uint16(q))
	off := g.m.r16(g.common + 30)
	g.m.w16(g.notifyBase+uint64(off)*uint64(g.notifyMult), uint16(q))
}

func waitMSI(t *testing.T, c msiChan, data uint64) {
	t.Helper()
	select {
	case got := <-c:
		if got.addr != 0xfee00000 || got.data != data {
			t.Fatalf("MSI %+v, want data %#x", got, data)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no MSI")
	}
}

func blkHdr(typ uint32, sector uint64) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint32(b, typ)
	binary.LittleEndian.PutUint64(b[8:], sector)
	return b
}

func TestBlockEndToEnd(t *testing.T) {
	m := newMachine(t)
	disk := &memDisk{data: make([]byte, 1<<20)}
	dev, err := blk.New(disk, blk.Options{Serial: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	msis := make(msiChan, 64)
	tr, err := virtiopci.New(dev, m.mem, virtiopci.Options{MSI: msis})
	if err != nil {
		t.Fatal(err)
	}
	m.plug(2, tr)
	defer tr.Reset()
	g := m.probe(2)
	if id := m.cfgRead(2, 0, 4); id != 0x10421af4 {
		t.Fatalf("virtio-blk id %#x", id)
	}
	if class := m.cfgRead(2, 8, 4) >> 8; class != 0x010000 {
		t.Fatalf("class %#x", class)
	}
	g.enableMSIX(2)

	// A driver that does not accept VERSION_1 is refused.
	if _, ok := g.negotiate(func(f uint64) uint64 { return f &^ virtio.FeatureVersion1 }); ok {
		t.Fatal("FEATURES_OK without VERSION_1")
	}
	// Nor one asking for what was not offered.
	if _, ok := g.negotiate(func(f uint64) uint64 { return f | 1<<40 }); ok {
		t.Fatal("FEATURES_OK with unoffered feature")
	}
	offered, ok := g.negotiate(func(f uint64) uint64 { return f })
	if !ok {
		t.Fatal("FEATURES_OK refused")
	}
	for _, f := range []uint64{virtio.FeatureVersion1, virtio.FeatureIndirectDesc, virtio.FeatureEventIdx, blk.FeatureFlush, blk.FeatureSegMax} {
		if offered&f == 0 {
			t.Errorf("feature %#x not offered", f)
		}
	}
	if n := m.r16(g.common + 18); n != 1 {
		t.Fatalf("num_queues %d", n)
	}
	// Device config: capacity.
	if c := uint64(m.r32(g.device)) | uint64(m.r32(g.device+4))<<32; c != 2048 {
		t.Fatalf("capacity %d", c)
	}
	m.w16(g.common+16, 1) // config vector 1
	m.w16(g.common+16, 7) // out of range: NO_VECTOR
	if v := m.r16(g.common + 16); v != virtiopci.NoVector {
		t.Fatalf("config vector 7 reads %#x", v)
	}
	d := g.setupQueue(0, 128, 0x10000, 0x100000, 0)
	m.w8(g.common+20, m.r8(g.common+20)|virtio.StatusDriverOK)
	if s := m.r8(g.common + 20); s != virtio.StatusAcknowledge|virtio.StatusDriver|virtio.StatusFeaturesOK|virtio.StatusDriverOK {
		t.Fatalf("status %#x", s)
	}

	payload := bytes.Repeat([]byte("govmm!!!"), 128) // 1024 bytes
	w := d.Add([]virtqtest.Buf{{Data: blkHdr(blk.TypeOut, 8)}, {Data: payload}, {Write: true, Len: 1}})
	g.notify(0)
	waitMSI(t, msis, 0x30)
	used := d.PollUsed()
	if len(used) != 1 || used[0].ID != uint32(w) || used[0].Len != 1 {
		t.Fatalf("write used %+v", used)
	}
	if st := d.Read(d.AddrOf[w][2], 1)[0]; st != blk.StatusOK {
		t.Fatalf("write status %d", st)
	}
	if !bytes.Equal(disk.data[8*512:10*512], payload) {
		t.Fatal("disk content wrong")
	}

	r := d.AddIndirect([]virtqtest.Buf{{Data: blkHdr(blk.TypeIn, 8)}, {Write: true, Len: 512}, {Write: true, Len: 512}, {Write: true, Len: 1}})
	g.notify(0)
	waitMSI(t, msis, 0x30)
	used = d.PollUsed()
	if len(used) != 1 || used[0].ID != uint32(r) || used[0].Len != 1025 {
		t.Fatalf("read used %+v", used)
	}
	got := append(d.Read(d.AddrOf[r][1], 512), d.Read(d.AddrOf[r][2], 512)...)
	if !bytes.Equal(got, payload) {
		t.Fatal("read back differs")
	}

	f := d.Add([]virtqtest.Buf{{Data: blkHdr(blk.TypeFlush, 0)}, {Write: true, Len: 1}})
	tr.Notify(0) // the ioeventfd path
	waitMSI(t, msis, 0x30)
	if used = d.PollUsed(); len(used) != 1 || used[0].ID != uint32(f) || disk.flushes != 1 {
		t.Fatalf("flush used %+v flushes %d", used, disk.flushes)
	}

	// Garbage: corrupt avail index -> NEEDS_RESET and a config interrupt
	// (vector NO_VECTOR here, so none), then reset recovers.
	d.SetAvailIdx(9999)
	tr.Notify(0)
	deadline := time.Now().Add(10 * time.Second)
	for m.r8(g.common+20)&virtio.StatusNeedsReset == 0 {
		if time.Now().After(deadline) {
			t.Fatal("NEEDS_RESET not set")
		}
		time.Sleep(time.Millisecond)
	}
	m.w8(g.common+20, 0)
	if s := m.r8(g.common + 20); s != 0 {
		t.Fatalf("status after reset %#x", s)
	}
	if a, ok := tr.NotifyAddr(0); !ok || a != g.notifyBase {
		t.Fatalf("NotifyAddr = %#x %v, guest uses %#x", a, ok, g.notifyBase)
	}
	m.w16(g.common+22, 0)
	if en, v := m.r16(g.common+28), m.r16(g.common+26); en != 0 || v != virtiopci.NoVector {
		t.Fatalf("queue after reset: enable %d vector %#x", en, v)
	}
}

func TestINTxFallbackAndRNG(t *testing.T) {
	m := newMachine(t)
	line := &irqLine{edges: make(chan struct{}, 8)}
	tr, err := virtiopci.New(rng.New(bytes.NewReader(bytes.Repeat([]byte{0x5A}, 4096))), m.mem, virtiopci.Options{MSI: make(msiChan, 1), IRQ: line})
	if err != nil {
		t.Fatal(err)
	}
	m.plug(3, tr)
	defer tr.Reset()
	g := m.probe(3)
	if id := m.cfgRead(3, 0, 4); id != 0x10441af4 {
		t.Fatalf("virtio-rng id %#x", id)
	}
	if _, ok := g.negotiate(func(f uint64) uint64 { return virtio.FeatureVersion1 }); !ok {
		t.Fatal("negotiation failed")
	}
	d := g.setupQueue(0, 16, 0x10000, 0x100000, virtiopci.NoVector)
	m.w8(g.common+20, m.r8(g.common+20)|virtio.StatusDriverOK)
	h := d.Add([]virtqtest.Buf{{Write: true, Len: 64}})
	g.notify(0)
	select {
	case <-line.edges:
	case <-time.After(10 * time.Second):
		t.Fatal("no INTx")
	}
	if st := m.cfgRead(3, 6, 2); st&pci.StatusINTx == 0 {
		t.Fatal("status INTx bit clear")
	}
	if isr := m.r8(g.isr); isr != 1 {
		t.Fatalf("ISR %#x", isr)
	}
	line.mu.Lock()
	level := line.level
	line.mu.Unlock()
	if level || m.r8(g.isr) != 0 {
		t.Fatal("ISR read did not deassert")
	}
	used := d.PollUsed()
	if len(used) != 1 || used[0].ID != uint32(h) || used[0].Len != 64 {
		t.Fatalf("used %+v", used)
	}
	if got := d.Read(d.AddrOf[h][0], 64); !bytes.Equal(got, bytes.Repeat([]byte{0x5A}, 64)) {
		t.Fatalf("entropy %x", got)
	}
}

func TestBadQueueAddressNeedsReset(t *testing.T) {
	m := newMachine(t)
	tr, err := virtiopci.New(rng.New(bytes.NewReader(nil)), m.mem, virtiopci.Options{MSI: make(msiChan, 4)})
	if err != nil {
		t.Fatal(err)
	}
	m.plug(2, tr)
	defer tr.Reset()
	g := m.probe(2)
	g.negotiate(func(f uint64) uint64 { return f })
	m.w16(g.common+22, 0)
	m.w64(g.common+32, 1<<40) // descriptor table outside RAM
	m.w64(g.common+40, 0x2000)
	m.w64(g.common+48, 0x3000)
	m.w16(g.common+28, 1)
	// Queue config is frozen once enabled.
	m.w64(g.common+32, 0x1000)
	if v := uint64(m.r32(g.common+32)) | uint64(m.r32(g.common+36))<<32; v != 1<<40 {
		t.Fatalf("queue_desc changed after enable: %#x", v)
	}
	m.w8(g.common+20, m.r8(g.common+20)|virtio.StatusDriverOK)
	if s := m.r8(g.common + 20); s&virtio.StatusNeedsReset == 0 {
		t.Fatalf("status %#x, want NEEDS_RESET", s)
	}
	// Unknown registers are harmless.
	m.w32(g.common+0x100, 0xFFFFFFFF)
	m.r32(g.common + 0x800)
}

func TestPCICfgWindow(t *testing.T) {
	m := newMachine(t)
	tr, err := virtiopci.New(rng.New(nil), m.mem, virtiopci.Options{MSI: make(msiChan, 4)})
	if err != nil {
		t.Fatal(err)
	}
	m.plug(2, tr)
	g := m.probe(2)
	// Find VIRTIO_PCI_CAP_PCI_CFG and read num_queues through it.
	for p := int(m.cfgRead(2, 0x34, 1)); p != 0; p = int(m.cfgRead(2, p+1, 1)) {
		if m.cfgRead(2, p, 1) != pci.CapIDVendor || m.cfgRead(2, p+3, 1) != 5 {
			continue
		}
		m.cfgWrite(2, p+4, 1, 4)  // BAR 4
		m.cfgWrite(2, p+8, 4, 18) // common cfg num_queues
		m.cfgWrite(2, p+12, 4, 2) // length
		if n := m.cfgRead(2, p+16, 2); n != 1 {
			t.Fatalf("num_queues via pci_cfg = %d", n)
		}
		// Write device_status through the window.
		m.cfgWrite(2, p+8, 4, 20)
		m.cfgWrite(2, p+12, 4, 1)
		m.cfgWrite(2, p+16, 1, virtio.StatusAcknowledge)
		if s := m.r8(g.common + 20); s != virtio.StatusAcknowledge {
			t.Fatalf("status via window %#x", s)
		}
		return
	}
	t.Fatal("no PCI_CFG capability")
}

// FuzzCommonConfig throws arbitrary register writes at the transport's
// common and device configuration; nothing may panic or deadlock.
func FuzzCommonConfig(f *testing.F) {
	f.Add([]byte{20, 1, 8, 0, 0, 0, 0, 20, 1, 15, 28, 2, 1, 0})
	f.Add([]byte{22, 2, 0xff, 0xff, 24, 2, 0, 1, 20, 1, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		mem, _ := guestmem.New(guestmem.Region{GPA: 0, Data: make([]byte, 64<<10)})
		dev, _ := blk.New(&memDisk{data: make([]byte, 4096)}, blk.Options{NumQueues: 2, QueueSize: 8})
		tr, err := virtiopci.New(dev, mem, virtiopci.Options{MSI: make(msiChan, 1<<16)})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Reset()
		bar := tr.BAR(virtiopci.VirtioBAR)
		for len(ops) >= 2 {
			off, n := uint64(ops[0]), int(ops[1]%8)+1
			ops = ops[2:]
			if n > len(ops) {
				n = len(ops)
			}
			region := uint64(0)
			if off >= 0xC0 {
				region = 0x2000 // device config
			}
			bar.Write(region+off%0x40, ops[:n])
			buf := make([]byte, 4)
			bar.Read(off%0x40, buf)
			ops = ops[n:]
		}
		tr.Notify(0)
		tr.Notify(1)
	})
}
