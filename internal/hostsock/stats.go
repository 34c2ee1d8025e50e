package hostsock

import (
	"sync/atomic"

	"github.com/wasiserve/wasiserve/hostharness/engine"
)

// Stats are a table's counters since NewTable (see engine.Stats).
type Stats = engine.Stats

// Sizer is a Memory that can tell its size in bytes; wazero's api.Memory
// is one. A table records the size at each call, for Stats.
type Sizer interface {
	Size() uint32
}

// counters are a table's Stats, updated by the guest's goroutine and read
// by any other: atomics, so that neither side takes a lock.
type counters struct {
	accepted, closed       atomic.Uint64
	read, written          atomic.Uint64
	holds                  atomic.Uint64
	reclaimedIdle          atomic.Uint64
	reclaimedSlow          atomic.Uint64
	dials, listens, lookup atomic.Uint64
	memory                 atomic.Uint64
	waits                  atomic.Uint64
}

// Stats returns the table's counters. It may be called from any goroutine,
// also after Close (it then returns the final values).
func (t *Table) Stats() Stats {
	c := &t.counters
	accepted := c.accepted.Load()
	return Stats{
		AcceptedConns: accepted,
		OpenConns:     accepted - min(c.closed.Load(), accepted),
		BytesRead:     c.read.Load(),
		BytesWritten:  c.written.Load(),
		AcceptHolds:   c.holds.Load(),
		ReclaimedIdle: c.reclaimedIdle.Load(),
		ReclaimedSlow: c.reclaimedSlow.Load(),
		DialsDenied:   c.dials.Load(),
		ListensDenied: c.listens.Load(),
		LookupsDenied: c.lookup.Load(),
		MemoryBytes:   c.memory.Load(),
		Waits:         c.waits.Load(),
	}
}

// noteMemory records mem's size when it can tell it.
func (c *counters) noteMemory(mem Memory) {
	if s, ok := mem.(Sizer); ok {
		c.memory.Store(uint64(s.Size()))
	}
}
