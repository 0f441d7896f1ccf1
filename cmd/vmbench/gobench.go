package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// goBenchPkgs hold the hot paths of exit handling: the I/O bus dispatch,
// the UART's transmit path and the virtqueue's pop/push.
var goBenchPkgs = []string{"./machine", "./devices/uart16550", "./virtio/virtq"}

// runGoBench runs the packages' Go benchmarks (no tests) and parses them.
func runGoBench(goTool string) ([]GoBench, error) {
	args := append([]string{"test", "-run", "^$", "-bench", ".", "-benchmem"}, goBenchPkgs...)
	cmd := exec.Command(goTool, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	res := ParseGoBench(out.String())
	if err != nil {
		tail := out.String()
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return res, fmt.Errorf("%s %s: %v\n%s", goTool, strings.Join(args, " "), err, tail)
	}
	return res, nil
}

// ParseGoBench extracts "BenchmarkX-N iterations value ns/op ..." lines,
// attributing each to the latest "pkg:" line. Anything else is ignored.
func ParseGoBench(out string) []GoBench {
	var res []GoBench
	pkg := ""
	for _, line := range strings.Split(out, "\n") {
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		iter, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		for i := 2; i+1 < len(f); i += 2 {
			if f[i+1] != "ns/op" {
				continue
			}
			ns, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			name := f[0]
			// Drop the -GOMAXPROCS suffix: it says nothing about the code.
			if j := strings.LastIndexByte(name, '-'); j > 0 {
				if _, err := strconv.Atoi(name[j+1:]); err == nil {
					name = name[:j]
				}
			}
			res = append(res, GoBench{Pkg: pkg, Name: name, Iter: iter, NsPerOp: ns})
			break
		}
	}
	return res
}
