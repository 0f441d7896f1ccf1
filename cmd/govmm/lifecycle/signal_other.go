//go:build !(linux && amd64)

package lifecycle

import (
	"os"
	"os/signal"
	"syscall"
)

// NotifyTermination without sender information (only linux/amd64 has the
// siginfo handler); PID is 0, so the message is "terminated by signal N".
func NotifyTermination() (<-chan SignalInfo, error) {
	in := make(chan os.Signal, 4)
	signal.Notify(in, syscall.SIGINT, syscall.SIGHUP, syscall.SIGTERM)
	out := make(chan SignalInfo, 4)
	go func() {
		for s := range in {
			out <- SignalInfo{Signo: int(s.(syscall.Signal))}
		}
	}()
	return out, nil
}
