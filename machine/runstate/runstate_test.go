package runstate

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// record subscribes to c and returns the names of the events seen so far.
func record(c *Controller) *[]string {
	var got []string
	c.Subscribe(func(ev Event) {
		s := ev.Kind.String()
		if ev.Kind == EventShutdown || ev.Kind == EventReset {
			g := "host"
			if ev.Reason.ByGuest() {
				g = "guest"
			}
			s += "(" + g + "," + ev.Reason.String() + ")"
		}
		got = append(got, s)
	})
	return &got
}

func TestStateStrings(t *testing.T) {
	want := map[State]string{
		Prelaunch: "prelaunch", Running: "running", Paused: "paused", Shutdown: "shutdown",
		GuestPanicked: "guest-panicked", InternalError: "internal-error",
	}
	for s, w := range want {
		if s.String() != w {
			t.Errorf("%d.String() = %q, want %q", int(s), s.String(), w)
		}
	}
	causes := []string{"none", "host-error", "host-qmp-quit", "host-qmp-system-reset", "host-signal",
		"host-ui", "guest-shutdown", "guest-reset", "guest-panic", "subsystem-reset"}
	for i, w := range causes {
		if got := ShutdownCause(i).String(); got != w {
			t.Errorf("cause %d = %q, want %q", i, got, w)
		}
	}
	for _, c := range []ShutdownCause{CauseGuestShutdown, CauseGuestReset, CauseGuestPanic} {
		if !c.ByGuest() {
			t.Errorf("%v.ByGuest() = false", c)
		}
	}
	for _, c := range []ShutdownCause{CauseNone, CauseHostQMPQuit, CauseHostSignal, CauseSubsystemReset} {
		if c.ByGuest() {
			t.Errorf("%v.ByGuest() = true", c)
		}
	}
}

func TestTransitionTable(t *testing.T) {
	for _, tc := range []struct {
		from, to State
		ok       bool
	}{
		{Prelaunch, Running, true},
		{Prelaunch, Paused, false}, // "stop" before "cont" leaves prelaunch alone
		{Prelaunch, Shutdown, false},
		{Running, Paused, true},
		{Running, Shutdown, true},
		{Running, GuestPanicked, true},
		{Running, InternalError, true},
		{Paused, Running, true},
		{Paused, Prelaunch, true},
		{Paused, Shutdown, false},
		{Shutdown, Running, false}, // needs a reset first
		{Shutdown, Prelaunch, true},
		{Shutdown, Paused, true},
		{InternalError, Running, false},
		{InternalError, Prelaunch, true},
		{GuestPanicked, Running, true},
		{GuestPanicked, Paused, false},
		{Running, Running, true},
	} {
		if got := ValidTransition(tc.from, tc.to); got != tc.ok {
			t.Errorf("ValidTransition(%v, %v) = %v, want %v", tc.from, tc.to, got, tc.ok)
		}
	}
	c := New()
	if err := c.Set(Shutdown); err == nil || err.Error() != "invalid runstate transition: 'prelaunch' -> 'shutdown'" {
		t.Errorf("Set(Shutdown) from prelaunch: %v", err)
	}
	if c.State() != Prelaunch {
		t.Errorf("state changed by a refused transition: %v", c.State())
	}
}

func TestStopContSequence(t *testing.T) {
	c := New()
	ev := record(c)
	if stopped, err := c.Stop(Paused); stopped || err != nil {
		t.Fatalf("Stop in prelaunch = %v, %v", stopped, err)
	}
	if c.State() != Prelaunch {
		t.Fatalf("stop in prelaunch moved to %v", c.State())
	}
	if err := c.Cont(); err != nil {
		t.Fatal(err)
	}
	if err := c.Cont(); err != nil { // again: no event
		t.Fatal(err)
	}
	if !c.Running() {
		t.Fatalf("state %v after cont", c.State())
	}
	if _, err := c.Stop(Paused); err != nil {
		t.Fatal(err)
	}
	c.Stop(Paused) // already paused: no event
	if c.State() != Paused {
		t.Fatalf("state %v after stop", c.State())
	}
	if err := c.Reset(CauseHostQMPSystemReset); err != nil {
		t.Fatal(err)
	}
	if c.State() != Prelaunch {
		t.Fatalf("reset while paused left %v, QEMU goes to prelaunch", c.State())
	}
	c.Cont()
	c.Reset(CauseGuestReset)
	if c.State() != Running {
		t.Fatalf("reset while running left %v", c.State())
	}
	c.Reset(CauseSubsystemReset) // no event
	c.Powerdown()
	want := []string{"RESUME", "STOP", "RESET(host,host-qmp-system-reset)", "RESUME",
		"RESET(guest,guest-reset)", "POWERDOWN"}
	if d := cmp.Diff(want, *ev); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
}

func TestShutdownPauseAndReset(t *testing.T) {
	c := New()
	ev := record(c)
	c.Start()
	if err := c.Shutdown(CauseGuestShutdown, true); err != nil {
		t.Fatal(err)
	}
	if c.State() != Shutdown {
		t.Fatalf("state %v after paused shutdown", c.State())
	}
	if err := c.Cont(); !errors.Is(err, ErrResetRequired) {
		t.Fatalf("cont in shutdown: %v", err)
	}
	if c.State() != Shutdown {
		t.Fatalf("refused cont changed state to %v", c.State())
	}
	c.Reset(CauseHostQMPSystemReset)
	if err := c.Cont(); err != nil {
		t.Fatal(err)
	}
	c.Shutdown(CauseHostQMPQuit, false)
	if c.State() != Running {
		t.Errorf("a shutdown without pause changed the state to %v", c.State())
	}
	want := []string{"RESUME", "SHUTDOWN(guest,guest-shutdown)", "STOP", "RESET(host,host-qmp-system-reset)",
		"RESUME", "SHUTDOWN(host,host-qmp-quit)"}
	if d := cmp.Diff(want, *ev); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
}

func TestPanicAndInternalError(t *testing.T) {
	c := New()
	ev := record(c)
	c.Start()
	c.Panic()
	if c.State() != GuestPanicked {
		t.Fatalf("state %v after panic", c.State())
	}
	if err := c.Cont(); err != nil || !c.Running() {
		t.Fatalf("cont after panic: %v, %v", err, c.State())
	}
	c.Fail()
	if c.State() != InternalError || !c.NeedsReset() {
		t.Fatalf("state %v after Fail", c.State())
	}
	if err := c.Cont(); !errors.Is(err, ErrResetRequired) {
		t.Fatalf("cont in internal-error: %v", err)
	}
	want := []string{"RESUME", "GUEST_PANICKED", "STOP", "RESUME", "STOP"}
	if d := cmp.Diff(want, *ev); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
}

func TestSubscribeCancelAndClock(t *testing.T) {
	c := New()
	at := time.Unix(1700000000, 123456000)
	c.SetClock(func() time.Time { return at })
	var a, b []Event
	cancelA := c.Subscribe(func(e Event) { a = append(a, e) })
	c.Subscribe(func(e Event) { b = append(b, e) })
	c.Powerdown()
	cancelA()
	c.Powerdown()
	if len(a) != 1 || len(b) != 2 {
		t.Fatalf("deliveries: a=%d b=%d, want 1 and 2", len(a), len(b))
	}
	if !a[0].Time.Equal(at) {
		t.Errorf("timestamp %v, want %v", a[0].Time, at)
	}
}
