// Package qmp is a QMP server (QEMU Machine Protocol, docs/interop/qmp-spec
// of QEMU 7.2) over any number of connections: unix or tcp listeners, and
// already-connected streams such as a -chardev socket or stdio.
//
// The bytes on the wire follow QEMU 7.2: one JSON object per line ended by
// CRLF, members in QEMU's order, the same greeting, error classes and
// messages, events with timestamps sent to every client that has negotiated
// capabilities, and an event caused by a command sent before its reply.
package qmp

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/govmm/govmm/machine/qmp/qjson"
	"github.com/govmm/govmm/machine/runstate"
)

// Config configures a Server.
type Config struct {
	Machine Machine
	Version Version // the zero Version means DefaultVersion
	// HMP runs one human monitor command line and returns its output, for
	// human-monitor-command (hmp.Monitor.Execute). Nil leaves the command out.
	HMP func(cmdline string) string
}

// Server serves QMP. Commands from all clients run one at a time, as under
// QEMU's big lock.
type Server struct {
	cfg    Config
	cancel func()

	dispatchMu sync.Mutex // held while a command runs and its reply is queued
	closed     bool       // under dispatchMu

	mu        sync.Mutex
	clients   map[*client]bool
	listeners map[net.Listener]bool
	// While a command is in flight, events the guest caused wait until its
	// reply is queued: QEMU's main loop runs a command to completion before
	// it looks at the guest again, so such an event never precedes the
	// reply there. Events the command caused (RESUME for cont) go at once.
	inFlight bool     // under mu
	deferred [][]byte // under mu: guest events held back for the reply
}

// NewServer returns a Server for cfg.Machine and subscribes to its events.
func NewServer(cfg Config) *Server {
	if cfg.Version == (Version{}) {
		cfg.Version = DefaultVersion
	}
	s := &Server{cfg: cfg, clients: map[*client]bool{}, listeners: map[net.Listener]bool{}}
	s.cancel = cfg.Machine.Subscribe(s.broadcast)
	return s
}

// Serve accepts connections on l until l fails or the server is closed,
// serving each one in its own goroutine. It returns nil after Close.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.listeners == nil {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	s.listeners[l] = true
	s.mu.Unlock()
	for {
		conn, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.listeners == nil
			s.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		go s.ServeConn(conn)
	}
}

// ServeConn serves one already-connected stream, sending the greeting
// first. It returns at end of input, on a read error, or after Close
// (which closes rw when it is an io.Closer).
func (s *Server) ServeConn(rw io.ReadWriter) {
	c := newClient(s, rw)
	s.mu.Lock()
	if s.clients == nil {
		s.mu.Unlock()
		return
	}
	s.clients[c] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.clients, c)
		s.mu.Unlock()
		c.stop()
	}()

	c.send(qjson.NewDict("QMP", qjson.NewDict(
		"version", versionValue(s.cfg.Version),
		"capabilities", []qjson.Value{"oob"})))
	dec := qjson.NewDecoder(func(v qjson.Value, err error) { s.handle(c, v, err) })
	buf := make([]byte, 4096)
	for {
		n, err := rw.Read(buf)
		dec.Feed(buf[:n])
		if err != nil {
			return
		}
	}
}

// Close stops accepting, waits for the command in progress (whose reply is
// sent), flushes what is queued for each client, and closes the
// connections. It must not be called from inside a Machine method invoked
// by the server (such as Quit): that would wait for itself.
func (s *Server) Close() error {
	s.dispatchMu.Lock()
	s.closed = true
	s.dispatchMu.Unlock()
	s.cancel()

	s.mu.Lock()
	ls, cs := s.listeners, s.clients
	s.listeners, s.clients = nil, nil
	s.mu.Unlock()
	for l := range ls {
		l.Close()
	}
	for c := range cs {
		c.flush(2 * time.Second)
		c.stop()
		if cl, ok := c.rw.(io.Closer); ok {
			cl.Close()
		}
	}
	return nil
}

// broadcast sends a machine event to every client past negotiation.
func (s *Server) broadcast(ev runstate.Event) {
	us := ev.Time.UnixMicro()
	msg := qjson.NewDict(
		"event", ev.Kind.String(),
		"timestamp", qjson.NewDict("seconds", us/1e6, "microseconds", us%1e6))
	switch ev.Kind {
	case runstate.EventShutdown, runstate.EventReset:
		msg.Set("data", qjson.NewDict("guest", ev.Reason.ByGuest(), "reason", ev.Reason.String()))
	case runstate.EventGuestPanicked:
		msg.Set("data", qjson.NewDict("action", ev.Action))
	}
	line := append(qjson.Marshal(msg), '\r', '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inFlight && byGuest(ev) {
		s.deferred = append(s.deferred, line)
		return
	}
	s.queueAll(line)
}

// byGuest reports whether the guest, not a command, caused ev.
func byGuest(ev runstate.Event) bool {
	switch ev.Kind {
	case runstate.EventShutdown, runstate.EventReset:
		return ev.Reason.ByGuest()
	case runstate.EventGuestPanicked:
		return true
	}
	return false
}

// queueAll queues an event line for every negotiated client. s.mu is held.
func (s *Server) queueAll(line []byte) {
	for c := range s.clients {
		if c.isNegotiated() {
			c.queue(line)
		}
	}
}

// setInFlight marks a command running (true) or done; at the end it sends
// the guest events held back meanwhile, after the reply.
func (s *Server) setInFlight(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight = on
	if !on {
		for _, l := range s.deferred {
			s.queueAll(l)
		}
		s.deferred = nil
	}
}

// handle answers one decoded message (or decoding error).
func (s *Server) handle(c *client, v qjson.Value, perr error) {
	s.dispatchMu.Lock()
	defer s.dispatchMu.Unlock()
	if s.closed {
		return
	}
	if perr != nil {
		c.send(errorResponse(nil, ClassGeneric, perr.Error()))
		return
	}
	s.setInFlight(true)
	reply := s.dispatch(c, v)
	c.send(reply)
	s.setInFlight(false)
}

// client is one connection.
type client struct {
	s  *Server
	rw io.ReadWriter

	mu         sync.Mutex
	cond       *sync.Cond
	out        [][]byte
	writing    bool
	dead       bool
	negotiated bool
	oob        bool
	done       chan struct{}
}

func newClient(s *Server, rw io.ReadWriter) *client {
	c := &client{s: s, rw: rw, done: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	go c.writer()
	return c
}

func (c *client) isNegotiated() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.negotiated
}

func (c *client) send(msg *qjson.Dict) {
	c.queue(append(qjson.Marshal(msg), '\r', '\n'))
}

// queue appends a line for the writer goroutine; it never blocks, so a slow
// client cannot hold up the machine's events.
func (c *client) queue(line []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return
	}
	c.out = append(c.out, line)
	c.cond.Broadcast()
}

func (c *client) writer() {
	defer close(c.done)
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for len(c.out) == 0 && !c.dead {
			c.cond.Wait()
		}
		if len(c.out) == 0 {
			return // dead and drained
		}
		line := c.out[0]
		c.out = c.out[1:]
		c.writing = true
		c.mu.Unlock()
		_, err := c.rw.Write(line)
		c.mu.Lock()
		c.writing = false
		c.cond.Broadcast()
		if err != nil {
			c.dead = true
			c.out = nil
		}
	}
}

// flush waits until everything queued has been written, or for timeout.
func (c *client) flush(timeout time.Duration) {
	done := make(chan struct{})
	go func() {
		c.mu.Lock()
		for (len(c.out) > 0 || c.writing) && !c.dead {
			c.cond.Wait()
		}
		c.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

// stop ends the writer after what is queued has been written.
func (c *client) stop() {
	c.mu.Lock()
	c.dead = true
	c.cond.Broadcast()
	c.mu.Unlock()
}
