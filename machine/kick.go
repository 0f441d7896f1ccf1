package machine

import "time"

// afterKickInterval paces re-kicks while waiting for vCPU threads to stop:
// a thread that was between its stop check and KVM_RUN when the first kick
// came sees immediate_exit, but one blocked in a slow device call needs the
// loop condition, so keep kicking until all are out.
func afterKickInterval() <-chan time.Time { return time.After(10 * time.Millisecond) }
