package machine

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/govmm/govmm/kvm"
	"github.com/govmm/govmm/machine/boot"
	"github.com/govmm/govmm/machine/runstate"
	"golang.org/x/sys/unix"
)

// kickSignal interrupts a vCPU thread in KVM_RUN. Go's runtime catches it
// and, with no os/signal subscriber, does nothing else; KVM_RUN returns
// EINTR. Paired with kvm_run.immediate_exit there is no lost-wakeup race.
const kickSignal = unix.SIGUSR1

type vcpu struct {
	m   *Machine
	cpu *kvm.VCPU
	id  int

	// powerOn is the state KVM gave the vCPU at creation, restored at reset.
	powerOn struct {
		regs    kvm.Regs
		sregs   kvm.Sregs
		fpu     kvm.FPU
		lapic   kvm.LAPICState
		mpState uint32
	}

	mu      sync.Mutex // guards tid and running against kick
	tid     int
	running bool
}

func (m *Machine) createVCPUs() error {
	supported, err := m.sys.SupportedCPUID()
	if err != nil {
		return err
	}
	table, warns, err := cpuModel(supported, m.cfg)
	if err != nil {
		return err
	}
	for _, w := range warns {
		m.warn(w)
	}
	for i := 0; i < m.cfg.CPUs; i++ {
		c, err := m.vm.CreateVCPU(i)
		if err != nil {
			return err
		}
		v := &vcpu{m: m, cpu: c, id: i}
		m.cpus = append(m.cpus, v)
		if err := c.SetCPUID2(cpuidFor(table, uint32(i), m.cfg.Topology)); err != nil {
			return err
		}
		if err := v.savePowerOn(); err != nil {
			return err
		}
	}
	return nil
}

func (v *vcpu) savePowerOn() (err error) {
	p := &v.powerOn
	if p.regs, err = v.cpu.Regs(); err != nil {
		return err
	}
	if p.sregs, err = v.cpu.Sregs(); err != nil {
		return err
	}
	if p.fpu, err = v.cpu.FPU(); err != nil {
		return err
	}
	if p.lapic, err = v.cpu.LAPIC(); err != nil {
		return err
	}
	p.mpState, err = v.cpu.MPState()
	return err
}

// restorePowerOn puts the vCPU back in its creation state (a reset).
func (v *vcpu) restorePowerOn() error {
	p := &v.powerOn
	if err := v.cpu.SetSregs(p.sregs); err != nil {
		return err
	}
	if err := v.cpu.SetRegs(p.regs); err != nil {
		return err
	}
	if err := v.cpu.SetFPU(p.fpu); err != nil {
		return err
	}
	if err := v.cpu.SetLAPIC(p.lapic); err != nil {
		return err
	}
	if err := v.cpu.SetVCPUEvents(kvm.VCPUEvents{}); err != nil {
		return err
	}
	if err := v.m.pvm.Reset(v.cpu, v.id); err != nil {
		return err
	}
	return v.cpu.SetMPState(p.mpState)
}

// enter sets the boot vCPU's registers for a loader's entry state.
func (v *vcpu) enter(e *boot.Entry) error {
	s := v.powerOn.sregs
	boot.ApplySregs(&s, e.Mode)
	if err := v.cpu.SetSregs(s); err != nil {
		return err
	}
	r := e.Regs
	r.RFLAGS = 2
	return v.cpu.SetRegs(r)
}

// kick makes the vCPU leave KVM_RUN soon if it is running.
func (v *vcpu) kick() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.running {
		v.cpu.SetImmediateExit(true)
		unix.Tgkill(os.Getpid(), v.tid, kickSignal)
	}
}

// run is the vCPU thread: KVM_RUN and exit dispatch until the machine
// asks it to stop or it posts an event itself.
func (v *vcpu) run() {
	runtime.LockOSThread()
	// The thread stays locked: it exits with the goroutine, so a kick can
	// never reach a thread that went on to run other goroutines.
	if v.m.cfg.DebugThreads {
		setThreadName(fmt.Sprintf("CPU %d/KVM", v.id))
	}
	v.mu.Lock()
	v.tid = unix.Gettid()
	v.running = true
	v.cpu.SetImmediateExit(false)
	v.mu.Unlock()
	defer func() {
		v.mu.Lock()
		v.running = false
		v.mu.Unlock()
		v.m.wg.Done()
	}()

	m := v.m
	for !m.stop.Load() {
		reason, err := v.cpu.Run()
		if err != nil {
			m.post(event{kind: evError, err: err})
			return
		}
		switch reason {
		case kvm.ExitIO:
			io := v.cpu.IO()
			if io.Data == nil {
				m.post(event{kind: evError, err: fmt.Errorf("vCPU %d: %v with a bad data offset", v.id, io)})
				return
			}
			port := uint64(io.Port)
			for i := 0; i < io.Count; i++ {
				d := io.Data[i*io.Size : (i+1)*io.Size]
				var ok bool
				if io.Out {
					ok = m.pio.Write(port, d)
				} else {
					ok = m.pio.Read(port, d)
				}
				if !ok && m.logGuestErr {
					fmt.Fprintf(m.log, "Invalid access to unassigned port %#x (size %d, %s) by vCPU %d\n", port, io.Size, dir(io.Out), v.id)
				}
			}
			m.pvm.Poll(v.cpu, v.id, m.mem)
		case kvm.ExitMMIO:
			mmio := v.cpu.MMIO()
			var ok bool
			if mmio.Write {
				ok = m.mmio.Write(mmio.Addr, mmio.Data)
			} else {
				ok = m.mmio.Read(mmio.Addr, mmio.Data)
			}
			if !ok && m.logGuestErr {
				fmt.Fprintf(m.log, "Invalid access to unassigned memory %#x (size %d, %s) by vCPU %d\n", mmio.Addr, len(mmio.Data), dir(mmio.Write), v.id)
			}
			m.pvm.Poll(v.cpu, v.id, m.mem)
		case kvm.ExitDebug:
			// Only the PVM syscall fixer asks for debug exits.
			handled, err := m.pvm.HandleDebug(v.cpu, v.id, m.mem, v.cpu.Debug())
			if err != nil {
				m.post(event{kind: evError, err: fmt.Errorf("vCPU %d: %w", v.id, err)})
				return
			}
			if !handled {
				m.post(event{kind: evError, err: v.describeFailure()})
				return
			}
		case kvm.ExitIntr:
			// A kick or a stray signal; the loop condition decides.
		case kvm.ExitHLT:
			// Only without an in-kernel LAPIC; govmm always has one.
		case kvm.ExitShutdown:
			// A triple fault. QEMU treats it as a guest reset.
			m.post(event{kind: evReset, cause: runstate.CauseGuestReset})
			return
		case kvm.ExitSystemEvent:
			se := v.cpu.Exit().(kvm.SystemEventExit)
			switch se.Type {
			case kvm.SystemEventShutdown:
				m.post(event{kind: evShutdown, cause: runstate.CauseGuestShutdown})
			case kvm.SystemEventReset:
				m.post(event{kind: evReset, cause: runstate.CauseGuestReset})
			default:
				m.post(event{kind: evError, err: fmt.Errorf("vCPU %d: %v", v.id, se)})
			}
			return
		case kvm.ExitInternalError:
			// On PVM hosts KVM's emulator runs guest ring-0 code and cannot
			// execute some instructions; finish them here and go on.
			ie := v.cpu.Exit().(kvm.InternalErrorExit)
			var before kvm.Regs
			if m.logEmulation {
				before, _ = v.cpu.Regs()
			}
			if err := m.emu.Handle(v.cpu, m.mem, ie); err != nil {
				m.post(event{kind: evError, err: v.emulationFailure(ie, err)})
				return
			}
			if m.logEmulation {
				fmt.Fprintf(m.log, "vCPU %d: emulated % x at rip %#x\n", v.id, ie.InstructionBytes(), before.RIP)
			}
		default:
			m.post(event{kind: evError, err: v.describeFailure()})
			return
		}
	}
}

// describeFailure reports an exit the VMM cannot continue from, with the
// registers, as QEMU's "KVM internal error" dump does.
func (v *vcpu) describeFailure() error {
	ex := v.cpu.Exit()
	var sb strings.Builder
	if ie, ok := ex.(kvm.InternalErrorExit); ok {
		fmt.Fprintf(&sb, "KVM internal error. Suberror: %d\n%s", ie.Suberror, ie.SuberrorName())
		if b := ie.InstructionBytes(); b != nil {
			fmt.Fprintf(&sb, "\ninstruction bytes: % x", b)
		}
	} else {
		fmt.Fprintf(&sb, "vCPU %d: unexpected exit %v (%v)", v.id, ex.Reason(), ex)
	}
	sb.WriteString("\n")
	sb.WriteString(v.dumpRegs())
	return &VCPUError{CPU: v.id, Exit: ex, Text: strings.TrimRight(sb.String(), "\n")}
}

func dir(write bool) string {
	if write {
		return "write"
	}
	return "read"
}

// emulationFailure reports an instruction neither KVM nor govmm could
// emulate: QEMU's header line, then the decoded instruction and registers.
func (v *vcpu) emulationFailure(ie kvm.InternalErrorExit, err error) error {
	text := fmt.Sprintf("KVM internal error. Suberror: %d\n%s\n%v", ie.Suberror, ie.SuberrorName(), err)
	return &VCPUError{CPU: v.id, Exit: ie, Text: strings.TrimRight(text, "\n")}
}

// VCPUError is a vCPU exit the machine could not handle.
type VCPUError struct {
	CPU  int
	Exit kvm.Exit
	Text string
}

func (e *VCPUError) Error() string { return e.Text }

func (v *vcpu) dumpRegs() string {
	r, err := v.cpu.Regs()
	if err != nil {
		return err.Error()
	}
	s, err := v.cpu.Sregs()
	if err != nil {
		return err.Error()
	}
	cpl := s.CS.Selector & 3
	return fmt.Sprintf(
		"RAX=%016x RBX=%016x RCX=%016x RDX=%016x\n"+
			"RSI=%016x RDI=%016x RBP=%016x RSP=%016x\n"+
			"R8 =%016x R9 =%016x R10=%016x R11=%016x\n"+
			"R12=%016x R13=%016x R14=%016x R15=%016x\n"+
			"RIP=%016x RFL=%08x CPL=%d\n"+
			"CS =%04x %016x %08x  SS =%04x %016x %08x\n"+
			"CR0=%08x CR2=%016x CR3=%016x CR4=%08x EFER=%016x\n",
		r.RAX, r.RBX, r.RCX, r.RDX, r.RSI, r.RDI, r.RBP, r.RSP,
		r.R8, r.R9, r.R10, r.R11, r.R12, r.R13, r.R14, r.R15,
		r.RIP, r.RFLAGS, cpl,
		s.CS.Selector, s.CS.Base, s.CS.Limit, s.SS.Selector, s.SS.Base, s.SS.Limit,
		s.CR0, s.CR2, s.CR3, s.CR4, s.EFER)
}
