package hostsock

import (
	"slices"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine"
)

// Reclaiming connection slots (see engine.Reclaim for the rules): while
// the guest is at its connection limit and clients wait in the
// listener's accept queue, poll_oneoff (and a blocking read, awaitRead)
// closes the connections that hold
// a slot without using it, idle ones, slow senders and ones whose answer
// the client does not take (stalledWriteGrace), longest eligible first, so that the waiting clients are admitted. A reclaimed
// connection is shut down both ways at once, which frees its slot; its
// guest fd stays until the guest closes it, reads answering end of file,
// so that the guest sees a client that went away.

// reclaimRecheck is how soon a wait under pressure looks again at
// connections that could not be judged from their traffic alone: bytes
// of the guest's still unacknowledged by the client.
const reclaimRecheck = 100 * time.Millisecond

// stalledWriteGrace is how long the guest may wait to write to a
// connection without a byte going out (the client takes none of the
// answer: it holds it back, or reads so slowly that no write fits) before
// the connection is reclaimed as slow. A client that reads at all frees
// room for the guest's next write within it.
const stalledWriteGrace = 10 * time.Second

// traffic is what the host has seen of one accepted connection, for
// reclaiming.
type traffic struct {
	// last is when bytes last moved either way (the accept at first).
	last time.Time
	// fromClient: the last bytes were the client's, a request under way.
	fromClient bool
	// deadline is the progress deadline of the request under way.
	deadline time.Time
	// want is the length of the guest's last read.
	want int
	// reclaimed: the host shut the connection down; reads answer end of
	// file until the guest closes the fd.
	reclaimed bool
	// readGen and writeGen are the poll_oneoff call (reclaimer.gen) that
	// last subscribed to reading and to writing it.
	readGen, writeGen uint64
}

// reclaimer is a table's reclaiming state.
type reclaimer struct {
	// cfg has its defaults set; off when cfg.Off.
	cfg engine.Reclaim
	// open counts reclaimed connections the guest has not closed yet: at
	// maxConns of them reclaiming pauses, so that a guest that never
	// closes cannot make the host hold more than twice its limit.
	open int
	// gen numbers the waits that marked the connections waited on.
	gen uint64
	// listener is the lent listener, whose accept queue tells whether
	// clients wait.
	listener *entry
	// candidates is scratch space of reclaim.
	candidates []candidate
}

// candidate is a connection eligible for reclaiming since at.
type candidate struct {
	e    *entry
	at   time.Time
	slow bool
	// stalled: the guest waits to write to it (see stalledWriteGrace).
	stalled bool
}

// SetReclaim sets when the table reclaims connections at its connection
// limit (see engine.Reclaim; the zero value is engine.DefaultReclaim).
// Without a limit (LimitConns) nothing is reclaimed.
func (t *Table) SetReclaim(r engine.Reclaim) error {
	if err := r.Check(); err != nil {
		return err
	}
	t.reclaim.cfg = r.WithDefaults()
	return nil
}

// noteAccepted starts a new connection's traffic.
func (tr *traffic) noteAccepted(now time.Time) {
	*tr = traffic{last: now}
}

// noteRead records n bytes received from the client.
func (tr *traffic) noteRead(r *engine.Reclaim, n int, now time.Time) {
	if !tr.fromClient {
		tr.fromClient = true
		tr.deadline = now.Add(r.SlowGrace)
	}
	tr.last = now
	// Each byte moves the deadline on by 1/MinRate s, never more than
	// SlowGrace ahead of now.
	credit := time.Duration(int64(n) * int64(time.Second) / int64(max(r.MinRate, 1)))
	tr.deadline = tr.deadline.Add(credit)
	if limit := now.Add(r.SlowGrace); tr.deadline.After(limit) {
		tr.deadline = limit
	}
}

// noteWritten records bytes sent by the guest.
func (tr *traffic) noteWritten(now time.Time) {
	tr.fromClient = false
	tr.last = now
}

// eligibleAt is when the connection becomes reclaimable by its traffic,
// and whether as a slow sender.
func (tr *traffic) eligibleAt(r *engine.Reclaim) (time.Time, bool) {
	if tr.fromClient {
		return tr.deadline, true
	}
	return tr.last.Add(r.IdleGrace), false
}

// watching reports whether the guest's wait on the connection is a read
// of at most one byte (Go's net/http watching for the client's close
// while a handler runs, a response in flight), or whether the guest has
// not read it yet: either way it is not reclaimed.
func (tr *traffic) watching() bool { return tr.want <= 1 }

// noteSubscriptions marks the connections subs read and write, for
// reclaimFor, and returns the lent listener when subs wait on it (nil
// otherwise).
func (t *Table) noteSubscriptions(subs []subscription) (listener *entry) {
	t.reclaim.gen++
	gen := t.reclaim.gen
	for _, s := range subs {
		if s.tag == eventtypeClock {
			continue
		}
		e, ok := t.lookup(s.fd)
		switch {
		case !ok:
		case e.kind == kindListener:
			if s.tag == eventtypeFdRead && e.lent {
				listener = e
			}
		case e.opened != nil:
		case s.tag == eventtypeFdRead:
			e.traffic.readGen = gen
		default:
			e.traffic.writeGen = gen
		}
	}
	return listener
}

// underPressure reports whether reclaiming may run: a limit, reached,
// not draining, reclaiming on.
func (t *Table) underPressure() bool {
	return t.maxConns > 0 && !t.reclaim.cfg.Off && t.reclaim.cfg.MinRate > 0 &&
		t.atConnLimit() && !t.draining.Load()
}

// reclaimFor runs reclaiming for a poll_oneoff call on subs at now, when
// the guest is at its limit. It answers probe when no client waits yet,
// so that the wait should also wake when one arrives at the listener
// ln, and otherwise the time (zero: none) when the wait should wake to
// look again, as a connection becomes eligible.
func (t *Table) reclaimFor(subs []subscription, now time.Time) (ln *entry, probe bool, next time.Time) {
	if !t.underPressure() {
		return nil, false, time.Time{}
	}
	if ln = t.noteSubscriptions(subs); ln == nil {
		return nil, false, time.Time{}
	}
	probe, next = t.reclaimReaders(ln, now)
	return ln, probe, next
}

// awaitRead is await for a guest blocked reading connection e (a
// blocking fd) at its connection limit: the wait also wakes when a client
// arrives at the listener or e becomes eligible, and e is reclaimed for a
// waiting client as in poll_oneoff. It answers success once e is readable
// or reclaimed (the read then answers end of file).
func (t *Table) awaitRead(e *entry) Errno {
	for {
		t.reclaim.gen++
		e.traffic.readGen = t.reclaim.gen
		probe, recheck := t.reclaimReaders(t.reclaim.listener, time.Now())
		if e.traffic.reclaimed {
			return errnoSuccess
		}
		fds := []pollFD{{Fd: int32(e.host), Events: pollIn}}
		if probe {
			fds = append(fds, pollFD{Fd: int32(t.reclaim.listener.host), Events: pollIn})
		}
		fds, errno := t.poll(fds, recheck, false)
		switch {
		case errno != errnoSuccess:
			return errno
		case fds[len(fds)-1].Revents != 0: // the table's waker
			return errnoIntr
		case fds[0].Revents != 0:
			return errnoSuccess
		}
	}
}

// reclaimReaders reclaims, for the clients waiting at the lent listener
// ln, the connections marked as waited on to read by the current wait
// (reclaim.gen) that are eligible at now, longest eligible first. It
// answers probe when no client waits yet, and otherwise when to look
// again (zero: no need).
func (t *Table) reclaimReaders(ln *entry, now time.Time) (probe bool, next time.Time) {
	waiting := backlog(ln.host)
	if waiting == 0 {
		return true, time.Time{}
	}
	r := &t.reclaim.cfg
	gen := t.reclaim.gen
	cands := t.reclaim.candidates[:0]
	for _, e := range t.fds {
		tr := &e.traffic
		if e.kind == kindConn && e.opened == nil && !tr.reclaimed && tr.writeGen == gen {
			if at := tr.last.Add(stalledWriteGrace); at.After(now) {
				if next.IsZero() || at.Before(next) {
					next = at
				}
			} else {
				cands = append(cands, candidate{e: e, at: at, slow: true, stalled: true})
			}
			continue
		}
		if e.kind != kindConn || e.opened != nil || tr.reclaimed || tr.readGen != gen || tr.writeGen == gen ||
			tr.watching() || len(e.pending) > 0 {
			continue
		}
		at, slow := tr.eligibleAt(r)
		if at.After(now) {
			if next.IsZero() || at.Before(next) {
				next = at
			}
			continue
		}
		cands = append(cands, candidate{e: e, at: at, slow: slow})
	}
	slices.SortFunc(cands, func(a, b candidate) int { return a.at.Compare(b.at) })
	todo := min(waiting, engine.ReclaimBatch)
	for _, c := range cands {
		if todo == 0 || t.reclaim.open >= t.maxConns {
			break
		}
		if c.stalled {
			t.reclaimConn(c.e, true)
			todo--
			continue
		}
		if unread(c.e.host) != 0 {
			continue // the client's bytes wait for the guest: not idle
		}
		if unsent(c.e.host) != 0 {
			// The client has not taken all of the guest's bytes yet: a
			// response in flight, or one the client holds back; look
			// again soon.
			if recheck := now.Add(reclaimRecheck); next.IsZero() || recheck.Before(next) {
				next = recheck
			}
			continue
		}
		t.reclaimConn(c.e, c.slow)
		todo--
	}
	clear(cands)
	t.reclaim.candidates = cands[:0]
	return false, next
}

// reclaimConn shuts e down both ways and frees its slot.
func (t *Table) reclaimConn(e *entry, slow bool) {
	shutdown(e.host, sdRD|sdWR)
	e.traffic.reclaimed = true
	t.reclaim.open++
	t.conns--
	t.counters.closed.Add(1)
	if slow {
		t.counters.reclaimedSlow.Add(1)
	} else {
		t.counters.reclaimedIdle.Add(1)
	}
}

// forget updates the counts when the guest closes e.
func (t *Table) forget(e *entry) {
	switch {
	case e.opened != nil:
		t.sockets--
	case e.kind != kindConn:
	case e.traffic.reclaimed:
		t.reclaim.open--
	default:
		t.conns--
		t.counters.closed.Add(1)
	}
}
