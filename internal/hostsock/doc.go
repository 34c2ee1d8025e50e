// Package hostsock gives wasip1 guests TCP and Unix sockets that the host
// owns, with waits that block in the kernel so that an idle guest costs no
// CPU, under any engine.
//
// The package is the engine-neutral core: a Table of the guest's socket
// fds, and the WASI preview 1 functions that may touch them (sock_accept,
// sock_recv, sock_send, sock_shutdown, fd_read, fd_write, fd_close,
// fd_fdstat_get, fd_fdstat_set_flags, fd_prestat_get, fd_filestat_get,
// poll_oneoff, and the file and path functions, which answer as Linux does
// for a socket's fd) plus the WasmEdge socket extensions, each a Func that
// decodes its parameters from a []uint64 stack and guest Memory. An engine
// binding (package wazysock for wazero) defines every Func in the guest's
// wasi_snapshot_preview1 module: Func.Call serves the table's fds and
// answers Delegate for every other fd, which the binding hands to the
// engine's own function of the same name, so stdio and files under --dir
// keep the engine's behaviour.
//
// # Fd numbers
//
// The listener is the guest fd 3 + number of preopened directories, after
// them, so that the guest's preopen scan (fd_prestat_get until EBADF) still
// finds every directory. A binding reserves that number in the engine's own fd table (wazysock's
// Reserve adds a placeholder preopen there) so that the engine never gives
// it to a file. Accepted connections get fds from ConnFDBase (1<<20)
// upward, reusing closed numbers first; engines number their files densely
// from 3 and never get near them.
//
// # Waiting
//
// poll_oneoff answers every call itself, except one that reads stdin and
// has no owned fd, which goes to the engine: it waits in ppoll(2) on the owned
// sockets (readable or writable), the nearest clock deadline, an eventfd
// that the Table's context fires when it is cancelled, and one that Drain
// fires. Subscriptions on other fds (stdout, files) are reported ready at
// once (as POSIX poll does for regular files), so no wait hangs on an fd
// the host cannot poll. (wazero's own poll_oneoff sleeps forever on a call
// such as fd_write on stdout alone, whose fds are all ready and which has
// no clock.) A guest that keeps an owned fd blocking (no FDFLAGS_NONBLOCK)
// has its reads, writes and accepts wait the same way.
//
// # Addresses
//
// Preview 1 has no getpeername or getsockname. After SendProxyHeaders,
// every connection accepted on the listener NewTable was given starts, for
// the guest, with a PROXY protocol v2 header of its client and server
// addresses, which the guest shim (package wasisock) reads: fd_read,
// sock_recv and sock_recv_from return it before any socket byte, and
// poll_oneoff reports the connection readable until it is read. An engine
// calls it only for modules that export wasisock.ProxyExport, and gives
// them the environment wasisock.EnvProxy=v2 and wasisock.EnvListenAddr.
//
// # Reclaiming
//
// With a connection limit (LimitConns), the guest's waits (poll_oneoff,
// and a blocking read) reclaim places for clients waiting in the
// listener's accept queue once the guest is at the limit: they shut down,
// longest first, connections the guest is waiting to read that are idle
// or slow senders (SetReclaim and engine.Reclaim give the rules), and wake
// when a client arrives or a connection becomes eligible. A reclaimed connection frees its place at once; its fd reads
// end of file until the guest closes it.
//
// # Trusted PROXY headers
//
// After TrustProxyFrom, connections from the trusted peers (load
// balancers) must themselves start with a PROXY header, version 1 or 2,
// which the table reads and consumes before the guest gets the
// connection; its addresses are then the ones the guest sees, in the
// header above and in sock_getpeeraddr. The connections still sending
// their header wait beside the listener: the guest's waits on it poll an
// epoll fd of the listener, those connections and a timer of their
// deadlines, and sock_accept does the reading, never blocking.
//
// # Stopping
//
// Cancelling the Table's context wakes every wait on its sockets, and
// Func.Call answers Stop to the guest's next call of any Func: the binding
// ends the run there (as proc_exit does). An engine that does not check
// the context in compiled code still stops a guest that waits or does I/O;
// one spinning without such calls must be stopped by the engine itself.
//
// Host sockets are always non-blocking; every guest pointer and length is
// checked against guest memory (EFAULT), and the result pointer is checked
// before any byte moves, so a bad pointer never loses data.
//
// The package works on Linux; elsewhere NewTable and Supported report that.
package hostsock
