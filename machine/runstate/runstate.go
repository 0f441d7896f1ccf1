// Package runstate is QEMU's run-state model: which state the virtual machine
// is in (prelaunch, running, paused, ...), which transitions between states
// are allowed, and the events (STOP, RESUME, SHUTDOWN, POWERDOWN, RESET, ...)
// that management clients see when the state changes.
//
// The Controller only keeps the state and publishes events; it does not stop
// vCPUs or reset devices. The machine does that work and tells the Controller,
// so QMP, HMP and signal handlers all see one consistent state.
package runstate

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// State is a run state. String() gives QEMU's query-status name.
type State int

const (
	Prelaunch State = iota // created, not started yet (-S), or after a reset while not running
	Running
	Paused
	Shutdown      // the guest shut down and -no-shutdown kept us alive
	GuestPanicked // the guest reported a panic and we paused it
	InternalError // the hypervisor could not go on (e.g. KVM emulation failure)
	Debug         // stopped by a debugger
	InMigrate     // waiting for an incoming migration
	numStates
)

var stateNames = [numStates]string{
	Prelaunch:     "prelaunch",
	Running:       "running",
	Paused:        "paused",
	Shutdown:      "shutdown",
	GuestPanicked: "guest-panicked",
	InternalError: "internal-error",
	Debug:         "debug",
	InMigrate:     "inmigrate",
}

func (s State) String() string {
	if s >= 0 && s < numStates {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// transitions lists the allowed state changes, as in QEMU 7.2's
// runstate_transitions_def (softmmu/runstate.c), restricted to the states
// modelled here.
var transitions = map[[2]State]bool{
	{Prelaunch, InMigrate}: true,
	{Prelaunch, Running}:   true,

	{Debug, Running}:   true,
	{Debug, Prelaunch}: true,

	{InMigrate, InternalError}: true,
	{InMigrate, Paused}:        true,
	{InMigrate, Running}:       true,
	{InMigrate, Shutdown}:      true,
	{InMigrate, GuestPanicked}: true,
	{InMigrate, Prelaunch}:     true,

	{InternalError, Paused}:    true,
	{InternalError, Prelaunch}: true,

	{Paused, Running}:   true,
	{Paused, Prelaunch}: true,

	{Running, Debug}:         true,
	{Running, InternalError}: true,
	{Running, Paused}:        true,
	{Running, Shutdown}:      true,
	{Running, GuestPanicked}: true,

	{Shutdown, Paused}:    true,
	{Shutdown, Prelaunch}: true,

	{GuestPanicked, Running}:   true,
	{GuestPanicked, Prelaunch}: true,
}

// ValidTransition reports whether QEMU allows going from one state to another.
// Staying in the same state is always allowed (and is a no-op).
func ValidTransition(from, to State) bool {
	return from == to || transitions[[2]State{from, to}]
}

// ShutdownCause says why a shutdown or reset happened (QEMU's ShutdownCause).
type ShutdownCause int

const (
	CauseNone               ShutdownCause = iota // no event is sent for a reset with this cause
	CauseHostError                               // an error in the host prevents further use
	CauseHostQMPQuit                             // QMP or HMP "quit"
	CauseHostQMPSystemReset                      // QMP or HMP "system_reset"
	CauseHostSignal                              // SIGINT, SIGTERM, SIGHUP
	CauseHostUI                                  // the user interface asked
	CauseGuestShutdown                           // the guest powered off (ACPI, isa-debug-exit is not one)
	CauseGuestReset                              // the guest reset itself (keyboard controller, triple fault)
	CauseGuestPanic                              // the guest panicked with the panic action "shutdown"
	CauseSubsystemReset                          // a subsystem (not the guest) asked for a reset; no event
	numCauses
)

var causeNames = [numCauses]string{
	CauseNone:               "none",
	CauseHostError:          "host-error",
	CauseHostQMPQuit:        "host-qmp-quit",
	CauseHostQMPSystemReset: "host-qmp-system-reset",
	CauseHostSignal:         "host-signal",
	CauseHostUI:             "host-ui",
	CauseGuestShutdown:      "guest-shutdown",
	CauseGuestReset:         "guest-reset",
	CauseGuestPanic:         "guest-panic",
	CauseSubsystemReset:     "subsystem-reset",
}

func (c ShutdownCause) String() string {
	if c >= 0 && c < numCauses {
		return causeNames[c]
	}
	return fmt.Sprintf("ShutdownCause(%d)", int(c))
}

// ByGuest reports whether the guest caused it (the "guest" member of the
// SHUTDOWN and RESET events), as QEMU's shutdown_caused_by_guest.
func (c ShutdownCause) ByGuest() bool {
	return c >= CauseGuestShutdown && c != CauseSubsystemReset
}

// EventKind names an event. String() gives the QMP event name.
type EventKind int

const (
	EventStop EventKind = iota
	EventResume
	EventShutdown      // Guest, Reason
	EventPowerdown     // the host pressed the power button
	EventReset         // Guest, Reason
	EventGuestPanicked // Action
)

var eventNames = [...]string{
	EventStop:          "STOP",
	EventResume:        "RESUME",
	EventShutdown:      "SHUTDOWN",
	EventPowerdown:     "POWERDOWN",
	EventReset:         "RESET",
	EventGuestPanicked: "GUEST_PANICKED",
}

func (k EventKind) String() string {
	if k >= 0 && int(k) < len(eventNames) {
		return eventNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one state-change notification.
type Event struct {
	Kind   EventKind
	Time   time.Time
	Reason ShutdownCause // EventShutdown, EventReset; Reason.ByGuest() is the "guest" member
	Action string        // EventGuestPanicked: "pause", "poweroff" or "run"
}

// ErrResetRequired is Cont's answer in the shutdown and internal-error states,
// with QEMU's message.
var ErrResetRequired = errors.New("Resetting the Virtual Machine is required")

// Controller holds the current state and the subscribers to its events.
// Events are delivered synchronously, in order, while the Controller's lock
// is held, so that a subscriber sees an event before the call that caused it
// returns (QMP sends the event before the command's reply). Subscribers must
// therefore be quick and must not call back into the Controller.
type Controller struct {
	mu    sync.Mutex
	state State
	subs  map[int]func(Event)
	next  int
	now   func() time.Time
}

// New returns a Controller in the Prelaunch state, where QEMU starts.
func New() *Controller {
	return &Controller{state: Prelaunch, subs: map[int]func(Event){}, now: time.Now}
}

// SetClock replaces the time source of event timestamps (for tests).
func (c *Controller) SetClock(now func() time.Time) {
	c.mu.Lock()
	c.now = now
	c.mu.Unlock()
}

// State returns the current state.
func (c *Controller) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Running reports whether the state is Running.
func (c *Controller) Running() bool { return c.State() == Running }

// NeedsReset reports whether the VM must be reset before it can run again.
func (c *Controller) NeedsReset() bool {
	s := c.State()
	return s == Shutdown || s == InternalError
}

// Subscribe registers fn for every later event and returns a function that
// removes it.
func (c *Controller) Subscribe(fn func(Event)) (cancel func()) {
	c.mu.Lock()
	id := c.next
	c.next++
	c.subs[id] = fn
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		delete(c.subs, id)
		c.mu.Unlock()
	}
}

// emit publishes an event; c.mu must be held. Subscribers are called in the
// order they subscribed.
func (c *Controller) emit(ev Event) {
	ev.Time = c.now()
	for id := 0; id < c.next; id++ {
		if fn, ok := c.subs[id]; ok {
			fn(ev)
		}
	}
}

// set changes state; c.mu must be held.
func (c *Controller) set(to State) error {
	if !ValidTransition(c.state, to) {
		return fmt.Errorf("invalid runstate transition: '%s' -> '%s'", c.state, to)
	}
	c.state = to
	return nil
}

// Set moves to a state without any event, checking that QEMU allows the
// transition. Prefer the operations below, which also send events.
func (c *Controller) Set(to State) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.set(to)
}

// Start moves to Running and sends RESUME, as QEMU's vm_start. Nothing
// happens when already running. It does not check NeedsReset; Cont does.
func (c *Controller) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == Running {
		return nil
	}
	if !ValidTransition(c.state, Running) {
		return fmt.Errorf("invalid runstate transition: '%s' -> '%s'", c.state, Running)
	}
	c.emit(Event{Kind: EventResume})
	return c.set(Running)
}

// Cont is QMP/HMP "cont": refused in the shutdown and internal-error states
// (ErrResetRequired), otherwise Start.
func (c *Controller) Cont() error {
	if c.NeedsReset() {
		return ErrResetRequired
	}
	return c.Start()
}

// Stop leaves Running for the given state (Paused for "stop", Shutdown,
// GuestPanicked, InternalError, Debug) and sends STOP, as QEMU's vm_stop.
// When not running nothing changes and it returns false.
func (c *Controller) Stop(to State) (stopped bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != Running {
		return false, nil
	}
	if err := c.set(to); err != nil {
		return false, err
	}
	c.emit(Event{Kind: EventStop})
	return true, nil
}

// Reset records a completed system reset: it sends RESET (except for
// CauseNone and CauseSubsystemReset) and, when the VM was not running,
// goes back to Prelaunch, as QEMU's main loop does after qemu_system_reset.
func (c *Controller) Reset(cause ShutdownCause) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cause != CauseNone && cause != CauseSubsystemReset {
		c.emit(Event{Kind: EventReset, Reason: cause})
	}
	if c.state != Running && c.state != InMigrate {
		return c.set(Prelaunch)
	}
	return nil
}

// Shutdown records a shutdown request: it sends SHUTDOWN. With pause
// (-no-shutdown, and not for "quit") the VM stops in the Shutdown state
// (with a STOP event when it was running); otherwise the caller is expected
// to end the process.
func (c *Controller) Shutdown(cause ShutdownCause, pause bool) error {
	c.mu.Lock()
	c.emit(Event{Kind: EventShutdown, Reason: cause})
	c.mu.Unlock()
	if pause {
		_, err := c.Stop(Shutdown)
		return err
	}
	return nil
}

// Powerdown sends POWERDOWN: the host pressed the power button. What the
// guest does about it (ACPI) is the machine's business.
func (c *Controller) Powerdown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.emit(Event{Kind: EventPowerdown})
}

// Panic records a guest panic with the "pause" action: GUEST_PANICKED,
// then STOP into the GuestPanicked state.
func (c *Controller) Panic() error {
	c.mu.Lock()
	c.emit(Event{Kind: EventGuestPanicked, Action: "pause"})
	c.mu.Unlock()
	_, err := c.Stop(GuestPanicked)
	return err
}

// Fail records an unrecoverable hypervisor error: STOP into InternalError.
func (c *Controller) Fail() error {
	_, err := c.Stop(InternalError)
	return err
}
