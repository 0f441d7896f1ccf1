package proto

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLineRoundTrip(t *testing.T) {
	in, err := NewResult(CheckKernel, true, KernelDetail{Release: "6.1.0", CPUsOnline: 2, Cmdline: "a=\"b c\"\n"})
	if err != nil {
		t.Fatal(err)
	}
	line, err := in.Line()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(line), "\n") != 1 || line[len(line)-1] != '\n' {
		t.Fatalf("line %q: want exactly one trailing newline", line)
	}
	if !strings.HasPrefix(string(line), Marker) {
		t.Fatalf("line %q does not start with %s", line, Marker)
	}
	out, ok := ParseLine(line)
	if !ok {
		t.Fatalf("ParseLine(%q) found nothing", line)
	}
	var d KernelDetail
	if err := out.DecodeDetail(&d); err != nil {
		t.Fatal(err)
	}
	if d.Release != "6.1.0" || d.CPUsOnline != 2 || d.Cmdline != "a=\"b c\"\n" || out.Check != CheckKernel || !out.OK {
		t.Errorf("round trip: got %+v / %+v", out, d)
	}
}

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		want *Result
	}{
		{`{"check":"rng","ok":true}`, &Result{Check: "rng", OK: true}},
		{`[    1.234] random: crng init done{"check":"blk","ok":false,"error":"x"}`, &Result{Check: "blk", Error: "x"}},
		{`{"check":"done","ok":true} trailing`, &Result{Check: "done", OK: true}},
		{`[    0.000] Linux version 6.1`, nil},
		{`{"check":"blk","ok":tr`, nil}, // cut short
		{`{"check":"","ok":true}`, nil},
		{``, nil},
	} {
		got, ok := ParseLine([]byte(tc.line))
		if ok != (tc.want != nil) {
			t.Errorf("ParseLine(%q): ok = %v", tc.line, ok)
			continue
		}
		if tc.want != nil {
			if diff := cmp.Diff(*tc.want, got); diff != "" {
				t.Errorf("ParseLine(%q) (-want +got):\n%s", tc.line, diff)
			}
		}
	}
}

func TestReadResults(t *testing.T) {
	transcript := "[ 0.1] boot\n" +
		`{"check":"kernel","ok":true}` + "\n" +
		"[ 0.2] noise\n" +
		`{"check":"done","ok":true,"detail":{"passed":1,"failed":[]}}` + "\n" +
		`{"check":"late","ok":true}` + "\n"
	rs, err := ReadResults(strings.NewReader(transcript))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Check != "kernel" || rs[1].Check != CheckDone {
		t.Fatalf("got %+v", rs)
	}
	var d DoneDetail
	if err := rs[1].DecodeDetail(&d); err != nil || d.Passed != 1 {
		t.Errorf("done detail %+v, %v", d, err)
	}

	rs, err = ReadResults(strings.NewReader(`{"check":"kernel","ok":true}` + "\nKernel panic\n"))
	if !errors.Is(err, ErrNoDone) || len(rs) != 1 {
		t.Errorf("without done: %v, %v", rs, err)
	}
}

func TestPattern(t *testing.T) {
	const seed = 42
	buf := make([]byte, 4096)
	Fill(buf, seed, 8192)
	if err := Verify(buf, seed, 8192); err != nil {
		t.Fatal(err)
	}
	// The same bytes at another offset or with another seed are wrong.
	if err := Verify(buf, seed, 8192+512); err == nil {
		t.Error("pattern verified at a shifted offset")
	}
	if err := Verify(buf, seed+1, 8192); err == nil {
		t.Error("pattern verified with another seed")
	}
	// A sub-range filled separately (unaligned) matches the big fill.
	part := make([]byte, 13)
	Fill(part, seed, 8192+101)
	if string(part) != string(buf[101:114]) {
		t.Error("unaligned fill differs from aligned fill")
	}
	buf[1000] ^= 1
	err := Verify(buf, seed, 8192)
	if err == nil || !strings.Contains(err.Error(), "offset 9192") {
		t.Errorf("corrupted byte: got %v, want mismatch at offset 9192", err)
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add([]byte(`{"check":"kernel","ok":true,"detail":{"release":"6.1"}}`))
	f.Add([]byte(`noise {"check":"x","ok":false,"error":"e"} more`))
	f.Add([]byte(`{"check":`))
	f.Add([]byte(`{"check":"a","detail":[1,2,{"x":null}]}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, ok := ParseLine(line)
		if !ok {
			return
		}
		if r.Check == "" {
			t.Fatal("ok result without a check name")
		}
		// Whatever parsed must survive a re-encode.
		b, err := r.Line()
		if err != nil {
			t.Fatal(err)
		}
		r2, ok := ParseLine(b)
		if !ok || r2.Check != r.Check || r2.OK != r.OK || r2.Error != r.Error {
			t.Fatalf("re-encode: %+v -> %s -> %+v", r, b, r2)
		}
	})
}
