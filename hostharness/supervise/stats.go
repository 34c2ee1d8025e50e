package supervise

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/wasiserve/wasiserve/hostharness/engine"
)

// Stats is a snapshot of a group's counters, for metrics.
type Stats struct {
	// Instances has one entry per instance index.
	Instances []InstanceStats
	// ReloadsOK and ReloadsFailed count Reload's results.
	ReloadsOK, ReloadsFailed uint64
	// Draining is set once the group drains for a stop.
	Draining bool
	// InstancesDraining is the number of instances draining now, for a
	// stop or after a reload.
	InstancesDraining int
}

// InstanceStats are the counters of one instance index, over every
// instance that ran there: restarts and reloads start new instances at
// the same index, and their counts add up.
type InstanceStats struct {
	// Index is the instance's index, from 0.
	Index int
	// Sockets sums the instances' socket counters (engines whose host
	// owns the sockets); its OpenConns and MemoryBytes are those of the
	// instances running now (two while a reload hands over).
	Sockets engine.Stats
	// Running is the number of instances running now.
	Running int
	// Starts counts the instances that started; Exits those that stopped
	// by themselves, Traps those of them that trapped, and Restarts the
	// restarts after an exit.
	Starts, Exits, Traps, Restarts uint64
	// OutputDropped counts the bytes of the instances' stdout and stderr
	// dropped over their output rate (engine.Config.OutputRate).
	OutputDropped uint64
}

// slot is the counters of one instance index.
type slot struct {
	mu sync.Mutex
	// retired sums the socket counters of the instances that stopped.
	retired engine.Stats
	// retiredDropped sums the output the stopped instances dropped.
	retiredDropped uint64
	running        []*engine.Instance

	starts, exits, traps, restarts atomic.Uint64
}

// started records a new instance.
func (s *slot) started(inst *engine.Instance) {
	s.starts.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running = append(s.running, inst)
}

// stopped records that inst stopped, by itself (exited) or not, with err.
func (s *slot) stopped(inst *engine.Instance, exited bool, err error) {
	if exited {
		s.exits.Add(1)
		if exit := exitError(err); exit != nil && exit.Trap != "" {
			s.traps.Add(1)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range s.running {
		if r == inst {
			s.running = append(s.running[:i], s.running[i+1:]...)
			break
		}
	}
	if st, ok := inst.Stats(); ok {
		st.OpenConns, st.MemoryBytes = 0, 0
		s.retired = s.retired.Add(st)
	}
	s.retiredDropped += inst.OutputDropped()
}

// snapshot returns the slot's counters.
func (s *slot) snapshot(index int) InstanceStats {
	s.mu.Lock()
	sum, running, dropped := s.retired, len(s.running), s.retiredDropped
	for _, inst := range s.running {
		if st, ok := inst.Stats(); ok {
			sum = sum.Add(st)
		}
		dropped += inst.OutputDropped()
	}
	s.mu.Unlock()
	return InstanceStats{Index: index, Sockets: sum, Running: running,
		Starts: s.starts.Load(), Exits: s.exits.Load(), Traps: s.traps.Load(), Restarts: s.restarts.Load(),
		OutputDropped: dropped}
}

// Stats returns the group's counters; it may be called at any time from
// any goroutine (before Run, it has no instances).
func (g *Group) Stats() Stats {
	g.mu.Lock()
	slots := g.slots
	g.mu.Unlock()
	st := Stats{ReloadsOK: g.reloadsOK.Load(), ReloadsFailed: g.reloadsFailed.Load(),
		Draining: g.draining.Load(), InstancesDraining: int(g.instancesDraining.Load())}
	for i := range slots {
		st.Instances = append(st.Instances, slots[i].snapshot(i))
	}
	return st
}

// exitError is err's *engine.ExitError, or nil.
func exitError(err error) *engine.ExitError {
	var exit *engine.ExitError
	if errors.As(err, &exit) {
		return exit
	}
	return nil
}
