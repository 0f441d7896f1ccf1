package machine

// Config is everything the machine needs to run, built by the CLI (or a test)
// and validated before any guest runs. It names no command-line syntax.
type Config struct {
	Name     string // -name guest=
	MemBytes uint64 // guest RAM size
	CPUs     int    // number of vCPUs at start

	Kernel  string // path of the kernel or payload (ELF/PVH, multiboot, bzImage)
	Initrd  string
	Cmdline string

	// Serial ports in order: COM1, COM2, ... Nil entries are absent ports.
	Serial []*CharBackend

	DebugExit *DebugExitConfig // isa-debug-exit, nil when absent

	NoReboot   bool // a guest reset ends govmm (exit 0)
	NoShutdown bool // a guest shutdown pauses the VM instead of exiting
}

// DebugExitConfig is QEMU's isa-debug-exit device.
type DebugExitConfig struct {
	IOBase uint16
	IOSize uint16
}

// CharKind is the kind of a character backend.
type CharKind int

const (
	CharNull CharKind = iota
	CharStdio
	CharFile
)

// CharBackend is a character device backend (QEMU's -chardev).
type CharBackend struct {
	ID   string
	Kind CharKind
	Path string // CharFile
}
