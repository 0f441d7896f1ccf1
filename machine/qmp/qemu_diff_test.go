package qmp_test

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/govmm/govmm/machine/hmp"
	"github.com/govmm/govmm/machine/qmp"
)

// diffScript is sent line by line to QEMU and to our server; the replies
// must be the same bytes once timestamps and socket paths are normalized.
var diffScript = []string{
	`{"execute":"query-status"}`,
	`{"execute":"qmp_capabilities","arguments":{"enable":["x"]}}`,
	`{"execute":"qmp_capabilities","arguments":{"enable":[1]}}`,
	`{"execute":"qmp_capabilities","arguments":{"foo":1}}`,
	`{"exec-oob":"query-status","id":2}`,
	`{"execute":"qmp_capabilities","id":1}`,
	`{"execute":"qmp_capabilities","id":{"a":[1,2],"b":null,"c":"x"}}`,
	`{"execute":"query-status","id":"x"}`,
	`this is bad`,
	`{"execute":"no-such-command","id":8}`,
	`{"execute":"query-version"}`,
	`{"execute":"query-name"}`,
	`{"execute":"query-uuid"}`,
	`{"execute":"query-kvm"}`,
	`{"execute":"query-cpus-fast"}`,
	`{"execute":"query-chardev"}`,
	`{"execute":"query-block"}`,
	`{"execute":"query-blockstats"}`,
	`{"execute":"query-status","arguments":{"x":1}}`,
	`{"execute":"stop","arguments":{"a":1,"b":2}}`,
	`{"execute":"stop","arguments":{"zz":1,"y":2,"xx":3,"w":4,"vv":5,"u":6,"tt":7}}`,
	`{"execute":"stop","arguments":{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10}}`,
	`{"execute":"human-monitor-command","arguments":{"cpu-index":1,"command-line":"x","é":1,"k":2}}`,
	`{"execute":"human-monitor-command","arguments":{"command-line":1}}`,
	`{"execute":"human-monitor-command"}`,
	`{"execute":"human-monitor-command","arguments":{"command-line":"info status","x":1}}`,
	`{"execute":"human-monitor-command","arguments":{"command-line":"info version","cpu-index":0}}`,
	`{"execute":"human-monitor-command","arguments":{"command-line":"info status"}}`,
	`{"execute":"human-monitor-command","arguments":{"command-line":"info version"}}`,
	`{"execute":"human-monitor-command","arguments":{"command-line":"info name"}}`,
	`{"execute":"human-monitor-command","arguments":{"command-line":"info chardev"}}`,
	`{"execute":"human-monitor-command","arguments":{"command-line":"info cpus"}}`,
	`{"execute":"human-monitor-command","arguments":{"command-line":"foo"}}`,
	`{"execute":"human-monitor-command","arguments":{"command-line":"stop extra"}}`,
	`{"execute":"human-monitor-command","arguments":{"command-line":"help stop"}}`,
	`{"execute":"query-status",}`,
	`{"execute" "query-status"}`,
	`{1:2}`,
	`[1 2]`,
	`{"a":1,"a":2}`,
	`{"execute":"query-status","id":"\x"}`,
	`{"execute":"query-status","id":"\ud800"}`,
	`{"execute":"query-status","id":01}`,
	`{"execute":"query-status","id":[-0,1e400,18446744073709551615,-9223372036854775809,0.1,1E5]}`,
	`{"execute":"query-status","id":"€\u001f\u007f/\"\\"}`,
	`{"execute":'query-name','id':'sq'}`,
	`@`,
	`]`,
	`[1,2]`,
	`{"foo":1}`,
	`{"execute":1}`,
	`{"execute":"query-status","arguments":[1]}`,
	`{"execute":"query-status","id":null}`,
	`{"id":3}`,
	`{"execute":"query-status"} {"execute":"query-name","id":{"z":1,"y":2,"x":3,"status":4,"singlestep":5}}`,
	`{"execute":"cont"}`,
	`{"execute":"cont"}`,
	`{"execute":"query-status"}`,
	`{"execute":"human-monitor-command","arguments":{"command-line":"info status"}}`,
	`{"execute":"stop"}`,
	`{"execute":"stop"}`,
	`{"execute":"human-monitor-command","arguments":{"command-line":"info status"}}`,
	`{"execute":"system_reset"}`,
	`{"execute":"query-status"}`,
	`{"execute":"system_powerdown"}`,
	`{"execute":"human-monitor-command","arguments":{"command-line":"c"}}`,
	`{"execute":"human-monitor-command","arguments":{"command-line":"s"}}`,
}

// The sync request follows each scripted line; its reply (error before
// negotiation, return after) ends that line's replies.
const syncReq = `{"execute":"query-uuid","id":"sync"}`

var (
	timeRE = regexp.MustCompile(`"seconds": \d+, "microseconds": \d+`)
)

// converse runs diffScript on a QMP socket and returns every line received.
func converse(t *testing.T, path string) (greeting string, lines []string) {
	t.Helper()
	var c net.Conn
	var err error
	for i := 0; i < 100; i++ { // QEMU creates the socket a little after starting
		if c, err = net.Dial("unix", path); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rd := bufio.NewReader(c)
	read := func() string {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		l, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: reading: %v (after %q)", path, err, lines)
		}
		return l
	}
	greeting = read()
	for _, req := range diffScript {
		c.Write([]byte(req + "\n" + syncReq + "\n"))
		for {
			l := read()
			if strings.Contains(l, `"id": "sync"`) {
				break
			}
			lines = append(lines, timeRE.ReplaceAllString(l, `"seconds": S, "microseconds": U`))
		}
	}
	c.Write([]byte(`{"execute":"quit","id":"q"}` + "\n"))
	for {
		l := read()
		lines = append(lines, timeRE.ReplaceAllString(l, `"seconds": S, "microseconds": U`))
		if strings.Contains(l, `"id": "q"`) {
			break
		}
	}
	return greeting, lines
}

func TestDifferentialAgainstQEMU(t *testing.T) {
	bin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	if testing.Short() {
		t.Skip("starts QEMU")
	}
	dir := t.TempDir()
	qsock := filepath.Join(dir, "qemu.sock")
	cmd := exec.Command(bin, "-machine", "none", "-S", "-display", "none", "-nodefaults",
		"-qmp", "unix:"+qsock+",server=on,wait=off")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Error("QEMU did not exit after quit")
		}
	}()
	qGreeting, qLines := converse(t, qsock)

	// Answer with QEMU's own version, so only real differences remain.
	var g struct {
		QMP struct {
			Version struct {
				QEMU    struct{ Major, Minor, Micro int } `json:"qemu"`
				Package string                            `json:"package"`
			} `json:"version"`
		}
	}
	if err := json.Unmarshal([]byte(qGreeting), &g); err != nil {
		t.Fatalf("QEMU greeting %q: %v", qGreeting, err)
	}
	v := g.QMP.Version
	ver := qmp.Version{Major: v.QEMU.Major, Minor: v.QEMU.Minor, Micro: v.QEMU.Micro, Package: v.Package}

	osock := filepath.Join(dir, "govmm.sock")
	m := newFake()
	m.KVMInfo = qmp.KVMInfo{Enabled: false, Present: true} // TCG, as QEMU without -accel kvm
	m.ChardevList = []qmp.ChardevInfo{{Label: "compat_monitor0", Filename: "unix:" + osock + ",server=on", FrontendOpen: true}}
	l, err := net.Listen("unix", osock)
	if err != nil {
		t.Fatal(err)
	}
	s := qmp.NewServer(qmp.Config{Machine: m, Version: ver, HMP: hmp.New(m, ver).Execute})
	go s.Serve(l)
	go func() {
		<-m.QuitRequested
		s.Close()
	}()
	oGreeting, oLines := converse(t, osock)

	if oGreeting != qGreeting {
		t.Errorf("greeting\n got %q\nwant %q", oGreeting, qGreeting)
	}
	for i := 0; i < max(len(qLines), len(oLines)); i++ {
		var q, o string
		if i < len(qLines) {
			q = strings.ReplaceAll(qLines[i], qsock, "SOCK")
		}
		if i < len(oLines) {
			o = strings.ReplaceAll(oLines[i], osock, "SOCK")
		}
		if q != o {
			t.Errorf("reply %d\n got  %q\n qemu %q", i, o, q)
		}
	}
	if t.Failed() {
		t.Logf("qemu transcript:\n%s", strings.Join(qLines, ""))
	}
}
