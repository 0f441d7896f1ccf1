// Package cli parses QEMU's command line (qemu-system-x86_64 syntax) into a
// machine.Config plus process-level options. Everything is validated here,
// before any guest runs, and errors read exactly as QEMU's.
package cli

import "strings"

// Error is a command-line error formatted as QEMU prints it:
//
//	PROG: OPTION AS GIVEN: message
//	hint lines
//
// Opt is empty for errors QEMU reports without an option location (for
// example the -smp topology check, which runs at machine creation).
type Error struct {
	Prog string // basename of argv[0]
	Opt  string // e.g. "-m 12Q"; empty when QEMU prints none
	Msg  string
	Hint string // extra lines QEMU prints after the message (no trailing newline)

	// Warnings QEMU would have printed before the error, complete lines.
	Warnings []string
	// Text, when set, replaces the whole message (QEMU prints some errors,
	// such as the -d item list, without its usual prefix).
	Text string
}

func (e *Error) Error() string {
	var b strings.Builder
	for _, w := range e.Warnings {
		b.WriteString(w)
		b.WriteString("\n")
	}
	if e.Text != "" {
		b.WriteString(e.Text)
		return b.String()
	}
	b.WriteString(e.Prog)
	b.WriteString(": ")
	if e.Opt != "" {
		b.WriteString(e.Opt)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Hint != "" {
		b.WriteString("\n")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// ExitCode is the process exit status QEMU uses for command-line errors.
func (e *Error) ExitCode() int { return 1 }

// optError is an error from a translator; Parse adds the program and option.
type optError struct {
	msg, hint string
	noLoc     bool // QEMU reports it without the option location
}

func (e *optError) Error() string { return e.msg }

func errf(msg string) error          { return &optError{msg: msg} }
func errHint(msg, hint string) error { return &optError{msg: msg, hint: hint} }
func errNoLoc(msg string) error      { return &optError{msg: msg, noLoc: true} }
func errNoLocHint(m, h string) error { return &optError{msg: m, hint: h, noLoc: true} }
