package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/govmm/govmm/cmd/govmm/cli"
	"github.com/govmm/govmm/devices/chardev"
	"github.com/govmm/govmm/machine"
	"github.com/govmm/govmm/machine/hmp"
	"github.com/govmm/govmm/machine/qmp"
	"github.com/govmm/govmm/machine/runstate"
)

// vm adapts the machine's Go API to what the monitors need (qmp.Machine).
type vm struct {
	m        *machine.Machine
	chardevs []qmp.ChardevInfo
}

func (v *vm) Status() runstate.State { return v.m.State() }
func (v *vm) Stop() error            { return v.m.Pause() }
func (v *vm) Cont() error            { return v.m.Resume() }
func (v *vm) SystemReset() error     { return v.m.Reset() }
func (v *vm) SystemPowerdown() error { return v.m.PowerButton() }
func (v *vm) Quit() error            { return v.m.Shutdown(runstate.CauseHostQMPQuit) }
func (v *vm) Name() string           { return v.m.Config().Name }
func (v *vm) UUID() string           { return v.m.Config().UUID }
func (v *vm) KVM() qmp.KVMInfo       { return qmp.KVMInfo{Enabled: true, Present: true} }
func (v *vm) Chardevs() []qmp.ChardevInfo {
	return v.chardevs
}
func (v *vm) Subscribe(fn func(runstate.Event)) func() { return v.m.Subscribe(fn) }

// EmulationCounts makes "info emulation" available (hmp.EmulationCounter).
func (v *vm) EmulationCounts() map[string]uint64 { return v.m.EmulationCounts() }

func (v *vm) CPUs() []qmp.CPUInfo {
	var out []qmp.CPUInfo
	for _, c := range v.m.CPUs() {
		out = append(out, qmp.CPUInfo{
			Index: c.Index, ThreadID: c.ThreadID, SocketID: c.Socket, CoreID: c.Core, Thread: c.Thread,
			QOMPath: fmt.Sprintf("/machine/unattached/device[%d]", c.Index),
		})
	}
	return out
}

// driveName is the name QEMU gives a drive: its id, or virtioN for
// -drive if=virtio without one.
func driveName(d machine.DriveInfo, i int) string {
	if d.Config.ID != "" {
		return d.Config.ID
	}
	return fmt.Sprintf("virtio%d", i)
}

func (v *vm) Blocks() []qmp.BlockInfo {
	var out []qmp.BlockInfo
	for i, d := range v.m.Drives() {
		c := d.Config
		format := c.Format
		if format == "" {
			format = "raw"
		}
		file := c.File
		if abs, err := filepath.Abs(file); err == nil && !c.Snapshot {
			file = abs
		}
		var actual int64 = -1
		if st, err := os.Stat(c.File); err == nil {
			actual = st.Size()
		}
		writeback := c.Cache != "writethrough" && c.Cache != "directsync"
		out = append(out, qmp.BlockInfo{
			Device:   driveName(d, i),
			QDev:     fmt.Sprintf("/machine/peripheral-anon/device[%d]/virtio-backend", i),
			IOStatus: "ok",
			Inserted: &qmp.BlockDeviceInfo{
				File: file, NodeName: fmt.Sprintf("#block%03d", i*2+1), ReadOnly: d.ReadOnly, Driver: format,
				Image: qmp.ImageInfo{Filename: file, Format: format, VirtualSize: d.Size, ActualSize: actual},
				Cache: qmp.BlockCache{Writeback: writeback, Direct: c.Cache == "none" || c.Cache == "directsync", NoFlush: c.Cache == "unsafe"},
			},
		})
	}
	return out
}

func (v *vm) BlockStats() []qmp.BlockStats {
	var out []qmp.BlockStats
	for i, d := range v.m.Drives() {
		s := d.Stats
		st := qmp.BlockStats{
			Device:   driveName(d, i),
			NodeName: fmt.Sprintf("#block%03d", i*2+1),
			QDev:     fmt.Sprintf("/machine/peripheral-anon/device[%d]/virtio-backend", i),
		}
		st.Stats.RdBytes, st.Stats.WrBytes = s.RdBytes, s.WrBytes
		st.Stats.RdOperations, st.Stats.WrOperations = s.RdOps, s.WrOps
		st.Stats.FlushOperations, st.Stats.UnmapOperations = s.FlushOps, s.UnmapOps
		out = append(out, st)
	}
	return out
}

// chardevFilename is QEMU's description of a backend in query-chardev.
func chardevFilename(s *chardev.Spec, b chardev.Backend) string {
	switch s.Kind {
	case chardev.Socket:
		f := strings.TrimPrefix(s.Address(), "")
		if s.Server {
			f = "disconnected:" + f + ",server=on"
		}
		return f
	case chardev.Pty:
		if n, ok := b.(interface{ Name() string }); ok {
			return "pty:" + n.Name()
		}
		return "pty"
	case chardev.File, chardev.Pipe:
		return string(s.Kind)
	}
	return string(s.Kind)
}

// monitors are the QMP servers and human monitors of a run.
type monitors struct {
	qmp       []*qmp.Server
	listeners []net.Listener // bound before the backends open; served once the VM exists
	pending   []func(*vm)
	hasQMP    bool
}

// prepareMonitors binds the socket servers of -qmp/-monitor/-mon (so that
// several QMP clients can connect, which a chardev backend does not allow)
// and takes them out of the list of backends to open. A server with wait=on
// accepts its first client here, before the guest starts, as QEMU does.
func prepareMonitors(r *cli.Result) (*monitors, error) {
	mons := &monitors{}
	keep := r.Chardevs[:0:0]
	socketMon := map[*chardev.Spec]*cli.Monitor{}
	for _, mon := range r.Monitors {
		if mon.Control {
			mons.hasQMP = true
		}
		if s := mon.Chardev; s.Kind == chardev.Socket && s.Server && !s.Mux && s.FD < 0 {
			socketMon[s] = mon
		}
	}
	for _, s := range r.Chardevs {
		mon, ok := socketMon[s]
		if !ok {
			keep = append(keep, s)
			continue
		}
		ln, err := chardev.Listen(s)
		if err != nil {
			mons.close()
			return nil, &cli.Error{Prog: r.Prog(), Opt: r.Origin(s), Msg: err.Error()}
		}
		mons.listeners = append(mons.listeners, ln)
		var first net.Conn
		if s.Wait {
			fmt.Fprintf(os.Stderr, "%s: %s: info: QEMU waiting for connection on: disconnected:%s,server=on\n", r.Prog(), r.Origin(s), s.Address())
			if first, err = ln.Accept(); err != nil {
				mons.close()
				return nil, &cli.Error{Prog: r.Prog(), Opt: r.Origin(s), Msg: err.Error()}
			}
		}
		control := mon.Control
		mons.pending = append(mons.pending, func(v *vm) {
			if control {
				srv := mons.newQMP(v)
				if first != nil {
					go srv.ServeConn(first)
				}
				go srv.Serve(ln)
				return
			}
			h := hmp.New(v, qmpVersion())
			if first != nil {
				go func() { h.Serve(first); first.Close() }()
			}
			go h.ServeListener(ln)
		})
	}
	r.Chardevs = keep
	return mons, nil
}

func qmpVersion() qmp.Version {
	return qmp.Version{Major: 7, Minor: 2, Micro: 0, Package: "govmm " + cli.Version}
}

func (mons *monitors) newQMP(v *vm) *qmp.Server {
	h := hmp.New(v, qmpVersion())
	srv := qmp.NewServer(qmp.Config{Machine: v, Version: qmpVersion(), HMP: h.Execute})
	mons.qmp = append(mons.qmp, srv)
	return srv
}

// start serves every monitor: the bound sockets, and the monitors on opened
// backends (stdio, pty, a chardev socket, a mux front end).
func (mons *monitors) start(v *vm, r *cli.Result, f *frontEnds) {
	for _, p := range mons.pending {
		p(v)
	}
	for _, mon := range r.Monitors {
		var rw io.ReadWriter
		switch {
		case mon.Chardev.Mux && !mon.Control:
			serveOnFocus(f.muxFor(mon.Chardev), f.monitorFront(mon.Chardev), v)
			continue
		case mon.Chardev.Mux:
			rw = f.monitorFront(mon.Chardev)
		default:
			b, ok := f.backends[mon.Chardev]
			if !ok {
				continue // a bound socket, served above
			}
			rw = b
		}
		if rw == nil {
			continue
		}
		if mon.Control {
			go mons.newQMP(v).ServeConn(rw)
		} else {
			go hmp.New(v, qmpVersion()).Serve(rw)
		}
	}
}

// close flushes and closes the QMP servers (replies in flight go out first)
// and the listeners.
func (mons *monitors) close() {
	for _, s := range mons.qmp {
		s.Close()
	}
	for _, l := range mons.listeners {
		l.Close()
	}
}

// serveOnFocus runs a human monitor on a mux front end the way QEMU's
// -nographic does: nothing is printed until Ctrl-a c first gives the
// monitor the focus (then the banner and prompt); leaving it prints a line
// end, coming back the prompt.
func serveOnFocus(mx *chardev.Mux, front *chardev.MuxFront, v *vm) {
	started := false
	focused := false
	mx.OnFocus = func(i int) {
		switch {
		case i == front.Index() && !started:
			started, focused = true, true
			go hmp.New(v, qmpVersion()).Serve(front)
		case i == front.Index():
			focused = true
			io.WriteString(front, "(qemu) ")
		case focused:
			focused = false
			io.WriteString(front, "\r\n")
		}
	}
}
