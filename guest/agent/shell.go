package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// shell execs /bin/sh when the initramfs has one. Otherwise it runs a tiny
// built-in shell on the console and returns at end of input or "exit".
func shell(a *agent) {
	if _, err := os.Stat("/bin/sh"); err == nil {
		err := unix.Exec("/bin/sh", []string{"sh"}, append(os.Environ(), "PATH=/bin:/sbin:/usr/bin:/usr/sbin"))
		fmt.Fprintf(a.out, "agent: exec /bin/sh: %v\n", err)
	}
	builtinShell(a, os.Stdin)
}

const shellHelp = `commands:
  cat FILE...        print files
  ls [DIR]           list a directory
  echo WORD...       print words
  checks [LIST|all]  run checks again (LIST like kernel,blk)
  exit               leave the shell (then agent.exit applies)
`

// builtinShell reads commands from in and writes to a.out.
func builtinShell(a *agent, in io.Reader) {
	sc := bufio.NewScanner(in)
	for {
		fmt.Fprint(a.out, "agent# ")
		if !sc.Scan() {
			fmt.Fprintln(a.out)
			return
		}
		args := strings.Fields(sc.Text())
		if len(args) == 0 {
			continue
		}
		switch args[0] {
		case "help":
			fmt.Fprint(a.out, shellHelp)
		case "exit", "poweroff":
			return
		case "echo":
			fmt.Fprintln(a.out, strings.Join(args[1:], " "))
		case "cat":
			for _, f := range args[1:] {
				b, err := os.ReadFile(f)
				if err != nil {
					fmt.Fprintln(a.out, err)
					continue
				}
				a.out.Write(b)
			}
		case "ls":
			dir := "."
			if len(args) > 1 {
				dir = args[1]
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				fmt.Fprintln(a.out, err)
				continue
			}
			for _, e := range ents {
				fmt.Fprintf(a.out, "%s %s\n", e.Type(), e.Name())
			}
		case "checks":
			cfg := a.cfg
			if len(args) > 1 {
				c, errs := parseConfig("agent.checks=" + args[1])
				if len(errs) > 0 {
					fmt.Fprintln(a.out, errs[0])
					continue
				}
				cfg.checks, cfg.explicit = c.checks, c.explicit
			}
			a.mu.Lock()
			a.cfg, a.passed, a.failed = cfg, 0, nil
			a.mu.Unlock()
			a.run()
		default:
			fmt.Fprintf(a.out, "unknown command %q; try help\n", args[0])
		}
	}
}
