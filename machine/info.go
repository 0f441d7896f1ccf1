package machine

import (
	"sync/atomic"

	"github.com/govmm/govmm/devices/disk"
)

// CPUInfo is one vCPU as the monitors report it.
type CPUInfo struct {
	Index                     int
	ThreadID                  int // host thread running the vCPU (last run)
	Socket, Die, Core, Thread int
}

// CPUs lists the vCPUs with their topology position.
func (m *Machine) CPUs() []CPUInfo {
	t := m.cfg.Topology
	threads, cores, dies := max(t.Threads, 1), max(t.Cores, 1), max(t.Dies, 1)
	out := make([]CPUInfo, len(m.cpus))
	for i, c := range m.cpus {
		c.mu.Lock()
		tid := c.tid
		c.mu.Unlock()
		if tid == 0 {
			tid = m.pid
		}
		out[i] = CPUInfo{
			Index: i, ThreadID: tid,
			Thread: i % threads, Core: i / threads % cores, Die: i / (threads * cores) % dies,
			Socket: i / (threads * cores * dies),
		}
	}
	return out
}

// DriveInfo is one opened drive as the monitors report it.
type DriveInfo struct {
	Config   *DriveConfig
	Device   string // the attached device's name, "" when none
	Slot     int    // its PCI slot
	Size     int64
	ReadOnly bool
	Stats    DiskStats
}

// DiskStats counts the requests a drive served (query-blockstats).
type DiskStats struct {
	RdBytes, WrBytes, RdOps, WrOps, FlushOps, UnmapOps int64
}

// Drives lists the drives attached to virtio-blk devices, in order.
func (m *Machine) Drives() []DriveInfo {
	var out []DriveInfo
	for _, p := range m.pciDevs {
		if p.disk == nil {
			continue
		}
		c := p.disk.(*countingDisk)
		out = append(out, DriveInfo{
			Config: p.drive, Device: p.name, Slot: p.slot,
			Size: c.Size(), ReadOnly: c.ReadOnly(), Stats: c.stats(),
		})
	}
	return out
}

// countingDisk counts requests for query-blockstats, and applies the
// drive's discard policy.
type countingDisk struct {
	disk.Disk
	// ignoreDiscard is -drive discard=ignore (QEMU's default): the guest's
	// discard requests succeed and change nothing.
	ignoreDiscard                                      bool
	rdBytes, wrBytes, rdOps, wrOps, flushOps, unmapOps atomic.Int64
}

func (c *countingDisk) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.Disk.ReadAt(p, off)
	c.rdOps.Add(1)
	c.rdBytes.Add(int64(n))
	return n, err
}

func (c *countingDisk) WriteAt(p []byte, off int64) (int, error) {
	n, err := c.Disk.WriteAt(p, off)
	c.wrOps.Add(1)
	c.wrBytes.Add(int64(n))
	return n, err
}

func (c *countingDisk) Flush() error {
	c.flushOps.Add(1)
	return c.Disk.Flush()
}

func (c *countingDisk) Discard(off, n int64) error {
	c.unmapOps.Add(1)
	if c.ignoreDiscard {
		return nil
	}
	return c.Disk.Discard(off, n)
}

func (c *countingDisk) stats() DiskStats {
	return DiskStats{
		RdBytes: c.rdBytes.Load(), WrBytes: c.wrBytes.Load(), RdOps: c.rdOps.Load(),
		WrOps: c.wrOps.Load(), FlushOps: c.flushOps.Load(), UnmapOps: c.unmapOps.Load(),
	}
}

// DumpVCPUs returns each vCPU's registers, as QEMU's "info registers".
// The vCPUs must be stopped (Pause) for the registers to be current;
// otherwise the call waits for each vCPU's next exit.
func (m *Machine) DumpVCPUs() []string {
	out := make([]string, len(m.cpus))
	for i, c := range m.cpus {
		out[i] = c.dumpRegs()
	}
	return out
}
