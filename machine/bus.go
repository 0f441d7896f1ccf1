package machine

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/govmm/govmm/devices"
)

// Bus maps address ranges (port I/O or MMIO) to devices. Lookups on the
// vCPU exit path take no lock: the range table is an immutable sorted slice
// behind an atomic pointer, replaced whole when a mapping changes (rare: at
// setup and when a guest moves a PCI BAR).
type Bus struct {
	name   string
	mu     sync.Mutex // serializes writers
	ranges atomic.Pointer[[]busRange]
	// unmapped is the byte an access to no device reads as.
	unmapped byte
}

type busRange struct {
	base, size uint64
	dev        devices.Device
	name       string
}

// NewBus returns an empty bus. Reads where no device is mapped return
// unmappedByte in every byte (0xff for port I/O, 0 for MMIO, as QEMU).
func NewBus(name string, unmappedByte byte) *Bus {
	b := &Bus{name: name, unmapped: unmappedByte}
	b.ranges.Store(&[]busRange{})
	return b
}

// Register maps dev at [base, base+size). Overlapping an existing range is
// refused: two devices answering one address is a setup bug.
func (b *Bus) Register(base, size uint64, dev devices.Device, name string) error {
	if size == 0 || base+size < base {
		return fmt.Errorf("%s bus: bad range %#x+%#x for %s", b.name, base, size, name)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.ranges.Load()
	for _, r := range old {
		if base < r.base+r.size && r.base < base+size {
			return fmt.Errorf("%s bus: %s at [%#x, %#x) overlaps %s at [%#x, %#x)",
				b.name, name, base, base+size, r.name, r.base, r.base+r.size)
		}
	}
	n := append(append(make([]busRange, 0, len(old)+1), old...), busRange{base, size, dev, name})
	sort.Slice(n, func(i, j int) bool { return n[i].base < n[j].base })
	b.ranges.Store(&n)
	return nil
}

// Unregister removes the range starting at base.
func (b *Bus) Unregister(base uint64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.ranges.Load()
	for i, r := range old {
		if r.base == base {
			n := append(append(make([]busRange, 0, len(old)-1), old[:i]...), old[i+1:]...)
			b.ranges.Store(&n)
			return nil
		}
	}
	return fmt.Errorf("%s bus: nothing mapped at %#x", b.name, base)
}

func (b *Bus) find(addr uint64) (busRange, bool) {
	rs := *b.ranges.Load()
	i := sort.Search(len(rs), func(i int) bool { return rs[i].base > addr }) - 1
	if i >= 0 && addr-rs[i].base < rs[i].size {
		return rs[i], true
	}
	return busRange{}, false
}

// Read dispatches a read at addr. It reports whether a device answered.
func (b *Bus) Read(addr uint64, data []byte) bool {
	if r, ok := b.find(addr); ok {
		r.dev.Read(addr-r.base, data)
		return true
	}
	for i := range data {
		data[i] = b.unmapped
	}
	return false
}

// Write dispatches a write at addr. It reports whether a device took it.
func (b *Bus) Write(addr uint64, data []byte) bool {
	if r, ok := b.find(addr); ok {
		r.dev.Write(addr-r.base, data)
		return true
	}
	return false
}

// Mapping describes one registered range, for diagnostics (info mtree).
type Mapping struct {
	Base, Size uint64
	Name       string
}

// Mappings lists the registered ranges in address order.
func (b *Bus) Mappings() []Mapping {
	rs := *b.ranges.Load()
	out := make([]Mapping, len(rs))
	for i, r := range rs {
		out[i] = Mapping{r.base, r.size, r.name}
	}
	return out
}
