package chardev

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
)

func socketTarget(s *Spec) (network, addr string) {
	if s.Path != "" {
		return "unix", s.Path
	}
	return "tcp", net.JoinHostPort(s.Host, s.Port)
}

// display is the address as QEMU prints it in errors: the path, or HOST:PORT.
func display(s *Spec) string {
	if s.Path != "" {
		return s.Path
	}
	return s.Host + ":" + s.Port
}

func openSocket(s *Spec, env Env) (Backend, error) {
	network, addr := socketTarget(s)
	if s.FD >= 0 && s.Path == "" && s.Host == "" {
		return openSocketFD(s, env)
	}
	if !s.Server {
		c, err := net.Dial(network, addr)
		if err != nil {
			return nil, fmt.Errorf("Failed to connect to '%s': %s", display(s), Strerror(err))
		}
		setNodelay(c, s.Nodelay)
		return &clientBackend{conn: c}, nil
	}
	ln, err := Listen(s)
	if err != nil {
		return nil, err
	}
	return serve(s, ln, env)
}

// Listen binds a socket server spec (unix or tcp) and returns the listener,
// for servers that take several clients themselves (QMP). Errors read as
// QEMU's.
func Listen(s *Spec) (net.Listener, error) {
	network, addr := socketTarget(s)
	if network == "unix" {
		// QEMU unlinks a stale socket file before binding.
		os.Remove(s.Path)
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("Failed to bind socket to %s: %s", display(s), Strerror(err))
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false)
	}
	return ln, nil
}

// openSocketFD adopts an inherited socket: a listening one for a server (as
// libvirt passes), a connected one for a client.
func openSocketFD(s *Spec, env Env) (Backend, error) {
	f := os.NewFile(uintptr(s.FD), fmt.Sprintf("fd%d", s.FD))
	if f == nil {
		return nil, fmt.Errorf("File descriptor '%d' not found", s.FD)
	}
	defer f.Close() // net.File* dup the descriptor
	if s.Server {
		ln, err := net.FileListener(f)
		if err != nil {
			return nil, fmt.Errorf("Failed to use fd %d: %s", s.FD, Strerror(err))
		}
		return serve(s, ln, env)
	}
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("Failed to use fd %d: %s", s.FD, Strerror(err))
	}
	return &clientBackend{conn: c}, nil
}

func serve(s *Spec, ln net.Listener, env Env) (Backend, error) {
	if ul, ok := ln.(*net.UnixListener); ok {
		// Close must not remove a path another process may have taken over.
		ul.SetUnlinkOnClose(false)
	}
	b := &serverBackend{ln: ln, nodelay: s.Nodelay}
	b.cond = sync.NewCond(&b.mu)
	if s.Wait {
		env.Info(fmt.Sprintf("QEMU waiting for connection on: disconnected:%s,server=on", s.Address()))
		c, err := ln.Accept()
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("Failed to accept on %s: %s", display(s), Strerror(err))
		}
		b.setConn(c)
	}
	go b.acceptLoop()
	return b, nil
}

func setNodelay(c net.Conn, on bool) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(on)
	}
}

// clientBackend is a connected socket. QEMU without reconnect= stays
// disconnected once the peer goes away; so do we: reads then return EOF and
// writes are dropped.
type clientBackend struct {
	conn net.Conn
}

func (c *clientBackend) Read(p []byte) (int, error) { return c.conn.Read(p) }
func (c *clientBackend) Write(p []byte) (int, error) {
	c.conn.Write(p)
	return len(p), nil
}
func (c *clientBackend) Close() error { return c.conn.Close() }

// serverBackend listens and serves one client at a time. As in QEMU, while a
// client is connected no other is accepted (it waits in the listen backlog
// until the first disconnects); output with no client is dropped.
type serverBackend struct {
	ln      net.Listener
	nodelay bool

	mu     sync.Mutex
	cond   *sync.Cond
	conn   net.Conn
	closed bool
}

func (b *serverBackend) setConn(c net.Conn) {
	setNodelay(c, b.nodelay)
	b.mu.Lock()
	b.conn = c
	b.cond.Broadcast()
	b.mu.Unlock()
}

func (b *serverBackend) acceptLoop() {
	for {
		// Wait until there is no client before accepting the next.
		b.mu.Lock()
		for b.conn != nil && !b.closed {
			b.cond.Wait()
		}
		closed := b.closed
		b.mu.Unlock()
		if closed {
			return
		}
		c, err := b.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			c.Close()
			return
		}
		b.mu.Unlock()
		b.setConn(c)
	}
}

// drop forgets c if it is still the current client and wakes the acceptor.
func (b *serverBackend) drop(c net.Conn) {
	b.mu.Lock()
	if b.conn == c {
		b.conn = nil
		c.Close()
		b.cond.Broadcast()
	}
	b.mu.Unlock()
}

// Connected reports whether a client is connected.
func (b *serverBackend) Connected() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.conn != nil
}

func (b *serverBackend) Read(p []byte) (int, error) {
	for {
		b.mu.Lock()
		for b.conn == nil && !b.closed {
			b.cond.Wait()
		}
		if b.closed {
			b.mu.Unlock()
			return 0, io.EOF
		}
		c := b.conn
		b.mu.Unlock()
		n, err := c.Read(p)
		if n > 0 {
			return n, nil
		}
		if err != nil {
			b.drop(c)
		}
	}
}

func (b *serverBackend) Write(p []byte) (int, error) {
	b.mu.Lock()
	c := b.conn
	b.mu.Unlock()
	if c == nil {
		return len(p), nil
	}
	if _, err := c.Write(p); err != nil {
		b.drop(c)
	}
	return len(p), nil
}

func (b *serverBackend) Close() error {
	b.mu.Lock()
	b.closed = true
	if b.conn != nil {
		b.conn.Close()
		b.conn = nil
	}
	b.cond.Broadcast()
	b.mu.Unlock()
	return b.ln.Close()
}
