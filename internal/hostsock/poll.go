package hostsock

import (
	"math"
	"time"
)

// pollOneoff serves poll_oneoff. The table answers every call itself
// except one that waits to read stdin with no owned fd (see answers): it
// blocks in the kernel (ppoll) on the owned sockets, the nearest clock
// deadline and the table's waker, so a guest that waits costs no CPU.
// Subscriptions on fds the table does not own (stdout, files) are reported
// ready at once, as POSIX poll does for regular files and wazero does for
// its non-blocking fds: the guest's next read or write then tells the
// truth, and no wait can hang on an fd the host cannot poll. Calls that
// need stdin go to the engine's own poll_oneoff.
func pollOneoff(t *Table, mem Memory, stack []uint64) (Errno, bool) {
	in, out, nsubscriptions, result := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3])
	subs, errno := subscriptions(mem, in, nsubscriptions, t.subs[:0])
	t.subs = subs[:0]
	if errno != errnoSuccess {
		return errno, true
	}
	if !t.answers(subs) {
		return 0, false
	}
	t.counters.waits.Add(1)
	outBuf, ok := mem.Read(out, nsubscriptions*eventSize)
	if !ok {
		return errnoFault, true
	}
	if _, ok := mem.Read(result, 4); !ok {
		return errnoFault, true
	}
	nevents, errno := t.pollSubs(subs, outBuf)
	if errno != errnoSuccess {
		return errno, true
	}
	putUint32(mem, result, nevents)
	return errnoSuccess, true
}

// heldBack marks, in pollSubs, a listener subscription that cannot fire
// because the guest is at its connection limit.
const heldBack = -2

// stdinFD is the guest's standard input.
const stdinFD = 0

// answers reports whether the table handles subs itself: always, unless
// no subscription is on an owned fd and one is a read of stdin, which only
// wazero can wait on. (wazero's poll_oneoff also sleeps forever on a call
// whose fd subscriptions are all ready at once and that has no clock, such
// as fd_write on stdout alone; the table answers those at once.)
func (t *Table) answers(subs []subscription) bool {
	stdin := false
	for _, s := range subs {
		if s.tag == eventtypeClock {
			continue
		}
		if _, ok := t.lookup(s.fd); ok {
			return true
		}
		stdin = stdin || s.tag == eventtypeFdRead && s.fd == stdinFD
	}
	return !stdin
}

// pollSubs waits for subs and writes their events into out, returning the
// count.
func (t *Table) pollSubs(subs []subscription, out []byte) (uint32, Errno) {
	start := time.Now()
	for {
		n, again, errno := t.pollOnce(subs, out, start)
		if !again || errno != errnoSuccess || n > 0 || t.stopped() {
			return n, errno
		}
		// Only the reclaiming woke the wait: nothing for the guest yet.
	}
}

// pollOnce is one wait of pollSubs for a call that began at start. When
// the guest is at its connection limit it first reclaims connections for
// the clients that wait (reclaimFor), and again reports whether the wait
// ended for reclaiming only (a client arrived, or a connection became
// eligible), so that pollSubs waits once more.
func (t *Table) pollOnce(subs []subscription, out []byte, start time.Time) (uint32, bool, Errno) {
	ln, probe, recheck := t.reclaimFor(subs, time.Now())
	var deadline time.Time // the nearest clock; zero means none
	immediate := false
	fds := t.pollFDs[:0]
	slot := t.slots[:0] // slot[i] is subs[i]'s index in fds, -1 (ready) or heldBack
	watchDrain := false
	for _, s := range subs {
		idx := -1
		switch s.tag {
		case eventtypeClock:
			d, errno := clockDeadline(s, start)
			if errno != errnoSuccess || !d.After(start) {
				immediate = true
			} else if deadline.IsZero() || d.Before(deadline) {
				deadline = d
			}
		default:
			e, ok := t.lookup(s.fd)
			if !ok {
				immediate = true // a foreign fd: reported ready
				break
			}
			events := int16(pollIn)
			if s.tag == eventtypeFdWrite {
				events = pollOut
			} else if len(e.pending) > 0 {
				immediate = true // readable: fd_read returns the pending bytes
				break
			} else if e.kind == kindListener {
				t.markReady()
				if t.draining.Load() {
					break // ready: sock_accept answers EINVAL
				}
				watchDrain = true
				if t.atConnLimit() {
					idx = heldBack // never ready while at the limit
					break
				}
			}
			idx = len(fds)
			fds = append(fds, pollFD{Fd: int32(t.pollHost(e)), Events: events})
		}
		slot = append(slot, idx)
	}
	wait := deadline
	if immediate {
		wait = start // collect what is ready without waiting
	} else if !recheck.IsZero() && (wait.IsZero() || recheck.Before(wait)) {
		wait = recheck
	}
	probeIdx := -1
	if probe && !immediate {
		probeIdx = len(fds)
		fds = append(fds, pollFD{Fd: int32(ln.host), Events: pollIn})
	}
	fds, errno := t.poll(fds, wait, watchDrain)
	t.pollFDs, t.slots = fds[:0], slot[:0]
	if errno != errnoSuccess {
		return 0, false, errno
	}
	now := time.Now()
	again := probeIdx >= 0 && fds[probeIdx].Revents != 0 || !recheck.IsZero() && !now.Before(recheck)
	var n uint32
	for i, s := range subs {
		ev := event{userdata: s.userdata, tag: s.tag}
		ready := false
		switch {
		case s.tag == eventtypeClock:
			d, errno := clockDeadline(s, start)
			ev.errno = errno
			ready = errno != errnoSuccess || !now.Before(d)
		case s.tag == eventtypeFdRead && t.drained(s.fd):
			ready = true // Drain was called during the wait
		case slot[i] == heldBack:
		case slot[i] < 0:
			ready = true
		default:
			re := fds[slot[i]].Revents
			switch {
			case re&pollNval != 0:
				ready, ev.errno = true, errnoBadf
			case s.tag == eventtypeFdRead:
				ready = re&(pollIn|pollHup|pollErr) != 0
			default:
				ready = re&(pollOut|pollHup|pollErr) != 0
			}
			ev.hangup = re&pollHup != 0
		}
		if ready {
			putEvent(out[n*eventSize:], ev)
			n++
		}
	}
	return n, again, errnoSuccess
}

// drained reports whether fd is a listener of a draining table.
func (t *Table) drained(fd uint32) bool {
	if !t.draining.Load() {
		return false
	}
	e, ok := t.lookup(fd)
	return ok && e.kind == kindListener
}

// clockDeadline is when a clock subscription fires, counted from now for
// relative ones. Absolute monotonic deadlines are not supported: the
// guest's monotonic clock has an origin the host does not see.
func clockDeadline(s subscription, now time.Time) (time.Time, Errno) {
	switch {
	case s.flags&^subclockAbstime != 0:
		return time.Time{}, errnoInval
	case s.flags&subclockAbstime == 0:
		return now.Add(time.Duration(min(s.timeout, math.MaxInt64))), errnoSuccess
	case s.clockID == clockRealtime:
		return time.Unix(0, int64(min(s.timeout, math.MaxInt64))), errnoSuccess
	default:
		return time.Time{}, errnoNotsup
	}
}
