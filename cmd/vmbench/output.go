package main

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Chunk is one read from a VMM's stdout pipe and when it returned,
// measured from process start.
type Chunk struct {
	At   time.Duration
	Data []byte
}

// Line is one line of guest serial output. Start is when its first byte
// arrived, End when its newline did (or the last chunk, for a final line
// without one). Text has the newline, carriage returns and ANSI escape
// sequences (SeaBIOS clears the screen) removed.
type Line struct {
	Start, End time.Duration
	Text       string
}

// SplitLines turns timed chunks into timed lines.
func SplitLines(chunks []Chunk) []Line {
	var lines []Line
	var cur []byte
	var start time.Duration
	open := false
	for _, c := range chunks {
		for _, b := range c.Data {
			if !open {
				start, open = c.At, true
			}
			if b == '\n' {
				lines = append(lines, Line{Start: start, End: c.At, Text: cleanLine(cur)})
				cur, open = cur[:0], false
				continue
			}
			cur = append(cur, b)
		}
	}
	if open {
		lines = append(lines, Line{Start: start, End: chunks[len(chunks)-1].At, Text: cleanLine(cur)})
	}
	return lines
}

// cleanLine drops carriage returns and CSI escape sequences (ESC [ params
// final-byte) and other control bytes, so that markers match however the
// guest's firmware decorated the console.
func cleanLine(b []byte) string {
	var out bytes.Buffer
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == 0x1b {
			if i+1 < len(b) && b[i+1] == '[' {
				i += 2
				for i < len(b) && (b[i] < 0x40 || b[i] > 0x7e) {
					i++
				}
			}
			continue
		}
		if c < 0x20 && c != '\t' {
			continue
		}
		out.WriteByte(c)
	}
	return out.String()
}

// FirstLine returns the first line containing substr.
func FirstLine(lines []Line, substr string) (Line, bool) {
	for _, l := range lines {
		if strings.Contains(l.Text, substr) {
			return l, true
		}
	}
	return Line{}, false
}

// MarkerTimes returns, for each marker in order, the arrival time of the
// end of the first line containing it after the previous marker's line. It
// fails when a marker is missing, so a guest that did not get through its
// benchmark is a harness error rather than a silent zero.
func MarkerTimes(lines []Line, markers ...string) ([]time.Duration, error) {
	times := make([]time.Duration, 0, len(markers))
	i := 0
	for _, m := range markers {
		found := false
		for ; i < len(lines); i++ {
			if strings.Contains(lines[i].Text, m) {
				times = append(times, lines[i].End)
				found = true
				i++
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("guest output has no %q line (in order after %q)", m, strings.Join(markers[:len(times)], ", "))
		}
	}
	return times, nil
}

// ExitRates turns exitbench's marker times into round trips per second:
// count port writes between "exitbench: pio" and "exitbench: mmio", count
// MMIO writes between that and "exitbench: done".
func ExitRates(lines []Line, count int) (pio, mmio float64, err error) {
	t, err := MarkerTimes(lines, "exitbench: pio", "exitbench: mmio", "exitbench: done")
	if err != nil {
		return 0, 0, err
	}
	dp, dm := t[1]-t[0], t[2]-t[1]
	if dp <= 0 || dm <= 0 {
		return 0, 0, fmt.Errorf("exitbench markers arrived together (pio %v, mmio %v): output was buffered", dp, dm)
	}
	return float64(count) / dp.Seconds(), float64(count) / dm.Seconds(), nil
}

// Phase is one timed section of the virtio benchmark payload's output
// (guest/payload/virtio/main.c): "vbench: NAME start" ... "vbench: NAME
// done N", N being how many units of work (1 MiB chunks, 4 KiB reads) the
// phase completed.
type Phase struct {
	Name     string
	Duration time.Duration // 0 when both lines came in one pipe read
	Count    int64         // -1 when the done line has no count
}

// VbenchPhases parses every "vbench: NAME start/done" pair in order. A done
// without a start is an error; a start without a done ("vbench: driver
// start" opens the whole run) and other lines are ignored.
func VbenchPhases(lines []Line) ([]Phase, error) {
	var phases []Phase
	open := map[string]time.Duration{}
	for _, l := range lines {
		f := vbenchFields(l.Text)
		if len(f) < 2 {
			continue
		}
		name, what := f[0], f[1]
		switch what {
		case "start":
			if _, dup := open[name]; dup {
				return nil, fmt.Errorf("vbench: %s started twice", name)
			}
			open[name] = l.End
		case "done":
			start, ok := open[name]
			if !ok {
				return nil, fmt.Errorf("vbench: %s done without start", name)
			}
			delete(open, name)
			p := Phase{Name: name, Duration: l.End - start, Count: -1}
			if len(f) > 2 {
				if n, err := strconv.ParseInt(f[2], 10, 64); err == nil && n >= 0 {
					p.Count = n
				}
			}
			phases = append(phases, p)
		}
	}
	return phases, nil
}

// VbenchConfig parses "vbench: config seq=64x1048576 rand=4096x4096" into
// name -> {count, size in bytes}; ok is false when there is no such line.
func VbenchConfig(lines []Line) (cfg map[string][2]int64, ok bool) {
	for _, l := range lines {
		f := vbenchFields(l.Text)
		if len(f) < 1 || f[0] != "config" {
			continue
		}
		cfg = map[string][2]int64{}
		for _, kv := range f[1:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			a, b, ok := strings.Cut(v, "x")
			if !ok {
				continue
			}
			n, err1 := strconv.ParseInt(a, 10, 64)
			size, err2 := strconv.ParseInt(b, 10, 64)
			if err1 != nil || err2 != nil || n < 0 || size < 0 {
				continue
			}
			cfg[k] = [2]int64{n, size}
		}
		return cfg, true
	}
	return nil, false
}

// vbenchFields returns the words after "vbench: " on a line, or nil.
func vbenchFields(text string) []string {
	i := strings.Index(text, "vbench: ")
	if i < 0 {
		return nil
	}
	return strings.Fields(text[i+len("vbench: "):])
}
