package main

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want Summary
	}{
		{[]float64{5}, Summary{N: 1, Median: 5, Min: 5, Max: 5, Q1: 5, Q3: 5}},
		{[]float64{3, 1, 2}, Summary{N: 3, Median: 2, Min: 1, Max: 3, Q1: 1.5, Q3: 2.5}},
		{[]float64{4, 1, 3, 2}, Summary{N: 4, Median: 2.5, Min: 1, Max: 4, Q1: 1.75, Q3: 3.25}},
		{[]float64{10, math.NaN(), 30, 20}, Summary{N: 3, Median: 20, Min: 10, Max: 30, Q1: 15, Q3: 25}},
		{[]float64{1, 1, 1, 100, 1}, Summary{N: 5, Median: 1, Min: 1, Max: 100, Q1: 1, Q3: 1}},
	} {
		got, ok := Summarize(tc.in)
		if !ok {
			t.Errorf("Summarize(%v): not ok", tc.in)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Summarize(%v) (-want +got):\n%s", tc.in, diff)
		}
	}
	if _, ok := Summarize(nil); ok {
		t.Error("Summarize(nil) is ok")
	}
	if _, ok := Summarize([]float64{math.NaN()}); ok {
		t.Error("Summarize(NaN) is ok")
	}
}

func TestSummarizeDoesNotReorderSamples(t *testing.T) {
	in := []float64{3, 1, 2}
	Summarize(in)
	if diff := cmp.Diff([]float64{3, 1, 2}, in); diff != "" {
		t.Errorf("samples changed (-want +got):\n%s", diff)
	}
}

func TestRatio(t *testing.T) {
	if r, ok := Ratio([]float64{1, 2, 3}, []float64{4, 4, 5}); !ok || r != 0.5 {
		t.Errorf("Ratio = %v, %v; want 0.5, true", r, ok)
	}
	if _, ok := Ratio([]float64{1}, nil); ok {
		t.Error("Ratio without QEMU samples is ok")
	}
	if _, ok := Ratio([]float64{1}, []float64{0}); ok {
		t.Error("Ratio over a zero median is ok")
	}
}

func ms_(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestSplitLines(t *testing.T) {
	chunks := []Chunk{
		{ms_(1), []byte("\x1b[2J\x1b[0mSea")},
		{ms_(2), []byte("BIOS\r\nexitbench: p")},
		{ms_(5), []byte("io\nexit")},
		{ms_(9), []byte("bench: mmio\n\ntail")},
	}
	want := []Line{
		{ms_(1), ms_(2), "SeaBIOS"},
		{ms_(2), ms_(5), "exitbench: pio"},
		{ms_(5), ms_(9), "exitbench: mmio"},
		{ms_(9), ms_(9), ""},
		{ms_(9), ms_(9), "tail"},
	}
	if diff := cmp.Diff(want, SplitLines(chunks)); diff != "" {
		t.Errorf("SplitLines (-want +got):\n%s", diff)
	}
	if got := SplitLines(nil); len(got) != 0 {
		t.Errorf("SplitLines(nil) = %v", got)
	}
}

func lines(texts ...string) []Line {
	var ls []Line
	for i, s := range texts {
		ls = append(ls, Line{Start: ms_(i * 100), End: ms_(i*100 + 1), Text: s})
	}
	return ls
}

func TestExitRates(t *testing.T) {
	// Markers end at 1 ms, 101 ms (pio: 100 ms) and 301 ms (mmio: 200 ms).
	ls := lines("exitbench: pio", "exitbench: mmio", "noise", "exitbench: done")
	pio, mmio, err := ExitRates(ls, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(pio-10000) > 1e-6 || math.Abs(mmio-5000) > 1e-6 {
		t.Errorf("ExitRates = %v, %v; want 10000, 5000", pio, mmio)
	}
}

func TestExitRatesErrors(t *testing.T) {
	for name, ls := range map[string][]Line{
		"missing done":    lines("exitbench: pio", "exitbench: mmio"),
		"out of order":    lines("exitbench: mmio", "exitbench: pio", "exitbench: done"),
		"nothing":         nil,
		"one read":        {{0, ms_(3), "exitbench: pio"}, {0, ms_(3), "exitbench: mmio"}, {0, ms_(4), "exitbench: done"}},
		"mmio before pio": lines("exitbench: mmio", "exitbench: done"),
	} {
		if _, _, err := ExitRates(ls, 10); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestMarkerTimesTakesFirstAfterPrevious(t *testing.T) {
	ls := lines("b", "a", "b", "c")
	got, err := MarkerTimes(ls, "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]time.Duration{ms_(101), ms_(201)}, got); diff != "" {
		t.Errorf("MarkerTimes (-want +got):\n%s", diff)
	}
}

// vbenchOutput is virtiobench.elf's output as QEMU 7.2 printed it.
var vbenchOutput = lines(
	"vbench: driver start",
	"virtio: blk capacity=131072",
	"vbench: config seq=64x1048576 rand=4096x4096",
	"vbench: seqwrite start",
	"vbench: seqwrite done 64",
	"vbench: flush start",
	"vbench: flush done 1",
	"vbench: seqread start",
	"vbench: seqread done 64",
	"vbench: randread start",
	"vbench: randread done 4096",
	"vbench: randread-qd4 start",
	"vbench: randread-qd4 done 4096",
	"vbench: all ok",
)

func TestVirtioValues(t *testing.T) {
	got, err := VirtioValues(vbenchOutput)
	if err != nil {
		t.Fatal(err)
	}
	// Every phase takes 100 ms between its start and done lines.
	want := []float64{640, 100, 640, 40960, 40960}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) < 1e-6 })); diff != "" {
		t.Errorf("VirtioValues (-want +got):\n%s", diff)
	}
}

func TestVirtioValuesWithoutFlush(t *testing.T) {
	var ls []Line
	for _, l := range vbenchOutput {
		if !strings.Contains(l.Text, "flush") {
			ls = append(ls, l)
		}
	}
	got, err := VirtioValues(ls)
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(got[1]) {
		t.Errorf("flush = %v, want NaN", got[1])
	}
}

func TestVirtioValuesErrors(t *testing.T) {
	drop := func(substr string) []Line {
		var ls []Line
		for _, l := range vbenchOutput {
			if !strings.Contains(l.Text, substr) {
				ls = append(ls, l)
			}
		}
		return ls
	}
	for name, ls := range map[string][]Line{
		"no config":     drop("config"),
		"no randread":   drop("randread done"),
		"no seqread":    drop("seqread"),
		"done twice":    append(append([]Line{}, vbenchOutput...), Line{Text: "vbench: seqread done 1"}),
		"no count":      lines("vbench: config seq=1x1 rand=1x1", "vbench: seqwrite start", "vbench: seqwrite done", "vbench: seqread start", "vbench: seqread done", "vbench: randread start", "vbench: randread done", "vbench: randread-qd4 start", "vbench: randread-qd4 done"),
		"same read":     sameRead(vbenchOutput),
		"started twice": lines("vbench: config seq=1x1 rand=1x1", "vbench: seqwrite start", "vbench: seqwrite start"),
	} {
		if _, err := VirtioValues(ls); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// sameRead gives every line one arrival time, as if the VMM had buffered
// the whole output.
func sameRead(ls []Line) []Line {
	var out []Line
	for _, l := range ls {
		out = append(out, Line{Start: ms_(5), End: ms_(5), Text: l.Text})
	}
	return out
}

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
goarch: amd64
pkg: github.com/govmm/govmm/machine
cpu: AMD EPYC
BenchmarkBusRead-2   	12345678	        95.30 ns/op	       0 B/op	       0 allocs/op
PASS
ok  	github.com/govmm/govmm/machine	2.3s
pkg: github.com/govmm/govmm/virtio/virtq
BenchmarkPopPush/size=256-2 	 1000000	      1042 ns/op
BenchmarkBroken-2 	 notanumber	      1042 ns/op
BenchmarkNoNs-2 	 10	      1042 B/op
--- FAIL: BenchmarkX
`
	want := []GoBench{
		{Pkg: "github.com/govmm/govmm/machine", Name: "BenchmarkBusRead", Iter: 12345678, NsPerOp: 95.3},
		{Pkg: "github.com/govmm/govmm/virtio/virtq", Name: "BenchmarkPopPush/size=256", Iter: 1000000, NsPerOp: 1042},
	}
	if diff := cmp.Diff(want, ParseGoBench(out)); diff != "" {
		t.Errorf("ParseGoBench (-want +got):\n%s", diff)
	}
}

func TestRenderMarkdown(t *testing.T) {
	r := &Report{
		Date:          "2026-11-24T00:00:00Z",
		Host:          Host{CPU: "Test CPU", CPUs: 2, Kernel: "6.1", KVM: "PVM (kvm_pvm)", LoadStart: "1 1 1", LoadEnd: "2 2 2"},
		GovmmRevision: "abc123",
		QEMUVersion:   "QEMU emulator version 7.2.22",
		Command:       "vmbench -runs 3",
		Metrics: []*Metric{
			{Section: "Start-up", Name: "to exit", Unit: "ms", Better: "lower", Govmm: []float64{30, 10, 20}, QEMU: []float64{40, 50, 60}},
			{Section: "Linux", Name: "first line", Unit: "ms", Better: "lower", Govmm: []float64{20000}, QEMUNA: "cannot boot"},
			{Section: "Start-up", Name: "RSS", Unit: "MiB", Better: "lower", Govmm: []float64{6.5, 7}, QEMU: []float64{39, 41}},
		},
		Skipped:     []string{"virtio: no payload"},
		Invocations: map[string]string{"b (QEMU)": "qemu -M pc", "a (govmm)": "govmm -M pc"},
	}
	for _, m := range r.Metrics {
		m.finish()
	}
	got := RenderMarkdown(r)
	for _, want := range []string{
		"- Host: Test CPU, 2 CPUs, kernel 6.1, KVM: PVM (kvm_pvm), load average 1 1 1 at start, 2 2 2 at end\n",
		"- govmm: abc123\n",
		"## Start-up\n\n| Measurement | Unit | Better | govmm | QEMU | govmm/QEMU |\n|---|---|---|---:|---:|---:|\n" +
			"| to exit | ms | lower | 20.0 [10.0–30.0] | 50.0 [40.0–60.0] | 0.400 |\n" +
			"| RSS | MiB | lower | 6.75 [6.50–7.00] | 40.0 [39.0–41.0] | 0.169 |\n\n## Linux",
		"| first line | ms | lower | 20000 (n=1) | n/a | - |\n",
		"- skipped: virtio: no payload\n",
		"## Command lines\n\n- a (govmm): `govmm -M pc`\n- b (QEMU): `qemu -M pc`\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("markdown lacks %q; got:\n%s", want, got)
		}
	}
	if strings.Contains(got, "Harness errors") {
		t.Errorf("markdown has an errors section without errors:\n%s", got)
	}
}

func TestReportJSONWithSkippedSamples(t *testing.T) {
	m := &Metric{Name: "flush", Govmm: []float64{1, math.NaN(), 3}, QEMU: []float64{math.NaN()}}
	m.finish()
	r := &Report{Metrics: []*Metric{m}}
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	got := back.Metrics[0]
	if diff := cmp.Diff([]float64{1, 3}, got.Govmm); diff != "" {
		t.Errorf("govmm samples (-want +got):\n%s", diff)
	}
	if got.GovmmSummary == nil || got.GovmmSummary.Median != 2 || got.QEMUSummary != nil || got.Ratio != nil {
		t.Errorf("summaries after a round trip: %+v %+v %v", got.GovmmSummary, got.QEMUSummary, got.Ratio)
	}
}

func TestFormatNum(t *testing.T) {
	for in, want := range map[float64]string{1234.5: "1234", 56.78: "56.8", 3.14159: "3.14", 0.0123: "0.012", -2: "-2.00"} {
		if got := formatNum(in); got != want {
			t.Errorf("formatNum(%v) = %q, want %q", in, got, want)
		}
	}
}

func FuzzSplitLinesAndMarkers(f *testing.F) {
	f.Add([]byte("exitbench: pio\nexitbench: mmio\n"), []byte("exitbench: done\n"))
	f.Add([]byte("\x1b[2J\x1b["), []byte("vbench: config seq=64x1048576 rand=\nvbench: seqread done 99999999999999999999\n"))
	f.Add([]byte("vbench: x start\nvbench: x done -1\nvbench: config a=1x2 b=x c=3x"), []byte{})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		ls := SplitLines([]Chunk{{ms_(1), a}, {ms_(2), b}})
		for _, l := range ls {
			if l.End < l.Start || strings.ContainsAny(l.Text, "\n\r\x1b") {
				t.Fatalf("bad line %+v", l)
			}
		}
		ExitRates(ls, 1)
		VirtioValues(ls)
		ParseGoBench(string(a) + string(b))
	})
}

func TestRunTimesOutputAndStatus(t *testing.T) {
	r, err := Run(Invocation{Path: "/bin/sh", Args: []string{"-c", "echo first; sleep 0.1; echo second; exit 3"}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != 3 {
		t.Errorf("status %d, want 3", r.Status)
	}
	got, err := MarkerTimes(r.Lines, "first", "second")
	if err != nil {
		t.Fatal(err)
	}
	if d := got[1] - got[0]; d < 90*time.Millisecond {
		t.Errorf("lines %v apart, want about 100ms", d)
	}
	// Lines are stamped when a reader goroutine gets them, which may be a
	// little after wait4 returned for the last one; only a large gap would
	// mean the timestamps are wrong.
	const slack = 50 * time.Millisecond
	if r.FirstByte < 0 || r.FirstByte > got[0] || got[1] > r.Exit+slack {
		t.Errorf("first byte %v, lines %v, exit %v: out of order", r.FirstByte, got, r.Exit)
	}
	if r.MaxRSSKiB <= 0 {
		t.Errorf("maxrss %d", r.MaxRSSKiB)
	}
}

func TestRunStopAt(t *testing.T) {
	start := time.Now()
	r, err := Run(Invocation{Path: "/bin/sh", Args: []string{"-c", "echo booting; echo Linux version 6.1; exec sleep 30"}, Timeout: 20 * time.Second, StopAt: "Linux version"})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Stopped || r.Status != -1 {
		t.Errorf("stopped %v, status %d; want killed at the marker", r.Stopped, r.Status)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("took %v: not killed at the marker", time.Since(start))
	}
}

func TestRunTimeout(t *testing.T) {
	_, err := Run(Invocation{Path: "/bin/sh", Args: []string{"-c", "exec sleep 30"}, Timeout: 200 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("err = %v, want a time-out", err)
	}
}

func TestCounterValue(t *testing.T) {
	stderr := "warning: x\nemulated instructions: 1370\n  fnclex: 456\n  pvm-syscall-fixup: 2567\n"
	if v := counterValue(stderr, "emulated instructions: "); v != 1370 {
		t.Errorf("emulated = %d", v)
	}
	if v := counterValue(stderr, "pvm-syscall-fixup: "); v != 2567 {
		t.Errorf("fixups = %d", v)
	}
	if v := counterValue(stderr, "missing: "); v != 0 {
		t.Errorf("missing = %d", v)
	}
}
