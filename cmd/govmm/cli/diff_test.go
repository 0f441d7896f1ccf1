package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govmm/govmm/devices/chardev"
)

var devNull, _ = os.Open(os.DevNull)

const qemuBin = "qemu-system-x86_64"

// diffCases are command lines run through Parse and through the real QEMU.
// Every case gets "-display none -S" (so QEMU waits instead of running a
// guest); a QEMU still running after a second has accepted the command line.
var diffCases = [][]string{
	// accepted
	{"-M", "pc", "-accel", "kvm", "-m", "1.5G", "-smp", "2"},
	{"-M", "q35", "-enable-kvm", "-m", "size=256M", "-smp", "cpus=2,sockets=1,cores=2,threads=1"},
	{"-M", "microvm", "-accel", "kvm", "-nodefaults", "-no-user-config", "-no-reboot", "-no-shutdown"},
	{"-M", "pc", "-accel", "kvm", "-name", "guest=vm1,debug-threads=on", "-uuid", "c7a5fdbd-cdaf-9455-926a-d65c16db1809"},
	{"-M", "pc", "-accel", "kvm", "-smp", "4,sockets=2", "-m", "1G,slots=2,maxmem=4G"},
	{"-M", "pc", "-accel", "kvm", "-smp", "2,dies=2"},
	{"-M", "pc", "-accel", "kvm", "-smp", "sockets=2,cores=2"},
	{"-M", "pc", "-accel", "kvm", "-cpu", "qemu64,+avx,-sse,pmu=off"},
	{"-M", "pc", "-accel", "kvm", "-chardev", "socket,id=c,path=@DIR@/c.sock,server=on,wait=off", "-mon", "chardev=c,mode=control,pretty=on"},
	{"-M", "pc", "-accel", "kvm", "-chardev", "socket,id=c,path=@DIR@/d.sock,server,nowait", "-mon", "c"},
	{"-M", "pc", "-accel", "kvm", "-qmp", "unix:@DIR@/q.sock,server,nowait"},
	{"-M", "pc", "-accel", "kvm", "-serial", "file:@DIR@/serial.log", "-serial", "null", "-serial", "none"},
	{"-M", "pc", "-accel", "kvm", "-chardev", "null,id=n0", "-serial", "chardev:n0"},
	{"-M", "pc", "-accel", "kvm", "-chardev", "file,id=f,path=@DIR@/f,,x.log", "-device", "virtio-serial-pci", "-device", "virtconsole,chardev=f"},
	{"-M", "pc", "-accel", "kvm", "-drive", "file=@DIR@/disk.img,if=virtio,format=raw"},
	{"-M", "pc", "-accel", "kvm", "-drive", "file=@DIR@/disk.img,if=none,id=d0,format=raw,cache=none,aio=threads,discard=unmap", "-device", "virtio-blk-pci,drive=d0,serial=abc,num-queues=2"},
	{"-M", "pc", "-accel", "kvm", "-blockdev", `{"driver":"raw","node-name":"n0","file":{"driver":"file","filename":"@DIR@/disk.img"}}`, "-device", `{"driver":"virtio-blk-pci","drive":"n0","id":"blk0"}`},
	{"-M", "pc", "-accel", "kvm", "-object", "rng-random,id=r0,filename=/dev/urandom", "-device", "virtio-rng-pci,rng=r0"},
	{"-M", "pc", "-accel", "kvm", "-device", `{"driver":"virtio-rng-pci","id":"rng0"}`},
	{"-M", "pc", "-accel", "kvm", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"},
	{"-M", "pc", "-accel", "kvm", "-rtc", "base=utc,clock=host,driftfix=slew", "-boot", "order=cd,strict=on"},
	{"-M", "pc", "-accel", "kvm", "-rtc", "base=2006-06-17T16:01:21"},
	{"-M", "pc", "-accel", "kvm", "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny", "-msg", "timestamp=on"},
	{"-M", "pc", "-accel", "kvm", "-netdev", "user,id=n"},
	{"-M", "pc", "-accel", "kvm", "-smp", "0"},
	{"-M", "pc", "-accel", "kvm", "-pidfile", "@DIR@/pid", "-D", "@DIR@/log", "-d", "guest_errors,unimp"},
	{"--machine", "pc", "--accel", "kvm", "-m", "0"},
	// refused the same way
	{"-nosuchopt"},
	{"-m=1G"},
	{"-kernel"},
	{"-m", "12Q"},
	{"-m", "foo"},
	{"-m", "size=1G,foo=1"},
	{"-M", "pc", "-m", "1G,slots=2"},
	{"-M", "pc", "-m", "1G,maxmem=512M"},
	{"-M", "pc", "-smp", "cpus=2,sockets=2,cores=2,threads=1"},
	{"-M", "pc", "-smp", "cpus=3,sockets=2"},
	{"-M", "pc", "-smp", "2,maxcpus=1"},
	{"-M", "pc", "-smp", "sockets=2,cores=3,maxcpus=8"},
	{"-M", "pc", "-smp", "300"},
	{"-M", "pc", "-smp", "foo"},
	{"-M", "pc", "-smp", "1,foo=2"},
	{"-M", "pc", "-cpu", "qemu64,nosuchfeat=on"},
	{"-M", "pc", "-cpu", "qemu64,+avx,-sse,foo"},
	{"-M", "pc", "-cpu", "nosuch"},
	{"-M", "pc", "-cpu", "host,pmu=maybe"},
	{"-M", "nosuch"},
	{"-machine", "pc,foo=bar"},
	{"-machine", "q35,foo=bar"},
	{"-machine", "microvm,foo=bar"},
	{"-machine", "q35,accel=foo"},
	{"-machine", "type=pc,usb=maybe"},
	{"-accel", "foo"},
	{"-accel", "kvm,foo=1"},
	{"-enable-kvm", "-accel", "kvm"},
	{"-machine", "pc,accel=kvm", "-accel", "kvm"},
	{"-chardev", "socket,id=c"},
	{"-chardev", "socket,id=c,port=1"},
	{"-chardev", "socket,id=c,path=/tmp/a,host=x"},
	{"-chardev", "socket,id=c,path=/tmp/a,server=maybe"},
	{"-chardev", "socket,id=x y,path=/tmp/zz,server=on,wait=off"},
	{"-chardev", "foo,id=x"},
	{"-chardev", "null"},
	{"-chardev", "null,id=a", "-chardev", "null,id=a"},
	{"-chardev", "null,id=a,foo=1"},
	{"-chardev", "file,id=a"},
	{"-mon", "chardev=nosuch"},
	{"-mon", "foo"},
	{"-mon", "chardev=x,mode=foo", "-chardev", "null,id=x"},
	{"-serial", "foo:x"},
	{"-daemonize", "-serial", "stdio"},
	{"-daemonize", "-qmp", "stdio"},
	{"-daemonize", "-monitor", "stdio"},
	{"-daemonize", "-chardev", "stdio,id=s"},
	{"-nographic", "-daemonize"},
	{"-serial", "chardev:nosuch"},
	{"-display", "foo"},
	{"-uuid", "xyz"},
	{"-rtc", "base=foo"},
	{"-rtc", "clock=foo"},
	{"-rtc", "driftfix=foo"},
	{"-boot", "foo"},
	{"-boot", "order=x"},
	{"-sandbox", "foo"},
	{"-name", "foo,debug-threads=maybe"},
	{"-name", "guest=foo,bar=1"},
	{"-readconfig", "/nonexist"},
	{"-object", "foo,id=x"},
	{"-object", "rng-random"},
	{"-netdev", "foo,id=n"},
	{"-device", "foo"},
	{"-device", `{"driver":"foo"}`},
	{"-device", `{"driver":`},
	{"-M", "pc", "-device", "virtio-blk-pci,drive=nosuch"},
	{"-M", "pc", "-device", "virtio-blk-pci"},
	{"-M", "pc", "-device", "virtio-rng-pci,rng=nosuch"},
	{"-M", "pc", "-device", "virtconsole,chardev=nosuch"},
	{"-M", "pc", "-device", "isa-debug-exit,foo=1"},
	{"-M", "pc", "-device", "virtio-rng-pci,id=a", "-device", "virtio-rng-pci,id=a"},
	{"-drive", "if=none,id=d,file=@DIR@/disk.img,format=raw", "-drive", "if=none,id=d,file=@DIR@/disk.img,format=raw"},
	{"-drive", "file=@DIR@/disk.img,format=foo"},
	{"-drive", "file=@DIR@/disk.img,if=foo"},
	{"-drive", "file=@DIR@/disk.img,if=none,format=raw,bar=1"},
	{"-drive", "file=/nonexist,if=none,format=raw"},
	{"-vnc", "foo"},
	{"-chardev", "socket,id=c,path=@DIR@/nonexist/x"},
	{"-chardev", "socket,id=c,host=127.0.0.1,port=1"},
	{"-serial", "file:/nonexist/x"},
}

type outcome struct {
	accepted bool
	lines    []string // stderr lines that matter (errors and warnings)
}

func runQEMU(t *testing.T, args []string) outcome {
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemuBin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdin = nil
	err := cmd.Run()
	var ee *exec.ExitError
	accepted := err == nil || ctx.Err() != nil
	if err != nil && !errors.As(err, &ee) && ctx.Err() == nil {
		t.Fatalf("running qemu: %v", err)
	}
	return outcome{accepted: accepted, lines: filterQEMU(stderr.String())}
}

// filterQEMU drops the lines that depend on the host, not the command line.
func filterQEMU(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		switch {
		case l == "",
			strings.Contains(l, "terminating on signal"),
			strings.Contains(l, "host doesn't support requested feature"),
			strings.Contains(l, "exceeds the recommended cpus"),
			strings.Contains(l, "Image format was not specified"),
			strings.HasPrefix(l, "         "):
			continue
		}
		out = append(out, l)
	}
	return out
}

func runOurs(args []string) outcome {
	r, err := Parse("/usr/bin/"+qemuBin, args)
	if err != nil {
		return outcome{lines: strings.Split(err.Error(), "\n")}
	}
	lines := filterQEMU(strings.Join(r.Warnings, "\n"))
	// QEMU opens backends before it waits in -S; so do we, then close them.
	bs, err := r.OpenChardevs(chardev.Env{Stdout: devNull, Notice: io.Discard})
	if err != nil {
		return outcome{lines: append(lines, strings.Split(err.(*Error).Error(), "\n")...)}
	}
	for _, b := range bs {
		b.Close()
	}
	return outcome{accepted: true, lines: lines}
}

func TestDifferentialQEMU(t *testing.T) {
	if _, err := exec.LookPath(qemuBin); err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	if testing.Short() {
		t.Skip("runs QEMU ~100 times")
	}
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for _, c := range diffCases {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "disk.img"), make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{"-display", "none", "-S"}
		for _, a := range c {
			args = append(args, strings.ReplaceAll(a, "@DIR@", dir))
		}
		name := strings.ReplaceAll(strings.Join(c, " "), "/", "|")
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			q := runQEMU(t, args)
			// Our sockets are created by Open, not Parse; QEMU's must go
			// before ours reads the same directory (nothing shared).
			g := runOurs(args)
			if q.accepted != g.accepted || strings.Join(q.lines, "\n") != strings.Join(g.lines, "\n") {
				t.Errorf("%s:\n qemu:  accepted=%v %q\n govmm: accepted=%v %q", name, q.accepted, q.lines, g.accepted, g.lines)
			}
		}()
	}
	wg.Wait()
}
