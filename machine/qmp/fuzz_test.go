package qmp

import (
	"regexp"
	"testing"

	"github.com/govmm/govmm/machine/qmp/qjson"
	"github.com/govmm/govmm/machine/runstate"
)

// stubMachine is the smallest Machine: a run state and one of everything.
type stubMachine struct{ *runstate.Controller }

func (m stubMachine) Status() runstate.State { return m.State() }
func (m stubMachine) Stop() error {
	_, err := m.Controller.Stop(runstate.Paused)
	return err
}
func (m stubMachine) SystemReset() error     { return m.Reset(runstate.CauseHostQMPSystemReset) }
func (m stubMachine) SystemPowerdown() error { m.Powerdown(); return nil }
func (m stubMachine) Quit() error            { return m.Shutdown(runstate.CauseHostQMPQuit, false) }
func (m stubMachine) Name() string           { return "vm" }
func (m stubMachine) UUID() string           { return "" }
func (m stubMachine) KVM() KVMInfo           { return KVMInfo{true, true} }
func (m stubMachine) CPUs() []CPUInfo        { return []CPUInfo{{Index: 0}} }
func (m stubMachine) Chardevs() []ChardevInfo {
	return []ChardevInfo{{Label: "serial0", Filename: "stdio", FrontendOpen: true}}
}
func (m stubMachine) Blocks() []BlockInfo {
	return []BlockInfo{{Device: "d", Inserted: &BlockDeviceInfo{File: "/x", Driver: "raw"}}}
}
func (m stubMachine) BlockStats() []BlockStats { return []BlockStats{{Device: "d"}} }

// nonFinite finds the numbers QEMU writes as inf or nan, which do not parse back.
var nonFinite = regexp.MustCompile(`[:\[,] -?(inf|nan)\b`)

// FuzzDispatch feeds arbitrary bytes through the decoder and the command
// dispatcher, as a client would: nothing may panic, and every reply must be
// a JSON object with exactly one of "return" and "error".
func FuzzDispatch(f *testing.F) {
	for _, s := range []string{
		`{"execute":"qmp_capabilities"}{"execute":"query-status","id":1}`,
		`{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}{"exec-oob":"stop"}`,
		`{"execute":"qmp_capabilities"}{"execute":"human-monitor-command","arguments":{"command-line":"info","cpu-index":0}}`,
		`{"execute":"qmp_capabilities"}{"execute":"cont"}{"execute":"stop","arguments":{"a":1,"b":[]}}`,
		`{"execute":"qmp_capabilities"}{"execute":"query-blockstats","arguments":{"query-nodes":true}}`,
		`this is bad {"id":{}} [] 1.5e400 {"execute":"query-block"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := &Server{cfg: Config{Machine: stubMachine{runstate.New()}, Version: DefaultVersion,
			HMP: func(line string) string { return line }}}
		c := &client{s: s}
		var replies []*qjson.Dict
		dec := qjson.NewDecoder(func(v qjson.Value, err error) {
			if err != nil {
				replies = append(replies, errorResponse(nil, ClassGeneric, err.Error()))
				return
			}
			replies = append(replies, s.dispatch(c, v))
		})
		dec.Feed(data)
		for _, r := range replies {
			enc := qjson.Marshal(r)
			if nonFinite.Match(enc) {
				continue // an echoed id may hold a number QEMU writes as inf
			}
			var back []qjson.Value
			qjson.NewDecoder(func(v qjson.Value, err error) {
				if err != nil {
					t.Fatalf("reply %s does not parse: %v", enc, err)
				}
				back = append(back, v)
			}).Feed(append(enc, '\n'))
			d, ok := back[0].(*qjson.Dict)
			if len(back) != 1 || !ok || d.Has("return") == d.Has("error") {
				t.Fatalf("bad reply %s", enc)
			}
		}
	})
}
