package machine

import (
	"fmt"
	"strings"
)

// Run starts the vCPUs and blocks until the machine ends: the guest powers
// off, resets under -no-reboot, exits through isa-debug-exit, hits an error,
// or Quit is called. Resets without -no-reboot reload the kernel and go on.
func (m *Machine) Run() Result {
	paused := m.cfg.StartPaused
	for {
		if !paused {
			m.startVCPUs()
		}
		ev := <-m.events
		m.stopVCPUs()
		switch ev.kind {
		case evDebugExit:
			return Result{ExitCode: ev.code, Cause: ev.cause}
		case evShutdown:
			if m.cfg.NoShutdown && ev.cause != "host-qmp-quit" && ev.cause != "host-signal" {
				paused = true
				continue
			}
			return Result{ExitCode: 0, Cause: ev.cause}
		case evReset:
			if m.cfg.NoReboot && ev.cause == "guest-reset" {
				return Result{ExitCode: 0, Cause: ev.cause}
			}
			if err := m.reset(); err != nil {
				return Result{ExitCode: 1, Cause: "host-error", Err: fmt.Errorf("reset failed: %w", err)}
			}
			paused = false
		case evError:
			return Result{ExitCode: 1, Cause: "internal-error", Err: ev.err}
		case evPause:
			paused = true
		case evResume:
			paused = false
		}
	}
}

func (m *Machine) startVCPUs() {
	m.stop.Store(false)
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
			m.dropGuestEvents()
			return
		case <-afterKickInterval():
		}
	}
}

// reset puts every vCPU and device back in its power-on state and loads the
// kernel again, as QEMU's firmware would after a reset.
func (m *Machine) reset() error {
	for _, c := range m.cpus {
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

// Quit ends the run as a host request (QMP quit, a signal): Run returns
// with exit code 0 and this cause.
func (m *Machine) Quit(cause string) {
	m.post(event{kind: evShutdown, cause: cause})
}

// SystemReset resets the machine as a host request.
func (m *Machine) SystemReset() {
	m.post(event{kind: evReset, cause: "host-qmp-system-reset"})
}

// PowerButton presses the ACPI power button.
func (m *Machine) PowerButton() {
	if m.pm != nil {
		m.pm.PressPowerButton()
	}
	if m.ged != nil {
		m.ged.PressPowerButton()
	}
}

// dropGuestEvents discards events that vCPUs of the run just stopped posted
// after the one that stopped it (a second vCPU's triple fault, say): they
// belong to that run. Host requests are kept for the next turn.
func (m *Machine) dropGuestEvents() {
	var keep []event
	for len(m.events) > 0 {
		if ev := <-m.events; strings.HasPrefix(ev.cause, "host-") {
			keep = append(keep, ev)
		}
	}
	for _, ev := range keep {
		m.events <- ev
	}
}
