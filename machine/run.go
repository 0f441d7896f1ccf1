package machine

import (
	"errors"
	"fmt"

	"github.com/govmm/govmm/machine/emulate"
	"github.com/govmm/govmm/machine/runstate"
)

// Run starts the vCPUs (unless -S) and blocks until the machine ends: the
// guest powers off, resets under -no-reboot, exits through isa-debug-exit,
// hits an error (unless a monitor keeps the process alive), or the host
// quits it. Everything that changes the run state happens on this
// goroutine: vCPU threads, devices and API callers only post events.
func (m *Machine) Run() Result {
	defer close(m.runDone)
	if len(m.opts.LogItems) > 0 {
		defer func() {
			fmt.Fprint(m.log, emulate.FormatCounts(m.EmulationCounts()))
		}()
	}
	if !m.cfg.StartPaused {
		m.rs.Start()
		m.startVCPUs()
	}
	for {
		ev := <-m.events
		if m.vcpusRunning {
			m.stopVCPUs()
		}
		res, exit := m.handle(ev)
		if ev.done != nil {
			ev.done <- res.Err
		}
		if exit {
			return res
		}
		if m.rs.State() == runstate.Running {
			m.startVCPUs()
		}
	}
}

// handle acts on one event with the vCPUs stopped. It reports whether the
// run is over; for host requests, res.Err is the request's answer.
func (m *Machine) handle(ev event) (res Result, exit bool) {
	switch ev.kind {
	case evDebugExit:
		// QEMU exits at once, with no SHUTDOWN event.
		return Result{ExitCode: ev.code, Cause: "debug-exit"}, true
	case evShutdown:
		pause := m.cfg.NoShutdown && ev.cause.ByGuest()
		m.rs.Shutdown(ev.cause, pause)
		if pause {
			return Result{}, false
		}
		return Result{ExitCode: 0, Cause: ev.cause.String()}, true
	case evReset:
		if m.cfg.NoReboot && ev.cause != runstate.CauseSubsystemReset {
			// -no-reboot turns every reset request into a shutdown, which
			// -no-shutdown in turn pauses, as QEMU.
			pause := m.cfg.NoShutdown && ev.cause.ByGuest()
			m.rs.Shutdown(ev.cause, pause)
			if pause {
				return Result{}, false
			}
			return Result{ExitCode: 0, Cause: ev.cause.String()}, true
		}
		m.rs.Reset(ev.cause)
		if err := m.reset(); err != nil {
			return Result{ExitCode: 1, Cause: "host-error", Err: fmt.Errorf("reset failed: %w", err)}, true
		}
		return Result{}, false
	case evError:
		m.rs.Fail()
		res := Result{ExitCode: 1, Cause: "internal-error", Err: ev.err}
		if m.opts.KeepAliveOnError {
			// As QEMU: the VM stays in internal-error for the monitor.
			fmt.Fprintln(m.log, ev.err)
			return Result{}, false
		}
		return res, true
	case evPause:
		m.rs.Stop(runstate.Paused)
	case evResume:
		if err := m.rs.Cont(); err != nil {
			return Result{Err: err}, false
		}
	case evPowerdown:
		m.rs.Powerdown()
		if m.pm != nil {
			m.pm.PressPowerButton()
		}
		if m.ged != nil {
			m.ged.PressPowerButton()
		}
	}
	return Result{}, false
}

func (m *Machine) startVCPUs() {
	m.stop.Store(false)
	m.vcpusRunning = true
	for _, c := range m.cpus {
		m.wg.Add(1)
		go c.run()
	}
}

func (m *Machine) stopVCPUs() {
	m.stop.Store(true)
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	for {
		for _, c := range m.cpus {
			c.kick()
		}
		select {
		case <-done:
			m.vcpusRunning = false
			m.dropGuestEvents()
			return
		case <-afterKickInterval():
		}
	}
}

// dropGuestEvents discards events that vCPUs of the run just stopped posted
// after the one that stopped it (a second vCPU's triple fault, say): they
// belong to that run. Host requests are kept for the next turn.
func (m *Machine) dropGuestEvents() {
	var keep []event
	for len(m.events) > 0 {
		if ev := <-m.events; ev.done != nil || !ev.cause.ByGuest() && ev.kind != evDebugExit && ev.kind != evError {
			keep = append(keep, ev)
		}
	}
	for _, ev := range keep {
		m.events <- ev
	}
}

// reset puts every vCPU and device back in its power-on state and loads the
// kernel again, as QEMU's firmware would after a reset.
func (m *Machine) reset() error {
	for _, c := range m.cpus {
		if m.logReset {
			fmt.Fprintf(m.log, "CPU Reset (CPU %d)\n%s", c.id, c.dumpRegs())
		}
		if err := c.restorePowerOn(); err != nil {
			return err
		}
	}
	for _, u := range m.uarts {
		u.Reset()
	}
	m.rtc.Reset()
	m.kbd.Reset()
	if err := m.resetPCI(); err != nil {
		return err
	}
	if m.pm != nil {
		m.pm.Reset()
	}
	if m.ged != nil {
		m.ged.Reset()
	}
	return m.loadBoot()
}

// ErrNotRunning answers host requests that arrive after the machine ended.
var ErrNotRunning = errors.New("the virtual machine has ended")

// request posts a host request and waits for the control loop's answer. A
// request racing with the end of the run (a QMP "stop" as the guest powers
// off) gets ErrNotRunning instead of waiting forever.
func (m *Machine) request(ev event) error {
	ev.done = make(chan error, 1)
	select {
	case m.events <- ev:
	case <-m.runDone:
		return ErrNotRunning
	}
	select {
	case err := <-ev.done:
		return err
	case <-m.runDone:
		select {
		case err := <-ev.done: // answered just before the run ended
			return err
		default:
			return ErrNotRunning
		}
	}
}

// Quit ends the run as a host request: SHUTDOWN with the cause (host-qmp-quit,
// host-signal, host-ui), then Run returns with exit code 0. It does not wait.
func (m *Machine) Quit(cause runstate.ShutdownCause) {
	select {
	case m.events <- event{kind: evShutdown, cause: cause}:
	case <-m.runDone:
	}
}

// Shutdown is Quit that waits until the control loop has acted (the
// SHUTDOWN event sent): QMP's quit answers after its event.
func (m *Machine) Shutdown(cause runstate.ShutdownCause) error {
	return m.request(event{kind: evShutdown, cause: cause})
}

// Config is the configuration the machine was built with.
func (m *Machine) Config() Config { return m.cfg }

// Pause stops the vCPUs (QMP "stop"); nothing happens unless running.
func (m *Machine) Pause() error { return m.request(event{kind: evPause}) }

// Resume starts the vCPUs (QMP "cont"); after a shutdown or an internal
// error it fails with runstate.ErrResetRequired, as QEMU's does.
func (m *Machine) Resume() error { return m.request(event{kind: evResume}) }

// Reset resets the machine as a host request (QMP "system_reset").
func (m *Machine) Reset() error {
	return m.request(event{kind: evReset, cause: runstate.CauseHostQMPSystemReset})
}

// PowerButton presses the ACPI power button (QMP "system_powerdown").
func (m *Machine) PowerButton() error { return m.request(event{kind: evPowerdown}) }

// State is the run state (QMP "query-status").
func (m *Machine) State() runstate.State { return m.rs.State() }

// Subscribe registers fn for run-state events (STOP, RESUME, SHUTDOWN, ...).
func (m *Machine) Subscribe(fn func(runstate.Event)) (cancel func()) { return m.rs.Subscribe(fn) }
