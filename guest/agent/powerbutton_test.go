package main

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
)

func inputEvent(typ, code uint16, value int32) []byte {
	b := make([]byte, inputEventSize)
	binary.LittleEndian.PutUint16(b[16:], typ)
	binary.LittleEndian.PutUint16(b[18:], code)
	binary.LittleEndian.PutUint32(b[20:], uint32(value))
	return b
}

func TestReadKeyPower(t *testing.T) {
	var stream bytes.Buffer
	stream.Write(inputEvent(0, 0, 0))            // EV_SYN
	stream.Write(inputEvent(evKey, 30, 1))       // KEY_A down
	stream.Write(inputEvent(evKey, keyPower, 0)) // KEY_POWER up: not a press
	stream.Write(inputEvent(evKey, keyPower, 1)) // KEY_POWER down
	if err := readKeyPower(&stream); err != nil {
		t.Fatalf("readKeyPower: %v", err)
	}
	if stream.Len() != 0 {
		t.Errorf("%d bytes left unread after the press", stream.Len())
	}
	var none bytes.Buffer
	none.Write(inputEvent(evKey, 30, 1))
	if err := readKeyPower(&none); err != io.EOF {
		t.Errorf("without a press: %v, want EOF", err)
	}
}
