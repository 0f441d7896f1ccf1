package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Linux input event codes (include/uapi/linux/input-event-codes.h).
const (
	evKey    = 0x01
	keyPower = 116
	// struct input_event on 64-bit: timeval (16 bytes), type u16, code
	// u16, value s32.
	inputEventSize = 24
)

// waitPowerButton waits until an input device under dir whose name says
// "Power Button" (Linux's ACPI button driver) reports KEY_POWER pressed.
// Devices appear as the kernel probes them, so it looks again until one is
// there, for at most a minute.
func waitPowerButton(dir string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		devs, err := powerButtons(dir)
		if err != nil {
			return err
		}
		if len(devs) > 0 {
			fmt.Fprintf(os.Stdout, "agent: waiting for the power button on %s\n", strings.Join(devs, ", "))
			return waitKeyPower(devs)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no power button under %s (is CONFIG_INPUT_EVDEV set?)", dir)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// powerButtons lists the event devices named like a power button, from
// /sys/class/input/eventN/device/name.
func powerButtons(dir string) ([]string, error) {
	ents, err := filepath.Glob(filepath.Join(dir, "event*"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		name, err := os.ReadFile(filepath.Join("/sys/class/input", filepath.Base(e), "device/name"))
		if err == nil && strings.Contains(string(name), "Power Button") {
			out = append(out, e)
		}
	}
	return out, nil
}

// waitKeyPower reads input events from every device until one is a
// KEY_POWER press.
func waitKeyPower(devs []string) error {
	pressed := make(chan error, len(devs))
	for _, d := range devs {
		go func(d string) {
			f, err := os.Open(d)
			if err != nil {
				pressed <- err
				return
			}
			defer f.Close()
			pressed <- readKeyPower(f)
		}(d)
	}
	var errs []error
	for range devs {
		err := <-pressed
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// readKeyPower reads struct input_event records until KEY_POWER goes down.
func readKeyPower(r io.Reader) error {
	buf := make([]byte, inputEventSize)
	for {
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		typ := binary.LittleEndian.Uint16(buf[16:])
		code := binary.LittleEndian.Uint16(buf[18:])
		value := int32(binary.LittleEndian.Uint32(buf[20:]))
		if typ == evKey && code == keyPower && value == 1 {
			return nil
		}
	}
}
