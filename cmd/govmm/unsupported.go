package main

import (
	"errors"

	"github.com/govmm/govmm/cmd/govmm/cli"
)

// checkSupported refuses what the command line accepts but this build of
// the machine cannot do yet, so that nothing is accepted and then ignored.
func checkSupported(r *cli.Result) error {
	c := r.Config
	switch {
	case len(r.Netdevs) > 0:
		return errors.New("-netdev: networking is not supported")
	}
	if c.MachineType == "none" {
		return errors.New("-machine none: govmm has no machine without a CPU")
	}
	return nil
}
