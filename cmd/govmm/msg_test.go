package main

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

func TestMsgWriter(t *testing.T) {
	var out bytes.Buffer
	w := &msgWriter{w: &out, prog: "qemu-system-x86_64", timestamp: true, guest: "vm42",
		now: func() time.Time { return time.Date(2026, 11, 24, 3, 4, 5, 123456000, time.UTC) }}
	fmt.Fprint(w, "qemu-system-x86_64: -m 12Q: bad\nhint line\n")
	fmt.Fprint(w, "qemu: could not open kernel file 'x'\n")
	fmt.Fprint(w, "qemu-system-x86_64: part")
	fmt.Fprint(w, "ial line\n")
	want := "2026-11-24T03:04:05.123456Z vm42 qemu-system-x86_64: -m 12Q: bad\nhint line\n" +
		"qemu: could not open kernel file 'x'\n" +
		"2026-11-24T03:04:05.123456Z vm42 qemu-system-x86_64: partial line\n"
	if out.String() != want {
		t.Errorf("got %q\nwant %q", out.String(), want)
	}
}

func TestMsgOptions(t *testing.T) {
	ts, gn, name := msgOptions([]string{"-name", "guest=vm1,debug-threads=on", "-msg", "timestamp=on", "-m", "1G"})
	if !ts || gn || name != "vm1" {
		t.Errorf("got %v %v %q", ts, gn, name)
	}
	ts, gn, name = msgOptions([]string{"--msg", "guest-name=on", "-name", "vm2"})
	if ts || !gn || name != "vm2" {
		t.Errorf("got %v %v %q", ts, gn, name)
	}
	if ts, gn, _ := msgOptions([]string{"-append", "-msg timestamp=on"}); ts || gn {
		t.Error("an -append value was taken for -msg")
	}
}
