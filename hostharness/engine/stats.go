package engine

// Stats are the counters of a run whose host owns the sockets (kept by
// the host socket layer's table of the run), and its linear memory size. Every field only grows, except OpenConns and
// MemoryBytes, which are present values.
type Stats struct {
	// AcceptedConns counts the connections the guest accepted.
	AcceptedConns uint64
	// OpenConns is the number of accepted connections still open.
	OpenConns uint64
	// BytesRead and BytesWritten count the bytes the guest received from
	// and sent on its sockets.
	BytesRead, BytesWritten uint64
	// AcceptHolds counts the times the guest reached its connection limit
	// (Config.MaxConns), so that further clients waited in the backlog.
	AcceptHolds uint64
	// ReclaimedIdle and ReclaimedSlow count the connections the host
	// closed to admit clients waiting at the connection limit: idle ones
	// (keep-alive between requests) and slow senders (see Reclaim).
	ReclaimedIdle, ReclaimedSlow uint64
	// DialsDenied, ListensDenied and LookupsDenied count the guest's own
	// socket calls that the policy (Config.AllowDial, AllowListen)
	// refused: connects and datagram sends, binds and listens, and name
	// lookups.
	DialsDenied, ListensDenied, LookupsDenied uint64
	// MemoryBytes is the size of the guest's linear memory at its last
	// socket call; 0 if unknown.
	MemoryBytes uint64
	// Waits counts the guest's poll_oneoff calls that the host answered:
	// a Go runtime that still schedules makes them, one that failed and
	// prints its goroutines does not (see LivenessInterval).
	Waits uint64
}

// Add returns the sum of s and o, field by field.
func (s Stats) Add(o Stats) Stats {
	return Stats{
		AcceptedConns: s.AcceptedConns + o.AcceptedConns,
		OpenConns:     s.OpenConns + o.OpenConns,
		BytesRead:     s.BytesRead + o.BytesRead,
		BytesWritten:  s.BytesWritten + o.BytesWritten,
		AcceptHolds:   s.AcceptHolds + o.AcceptHolds,
		ReclaimedIdle: s.ReclaimedIdle + o.ReclaimedIdle,
		ReclaimedSlow: s.ReclaimedSlow + o.ReclaimedSlow,
		DialsDenied:   s.DialsDenied + o.DialsDenied,
		ListensDenied: s.ListensDenied + o.ListensDenied,
		LookupsDenied: s.LookupsDenied + o.LookupsDenied,
		MemoryBytes:   s.MemoryBytes + o.MemoryBytes,
		Waits:         s.Waits + o.Waits,
	}
}
