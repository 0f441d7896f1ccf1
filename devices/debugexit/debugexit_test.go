package debugexit

import (
	"bytes"
	"testing"
)

func TestWrite(t *testing.T) {
	for _, tc := range []struct {
		offset uint64
		data   []byte
		want   int
	}{
		{0, []byte{0x00}, 1},
		{0, []byte{0x31}, 0x63},
		{1, []byte{0x10}, 0x21}, // any offset in the range
		{0, []byte{0x34, 0x12}, 0x2469},
		{0, []byte{0xff, 0xff, 0xff, 0xff}, 0x1ffffffff},
	} {
		var got []int
		d := New(func(code int) { got = append(got, code) })
		d.Write(tc.offset, tc.data)
		if len(got) != 1 || got[0] != tc.want {
			t.Errorf("write % x at %d: exit %v, want [%#x]", tc.data, tc.offset, got, tc.want)
		}
	}
}

func TestIgnoredAndRead(t *testing.T) {
	called := false
	d := New(func(int) { called = true })
	d.Write(0, make([]byte, 8))
	d.Write(0, nil)
	if called {
		t.Error("8-byte or empty write called exit")
	}
	b := []byte{1, 2}
	d.Read(0, b)
	if !bytes.Equal(b, []byte{0, 0}) {
		t.Errorf("read % x, want zeros", b)
	}
	New(nil).Write(0, []byte{1}) // a nil callback must not panic
}
