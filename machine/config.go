package machine

import "github.com/govmm/govmm/devices/chardev"

// Config is everything the machine needs to run, built by the CLI (or a test)
// and validated before any guest runs. It names no command-line syntax.
type Config struct {
	Name         string // -name guest=
	ProcessName  string // -name process=: the process's name (comm)
	DebugThreads bool   // -name debug-threads=on: vCPU threads named "CPU n/KVM"
	UUID         string // -uuid, canonical lower-case form; "" when not given

	MachineType string // "pc", "q35" or "microvm"

	MemBytes    uint64 // guest RAM size
	MaxMemBytes uint64 // -m maxmem= (0: no hotplug)
	MemSlots    int    // -m slots=

	CPUs     int         // number of vCPUs at start
	Topology CPUTopology // -smp, fully computed
	CPU      CPUModel    // -cpu

	Kernel  string // path of the kernel or payload (ELF/PVH, multiboot, bzImage)
	Initrd  string
	Cmdline string

	// Serial ports in order: COM1, COM2, ... Nil entries are absent ports.
	// Specs are shared with the process's list of backends to open.
	Serial []*chardev.Spec

	DebugExit *DebugExitConfig // isa-debug-exit, nil when absent

	Drives       []*DriveConfig        // -drive / -blockdev, by ID
	VirtioBlk    []*VirtioBlkConfig    // -device virtio-blk-pci (and -drive if=virtio)
	VirtioRNG    []*VirtioRNGConfig    // -device virtio-rng-pci
	VirtioSerial []*VirtioSerialConfig // -device virtio-serial-pci with its ports

	RTC       RTCConfig
	BootOrder string // -boot order=, e.g. "cd"

	NoReboot    bool // a guest reset ends govmm (exit 0)
	NoShutdown  bool // a guest shutdown pauses the VM instead of exiting
	StartPaused bool // -S: do not start vCPUs until "cont"
	Snapshot    bool // -snapshot: writes go to a temporary overlay

	MemLock bool // -overcommit mem-lock=on: guest and VMM memory locked
	CPUPM   bool // -overcommit cpu-pm=on: HLT/MWAIT/PAUSE do not exit
}

// CPUTopology is QEMU's -smp after filling in the omitted values.
type CPUTopology struct {
	Sockets, Dies, Cores, Threads int
	MaxCPUs                       int
}

// CPUModel is -cpu NAME[,+feat,-feat,feat=on|off].
type CPUModel struct {
	Name     string // "host", "max" or "qemu64"
	Features []CPUFeature
}

// CPUFeature is one feature flag override, in command-line order.
type CPUFeature struct {
	Name string
	On   bool
}

// DebugExitConfig is QEMU's isa-debug-exit device.
type DebugExitConfig struct {
	IOBase uint16
	IOSize uint16
}

// DriveConfig is a disk image backend (-drive, -blockdev).
type DriveConfig struct {
	ID        string
	File      string
	Format    string // "raw" or "qcow2"
	Interface string // if=: "virtio", "none", "ide", ...
	ReadOnly  bool
	Cache     string // "writeback" (default), "none", "writethrough", "directsync", "unsafe"
	AIO       string // "threads", "native", "io_uring"
	Discard   string // "ignore" or "unmap"
	Snapshot  bool
	Serial    string
	Media     string // "disk" or "cdrom"
	Index     int    // -1 when not given
}

// VirtioBlkConfig is a virtio-blk-pci device attached to a drive.
type VirtioBlkConfig struct {
	ID        string
	Drive     *DriveConfig
	Serial    string
	NumQueues int    // 0: default
	Addr      string // PCI slot[.function] as given, "" for automatic
}

// VirtioRNGConfig is a virtio-rng-pci device; Source is the host entropy file.
type VirtioRNGConfig struct {
	ID     string
	Source string // /dev/urandom unless an rng-random object names another
	Addr   string
}

// VirtioSerialConfig is a virtio-serial-pci controller and its ports.
type VirtioSerialConfig struct {
	ID    string
	Addr  string
	Ports []*VirtioSerialPort
}

// VirtioSerialPort is a virtconsole or virtserialport.
type VirtioSerialPort struct {
	ID      string
	Console bool // virtconsole
	Name    string
	Chardev *chardev.Spec // nil: port with no backend
}

// RTCConfig is -rtc.
type RTCConfig struct {
	Base     string // "utc", "localtime", or a date "2006-06-17T16:01:21"
	Clock    string // "host", "rt", "vm"
	DriftFix string // "none", "slew"
}
