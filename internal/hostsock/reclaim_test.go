package hostsock

import (
	"testing"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine"
)

// TestProgressDeadline feeds a connection's traffic record request bytes
// at given rates (on a synthetic clock) and checks when it falls behind
// the progress deadline of engine.DefaultReclaim: never at MinRate or
// faster, SlowGrace after it began to fall short otherwise.
func TestProgressDeadline(t *testing.T) {
	r := engine.DefaultReclaim
	for _, tc := range []struct {
		name string
		// burst is sent at once with the first byte; then every gap,
		// chunk more bytes.
		burst, chunk int
		gap          time.Duration
		// behindAfter is when the sender is first behind, roughly (the
		// check is within one gap); 0 for never within a minute.
		behindAfter time.Duration
	}{
		{"at the minimum rate", 1, r.MinRate / 10, 100 * time.Millisecond, 0},
		{"a slow link, 10 KB/s", 1, 1000, 100 * time.Millisecond, 0},
		{"1 byte/s", 1, 1, time.Second, r.SlowGrace},
		{"stalled after the headers", 400, 0, 100 * time.Millisecond, r.SlowGrace},
		{"a burst, then 1 byte/s", 1 << 20, 1, time.Second, r.SlowGrace},
		{"half the minimum rate", 1, r.MinRate / 2, time.Second, 2 * r.SlowGrace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Unix(1000, 0)
			var tr traffic
			tr.noteAccepted(start)
			tr.noteRead(&r, tc.burst, start)
			var behind time.Duration
			for now := start.Add(tc.gap); now.Before(start.Add(time.Minute)); now = now.Add(tc.gap) {
				if at, slow := tr.eligibleAt(&r); slow && !at.After(now) {
					behind = now.Sub(start)
					break
				}
				if tc.chunk > 0 {
					tr.noteRead(&r, tc.chunk, now)
				}
			}
			switch {
			case tc.behindAfter == 0 && behind != 0:
				t.Errorf("behind after %s, want never", behind)
			case tc.behindAfter != 0 && (behind < tc.behindAfter-tc.gap || behind > tc.behindAfter+2*tc.gap):
				t.Errorf("behind after %s, want about %s", behind, tc.behindAfter)
			}
		})
	}
}

// TestIdleAfterResponse: once the guest has written, the connection is
// idle (not slow) and eligible IdleGrace after its last bytes; new
// request bytes make it a request under way again.
func TestIdleAfterResponse(t *testing.T) {
	r := engine.DefaultReclaim
	start := time.Unix(1000, 0)
	var tr traffic
	tr.noteAccepted(start)
	if at, slow := tr.eligibleAt(&r); slow || !at.Equal(start.Add(r.IdleGrace)) {
		t.Errorf("fresh connection: eligible at %s (slow %v), want idle at +%s", at.Sub(start), slow, r.IdleGrace)
	}
	tr.noteRead(&r, 40, start.Add(time.Millisecond))
	tr.noteWritten(start.Add(2 * time.Millisecond))
	if at, slow := tr.eligibleAt(&r); slow || !at.Equal(start.Add(2*time.Millisecond+r.IdleGrace)) {
		t.Errorf("after a response: eligible at %s (slow %v), want idle at +%s", at.Sub(start), slow, 2*time.Millisecond+r.IdleGrace)
	}
	tr.noteRead(&r, 40, start.Add(time.Second))
	if at, slow := tr.eligibleAt(&r); !slow || !at.Equal(start.Add(time.Second+r.SlowGrace)) {
		t.Errorf("next request: eligible at %s (slow %v), want slow at +%s", at.Sub(start), slow, time.Second+r.SlowGrace)
	}
}
