package main

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"time"
)

// msgWriter prefixes messages as QEMU's -msg does: timestamp=on adds the
// UTC time ("2026-11-24T03:40:01.123456Z "), guest-name=on the guest's
// name ("vm42 "). As in QEMU, only error_report-style lines ("PROG: ...")
// get them, not their hint lines nor the loader's bare "qemu: ..." lines.
type msgWriter struct {
	mu        sync.Mutex
	w         io.Writer
	prog      string
	timestamp bool
	guest     string
	midLine   bool
	now       func() time.Time
}

func (m *msgWriter) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now
	if m.now != nil {
		now = m.now
	}
	n := len(p)
	var out bytes.Buffer
	for len(p) > 0 {
		if !m.midLine && bytes.HasPrefix(p, []byte(m.prog+": ")) {
			if m.timestamp {
				out.WriteString(now().UTC().Format("2006-01-02T15:04:05.000000Z "))
			}
			if m.guest != "" {
				out.WriteString(m.guest + " ")
			}
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			out.Write(p)
			m.midLine = true
			break
		}
		out.Write(p[:i+1])
		p = p[i+1:]
		m.midLine = false
	}
	if _, err := m.w.Write(out.Bytes()); err != nil {
		return 0, err
	}
	return n, nil
}

// msgOptions finds -msg timestamp=on / guest-name=on and -name guest= in
// raw arguments, for messages printed before (or instead of) a successful
// parse: QEMU applies -msg as soon as it has read it.
func msgOptions(args []string) (timestamp, guestName bool, name string) {
	for i := 0; i+1 < len(args); i++ {
		opt := strings.TrimLeft(args[i], "-")
		if args[i] == opt {
			continue
		}
		val := args[i+1]
		switch opt {
		case "msg":
			for _, kv := range strings.Split(val, ",") {
				switch kv {
				case "timestamp=on", "timestamp=yes", "timestamp", "timestamp=true":
					timestamp = true
				case "guest-name=on", "guest-name=yes", "guest-name", "guest-name=true":
					guestName = true
				}
			}
		case "name":
			for _, kv := range strings.Split(val, ",") {
				if v, ok := strings.CutPrefix(kv, "guest="); ok {
					name = v
				} else if !strings.Contains(kv, "=") {
					name = kv
				}
			}
		}
	}
	return timestamp, guestName, name
}
