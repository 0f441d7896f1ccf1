package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/govmm/govmm/guest/agent/proto"
)

// errSkip marks a check that found nothing to test.
var errSkip = errors.New("skipped")

// agent runs checks and prints their results as proto lines.
type agent struct {
	root  fsRoot // "/" in the guest
	cfg   config
	uname func() (release, version string, err error)

	mu     sync.Mutex // serializes lines on out
	out    io.Writer
	passed int
	failed []string
}

// emit prints one result line. A failing result counts against "done".
func (a *agent) emit(r proto.Result) {
	line, err := r.Line()
	if err != nil { // cannot happen for our detail types; report it anyway
		r = proto.Result{Check: r.Check, Error: err.Error()}
		line, _ = r.Line()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if r.OK {
		a.passed++
	} else {
		a.failed = append(a.failed, r.Check)
	}
	a.out.Write(line) // one write: a result is never split by our own output
}

// report turns a check's outcome into a result and emits it.
func (a *agent) report(check string, detail any, err error) {
	ok := err == nil
	if errors.Is(err, errSkip) && !a.cfg.explicit {
		// The detail of a check that found nothing is empty: leave it out.
		r := proto.Result{Check: check, OK: true, Skipped: true, Error: err.Error()}
		a.emit(r)
		return
	}
	r, encErr := proto.NewResult(check, ok, detail)
	if encErr != nil {
		r.OK, err = false, encErr
	}
	if err != nil {
		r.Error = err.Error()
	}
	a.emit(r)
}

// runCheck runs one check with the configured time-out. A check that hangs
// (a device that never answers) is reported as failed; its goroutine is
// abandoned, which is fine in a VM that is about to power off.
func (a *agent) runCheck(name string) {
	type outcome struct {
		detail any
		err    error
	}
	done := make(chan outcome, 1)
	go func() {
		d, err := a.check(name)
		done <- outcome{d, err}
	}()
	select {
	case o := <-done:
		a.report(name, o.detail, o.err)
	case <-time.After(a.cfg.timeout):
		a.report(name, nil, fmt.Errorf("timed out after %v", a.cfg.timeout))
	}
}

func (a *agent) check(name string) (any, error) {
	switch name {
	case proto.CheckKernel:
		rel, ver, err := a.uname()
		if err != nil {
			return nil, err
		}
		d, err := a.root.kernelInfo(rel, ver)
		if err == nil && d.CPUsOnline == 0 {
			err = errors.New("no CPU online")
		}
		return d, err
	case proto.CheckPCI:
		d, err := a.root.pciDevices()
		if errors.Is(err, fs.ErrNotExist) || err == nil && len(d) == 0 {
			return d, fmt.Errorf("%w: no PCI devices", errSkip)
		}
		return d, err
	case proto.CheckVirtio:
		d, err := a.root.virtioDevices()
		if errors.Is(err, fs.ErrNotExist) || err == nil && len(d) == 0 {
			return d, fmt.Errorf("%w: no virtio devices", errSkip)
		}
		return d, err
	case proto.CheckBlk:
		dev := a.root.path(a.cfg.disk)
		if !waitExists(dev, min(a.cfg.timeout/2, 5*time.Second)) {
			return nil, fmt.Errorf("%w: no %s", errSkip, a.cfg.disk)
		}
		d, err := blkPattern(dev, a.cfg.blkOffset, a.cfg.blkLength, a.cfg.blkSeed)
		d.Device = a.cfg.disk
		return d, err
	case proto.CheckRNG:
		return a.rng()
	case proto.CheckConsole:
		return a.console()
	}
	return nil, fmt.Errorf("unknown check %q", name)
}

func (a *agent) rng() (proto.RNGDetail, error) {
	var d proto.RNGDetail
	cur, err := a.root.readTrim("sys/class/misc/hw_random/rng_current")
	if errors.Is(err, fs.ErrNotExist) || cur == "none" {
		return d, fmt.Errorf("%w: no hardware RNG", errSkip)
	}
	d.Current = cur
	f, err := os.Open(a.root.path("dev/hwrng"))
	if err != nil {
		return d, err
	}
	defer f.Close()
	buf := make([]byte, 64)
	n, err := io.ReadFull(f, buf)
	d.Bytes, d.Hex = n, hex.EncodeToString(buf[:n])
	if err != nil {
		return d, fmt.Errorf("read /dev/hwrng: %w", err)
	}
	if allZero(buf) {
		return d, errors.New("/dev/hwrng returned 64 zero bytes")
	}
	return d, nil
}

func (a *agent) console() (proto.ConsoleDetail, error) {
	d := proto.ConsoleDetail{Device: "/dev/hvc0", Line: "govmm-agent: hello from virtio-console"}
	p := a.root.path("dev/hvc0")
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		return d, fmt.Errorf("%w: no /dev/hvc0", errSkip)
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return d, err
	}
	defer f.Close()
	if _, err := io.WriteString(f, d.Line+"\n"); err != nil {
		return d, err
	}
	return d, nil
}

// run loads the requested modules and runs the configured checks. It ends
// with the "done" line and reports whether everything passed.
func (a *agent) run() bool {
	a.loadModules()
	for _, c := range a.cfg.checks {
		a.runCheck(c)
	}
	return a.done()
}

// loadModules loads agent.modules=, or else the initramfs's
// /etc/agent.modules, and reports the "modules" check if there were any.
func (a *agent) loadModules() {
	names := a.cfg.modules
	if !a.cfg.modulesSet {
		var err error
		if names, err = a.root.defaultModules(); err != nil {
			a.report(proto.CheckModules, nil, err)
			return
		}
	}
	if len(names) == 0 {
		return
	}
	d, err := a.root.loadModules(names)
	a.report(proto.CheckModules, d, err)
	a.cfg.modules, a.cfg.modulesSet = nil, true // once is enough (shell "checks")
}

func (a *agent) done() bool {
	a.mu.Lock()
	d := proto.DoneDetail{Passed: a.passed, Failed: append([]string{}, a.failed...)}
	a.mu.Unlock()
	ok := len(d.Failed) == 0
	r, _ := proto.NewResult(proto.CheckDone, ok, d)
	line, _ := r.Line()
	a.out.Write(line)
	return ok
}

// waitExists polls for p, which a driver's probe may create a little after
// its module was loaded.
func waitExists(p string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if _, err := os.Stat(p); err == nil {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// cmdlineString trims /proc/cmdline contents.
func cmdlineString(b []byte) string { return strings.TrimSpace(string(b)) }
