// Package proto is the contract between the guest test agent (/init in
// govmm's Linux test VMs) and the host-side tests that read its output.
//
// The agent prints one JSON object per line on the serial console:
//
//	{"check":"kernel","ok":true,"detail":{"release":"6.1.192",...}}
//	{"check":"blk","ok":false,"error":"/dev/vda: no such file or directory"}
//	{"check":"done","ok":true,"detail":{"passed":5,"failed":[]}}
//
// Kernel messages share the console and may precede a result on the same
// line, so readers look for the "{\"check\":" marker anywhere in a line
// (ParseLine, Scanner). The disk pattern written by the "blk" check is a
// pure function of (seed, absolute disk offset), so the host can verify the
// image after the guest has powered off.
package proto

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Marker starts every result object; it is how results are found in a
// console transcript that also holds kernel log lines.
const Marker = `{"check":`

// Check names printed by the agent.
const (
	CheckInit    = "init"    // mounting /proc, /sys, /dev (only printed on error)
	CheckConfig  = "config"  // errors in agent.* kernel parameters (only printed on error)
	CheckModules = "modules" // kernel modules loaded from the initramfs
	CheckKernel  = "kernel"  // release, CPUs, memory, command line
	CheckPCI     = "pci"     // devices under /sys/bus/pci/devices
	CheckVirtio  = "virtio"  // devices under /sys/bus/virtio/devices
	CheckBlk     = "blk"     // O_DIRECT write/read/verify on the first virtio disk
	CheckRNG     = "rng"     // 64 bytes from /dev/hwrng
	CheckConsole = "console" // a line written to /dev/hvc0
	CheckDone    = "done"    // last line: ok when every other check passed
)

// Result is one line of agent output.
type Result struct {
	Check string `json:"check"`
	OK    bool   `json:"ok"`
	// Skipped is set when a check that was not explicitly requested found
	// nothing to test (no virtio disk, no hvc0...). Skipped results are ok.
	Skipped bool            `json:"skipped,omitempty"`
	Error   string          `json:"error,omitempty"`
	Detail  json.RawMessage `json:"detail,omitempty"`
}

// NewResult builds a result whose detail is v encoded as JSON.
func NewResult(check string, ok bool, v any) (Result, error) {
	r := Result{Check: check, OK: ok}
	if v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			return r, fmt.Errorf("check %s: encoding detail: %w", check, err)
		}
		r.Detail = b
	}
	return r, nil
}

// Line encodes r as a single line ending in '\n'. The JSON encoder escapes
// control characters, so the line never contains a raw newline.
func (r Result) Line() ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// DecodeDetail decodes r's detail into v.
func (r Result) DecodeDetail(v any) error {
	if len(r.Detail) == 0 {
		return fmt.Errorf("check %s: no detail", r.Check)
	}
	return json.Unmarshal(r.Detail, v)
}

// ParseLine finds a result in one console line. It reports false when the
// line holds no result (kernel messages, a line cut short by a crash).
// Text before the marker is ignored, and so is text after the object.
func ParseLine(line []byte) (Result, bool) {
	i := bytes.Index(line, []byte(Marker))
	if i < 0 {
		return Result{}, false
	}
	dec := json.NewDecoder(bytes.NewReader(line[i:]))
	var r Result
	if err := dec.Decode(&r); err != nil || r.Check == "" {
		return Result{}, false
	}
	return r, true
}

// ErrNoDone is returned by ReadResults when the output ended before the
// agent printed its "done" line.
var ErrNoDone = errors.New("agent output ended without a done line")

// ReadResults reads console output until the "done" result (included) and
// returns the results in order. Lines longer than 1 MiB are skipped.
func ReadResults(r io.Reader) ([]Result, error) {
	var out []Result
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		res, ok := ParseLine(sc.Bytes())
		if !ok {
			continue
		}
		out = append(out, res)
		if res.Check == CheckDone {
			return out, nil
		}
	}
	if err := sc.Err(); err != nil {
		return out, err
	}
	return out, ErrNoDone
}

// KernelDetail is the detail of the "kernel" check.
type KernelDetail struct {
	Release     string `json:"release"`      // uname -r
	Version     string `json:"version"`      // uname -v
	CPUsOnline  int    `json:"cpus_online"`  // from /sys/devices/system/cpu/online
	CPUsInfo    int    `json:"cpus_cpuinfo"` // "processor" lines in /proc/cpuinfo
	MemTotalKiB uint64 `json:"mem_total_kib"`
	Cmdline     string `json:"cmdline"`
}

// PCIDevice is one entry of the "pci" check's detail (a []PCIDevice).
type PCIDevice struct {
	Slot   string `json:"slot"`   // e.g. "0000:00:02.0"
	Vendor uint16 `json:"vendor"` // PCI vendor ID
	Device uint16 `json:"device"` // PCI device ID
	Class  uint32 `json:"class"`  // class code (base, sub, prog-if)
	Driver string `json:"driver,omitempty"`
}

// VirtioDevice is one entry of the "virtio" check's detail (a []VirtioDevice).
type VirtioDevice struct {
	Name   string `json:"name"`   // e.g. "virtio0"
	Device uint32 `json:"device"` // virtio device ID: 1 net, 2 block, 3 console, 4 rng
	Vendor uint32 `json:"vendor"`
	Driver string `json:"driver,omitempty"`
}

// BlkDetail is the detail of the "blk" check.
type BlkDetail struct {
	Device string `json:"device"`
	Size   int64  `json:"size"`   // disk size in bytes
	Offset int64  `json:"offset"` // where the pattern was written
	Length int64  `json:"length"` // how many bytes
	Seed   uint64 `json:"seed"`   // pattern seed (see Fill)
}

// RNGDetail is the detail of the "rng" check.
type RNGDetail struct {
	Current string `json:"current"` // /sys/class/misc/hw_random/rng_current
	Bytes   int    `json:"bytes"`
	Hex     string `json:"hex"` // the bytes read
}

// ConsoleDetail is the detail of the "console" check.
type ConsoleDetail struct {
	Device string `json:"device"`
	Line   string `json:"line"` // what was written, without the newline
}

// ModulesDetail is the detail of the "modules" check.
type ModulesDetail struct {
	Loaded  []string `json:"loaded"`
	Already []string `json:"already,omitempty"` // built in or loaded before
}

// DoneDetail is the detail of the "done" line.
type DoneDetail struct {
	Passed int      `json:"passed"`
	Failed []string `json:"failed"`
}
