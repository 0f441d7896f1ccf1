// Package qmptest has a fake machine for testing QMP and HMP front ends
// without a virtual machine.
package qmptest

import (
	"sync"

	"github.com/govmm/govmm/machine/qmp"
	"github.com/govmm/govmm/machine/runstate"
)

// Machine is a qmp.Machine whose run state is a real runstate.Controller
// and whose inventory is plain fields. Quit records the request and sends
// SHUTDOWN like QEMU; it closes QuitRequested once.
type Machine struct {
	*runstate.Controller
	VMName, VMUUID  string
	KVMInfo         qmp.KVMInfo
	CPUList         []qmp.CPUInfo
	ChardevList     []qmp.ChardevInfo
	BlockList       []qmp.BlockInfo
	BlockStatsList  []qmp.BlockStats
	QuitRequested   chan struct{}
	quitOnce        sync.Once
	PowerdownCalled int
}

// NewMachine returns a fake in the prelaunch state (as with -S).
func NewMachine() *Machine {
	return &Machine{Controller: runstate.New(), QuitRequested: make(chan struct{})}
}

func (m *Machine) Status() runstate.State { return m.State() }

func (m *Machine) Stop() error {
	_, err := m.Controller.Stop(runstate.Paused)
	return err
}

func (m *Machine) SystemReset() error { return m.Reset(runstate.CauseHostQMPSystemReset) }

func (m *Machine) SystemPowerdown() error {
	m.PowerdownCalled++
	m.Powerdown()
	return nil
}

func (m *Machine) Quit() error {
	m.quitOnce.Do(func() {
		m.Shutdown(runstate.CauseHostQMPQuit, false)
		close(m.QuitRequested)
	})
	return nil
}

func (m *Machine) Name() string                 { return m.VMName }
func (m *Machine) UUID() string                 { return m.VMUUID }
func (m *Machine) KVM() qmp.KVMInfo             { return m.KVMInfo }
func (m *Machine) CPUs() []qmp.CPUInfo          { return m.CPUList }
func (m *Machine) Chardevs() []qmp.ChardevInfo  { return m.ChardevList }
func (m *Machine) Blocks() []qmp.BlockInfo      { return m.BlockList }
func (m *Machine) BlockStats() []qmp.BlockStats { return m.BlockStatsList }

var _ qmp.Machine = (*Machine)(nil)
