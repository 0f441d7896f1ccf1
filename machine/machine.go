// Package machine is the x86 board: guest memory and its layout, the I/O
// buses, the platform devices, the loaders, and the vCPU threads; plus the
// run control (start, pause, reset, shutdown) that QMP, signals and the CLI
// drive through its Go API.
package machine

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govmm/govmm/devices"
	"github.com/govmm/govmm/devices/acpi"
	"github.com/govmm/govmm/devices/chardev"
	"github.com/govmm/govmm/devices/cmos"
	"github.com/govmm/govmm/devices/debugexit"
	"github.com/govmm/govmm/devices/i8042"
	"github.com/govmm/govmm/devices/mptable"
	"github.com/govmm/govmm/devices/pci"
	"github.com/govmm/govmm/devices/uart16550"
	"github.com/govmm/govmm/kvm"
	"github.com/govmm/govmm/machine/boot"
	"github.com/govmm/govmm/machine/emulate"
	"github.com/govmm/govmm/machine/guestmem"
	"github.com/govmm/govmm/machine/pvmfix"
	"github.com/govmm/govmm/machine/runstate"
	"golang.org/x/sys/unix"
)

// Guest-physical addresses of the board's fixed pieces.
const (
	acpiBase     = 0xe0000 // ACPI tables, RSDP first (Linux scans 0xe0000-0xfffff)
	acpiMax      = 0x10000
	mptableBase  = 0xf0000
	pmPortBase   = 0x600 // PIIX4/ICH9-style PM1 block
	gedBase      = 0xfea00000
	tssAddr      = 0xfffbd000 // three pages Intel VMX needs for real mode
	identityAddr = 0xfffbc000
)

// Options are the host-side connections a machine is built with: what the
// CLI's backends opened, or what a test provides.
type Options struct {
	// Serial is one entry per COM port, in order; Serial[i] == nil means
	// the port exists with nothing attached. Data the guest transmits is
	// written to Out; bytes read from In are fed to the guest.
	Serial []SerialIO
	// Chardev returns the opened backend for a chardev spec (virtio-serial
	// ports name theirs by spec); nil when there is none.
	Chardev func(*chardev.Spec) io.ReadWriter
	// Warn receives warnings in QEMU's words, without the "PROG: warning: "
	// prefix (features the host lacks for -cpu). Default: Log.
	Warn func(string)
	// KeepAliveOnError keeps the process in the internal-error state after
	// a vCPU failure, as QEMU does, instead of exiting: set it when a
	// monitor can see and act on that state.
	KeepAliveOnError bool
	// Log receives diagnostics (internal errors, register dumps, -d
	// items). Default os.Stderr; -D FILE points it at a file.
	Log io.Writer
	// LogItems are QEMU's -d items. Under KVM most of QEMU's (TCG) items log
	// nothing, in QEMU too; govmm acts on: guest_errors (accesses to no
	// device), cpu_reset (registers at each reset), int (each instruction
	// emulated after a KVM emulation failure). With any item, the emulation
	// counters are logged when the machine ends.
	LogItems []string
}

// SerialIO connects one UART to the host.
type SerialIO struct {
	In  io.Reader // nil: nothing to receive
	Out io.Writer // nil: output discarded
}

// Machine is one VM.
type Machine struct {
	cfg  Config
	opts Options
	log  io.Writer

	sys  *kvm.System
	vm   *kvm.VM
	mem  *guestmem.Memory
	ram  [][]byte
	pio  *Bus
	mmio *Bus
	cpus []*vcpu

	kernel, initrd []byte

	pciRoot *pci.Root
	pciDevs []*pciDevice
	mem32   *pci.Allocator
	pciIO   *pci.Allocator
	slots   *pci.SlotAllocator
	closers []io.Closer

	uarts []*uart16550.UART
	rtc   *cmos.CMOS
	kbd   *i8042.Controller
	pm    *acpi.PM
	ged   *acpi.GED

	// Run control. stop asks every vCPU thread to leave KVM_RUN and return;
	// events carries what ended a run to the control loop in Run.
	stop         atomic.Bool
	events       chan event
	wg           sync.WaitGroup
	vcpusRunning bool // owned by Run's goroutine
	rs           *runstate.Controller
	runDone      chan struct{} // closed when Run returns
	pid          int
	logGuestErr  bool
	logReset     bool
	logEmulation bool
	emu          emulate.Emulator // finishes instructions KVM cannot emulate
	pvm          *pvmfix.Fixer    // repairs ring-3 syscall entries on PVM hosts
	closeMu      sync.Mutex
	closed       bool
}

type eventKind int

const (
	evDebugExit eventKind = iota // isa-debug-exit: exit now with code
	evShutdown                   // the guest or host asked for power off
	evReset                      // the guest or host asked for a reset
	evError                      // a vCPU cannot go on
	evPause                      // QMP stop
	evResume                     // QMP cont
	evPowerdown                  // QMP system_powerdown
)

type event struct {
	kind  eventKind
	code  int
	cause runstate.ShutdownCause
	err   error
	done  chan error // host requests: the control loop answers here
}

// Result is how a run ended.
type Result struct {
	// ExitCode is the process exit status QEMU would have.
	ExitCode int
	// Cause is QEMU's shutdown cause ("guest-shutdown", "guest-reset",
	// "host-signal", ...), or "debug-exit" for isa-debug-exit.
	Cause string
	// Err is set when the VM stopped on an error (an internal error).
	Err error
}

// New creates the VM, its memory and devices, and loads the kernel. Nothing
// runs until Run. Every error here is a configuration or image problem.
func New(cfg Config, opts Options) (_ *Machine, err error) {
	if cfg.CPUs < 1 {
		cfg.CPUs = 1
	}
	if cfg.CPUs > acpi.MaxCPUs {
		return nil, fmt.Errorf("%d CPUs requested, at most %d are supported", cfg.CPUs, acpi.MaxCPUs)
	}
	if cfg.Topology.Threads == 0 {
		cfg.Topology = CPUTopology{Sockets: cfg.CPUs, Dies: 1, Cores: 1, Threads: 1, MaxCPUs: cfg.CPUs}
	}
	if cfg.MemBytes < 1<<20 {
		return nil, fmt.Errorf("%d bytes of RAM is too little; at least 1 MiB is needed", cfg.MemBytes)
	}
	if cfg.Kernel == "" {
		return nil, errors.New("no kernel given (-kernel): govmm has no firmware to boot from disk")
	}
	// vCPU threads hold their P while in the guest (kvm.VCPU.Run uses a raw
	// syscall), so keep Ps for device and monitor goroutines besides them.
	if want := max(runtime.NumCPU(), cfg.CPUs+2); runtime.GOMAXPROCS(0) < want {
		runtime.GOMAXPROCS(want)
	}
	m := &Machine{cfg: cfg, opts: opts, log: opts.Log, events: make(chan event, 16), rs: runstate.New(), runDone: make(chan struct{}), pid: os.Getpid()}
	m.pvm = pvmfix.New(pvmfix.PVMHost())
	if m.log == nil {
		m.log = os.Stderr
	}
	for _, item := range opts.LogItems {
		switch item {
		case "guest_errors":
			m.logGuestErr = true
		case "cpu_reset":
			m.logReset = true
		case "int":
			m.logEmulation = true
		}
	}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	if m.kernel, err = os.ReadFile(cfg.Kernel); err != nil {
		return nil, &BootError{fmt.Errorf("could not open kernel file '%s': %s", cfg.Kernel, chardev.Strerror(err))}
	}
	if cfg.Initrd != "" {
		if m.initrd, err = os.ReadFile(cfg.Initrd); err != nil {
			return nil, &BootError{fmt.Errorf("could not load initial ram disk '%s': %s", cfg.Initrd, chardev.Strerror(err))}
		}
	}
	if m.sys, err = kvm.Open(); err != nil {
		return nil, fmt.Errorf("failed to initialize kvm: %w", err)
	}
	if m.vm, err = m.sys.CreateVM(); err != nil {
		return nil, err
	}
	if err = m.setupMemory(); err != nil {
		return nil, err
	}
	if cfg.MemLock {
		// QEMU's -overcommit mem-lock=on: nothing of the VM may be swapped.
		if err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE); err != nil {
			return nil, fmt.Errorf("mlock: %s\nlocking memory failed", chardev.Strerror(err))
		}
	}
	if cfg.CPUPM {
		if err := m.disableIdleExits(); err != nil {
			return nil, err
		}
	}
	if err = m.setupIRQChip(); err != nil {
		return nil, err
	}
	m.pio = NewBus("pio", 0xff)
	m.mmio = NewBus("mmio", 0)
	if err = m.setupDevices(); err != nil {
		return nil, err
	}
	if err = m.setupPCI(); err != nil {
		return nil, err
	}
	if err = m.createVCPUs(); err != nil {
		return nil, err
	}
	if err = m.loadBoot(); err != nil {
		return nil, &BootError{err}
	}
	return m, nil
}

// BootError is a problem with the kernel or initrd (missing, unreadable,
// not a format govmm boots, too large for the memory given).
type BootError struct{ Err error }

func (e *BootError) Error() string { return e.Err.Error() }
func (e *BootError) Unwrap() error { return e.Err }

func (m *Machine) setupMemory() error {
	for i, r := range boot.RAMRanges(m.cfg.MemBytes) {
		b, err := unix.Mmap(-1, 0, int(r.Size), unix.PROT_READ|unix.PROT_WRITE,
			unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
		if err != nil {
			return fmt.Errorf("cannot allocate %d MiB of guest RAM: %w", r.Size>>20, err)
		}
		m.ram = append(m.ram, b)
		if err := m.vm.SetUserMemoryRegion(uint32(i), 0, r.GPA, b); err != nil {
			return err
		}
	}
	regions := make([]guestmem.Region, len(m.ram))
	for i, r := range boot.RAMRanges(m.cfg.MemBytes) {
		regions[i] = guestmem.Region{GPA: r.GPA, Data: m.ram[i]}
	}
	var err error
	m.mem, err = guestmem.New(regions...)
	return err
}

func (m *Machine) setupIRQChip() error {
	// Only Intel VMX needs these; other KVM flavours may refuse them.
	if m.vm.CheckExtension(kvm.CapSetTSSAddr) > 0 {
		m.vm.SetTSSAddr(tssAddr)
	}
	if m.vm.CheckExtension(kvm.CapSetIdentityMap) > 0 {
		m.vm.SetIdentityMapAddr(identityAddr)
	}
	if err := m.vm.CreateIRQChip(); err != nil {
		return err
	}
	if err := m.vm.CreatePIT2(kvm.PITSpeakerDummy); err != nil {
		return err
	}
	// QEMU's PC routing: GSI 0-15 to the PICs (but 2, the cascade), GSI 0
	// to IOAPIC pin 2 (the MADT and MP table override IRQ0 to GSI 2), the
	// rest to the IOAPIC pin of the same number.
	var routes []kvm.IRQRoute
	for i := uint32(0); i < 16; i++ {
		switch {
		case i == 2:
		case i < 8:
			routes = append(routes, kvm.IRQChipRoute(i, kvm.IRQChipPICMaster, i))
		default:
			routes = append(routes, kvm.IRQChipRoute(i, kvm.IRQChipPICSlave, i-8))
		}
	}
	for i := uint32(0); i < 24; i++ {
		switch i {
		case 0:
			routes = append(routes, kvm.IRQChipRoute(0, kvm.IRQChipIOAPIC, 2))
		case 2:
		default:
			routes = append(routes, kvm.IRQChipRoute(i, kvm.IRQChipIOAPIC, i))
		}
	}
	return m.vm.SetGSIRouting(routes)
}

// KVM_CAP_X86_DISABLE_EXITS and its flags.
const (
	capX86DisableExits = 143
	disableExitsMWAIT  = 1 << 0
	disableExitsHLT    = 1 << 1
	disableExitsPAUSE  = 1 << 2
	disableExitsCSTATE = 1 << 3
)

// disableIdleExits is -overcommit cpu-pm=on: the guest's HLT, MWAIT and
// PAUSE stay in the guest (a vCPU then owns its host CPU), as far as KVM
// allows. Must run before vCPUs are created.
func (m *Machine) disableIdleExits() error {
	allowed := uint64(m.vm.CheckExtension(capX86DisableExits))
	want := uint64(disableExitsMWAIT | disableExitsHLT | disableExitsPAUSE | disableExitsCSTATE)
	if allowed&want == 0 {
		return errors.New("-overcommit cpu-pm=on: KVM cannot disable idle exits on this host")
	}
	return m.vm.EnableCap(capX86DisableExits, allowed&want)
}

// irqLine drives one GSI of the in-kernel irqchip.
type irqLine struct {
	m   *Machine
	gsi uint32
}

func (l irqLine) SetLevel(high bool) {
	if err := l.m.vm.IRQLine(l.gsi, high); err != nil {
		fmt.Fprintf(l.m.log, "govmm: %v\n", err)
	}
}

// IRQ returns the line for an ISA IRQ or GSI.
func (m *Machine) IRQ(gsi uint32) devices.IRQLine { return irqLine{m, gsi} }

var comPorts = []struct {
	base uint16
	irq  uint32
}{{0x3f8, 4}, {0x2f8, 3}, {0x3e8, 4}, {0x2e8, 3}}

func (m *Machine) setupDevices() error {
	if len(m.opts.Serial) > len(comPorts) {
		return fmt.Errorf("%d serial ports requested, at most %d are supported", len(m.opts.Serial), len(comPorts))
	}
	for i, s := range m.opts.Serial {
		out := s.Out
		if out == nil {
			out = io.Discard
		}
		u := uart16550.New(m.IRQ(comPorts[i].irq), out)
		if err := m.pio.Register(uint64(comPorts[i].base), uart16550.Size, u, fmt.Sprintf("serial%d", i)); err != nil {
			return err
		}
		m.uarts = append(m.uarts, u)
		if s.In != nil {
			go feedUART(u, s.In)
		}
	}
	if d := m.cfg.DebugExit; d != nil {
		dev := debugexit.New(func(code int) { m.post(event{kind: evDebugExit, code: code}) })
		if err := m.pio.Register(uint64(d.IOBase), uint64(d.IOSize), dev, "isa-debug-exit"); err != nil {
			return fmt.Errorf("isa-debug-exit: %w", err)
		}
	}
	below, above := m.ramSplit()
	m.rtc = cmos.New(below, above, m.cfg.CPUs, rtcClock(m.cfg.RTC.Clock), m.cfg.RTC.Base == "localtime")
	if b := m.cfg.RTC.Base; b != "" && b != "utc" && b != "localtime" {
		t, err := time.Parse("2006-01-02T15:04:05", b)
		if err != nil {
			if t, err = time.Parse("2006-01-02", b); err != nil {
				return fmt.Errorf("-rtc base=%s: invalid datetime format", b)
			}
		}
		m.rtc.SetBase(t)
	}
	if err := m.pio.Register(0x70, cmos.Size, m.rtc, "rtc"); err != nil {
		return err
	}
	resetReq := func() { m.post(event{kind: evReset, cause: runstate.CauseGuestReset}) }
	m.kbd = i8042.New(m.IRQ(1), m.IRQ(12), resetReq)
	if err := m.pio.Register(0x60, 1, m.kbd.DataPort(), "i8042-data"); err != nil {
		return err
	}
	if err := m.pio.Register(0x64, 1, m.kbd.CommandPort(), "i8042-cmd"); err != nil {
		return err
	}
	if err := m.pio.Register(0x80, 1, sink{}, "ioport80"); err != nil {
		return err
	}
	if err := m.pio.Register(0x92, 1, &port92{reset: resetReq}, "port92"); err != nil {
		return err
	}
	shutdownReq := func() { m.post(event{kind: evShutdown, cause: runstate.CauseGuestShutdown}) }
	if m.cfg.MachineType == "microvm" {
		m.ged = acpi.NewGED(m.IRQ(acpi.SCIIRQ), shutdownReq, resetReq)
		return m.mmio.Register(gedBase, acpi.GEDSize, m.ged, "acpi-ged")
	}
	m.pm = acpi.NewPM(m.IRQ(acpi.SCIIRQ), shutdownReq, resetReq)
	return m.pio.Register(pmPortBase, acpi.PMSize, m.pm, "acpi-pm")
}

// rtcClock is the time source of -rtc clock=: host (the default) follows
// the host's wall clock, steps included; rt and vm run from the start time
// on the monotonic clock, so host clock changes do not reach the guest.
func rtcClock(clock string) func() time.Time {
	if clock == "rt" || clock == "vm" {
		start := time.Now()
		return func() time.Time { return start.Add(time.Since(start)) }
	}
	return time.Now
}

func (m *Machine) ramSplit() (below, above uint64) {
	rs := boot.RAMRanges(m.cfg.MemBytes)
	below = rs[0].Size
	if len(rs) > 1 {
		above = rs[1].Size
	}
	return below, above
}

// feedUART copies host input into a UART, waiting while its FIFO is full.
func feedUART(u *uart16550.UART, in io.Reader) {
	buf := make([]byte, 256)
	for {
		n, err := in.Read(buf)
		p := buf[:n]
		for len(p) > 0 {
			k := u.Receive(p)
			p = p[k:]
			if k == 0 {
				<-u.RXSpace()
			}
		}
		if err != nil {
			return
		}
	}
}

// sink takes writes and reads as zero: port 0x80 (POST codes, I/O delay).
type sink struct{}

func (sink) Read(_ uint64, data []byte) { clear(data) }
func (sink) Write(uint64, []byte)       {}

// port92 is the PS/2 system control port A: bit 0 written as 1 resets the
// machine (a "fast reset" that Linux falls back to); bit 1 is A20.
type port92 struct {
	mu    sync.Mutex
	val   byte
	reset func()
}

func (p *port92) Read(_ uint64, data []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	data[0] = p.val &^ 1
	clear(data[1:])
}

func (p *port92) Write(_ uint64, data []byte) {
	p.mu.Lock()
	old := p.val
	p.val = data[0] & 2
	p.mu.Unlock()
	if data[0]&1 != 0 && old&1 == 0 {
		p.reset()
	}
}

// firmwareTables writes the ACPI tables and the MP table for the board.
func (m *Machine) firmwareTables() (rsdp uint64, err error) {
	var serial []acpi.Serial
	for i := range m.uarts {
		serial = append(serial, acpi.Serial{IOBase: comPorts[i].base, IRQ: uint8(comPorts[i].irq)})
	}
	cfg := acpi.Config{CPUs: m.cfg.CPUs, Serial: serial, I8042: true, RTC: true, PCI: m.acpiPCI()}
	if m.ged != nil {
		cfg.Mode, cfg.GEDBase = acpi.HardwareReduced, gedBase
	} else {
		cfg.Mode, cfg.PMBase = acpi.FixedHardware, pmPortBase
	}
	t, err := acpi.Build(cfg, acpiBase)
	if err != nil {
		return 0, err
	}
	if len(t.Data) > acpiMax || uint64(len(t.Data)) > mptableBase-acpiBase {
		return 0, fmt.Errorf("ACPI tables are %d bytes, %d fit", len(t.Data), mptableBase-acpiBase)
	}
	if err := m.mem.WriteAt(t.Data, acpiBase); err != nil {
		return 0, err
	}
	mpc := mptable.Config{CPUs: m.cfg.CPUs, PCI: m.pciRoot != nil}
	if mpc.PCI {
		for slot := 0; slot < 32; slot++ {
			for pin := 0; pin < 4; pin++ {
				mpc.PCIRoutes = append(mpc.PCIRoutes, mptable.PCIRoute{Device: uint8(slot), Pin: uint8(pin), IOAPICPin: uint8(pciGSI(slot, pin))})
			}
		}
	}
	mp, err := mptable.BuildConfig(mpc, mptableBase)
	if err != nil {
		return 0, err
	}
	if err := m.mem.WriteAt(mp, mptableBase); err != nil {
		return 0, err
	}
	return t.RSDPAddr, nil
}

// loadBoot writes the firmware tables and the kernel into guest memory and
// sets the boot vCPU's entry state. It runs at start and at every reset.
func (m *Machine) loadBoot() error {
	rsdp, err := m.firmwareTables()
	if err != nil {
		return err
	}
	entry, err := boot.Load(m.mem, boot.Params{
		Kernel: m.kernel, Initrd: m.initrd, Cmdline: m.cfg.Cmdline,
		MemSize: m.cfg.MemBytes, RSDP: rsdp,
	})
	if err != nil {
		return err
	}
	if err := boot.SetupMemory(m.mem, entry.Mode); err != nil {
		return err
	}
	return m.cpus[0].enter(entry)
}

// post delivers a run-control event from a device or vCPU thread. The first
// event ends the run; the vCPU that posts it stops at once.
func (m *Machine) post(ev event) {
	m.stop.Store(true)
	select {
	case m.events <- ev:
	default: // the control loop already has an event to act on
	}
}

func (m *Machine) warn(w string) {
	if m.opts.Warn != nil {
		m.opts.Warn(w)
		return
	}
	fmt.Fprintf(m.log, "warning: %s\n", w)
}

// EmulationCounts is how many instructions of each mnemonic govmm
// completed after KVM emulation failures (PVM hosts), and how many
// syscall entries it repaired ("pvm-*").
func (m *Machine) EmulationCounts() map[string]uint64 {
	c := m.pvm.Counts()
	maps.Copy(c, m.emu.Counts())
	return c
}

// Memory is the guest's RAM.
func (m *Machine) Memory() *guestmem.Memory { return m.mem }

// PIO and MMIO are the machine's buses, for devices added by the caller.
func (m *Machine) PIO() *Bus  { return m.pio }
func (m *Machine) MMIO() *Bus { return m.mmio }

// Close releases the VM. It is safe to call more than once.
func (m *Machine) Close() error {
	m.closeMu.Lock()
	defer m.closeMu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.closePCI()
	for _, c := range m.cpus {
		c.cpu.Close()
	}
	if m.vm != nil {
		m.vm.Close()
	}
	if m.sys != nil {
		m.sys.Close()
	}
	for _, b := range m.ram {
		unix.Munmap(b)
	}
	m.ram = nil
	return nil
}
