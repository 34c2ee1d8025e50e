package hostsock

import "time"

// io runs op until it stops answering EAGAIN, waiting for events in the
// kernel between tries when the guest asked for a blocking fd.
func (t *Table) io(e *entry, events int16, op func() Errno) Errno {
	for {
		errno := op()
		if errno != errnoAgain || e.nonblock {
			return errno
		}
		if errno := t.await(e, events); errno != errnoSuccess {
			return errno
		}
	}
}

// await waits until e is ready for events, or Drain is called while
// waiting on a listener, or the table's context is cancelled (EINTR).
func (t *Table) await(e *entry, events int16) Errno {
	fds, errno := t.poll([]pollFD{{Fd: int32(t.pollHost(e)), Events: events}}, time.Time{}, e.kind == kindListener)
	if errno != errnoSuccess {
		return errno
	}
	if fds[1].Revents != 0 {
		return errnoIntr
	}
	return errnoSuccess
}

// poll waits on fds and the table's waker (and its drain waker, when
// watchDrain) until one is ready or deadline (zero: none). It returns fds
// with the wakers' entries appended.
func (t *Table) poll(fds []pollFD, deadline time.Time, watchDrain bool) ([]pollFD, Errno) {
	fds = append(fds, pollFD{Fd: int32(t.wake.fd), Events: pollIn})
	if watchDrain && !t.draining.Load() {
		fds = append(fds, pollFD{Fd: int32(t.drain.fd), Events: pollIn})
	}
	return fds, ppoll(fds, deadline)
}

// rw resolves an iovec array into the table's scratch list and checks the
// result pointer before any byte moves, so that a bad pointer never loses
// data. The caller hands the list back with done.
func (t *Table) rw(mem Memory, iovs, count, result uint32) ([][]byte, Errno) {
	if _, ok := mem.Read(result, 4); !ok {
		return nil, errnoFault
	}
	return iovecs(mem, iovs, count, t.bufs[:0])
}

// done keeps bufs' array for the next call, holding no view of guest
// memory (which may be reallocated when it grows).
func (t *Table) done(bufs [][]byte) {
	clear(bufs)
	t.bufs = bufs[:0]
}

func fdRead(t *Table, mem Memory, _ uint32, e *entry, stack []uint64) Errno {
	if e.kind != kindConn {
		return errnoNotconn
	}
	return recvInto(t, mem, e, stack, 0, uint32(stack[3]))
}

func sockRecv(t *Table, mem Memory, _ uint32, e *entry, stack []uint64) Errno {
	riFlags := uint32(stack[3])
	if riFlags&^(riRecvPeek|riRecvWaitall) != 0 {
		return errnoNotsup
	}
	if e.kind != kindConn {
		return errnoNotconn
	}
	roFlags := uint32(stack[5])
	if _, ok := mem.Read(roFlags, 2); !ok {
		return errnoFault
	}
	// MSG_WAITALL reaches the host as is; as host sockets are
	// non-blocking, it returns what has arrived rather than waiting.
	errno := recvInto(t, mem, e, stack, recvFlags(riFlags), uint32(stack[4]))
	if errno == errnoSuccess {
		putUint16(mem, roFlags, 0)
	}
	return errno
}

// recvFlags maps WASI ri_flags to recvmsg(2) flags.
func recvFlags(riFlags uint32) int {
	var flags int
	if riFlags&riRecvPeek != 0 {
		flags |= msgPeek
	}
	if riFlags&riRecvWaitall != 0 {
		flags |= msgWaitall
	}
	return flags
}

// recvInto reads from e into the iovecs at stack[1], stack[2] and writes the
// count at result.
func recvInto(t *Table, mem Memory, e *entry, stack []uint64, flags int, result uint32) Errno {
	bufs, errno := t.rw(mem, uint32(stack[1]), uint32(stack[2]), result)
	var n int
	if errno == errnoSuccess {
		switch {
		case len(e.pending) > 0:
			n = e.takePending(bufs, flags&msgPeek != 0)
		case total(bufs) > 0:
			errno = t.io(e, pollIn, func() Errno {
				n, errno = recv(e.host, bufs, flags)
				return errno
			})
			if errno == errnoSuccess {
				t.counters.read.Add(uint64(n))
			}
		}
	}
	t.done(bufs)
	if errno != errnoSuccess {
		return errno
	}
	putUint32(mem, result, uint32(n))
	return errnoSuccess
}

func fdWrite(t *Table, mem Memory, _ uint32, e *entry, stack []uint64) Errno {
	return sendFrom(t, mem, e, stack, uint32(stack[3]))
}

func sockSend(t *Table, mem Memory, _ uint32, e *entry, stack []uint64) Errno {
	if uint32(stack[3]) != 0 { // si_flags: none are defined
		return errnoNotsup
	}
	return sendFrom(t, mem, e, stack, uint32(stack[4]))
}

// sendFrom writes the iovecs at stack[1], stack[2] to e and the count at
// result.
func sendFrom(t *Table, mem Memory, e *entry, stack []uint64, result uint32) Errno {
	if e.kind != kindConn {
		return errnoNotconn
	}
	bufs, errno := t.rw(mem, uint32(stack[1]), uint32(stack[2]), result)
	var n int
	if errno == errnoSuccess && total(bufs) > 0 {
		errno = t.io(e, pollOut, func() Errno {
			n, errno = send(e.host, bufs)
			return errno
		})
		if errno == errnoSuccess {
			t.counters.written.Add(uint64(n))
		}
	}
	t.done(bufs)
	if errno != errnoSuccess {
		return errno
	}
	putUint32(mem, result, uint32(n))
	return errnoSuccess
}

func total(bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
}

func fdClose(t *Table, _ Memory, fd uint32, _ *entry, _ []uint64) Errno {
	if err := t.remove(fd); err != nil {
		return errnoOf(err)
	}
	return errnoSuccess
}

func fdFdstatGet(_ *Table, mem Memory, _ uint32, e *entry, stack []uint64) Errno {
	buf, ok := mem.Read(uint32(stack[1]), fdstatSize)
	if !ok {
		return errnoFault
	}
	var flags uint16
	if e.nonblock {
		flags |= fdflagNonblock
	}
	if e.kind == kindListener {
		putFdstat(buf, flags, listenerRights, listenerInheritRights)
	} else {
		putFdstat(buf, flags, connRights, 0)
	}
	if e.opened != nil && e.opened.dgram {
		buf[0] = filetypeSocketDgram
	}
	return errnoSuccess
}

func fdFdstatSetFlags(_ *Table, _ Memory, _ uint32, e *entry, stack []uint64) Errno {
	flags := uint16(stack[1])
	if flags&(fdflagDsync|fdflagRsync|fdflagSync) != 0 {
		return errnoInval
	}
	// FDFLAGS_APPEND means nothing on a socket, as on Linux.
	e.nonblock = flags&fdflagNonblock != 0
	return errnoSuccess
}

func fdFilestatGet(_ *Table, mem Memory, _ uint32, e *entry, stack []uint64) Errno {
	buf, ok := mem.Read(uint32(stack[1]), filestatSize)
	if !ok {
		return errnoFault
	}
	st, errno := stat(e.host)
	if errno != errnoSuccess {
		return errno
	}
	putFilestat(buf, st)
	return errnoSuccess
}

func sockAccept(t *Table, mem Memory, _ uint32, e *entry, stack []uint64) Errno {
	flags := uint32(stack[1])
	result := uint32(stack[2])
	if flags&^fdflagNonblock != 0 {
		return errnoInval
	}
	if e.kind != kindListener {
		return errnoInval // as accept(2) on a socket that is not listening
	}
	if _, ok := mem.Read(result, 4); !ok {
		return errnoFault
	}
	t.markReady()
	if t.atConnLimit() && !t.draining.Load() {
		return errnoAgain // only the guest's own close can free a slot
	}
	var host int
	var header []byte
	var addrs *connAddrs
	errno := t.io(e, pollIn, func() Errno {
		for {
			if t.draining.Load() {
				return errnoInval
			}
			var errno Errno
			if t.proxy != nil && e.lent {
				host, header, addrs, errno = t.proxy.accept(e.host, t.proxyHeaders)
				return errno
			}
			if host, errno = accept(e.host); errno != errnoSuccess || !t.proxyHeaders || !e.lent {
				return errno
			}
			if header, errno = acceptedHeader(host); errno == errnoSuccess {
				return errno
			}
			closeFD(host)
			if errno != errnoAgain {
				return errno
			}
			// The client left before its address was read: take the next.
		}
	})
	if errno != errnoSuccess {
		return errno
	}
	fd, errno := t.addConn(host, flags&fdflagNonblock != 0, header)
	if errno != errnoSuccess {
		closeFD(host)
		return errno
	}
	t.fds[fd].addrs = addrs
	putUint32(mem, result, fd)
	return errnoSuccess
}

func sockShutdown(_ *Table, _ Memory, _ uint32, e *entry, stack []uint64) Errno {
	if e.kind != kindConn {
		return errnoNotconn
	}
	return shutdown(e.host, uint8(stack[1]))
}
