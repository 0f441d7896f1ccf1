package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/govmm/govmm/cmd/govmm/cli"
)

// checkSupported refuses what the command line accepts but this build of
// the machine cannot do yet, so that nothing is accepted and then ignored.
func checkSupported(r *cli.Result) error {
	c := r.Config
	switch {
	case len(r.Netdevs) > 0:
		return errors.New("-netdev: networking is not supported")
	case c.StartPaused:
		return errors.New("-S: starting paused needs the QMP server, not available yet")
	}
	for _, mon := range r.Monitors {
		if !mon.Chardev.Mux {
			kind := "-monitor"
			if mon.Control {
				kind = "-qmp"
			}
			return fmt.Errorf("%s: the monitor is not available yet", kind)
		}
	}
	if c.MachineType == "none" {
		return errors.New("-machine none: govmm has no machine without a CPU")
	}
	return nil
}

// monitorFrontEnd serves the human monitor on a mux front end (Ctrl-a c).
func monitorFrontEnd(rw io.ReadWriter) {
	go io.Copy(io.Discard, rw)
}
