// Command initramfs builds the initramfs (a newc cpio archive) for govmm's
// Linux test VMs: /init is the guest agent (guest/agent), /dev/console
// exists so the kernel can give /init a console, and kernel modules can be
// added under /lib/modules for kernels that have virtio as modules.
//
//	go run ./guest/initramfs -o build/initramfs.cpio [-agent path] [-gzip]
//	    [-modules file-or-dir]... [-kmod /lib/modules/VER -load virtio_pci,virtio_blk]
//	    [-file src=dst]...
//
// Without -agent, the agent is built with CGO_ENABLED=0. -modules copies
// module files (*.ko, *.ko.xz, ...) as they are; -kmod/-load resolves the
// named modules' dependencies from modules.dep, adds them, and writes the
// load order to /etc/agent.modules, which the agent loads unless the kernel
// command line has agent.modules=.
package main

import (
	"bufio"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"
)

// moduleListFile holds the modules the agent loads by default, in order;
// guest/agent reads the same path.
const moduleListFile = "etc/agent.modules"

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	var (
		out     = flag.String("o", "", "output cpio file (required)")
		agent   = flag.String("agent", "", "agent binary for /init (default: build ./guest/agent)")
		gz      = flag.Bool("gzip", false, "gzip the archive")
		kmod    = flag.String("kmod", "", "a kernel's module tree (/lib/modules/VERSION) for -load")
		load    = flag.String("load", "", "comma-separated modules to add from -kmod, with their dependencies")
		modules listFlag
		files   listFlag
	)
	flag.Var(&modules, "modules", "module file or directory to add under /lib/modules (repeatable)")
	flag.Var(&files, "file", "extra file as host-path=guest-path (repeatable)")
	flag.Parse()
	if *out == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*out, *agent, *gz, modules, files, *kmod, *load); err != nil {
		fmt.Fprintln(os.Stderr, "initramfs:", err)
		os.Exit(1)
	}
}

func run(out, agent string, gz bool, modules, files []string, kmod, load string) error {
	var b builder
	if agent == "" {
		tmp, err := os.MkdirTemp("", "govmm-agent")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		agent = filepath.Join(tmp, "agent")
		if err := buildAgent(agent); err != nil {
			return err
		}
	}
	if err := b.addHostFile(agent, "init", 0o755); err != nil {
		return err
	}
	for _, m := range modules {
		if err := b.addModules(m); err != nil {
			return err
		}
	}
	if (kmod == "") != (load == "") {
		return fmt.Errorf("-kmod and -load go together")
	}
	if kmod != "" {
		order, err := b.addResolvedModules(kmod, strings.Split(load, ","))
		if err != nil {
			return err
		}
		// The agent loads this list when agent.modules= is not given.
		list := strings.Join(order, ",")
		if err := b.add(cpio.StaticFile(moduleListFile, list+"\n", 0o644)); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "initramfs: /%s: %s\n", moduleListFile, list)
	}
	for _, f := range files {
		src, dst, ok := strings.Cut(f, "=")
		if !ok || src == "" || dst == "" {
			return fmt.Errorf("-file %q: want host-path=guest-path", f)
		}
		fi, err := os.Stat(src)
		if err != nil {
			return err
		}
		if err := b.addHostFile(src, dst, uint64(fi.Mode().Perm())); err != nil {
			return err
		}
	}
	return writeFile(out, gz, b.write)
}

// buildAgent builds the guest agent as a static binary for the guest.
func buildAgent(dst string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", dst, "github.com/govmm/govmm/guest/agent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building the agent: %w", err)
	}
	return nil
}

// writeFile writes the archive to path via a temporary file, so a failed
// build never leaves a truncated initramfs behind.
func writeFile(path string, gz bool, write func(io.Writer) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".initramfs-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriter(tmp)
	var w io.Writer = bw
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(bw)
		w = zw
	}
	err = write(w)
	if err == nil && zw != nil {
		err = zw.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
