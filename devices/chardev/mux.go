package chardev

import (
	"io"
	"sync"
)

// EscapeChar is QEMU's default mux escape, Ctrl-a.
const EscapeChar = 0x01

// Mux shares one backend between several front ends (QEMU's mux=on, used by
// mon:stdio and -nographic). Output of every front end goes to the backend;
// input goes to the front end that has the focus. Ctrl-a commands:
//
//	C-a h    print help          C-a x    quit (calls Quit)
//	C-a c    switch front end    C-a C-a  send C-a
type Mux struct {
	be   Backend
	quit func()

	wmu sync.Mutex // serialises writes to be

	mu       sync.Mutex
	fronts   []*MuxFront
	focus    int
	escaped  bool
	started  bool
	OnFocus  func(i int) // called with the new focus after C-a c (may be nil)
	stopOnce sync.Once
}

// NewMux wraps be. quit is called on C-a x, after "QEMU: Terminated" is
// printed.
func NewMux(be Backend, quit func()) *Mux {
	return &Mux{be: be, quit: quit}
}

// Add creates a front end. The most recently added front end has the focus,
// as in QEMU where the serial port (added after the monitor) starts focused.
func (m *Mux) Add() *MuxFront {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := &MuxFront{m: m, index: len(m.fronts)}
	f.cond = sync.NewCond(&f.mu)
	m.fronts = append(m.fronts, f)
	m.focus = f.index
	return f
}

// Start begins reading the backend; call it after all front ends are added.
func (m *Mux) Start() {
	m.mu.Lock()
	if m.started {
		m.mu.Unlock()
		return
	}
	m.started = true
	m.mu.Unlock()
	go m.readLoop()
}

// Focus is the index of the front end receiving input.
func (m *Mux) Focus() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.focus
}

func (m *Mux) readLoop() {
	buf := make([]byte, 4096)
	for {
		n, err := m.be.Read(buf)
		if n > 0 {
			m.Input(buf[:n])
		}
		if err != nil {
			m.mu.Lock()
			fronts := m.fronts
			m.mu.Unlock()
			for _, f := range fronts {
				f.closeRead()
			}
			return
		}
	}
}

const muxHelp = "\n\r" +
	"C-a h    print this help\n\r" +
	"C-a x    exit emulator\n\r" +
	"C-a s    save disk data back to file (if -snapshot)\n\r" +
	"C-a t    toggle console timestamps\n\r" +
	"C-a b    send break (magic sysrq)\n\r" +
	"C-a c    switch between console and monitor\n\r" +
	"C-a C-a  sends C-a\n\r"

// Input processes bytes from the backend: escape sequences are handled here,
// everything else is queued for the focused front end. Exported so tests and
// callers with their own reader can drive the mux.
func (m *Mux) Input(p []byte) {
	var out []byte
	flush := func() {
		if len(out) == 0 {
			return
		}
		m.mu.Lock()
		f := m.focusedLocked()
		m.mu.Unlock()
		if f != nil {
			f.push(out)
		}
		out = nil
	}
	for _, c := range p {
		m.mu.Lock()
		esc := m.escaped
		m.escaped = false
		if !esc && c == EscapeChar {
			m.escaped = true
			m.mu.Unlock()
			continue
		}
		m.mu.Unlock()
		if !esc {
			out = append(out, c)
			continue
		}
		switch c {
		case EscapeChar:
			out = append(out, c)
		case 'h', 'H', '?':
			flush()
			m.write([]byte(muxHelp))
		case 'x', 'X':
			flush()
			m.write([]byte("QEMU: Terminated\n\r"))
			if m.quit != nil {
				m.quit()
			}
		case 'c', 'C':
			flush()
			m.mu.Lock()
			if len(m.fronts) > 0 {
				m.focus = (m.focus + 1) % len(m.fronts)
			}
			i, cb := m.focus, m.OnFocus
			m.mu.Unlock()
			if cb != nil {
				cb(i)
			}
		default:
			// QEMU ignores unknown commands (s, t, b are not supported here).
		}
	}
	flush()
}

func (m *Mux) focusedLocked() *MuxFront {
	if m.focus < len(m.fronts) {
		return m.fronts[m.focus]
	}
	return nil
}

func (m *Mux) write(p []byte) (int, error) {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	return m.be.Write(p)
}

// Close closes the backend and ends every front end's reads.
func (m *Mux) Close() error {
	var err error
	m.stopOnce.Do(func() {
		err = m.be.Close()
		m.mu.Lock()
		fronts := m.fronts
		m.mu.Unlock()
		for _, f := range fronts {
			f.closeRead()
		}
	})
	return err
}

// MuxFront is one front end of a Mux. It is a Backend; closing a front end
// only ends its own reads.
type MuxFront struct {
	m     *Mux
	index int

	mu     sync.Mutex
	cond   *sync.Cond
	buf    []byte
	closed bool
}

var _ Backend = (*MuxFront)(nil)

// Index is the position of the front end (0 = first added).
func (f *MuxFront) Index() int { return f.index }

func (f *MuxFront) push(p []byte) {
	f.mu.Lock()
	if !f.closed {
		f.buf = append(f.buf, p...)
		f.cond.Broadcast()
	}
	f.mu.Unlock()
}

func (f *MuxFront) closeRead() {
	f.mu.Lock()
	f.closed = true
	f.cond.Broadcast()
	f.mu.Unlock()
}

func (f *MuxFront) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.buf) == 0 && !f.closed {
		f.cond.Wait()
	}
	if len(f.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, f.buf)
	f.buf = f.buf[n:]
	return n, nil
}

func (f *MuxFront) Write(p []byte) (int, error) { return f.m.write(p) }

func (f *MuxFront) Close() error {
	f.closeRead()
	return nil
}
