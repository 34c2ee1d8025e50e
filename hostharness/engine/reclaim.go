package engine

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Reclaim says when the host closes connections that hold a slot of the
// guest's connection limit (Config.MaxConns) without using it, so that
// clients waiting in the kernel's backlog are admitted, as busy servers
// reclaim keep-alive connections. It acts only under pressure: while the
// guest is at its limit and a client waits to be accepted; below the
// limit no connection is ever closed by the host, however slow.
//
// Under pressure, a connection is reclaimed only while the guest waits to
// read it (through poll_oneoff, as Go's netpoller does, with no wait to
// write it; or blocked in a read of a blocking fd), with no byte of
// the client pending in the kernel or the host and none of the guest's
// unsent, and while that wait is not a read of at most one byte (how Go's
// net/http watches a connection for the client's close while a handler
// runs: a response in flight). Of those, it closes:
//
//   - idle connections: quiet both ways for IdleGrace, the last bytes on
//     them being the guest's (a keep-alive connection between requests)
//     or none at all since the accept;
//   - slow senders: the last bytes being the client's (a request under
//     way), which have fallen behind a progress deadline: SlowGrace from
//     the request's first byte, moved on by 1/MinRate s per byte received
//     and never more than SlowGrace ahead, so that a client sending at
//     MinRate or faster is never behind, and one that trickles or stops
//     is behind SlowGrace after it began to fall short.
//
// The longest eligible go first, as many as clients wait (the listener's
// accept queue), in batches of at most ReclaimBatch per wait.
type Reclaim struct {
	// Off disables reclaiming: idle and slow connections keep their slots
	// until the guest closes them.
	Off bool
	// IdleGrace is how long an idle connection must have been quiet to be
	// reclaimed; 0 means DefaultReclaim's.
	IdleGrace time.Duration
	// SlowGrace is how far a request may fall behind MinRate before its
	// connection is reclaimed; 0 means DefaultReclaim's.
	SlowGrace time.Duration
	// MinRate is the rate, in bytes per second, that a request under way
	// must keep up; 0 means DefaultReclaim's.
	MinRate int
}

// DefaultReclaim holds the values Reclaim's zero fields stand for:
// an idle connection is reclaimed after half a second of quiet (a
// keep-alive client whose next request arrives after that finds its
// connection closed and, as HTTP clients do for idle connections, opens
// another), and a request must come at 500 bytes/s or faster (Apache
// mod_reqtimeout's MinRate), with 2 s of slack for a slow start or a
// stall.
var DefaultReclaim = Reclaim{IdleGrace: 500 * time.Millisecond, SlowGrace: 2 * time.Second, MinRate: 500}

// ReclaimBatch bounds the connections reclaimed at once, so that one
// wait of the guest does a bounded amount of work.
const ReclaimBatch = 64

// WithDefaults returns r with its zero fields set to DefaultReclaim's.
func (r Reclaim) WithDefaults() Reclaim {
	if r.IdleGrace == 0 {
		r.IdleGrace = DefaultReclaim.IdleGrace
	}
	if r.SlowGrace == 0 {
		r.SlowGrace = DefaultReclaim.SlowGrace
	}
	if r.MinRate == 0 {
		r.MinRate = DefaultReclaim.MinRate
	}
	return r
}

// Check reports a field that cannot be used.
func (r Reclaim) Check() error {
	switch {
	case r.IdleGrace < 0:
		return fmt.Errorf("reclaim idle grace %s: want a duration of 0 or more", r.IdleGrace)
	case r.SlowGrace < 0:
		return fmt.Errorf("reclaim slow grace %s: want a duration of 0 or more", r.SlowGrace)
	case r.MinRate < 0:
		return fmt.Errorf("reclaim minimum rate %d: want bytes per second, 0 or more", r.MinRate)
	}
	return nil
}

// ParseReclaim reads Reclaim as a flag gives it: "off", or a
// comma-separated list of idle=DURATION, slow=DURATION and rate=BYTES (per
// second), each optional, such as "idle=1s,rate=1000"; the fields not
// given keep their defaults.
func ParseReclaim(s string) (Reclaim, error) {
	var r Reclaim
	if s == "off" {
		return Reclaim{Off: true}, nil
	}
	for item := range strings.SplitSeq(s, ",") {
		key, value, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return Reclaim{}, fmt.Errorf("reclaim %q: want off or idle=DURATION,slow=DURATION,rate=BYTES", item)
		}
		var err error
		switch key {
		case "idle":
			r.IdleGrace, err = time.ParseDuration(value)
		case "slow":
			r.SlowGrace, err = time.ParseDuration(value)
		case "rate":
			r.MinRate, err = strconv.Atoi(value)
		default:
			return Reclaim{}, fmt.Errorf("reclaim %q: unknown setting %q (want idle, slow or rate)", item, key)
		}
		if err != nil {
			return Reclaim{}, fmt.Errorf("reclaim %s: %w", key, err)
		}
	}
	return r, r.Check()
}

// String gives r as ParseReclaim reads it, with its defaults set.
func (r Reclaim) String() string {
	if r.Off {
		return "off"
	}
	r = r.WithDefaults()
	return fmt.Sprintf("idle=%s,slow=%s,rate=%d", r.IdleGrace, r.SlowGrace, r.MinRate)
}
