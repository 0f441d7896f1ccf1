package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/govmm/govmm/devices/chardev"
	"github.com/govmm/govmm/machine"
)

func mustParse(t *testing.T, args ...string) *Result {
	t.Helper()
	r, err := Parse("/usr/bin/govmm", args)
	if err != nil {
		t.Fatalf("Parse(%q): %v", args, err)
	}
	return r
}

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		unit uint64
		want uint64
		ok   bool
	}{
		{"1G", 1 << 20, 1 << 30, true},
		{"1.5G", 1 << 20, 1536 << 20, true},
		{"512", 1 << 20, 512 << 20, true},
		{"512k", 1, 512 << 10, true},
		{"2b", 1 << 20, 2, true},
		{"0x10M", 1, 16 << 20, true},
		{"15E", 1, 15 << 60, true},
		{"16E", 1, 0, false},
		{"12Q", 1 << 20, 0, false},
		{"-1", 1, 0, false},
		{"", 1, 0, false},
		{"1GG", 1, 0, false},
		{".", 1, 0, false},
	} {
		got, ok := ParseSize(c.in, c.unit)
		if got != c.want || ok != c.ok {
			t.Errorf("ParseSize(%q) = %d,%v want %d,%v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestParseOpts(t *testing.T) {
	o, _ := ParseOpts("socket,id=c,path=/a,,b,server,nowait", "backend")
	want := []Opt{
		{Key: "backend", Value: "socket"},
		{Key: "id", Value: "c"},
		{Key: "path", Value: "/a,b"},
		{Key: "server", Value: "on", Flag: true, FlagText: "server"},
		{Key: "wait", Value: "off", Flag: true, FlagText: "nowait"},
	}
	if d := cmp.Diff(want, o.List); d != "" {
		t.Fatal(d)
	}
}

func TestConfigTranslation(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "a,b.img")
	os.WriteFile(disk, nil, 0o644)
	r := mustParse(t, "-M", "q35", "-m", "1.5G", "-smp", "4,sockets=2", "-cpu", "max,+avx,-sse,pmu=on",
		"-kernel", "/k", "-initrd", "/i", "--append", "console=ttyS0 -x",
		"-drive", "file="+strings.ReplaceAll(disk, ",", ",,")+",if=none,id=d0,format=qcow2",
		"-device", "virtio-blk-pci,drive=d0,num-queues=2",
		"-device", "isa-debug-exit", "-no-reboot", "-S", "-name", "vm1", "-uuid", "C7A5FDBD-CDAF-9455-926A-D65C16DB1809")
	c := r.Config
	if c.MachineType != "q35" || c.MemBytes != 1536<<20 || c.CPUs != 4 || c.Kernel != "/k" || c.Initrd != "/i" ||
		c.Cmdline != "console=ttyS0 -x" || !c.NoReboot || !c.StartPaused || c.Name != "vm1" ||
		c.UUID != "c7a5fdbd-cdaf-9455-926a-d65c16db1809" {
		t.Fatalf("config %+v", c)
	}
	if d := cmp.Diff(machine.CPUTopology{Sockets: 2, Dies: 1, Cores: 2, Threads: 1, MaxCPUs: 4}, c.Topology); d != "" {
		t.Error(d)
	}
	if d := cmp.Diff([]machine.CPUFeature{{Name: "avx", On: true}, {Name: "sse", On: false}}, c.CPU.Features); d != "" {
		t.Error(d)
	}
	if len(c.VirtioBlk) != 1 || c.VirtioBlk[0].Drive.File != disk || c.VirtioBlk[0].Drive.Format != "qcow2" || c.VirtioBlk[0].NumQueues != 2 {
		t.Errorf("virtio-blk %+v", c.VirtioBlk)
	}
	if c.DebugExit == nil || *c.DebugExit != (machine.DebugExitConfig{IOBase: 0x501, IOSize: 2}) {
		t.Errorf("debug exit %+v", c.DebugExit)
	}
	// Default COM1 without a display: a null backend.
	if len(c.Serial) != 1 || c.Serial[0].Kind != chardev.Null {
		t.Errorf("serial %+v", c.Serial)
	}
}

func TestNographic(t *testing.T) {
	r := mustParse(t, "-nographic")
	s := r.Config.Serial
	if len(s) != 1 || s[0].Kind != chardev.Stdio || !s[0].Mux || s[0].Signal {
		t.Fatalf("serial %+v", s)
	}
	if len(r.Monitors) != 1 || r.Monitors[0].Chardev != s[0] || r.Monitors[0].Control {
		t.Fatalf("monitors %+v", r.Monitors)
	}
	// With an explicit -serial the monitor alone goes to stdio.
	r = mustParse(t, "-nographic", "-serial", "pty")
	if r.Config.Serial[0].Kind != chardev.Pty || len(r.Monitors) != 1 || r.Monitors[0].Chardev.Kind != chardev.Stdio || r.Monitors[0].Chardev.Mux {
		t.Fatalf("serial %+v monitors %+v", r.Config.Serial[0], r.Monitors[0].Chardev)
	}
	// -qmp takes the place of the default monitor.
	r = mustParse(t, "-nographic", "-qmp", "unix:/tmp/q.sock,server,nowait")
	if len(r.Monitors) != 1 || !r.Monitors[0].Control || r.Monitors[0].Chardev.Path != "/tmp/q.sock" || !r.Monitors[0].Chardev.Server || r.Monitors[0].Chardev.Wait {
		t.Fatalf("monitors %+v", r.Monitors[0].Chardev)
	}
	if r.Config.Serial[0].Kind != chardev.Stdio || r.Config.Serial[0].Mux {
		t.Fatalf("serial %+v", r.Config.Serial[0])
	}
}

func TestSerialForms(t *testing.T) {
	r := mustParse(t, "-serial", "tcp::4444,server=on,wait=off", "-serial", "unix:/tmp/s,server", "-serial", "none", "-serial", "file:/tmp/f")
	s := r.Config.Serial
	if len(s) != 4 || s[0].Port != "4444" || s[0].Host != "" || !s[0].Server || s[0].Wait || s[0].ID != "serial0" ||
		s[1].Path != "/tmp/s" || !s[1].Wait || s[2] != nil || s[3].Kind != chardev.File || s[3].ID != "serial3" {
		t.Fatalf("serial %+v %+v %+v %+v", s[0], s[1], s[2], s[3])
	}
	if len(r.Warnings) != 0 {
		t.Errorf("compat syntax warned: %q", r.Warnings)
	}
}

func TestErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-nosuchopt"}, "govmm: -nosuchopt: invalid option"},
		{[]string{"-m", "12Q"}, "govmm: -m 12Q: Parameter 'size' expects a non-negative number below 2^64\n" + sizeHint},
		{[]string{"-accel", "tcg"}, "govmm: -accel tcg: accelerator 'tcg' is not supported: govmm runs guests with KVM only"},
		{[]string{"-vnc", ":0"}, "govmm: -vnc :0: VNC is not supported by govmm yet"},
		{[]string{"-display", "gtk"}, "govmm: -display gtk: display 'gtk' is not supported by govmm"},
		// Monitors are created before serial ports, as in QEMU.
		{[]string{"-serial", "stdio", "-monitor", "stdio"}, "govmm: -serial stdio: cannot use stdio by multiple character devices\n" +
			"govmm: -serial stdio: could not connect serial device to character backend 'stdio'"},
		// QEMU checks every option name before acting on -version.
		{[]string{"-version", "-nosuchopt"}, "govmm: -nosuchopt: invalid option"},
		{[]string{"-chardev", "socket,id=c,path=/x,server,nowait", "-chardev", "bad,id=d"},
			"govmm: -chardev socket,id=c,path=/x,server,nowait: warning: short-form boolean option 'server' deprecated\nPlease use server=on instead\n" +
				"govmm: -chardev socket,id=c,path=/x,server,nowait: warning: short-form boolean option 'nowait' deprecated\nPlease use wait=off instead\n" +
				"govmm: -chardev bad,id=d: 'bad' is not a valid char driver name"},
	} {
		_, err := Parse("/x/govmm", c.args)
		if err == nil || err.Error() != c.want {
			t.Errorf("%q:\n got %v\nwant %s", c.args, err, c.want)
		}
	}
}

func TestVersionAndHelp(t *testing.T) {
	Version = "1.2.3"
	r := mustParse(t, "-version", "-m", "12Q")
	if !r.Exit || r.Output != "QEMU emulator version 7.2.0 (govmm 1.2.3)\nCopyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n" {
		t.Fatalf("%q", r.Output)
	}
	for _, a := range [][]string{{"-h"}, {"-machine", "help"}, {"-cpu", "help"}, {"-device", "help"}} {
		r := mustParse(t, a...)
		if !r.Exit || r.Output == "" {
			t.Errorf("%q: no output", a)
		}
	}
	if !strings.Contains(mustParse(t, "-M", "help").Output, "q35") {
		t.Error("machine help lacks q35")
	}
}

func TestReadconfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vm.cfg")
	os.WriteFile(path, []byte(`# generated
[machine]
  type = "q35"

[memory]
  size = "512M"

[chardev "qmp"]
  backend = "socket"
  path = "/tmp/a,b.sock"
  server = "on"
  wait = "off"

[mon]
  chardev = "qmp"
  mode = "control"
`), 0o644)
	r := mustParse(t, "-readconfig", path)
	if r.Config.MachineType != "q35" || r.Config.MemBytes != 512<<20 {
		t.Fatalf("%+v", r.Config)
	}
	if len(r.Monitors) != 1 || !r.Monitors[0].Control || r.Monitors[0].Chardev.Path != "/tmp/a,b.sock" {
		t.Fatalf("%+v", r.Monitors)
	}
	os.WriteFile(path, []byte("[nosuch]\n"), 0o644)
	if _, err := Parse("govmm", []string{"-readconfig", path}); err == nil || !strings.Contains(err.Error(), "There is no option group 'nosuch'") {
		t.Fatal(err)
	}
}

func TestJSONDeviceAndVirtioSerial(t *testing.T) {
	r := mustParse(t, "-chardev", "pty,id=con0",
		"-object", `{"qom-type":"rng-random","id":"r0","filename":"/dev/urandom"}`,
		"-device", `{"driver":"virtio-rng-pci","id":"rng0","rng":"r0"}`,
		"-device", "virtio-serial-pci,id=vs", "-device", "virtconsole,chardev=con0,name=org.test.0")
	c := r.Config
	if len(c.VirtioRNG) != 1 || c.VirtioRNG[0].ID != "rng0" || c.VirtioRNG[0].Source != "/dev/urandom" {
		t.Fatalf("%+v", c.VirtioRNG)
	}
	if len(c.VirtioSerial) != 1 || len(c.VirtioSerial[0].Ports) != 1 || c.VirtioSerial[0].Ports[0].Chardev.ID != "con0" ||
		!c.VirtioSerial[0].Ports[0].Console || c.VirtioSerial[0].Ports[0].Name != "org.test.0" {
		t.Fatalf("%+v", c.VirtioSerial)
	}
}

func TestOpenChardevsErrorFormat(t *testing.T) {
	r := mustParse(t, "-serial", "file:/nonexist/x")
	_, err := r.OpenChardevs(chardev.Env{})
	want := "govmm: -serial file:/nonexist/x: Could not open '/nonexist/x': No such file or directory\n" +
		"govmm: -serial file:/nonexist/x: could not connect serial device to character backend 'file:/nonexist/x'"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, c := range diffCases {
		f.Add(strings.Join(c, "\x00"))
	}
	f.Add("-m\x001.5G\x00-smp\x00cpus=0,maxcpus=4294967295,sockets=65536,cores=65536")
	f.Add("-readconfig\x00/dev/null")
	f.Add("-device\x00{\"driver\":\"virtio-blk-pci\",\"drive\":{\"a\":[1]}}")
	f.Fuzz(func(t *testing.T, s string) {
		args := strings.Split(s, "\x00")
		for _, a := range args {
			// Files and sockets are not opened by Parse, but -readconfig
			// reads a file: keep the fuzzer off the host filesystem.
			if strings.Contains(a, "readconfig") || strings.Contains(a, "rng-random") {
				return
			}
		}
		r, err := Parse("govmm", args)
		if err == nil && r == nil {
			t.Fatal("nil result without error")
		}
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if !strings.HasPrefix(err.Error(), "govmm: ") && !strings.HasPrefix(err.Error(), "Log items") {
				t.Fatalf("unformatted error %q", err)
			}
		}
	})
}
