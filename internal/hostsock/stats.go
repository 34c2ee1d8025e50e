package hostsock

import "sync/atomic"

// Stats are a table's counters since NewTable. Every field only grows,
// except OpenConns and MemoryBytes, which are the present values.
type Stats struct {
	// AcceptedConns counts the connections the guest accepted.
	AcceptedConns uint64
	// OpenConns is the number of accepted connections still open.
	OpenConns uint64
	// BytesRead and BytesWritten count the bytes the guest received from
	// and sent on the table's sockets.
	BytesRead, BytesWritten uint64
	// AcceptHolds counts the times the guest reached its connection limit
	// (LimitConns), so that further clients waited in the backlog.
	AcceptHolds uint64
	// DialsDenied, ListensDenied and LookupsDenied count the guest's own
	// socket calls that the Policy refused: connects and datagram sends,
	// binds and listens, and name lookups.
	DialsDenied, ListensDenied, LookupsDenied uint64
	// MemoryBytes is the size of the guest's linear memory at its last
	// call of a Func, when its Memory reports one (see Sizer); 0 if not.
	MemoryBytes uint64
}

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
	dials, listens, lookup atomic.Uint64
	memory                 atomic.Uint64
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
		DialsDenied:   c.dials.Load(),
		ListensDenied: c.listens.Load(),
		LookupsDenied: c.lookup.Load(),
		MemoryBytes:   c.memory.Load(),
	}
}

// noteMemory records mem's size when it can tell it.
func (c *counters) noteMemory(mem Memory) {
	if s, ok := mem.(Sizer); ok {
		c.memory.Store(uint64(s.Size()))
	}
}
