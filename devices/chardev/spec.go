// Package chardev implements QEMU's character-device backends (-chardev):
// the host side of a serial port or monitor. A Spec is the validated
// description built by the command line; Open turns it into a Backend.
package chardev

import (
	"fmt"
	"io"
)

// Kind is a backend driver name as QEMU spells it.
type Kind string

const (
	Null   Kind = "null"
	Stdio  Kind = "stdio"
	File   Kind = "file"
	Pty    Kind = "pty"
	Pipe   Kind = "pipe"
	Socket Kind = "socket"
)

// Spec describes one character backend.
type Spec struct {
	ID   string // QEMU's id= (also the label printed for pty)
	Kind Kind

	Path string // file, pipe, unix socket
	In   string // file: optional input path (QEMU's in=)
	Host string // tcp socket
	Port string // tcp socket
	FD   int    // socket: an inherited descriptor (libvirt's fd=N), -1 for none

	Server  bool // socket: listen instead of connect
	Wait    bool // socket server: block in Open until a client connects
	Nodelay bool // tcp: TCP_NODELAY

	Append    bool   // file: append instead of truncate
	Logfile   string // copy of everything written to the backend
	LogAppend bool

	Mux    bool // shared by several front ends (mon:stdio, -nographic)
	Signal bool // stdio: Ctrl-C etc. raise signals instead of reaching the guest
}

// IsStdio reports whether the backend uses the process's stdin/stdout, which
// is incompatible with -daemonize.
func (s *Spec) IsStdio() bool { return s.Kind == Stdio }

// IsUnixSocket reports whether the spec is a unix-domain socket.
func (s *Spec) IsUnixSocket() bool { return s.Kind == Socket && s.Path != "" }

// Address is the socket address in QEMU's "unix:PATH" / "tcp:HOST:PORT" form,
// as used in its "waiting for connection" message.
func (s *Spec) Address() string {
	if s.Path != "" {
		return "unix:" + s.Path
	}
	return fmt.Sprintf("tcp:%s:%s", s.Host, s.Port)
}

// Backend is an opened character backend. Read blocks until input arrives and
// returns io.EOF only after Close (or for backends that never have input
// once closed). Write never blocks on an absent peer: QEMU drops output of a
// disconnected socket, and so do we.
type Backend interface {
	io.ReadWriteCloser
}
