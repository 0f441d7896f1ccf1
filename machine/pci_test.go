package machine

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func pciRead32(m *Machine, slot int, off uint32) uint32 {
	addr := make([]byte, 4)
	binary.LittleEndian.PutUint32(addr, 1<<31|uint32(slot)<<11|off)
	m.pio.Write(0xcf8, addr)
	v := make([]byte, 4)
	m.pio.Read(0xcfc, v)
	return binary.LittleEndian.Uint32(v)
}

func TestVirtioDevicesOnPCI(t *testing.T) {
	needKVM(t)
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	drive := &DriveConfig{ID: "d0", File: img, Format: "raw", Index: -1}
	cfg := debugExitConfig(payloadPath(t, "hello"))
	cfg.MachineType = "pc"
	cfg.Drives = []*DriveConfig{drive}
	cfg.VirtioBlk = []*VirtioBlkConfig{{Drive: drive}}
	cfg.VirtioRNG = []*VirtioRNGConfig{{Source: "/dev/urandom"}}
	m, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	if id := pciRead32(m, 0, 0); id != 0x12378086 {
		t.Errorf("host bridge id %#x, want i440FX 8086:1237", id)
	}
	if id := pciRead32(m, 1, 0); id != 0xffffffff {
		t.Errorf("slot 1 reads %#x, want empty (reserved as on QEMU's pc)", id)
	}
	wantIDs := map[int]uint32{2: 0x10421af4, 3: 0x10441af4} // blk, rng in order from slot 2
	for slot, want := range wantIDs {
		if id := pciRead32(m, slot, 0); id != want {
			t.Errorf("slot %d id %#x, want %#x", slot, id, want)
		}
		if cmd := pciRead32(m, slot, 4) & 0xffff; cmd&0x6 != 0x6 {
			t.Errorf("slot %d command %#x: memory decode and bus master not enabled", slot, cmd)
		}
		// BAR 4 (64-bit) must be mapped on the MMIO bus with the common config at 0.
		bar4 := uint64(pciRead32(m, slot, 0x20)&^0xf) | uint64(pciRead32(m, slot, 0x24))<<32
		found := false
		for _, mp := range m.mmio.Mappings() {
			if mp.Base == bar4 && strings.HasSuffix(mp.Name, "bar4") {
				found = true
			}
		}
		if !found {
			t.Errorf("slot %d BAR4 at %#x not on the MMIO bus: %+v", slot, bar4, m.mmio.Mappings())
		}
	}
	// A second opener of the image must be refused while the VM holds it.
	m2, err := New(cfg, Options{})
	if err == nil {
		m2.Close()
		t.Fatal("second VM opened the same image for writing")
	}
	if !strings.Contains(err.Error(), `Failed to get "write" lock`) {
		t.Errorf("second VM error %q, want QEMU's lock message", err)
	}
}
