// Package payload builds the tiny payload guests (see *.S here) for tests
// and benchmarks, with the Makefile beside this file.
package payload

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
)

var (
	once     sync.Once
	buildErr error
)

// Dir is the directory holding this package's sources.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// Path builds the payloads if needed (make is incremental) and returns the
// path of the named one, e.g. Path("hello") for build/hello.elf.
func Path(name string) (string, error) {
	once.Do(func() {
		if _, err := exec.LookPath("gcc"); err != nil {
			buildErr = fmt.Errorf("gcc is needed to build the payload guests (make deps installs it): %w", err)
			return
		}
		cmd := exec.Command("make", "-s", "-C", Dir())
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building payloads: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		return "", buildErr
	}
	p := filepath.Join(Dir(), "build", name+".elf")
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}
