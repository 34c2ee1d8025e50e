// Package hostsock gives wasip1 guests running on wazero TCP sockets that
// the host owns, with waits that block in the kernel so that an idle guest
// costs no CPU.
//
// wazero's own socket support reports every non-blocking fd as ready in
// poll_oneoff, so a Go guest's netpoller never sleeps. This package builds
// the guest's wasi_snapshot_preview1 module from wazero's functions
// (wasi_snapshot_preview1.NewFunctionExporter) and replaces the ones that
// touch sockets: sock_accept, sock_recv, sock_send, sock_shutdown, fd_read,
// fd_write, fd_close, fd_fdstat_get, fd_fdstat_set_flags, fd_prestat_get,
// fd_filestat_get and poll_oneoff. A replacement serves the fds of the
// Table in the call's context (WithTable) and hands every other fd to
// wazero's implementation of the same function, reached through
// api.FunctionDefinition.GoFunction and called with the same module and
// stack. File and path functions are wrapped too, so that they answer as
// Linux does (ESPIPE, ENOTDIR, ...) for a socket's fd number instead of
// acting on a file.
//
// # Fd numbers
//
// The listener is the guest fd 3 + number of preopened directories, after
// them, so that the guest's preopen scan (fd_prestat_get until EBADF) still
// finds every directory. Reserve puts a placeholder preopen at that number
// in wazero's fd table so that wazero never gives it to a file.
// Accepted connections get fds from ConnFDBase (1<<20) upward, reusing
// closed numbers first; wazero numbers its files densely from 3 and never
// gets near them.
//
// # Waiting
//
// poll_oneoff answers every call itself, except one that reads stdin and
// has no owned fd, which goes to wazero: it waits in ppoll(2) on the owned
// sockets (readable or writable), the nearest clock deadline, an eventfd
// that the Table's context fires when it is cancelled, and one that Drain
// fires. Subscriptions on other fds (stdout, files) are reported ready at
// once (as POSIX poll does for regular files), so no wait hangs on an fd
// the host cannot poll. (wazero's own poll_oneoff sleeps forever on a call
// such as fd_write on stdout alone, whose fds are all ready and which has
// no clock.) A guest that keeps an owned fd blocking (no FDFLAGS_NONBLOCK)
// has its reads, writes and accepts wait the same way.
//
// # Stopping
//
// Cancelling the Table's context wakes every wait on its sockets, and the
// guest's next call of any function this package serves ends its run (as
// proc_exit does, with sys.ExitCodeContextCanceled). A runtime using the
// package therefore need not make compiled code check the context
// (wazero's WithCloseOnContextDone), which costs the Go echo guest about
// 40 % of its throughput; a guest spinning without such calls is then not
// stopped.
//
// Host sockets are always non-blocking; every guest pointer and length is
// checked against guest memory (EFAULT), and the result pointer is checked
// before any byte moves, so a bad pointer never loses data.
//
// The package works on Linux; elsewhere NewTable and Supported report that.
package hostsock
