//go:build wasip1

// Command probe calls wasiserve's socket functions directly, with good and
// bad arguments, on the listener at fd 3 and one accepted connection, and
// prints "name=errno" (or "name=value") lines for the host test to check.
// It echoes what the client sends, until EOF, through blocking reads.
package main

import (
	"fmt"
	"unsafe"
)

//go:wasmimport wasi_snapshot_preview1 sock_accept
func sockAccept(fd, flags, result uint32) uint32

//go:wasmimport wasi_snapshot_preview1 sock_recv
func sockRecv(fd, iovs, n, flags, resultLen, resultFlags uint32) uint32

//go:wasmimport wasi_snapshot_preview1 sock_send
func sockSend(fd, iovs, n, flags, result uint32) uint32

//go:wasmimport wasi_snapshot_preview1 sock_shutdown
func sockShutdown(fd, how uint32) uint32

//go:wasmimport wasi_snapshot_preview1 fd_read
func fdRead(fd, iovs, n, result uint32) uint32

//go:wasmimport wasi_snapshot_preview1 fd_write
func fdWrite(fd, iovs, n, result uint32) uint32

//go:wasmimport wasi_snapshot_preview1 fd_close
func fdClose(fd uint32) uint32

//go:wasmimport wasi_snapshot_preview1 fd_fdstat_get
func fdFdstatGet(fd, buf uint32) uint32

//go:wasmimport wasi_snapshot_preview1 fd_fdstat_set_flags
func fdFdstatSetFlags(fd, flags uint32) uint32

//go:wasmimport wasi_snapshot_preview1 fd_prestat_get
func fdPrestatGet(fd, buf uint32) uint32

//go:wasmimport wasi_snapshot_preview1 fd_filestat_get
func fdFilestatGet(fd, buf uint32) uint32

//go:wasmimport wasi_snapshot_preview1 fd_seek
func fdSeek(fd uint32, offset int64, whence, result uint32) uint32

//go:wasmimport wasi_snapshot_preview1 poll_oneoff
func pollOneoff(in, out, n, result uint32) uint32

// bad is an address beyond any memory a Go guest has.
const bad = 0xFFFF_FFF0

const listener = 3

func addr[T any](p *T) uint32 { return uint32(uintptr(unsafe.Pointer(p))) }

type iovec struct{ buf, len uint32 }

type subscription struct {
	userdata  uint64
	tag       uint8
	_         [7]byte
	fdOrClock uint32
	_         uint32
	timeout   uint64
	precision uint64
	flags     uint16
	_         [6]byte
}

type event struct {
	userdata uint64
	errno    uint16
	tag      uint8
	_        [5]byte
	nbytes   uint64
	flags    uint16
	_        [6]byte
}

func report(name string, v uint32) { fmt.Printf("%s=%d\n", name, v) }

// poll waits on subs and reports how many events came and the first
// event's userdata and errno.
func poll(name string, subs ...subscription) {
	var evs [4]event
	var n uint32
	errno := pollOneoff(addr(&subs[0]), addr(&evs[0]), uint32(len(subs)), addr(&n))
	report(name, errno)
	report(name+".n", n)
	if n > 0 {
		report(name+".userdata", uint32(evs[0].userdata))
		report(name+".errno", uint32(evs[0].errno))
	}
}

func main() {
	var buf [64]byte
	var n, fd, flags uint32
	good := iovec{addr(&buf[0]), uint32(len(buf))}

	report("prestat.listener", fdPrestatGet(listener, addr(&buf[0])))
	report("fdstat.listener", fdFdstatGet(listener, addr(&buf[0])))
	report("fdstat.listener.filetype", uint32(buf[0]))
	report("fdstat.badptr", fdFdstatGet(listener, bad))
	report("filestat.listener", fdFilestatGet(listener, addr(&buf[0])))
	report("filestat.listener.filetype", uint32(buf[16]))
	report("seek.listener", fdSeek(listener, 0, 0, addr(&n)))
	report("read.listener", fdRead(listener, addr(&good), 1, addr(&n)))
	report("accept.badflags", sockAccept(listener, 1, addr(&fd)))
	report("poll.zero", pollOneoff(addr(&buf[0]), addr(&buf[0]), 0, addr(&n)))
	report("poll.badin", pollOneoff(bad, addr(&buf[0]), 1, addr(&n)))
	badTag := subscription{tag: 9}
	var ev event
	report("poll.badtag", pollOneoff(addr(&badTag), addr(&ev), 1, addr(&n)))

	// A 30 ms clock alone times out; a clock beside the listener does too
	// while no client has connected.
	poll("poll.clock", subscription{userdata: 7, tag: 0, fdOrClock: 1, timeout: 30e6})
	// fd_write on stdout alone is ready at once (wazero's own poll_oneoff
	// sleeps forever on it: it has no clock to bound the wait).
	poll("poll.stdout", subscription{userdata: 13, tag: 2, fdOrClock: 1})
	// Wait (no clock) until the client connects.
	poll("poll.listener", subscription{userdata: 9, tag: 1, fdOrClock: listener})
	report("accept.badptr", sockAccept(listener, 0, bad))
	report("accept", sockAccept(listener, 0, addr(&fd))) // blocking: the connection was not lost
	report("conn.high", b2u(fd >= 1<<20))
	report("fdstat.conn", fdFdstatGet(fd, addr(&buf[0])))
	report("fdstat.conn.filetype", uint32(buf[0]))
	report("fdstat.conn.nonblock", uint32(buf[2])&4)

	report("read.badiovs", fdRead(fd, bad, 1, addr(&n)))
	report("read.badbuf", fdRead(fd, addr(&iovec{bad, 16}), 1, addr(&n)))
	report("read.badresult", fdRead(fd, addr(&good), 1, bad))
	report("read.toomany", fdRead(fd, addr(&good), 1025, addr(&n)))
	report("write.badresult", fdWrite(fd, addr(&good), 1, bad))
	report("recv.badflags", sockRecv(fd, addr(&good), 1, 4, addr(&n), addr(&flags)))
	report("recv.badroflags", sockRecv(fd, addr(&good), 1, 0, addr(&n), bad))
	report("send.flags", sockSend(fd, addr(&good), 1, 1, addr(&n)))
	report("shutdown.bad", sockShutdown(fd, 0))
	report("fdstat.setflags.sync", fdFdstatSetFlags(fd, 0x10))

	// Peek the client's first bytes, then echo until EOF with blocking reads.
	report("recv.peek", sockRecv(fd, addr(&good), 1, 1, addr(&n), addr(&flags)))
	total := 0
	for {
		if errno := fdRead(fd, addr(&good), 1, addr(&n)); errno != 0 {
			report("read.errno", errno)
			break
		}
		if n == 0 {
			break
		}
		total += int(n)
		out := iovec{addr(&buf[0]), n}
		var sent uint32
		if errno := sockSend(fd, addr(&out), 1, 0, addr(&sent)); errno != 0 || sent != n {
			report("send.errno", errno)
			break
		}
	}
	report("echoed", uint32(total))
	// The write side is still open: fd_write is ready at once.
	poll("poll.write", subscription{userdata: 11, tag: 2, fdOrClock: fd})
	report("shutdown.wr", sockShutdown(fd, 2))
	report("close", fdClose(fd))
	report("close.again", fdClose(fd))
	report("read.closed", fdRead(fd, addr(&good), 1, addr(&n)))
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}
