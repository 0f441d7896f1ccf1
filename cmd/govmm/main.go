// Command govmm is a virtual machine monitor that drives /dev/kvm directly
// and accepts qemu-system-x86_64's command line. main only turns argv into
// a machine.Config (package cli), opens the host-side resources, and runs
// the machine; everything else lives in the packages.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"

	"github.com/govmm/govmm/cmd/govmm/cli"
	"github.com/govmm/govmm/cmd/govmm/lifecycle"
	"github.com/govmm/govmm/cmd/govmm/sandbox"
	"github.com/govmm/govmm/devices/chardev"
	"github.com/govmm/govmm/machine"
	"github.com/govmm/govmm/machine/qmp"
	"github.com/govmm/govmm/machine/runstate"
)

// stderr is where messages go: os.Stderr, or a writer that adds QEMU's
// -msg timestamp=on / guest-name=on prefixes.
var stderr io.Writer = os.Stderr

// The main goroutine keeps the process's main thread. vCPU goroutines lock
// themselves to OS threads and name them (-name debug-threads=on); were one
// to land on the main thread (tid == pid), it would rename the process.
func init() { runtime.LockOSThread() }

func main() {
	os.Exit(run(os.Args))
}

func run(args []string) int {
	// As QEMU: a closed stdout is an error on write, not a reason to die.
	signal.Ignore(syscall.SIGPIPE)
	prog := filepath.Base(args[0])
	if ts, gn, name := msgOptions(args[1:]); ts || gn {
		if !gn {
			name = ""
		}
		stderr = &msgWriter{w: os.Stderr, prog: prog, timestamp: ts, guest: name}
	}
	r, err := cli.Parse(prog, args[1:])
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	for _, w := range r.Warnings {
		fmt.Fprintln(stderr, w)
	}
	if r.Exit {
		fmt.Print(r.Output)
		return 0
	}
	if r.Config.ProcessName != "" {
		// -name process=: /proc/self/comm names the thread-group leader,
		// which is what ps and top show.
		os.WriteFile("/proc/self/comm", []byte(r.Config.ProcessName), 0)
	}
	if err := checkSupported(r); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 1
	}

	var daemon *lifecycle.Daemon
	if r.Daemonize {
		if daemon, err = lifecycle.Daemonize(os.Exit); err != nil {
			fmt.Fprintf(stderr, "%s: -daemonize: %v\n", prog, err)
			return 1
		}
	}
	// As QEMU, the seccomp filters go in before anything is opened. The
	// -daemonize parent never gets here (it exits once the child runs), so
	// only the process that runs the VM is filtered.
	for _, so := range r.Sandbox {
		if err := sandbox.Install(so); err != nil {
			fmt.Fprintf(stderr, "%s: -sandbox on: %v\n", prog, err)
			return 1
		}
	}
	if r.PIDFile != "" {
		pf, err := lifecycle.CreatePIDFile(r.PIDFile)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", prog, err)
			return 1
		}
		defer pf.Remove()
	}
	sigs, err := lifecycle.NotifyTermination()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 1
	}

	chardevInfo := describeChardevs(r)
	mons, err := prepareMonitors(r)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer mons.close()
	backends, err := r.OpenChardevs(chardev.Env{Info: cli.InfoToStderr})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer func() {
		for _, b := range backends {
			b.Close()
		}
	}()

	var m *machine.Machine
	quit := func() {
		if m != nil {
			m.Quit(runstate.CauseHostUI)
		}
	}
	fronts := attachFrontEnds(r, backends, quit)
	var logw io.Writer = stderr
	if r.LogFile != "" {
		lf, err := os.OpenFile(r.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintf(stderr, "%s: -D %s: %v\n", prog, r.LogFile, err)
			return 1
		}
		defer lf.Close()
		logw = lf
	}
	m, err = machine.New(*r.Config, machine.Options{
		Log:      logw,
		LogItems: r.LogItems,
		Warn:     func(w string) { fmt.Fprintf(stderr, "%s: warning: %s\n", prog, w) },
		Serial:   fronts.serial,
		Chardev:  func(s *chardev.Spec) io.ReadWriter { return fronts.chardev(s) },
		// With QMP a management program sees an internal error and decides;
		// without, the process ends instead of hanging.
		KeepAliveOnError: mons.hasQMP,
	})
	if err != nil {
		var be *machine.BootError
		if errors.As(err, &be) {
			fmt.Fprintf(stderr, "qemu: %v\n", err) // QEMU's loader says "qemu:" whatever its name
		} else {
			fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		}
		return 1
	}
	defer m.Close()
	mons.start(&vm{m: m, chardevs: chardevInfo(backends)}, r, fronts)
	fronts.start()

	if daemon != nil {
		if err := daemon.Ready(); err != nil {
			fmt.Fprintf(stderr, "%s: -daemonize: %v\n", prog, err)
			return 1
		}
	}

	done := make(chan machine.Result, 1)
	go func() { done <- m.Run() }()
	for {
		select {
		case si := <-sigs:
			fmt.Fprintln(stderr, lifecycle.TerminationMessage(prog, si))
			m.Quit(runstate.CauseHostSignal)
		case res := <-done:
			mons.close() // replies in flight (quit's) go out first
			if res.Err != nil {
				fmt.Fprintf(stderr, "%v\n", res.Err)
			}
			return res.ExitCode
		}
	}
}

// frontEnds are the guest-facing ends of the opened backends.
type frontEnds struct {
	serial   []machine.SerialIO
	monFront map[*chardev.Spec]*chardev.MuxFront
	muxes    []*chardev.Mux
	backends map[*chardev.Spec]chardev.Backend
	muxFor   func(*chardev.Spec) *chardev.Mux
}

// monitorFront is the mux front end reserved for a monitor.
func (f *frontEnds) monitorFront(s *chardev.Spec) *chardev.MuxFront { return f.monFront[s] }

// chardev returns the front end for a device's backend (virtio-serial ports).
func (f *frontEnds) chardev(s *chardev.Spec) io.ReadWriter {
	if s.Mux {
		return f.muxFor(s).Add()
	}
	if b, ok := f.backends[s]; ok {
		return b
	}
	return nil
}

func (f *frontEnds) start() {
	for _, mx := range f.muxes {
		mx.Start()
	}
}

// attachFrontEnds connects serial ports (and, on a mux, the monitor) to
// their backends. A muxed backend gets the monitor first and the serial port
// last, so the serial port has the focus at start, as in QEMU.
func attachFrontEnds(r *cli.Result, backends map[*chardev.Spec]chardev.Backend, quit func()) *frontEnds {
	f := &frontEnds{backends: backends, monFront: map[*chardev.Spec]*chardev.MuxFront{}}
	muxes := map[*chardev.Spec]*chardev.Mux{}
	f.muxFor = func(s *chardev.Spec) *chardev.Mux {
		if mx, ok := muxes[s]; ok {
			return mx
		}
		mx := chardev.NewMux(backends[s], quit)
		muxes[s] = mx
		f.muxes = append(f.muxes, mx)
		return mx
	}
	for _, mon := range r.Monitors {
		if mon.Chardev.Mux {
			f.monFront[mon.Chardev] = f.muxFor(mon.Chardev).Add()
		}
	}
	for _, s := range r.Config.Serial {
		if s == nil {
			f.serial = append(f.serial, machine.SerialIO{})
			continue
		}
		var rw io.ReadWriter = backends[s]
		if s.Mux {
			rw = f.muxFor(s).Add()
		}
		f.serial = append(f.serial, machine.SerialIO{In: rw, Out: rw})
	}
	return f
}

// describeChardevs returns a function giving query-chardev's list once the
// backends are open (a pty's name is known only then).
func describeChardevs(r *cli.Result) func(map[*chardev.Spec]chardev.Backend) []qmp.ChardevInfo {
	all := append([]*chardev.Spec(nil), r.Chardevs...)
	return func(backends map[*chardev.Spec]chardev.Backend) []qmp.ChardevInfo {
		var out []qmp.ChardevInfo
		for _, s := range all {
			out = append(out, qmp.ChardevInfo{Label: s.ID, Filename: chardevFilename(s, backends[s]), FrontendOpen: true})
		}
		return out
	}
}
