package hostsock

import (
	"context"
	"fmt"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	wasi "github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Instantiate instantiates the wasi_snapshot_preview1 host module in rt:
// wazero's own functions, with the socket-related ones replaced (see
// Export). Guests then get host sockets for the fds of the Table in the
// context they are instantiated with (WithTable), and wazero's behaviour
// for every other fd.
func Instantiate(ctx context.Context, rt wazero.Runtime) (api.Closer, error) {
	b := rt.NewHostModuleBuilder(wasi.ModuleName)
	if err := Export(ctx, rt, b); err != nil {
		return nil, err
	}
	mod, err := b.Instantiate(ctx)
	if err != nil {
		return nil, fmt.Errorf("instantiate %s: %w", wasi.ModuleName, err)
	}
	return mod, nil
}

// Export exports wazero's WASI functions into b and then replaces the ones
// that touch sockets or could reach a socket's fd number. Each replacement
// serves the fds of the calling context's Table and calls wazero's own
// function, with the same module and stack, for every other fd. It adds
// the WasmEdge socket extensions (sock_open, sock_connect, ...: see
// wasmedge.go) on the same Table.
func Export(ctx context.Context, rt wazero.Runtime, b wazero.HostModuleBuilder) error {
	wasi.NewFunctionExporter().ExportFunctions(b)
	defs, err := wazeroFunctions(ctx, rt)
	if err != nil {
		return err
	}
	for _, o := range overrides() {
		def, ok := defs[o.name]
		if !ok {
			return fmt.Errorf("wazero exports no %s to replace", o.name)
		}
		delegate, ok := def.GoFunction().(api.GoModuleFunction)
		if !ok {
			return fmt.Errorf("wazero's %s is not a Go module function (%T)", o.name, def.GoFunction())
		}
		b.NewFunctionBuilder().
			WithGoModuleFunction(o.wrap(delegate), def.ParamTypes(), def.ResultTypes()).
			WithParameterNames(def.ParamNames()...).
			WithResultNames(def.ResultNames()...).
			Export(o.name)
	}
	exportExtensions(b)
	return nil
}

// wazeroFunctions returns the definitions of wazero's WASI functions, read
// from a host module compiled for that purpose only.
func wazeroFunctions(ctx context.Context, rt wazero.Runtime) (map[string]api.FunctionDefinition, error) {
	b := rt.NewHostModuleBuilder(wasi.ModuleName)
	wasi.NewFunctionExporter().ExportFunctions(b)
	compiled, err := b.Compile(ctx)
	if err != nil {
		return nil, fmt.Errorf("compile wazero's %s: %w", wasi.ModuleName, err)
	}
	defer compiled.Close(ctx)
	return compiled.ExportedFunctions(), nil
}

// override replaces one WASI function.
type override struct {
	name string
	wrap func(delegate api.GoModuleFunction) api.GoModuleFunction
}

// fdFunc implements a WASI function for an fd the Table owns. It returns
// the errno; stack holds the call's parameters.
type fdFunc func(t *Table, mem api.Memory, fd uint32, e *entry, stack []uint64) uint32

// owned runs fn when the first parameter is an fd of the context's Table,
// and delegate otherwise.
func owned(fn fdFunc) func(api.GoModuleFunction) api.GoModuleFunction {
	return func(delegate api.GoModuleFunction) api.GoModuleFunction {
		return api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
			if t := tableFor(ctx, mod); t != nil {
				fd := uint32(stack[0])
				if e, ok := t.lookup(fd); ok {
					stack[0] = uint64(fn(t, mod.Memory(), fd, e, stack))
					return
				}
			}
			delegate.Call(ctx, mod, stack)
		})
	}
}

// refuse answers errno when any of the fd parameters at the given stack
// indexes is owned, so that file and path functions never act on a number
// that means a socket to the guest.
func refuse(errno uint32, fdParams ...int) func(api.GoModuleFunction) api.GoModuleFunction {
	return func(delegate api.GoModuleFunction) api.GoModuleFunction {
		return api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
			if t := tableFor(ctx, mod); t != nil {
				for _, i := range fdParams {
					if _, ok := t.lookup(uint32(stack[i])); ok {
						stack[0] = uint64(errno)
						return
					}
				}
			}
			delegate.Call(ctx, mod, stack)
		})
	}
}

func overrides() []override {
	return []override{
		{"fd_read", owned(fdRead)},
		{"fd_write", owned(fdWrite)},
		{"fd_close", owned(fdClose)},
		{"fd_fdstat_get", owned(fdFdstatGet)},
		{"fd_fdstat_set_flags", owned(fdFdstatSetFlags)},
		{"fd_prestat_get", owned(func(*Table, api.Memory, uint32, *entry, []uint64) uint32 { return errnoBadf })},
		{"fd_filestat_get", owned(fdFilestatGet)},
		{"sock_accept", owned(sockAccept)},
		{"sock_recv", owned(sockRecv)},
		{"sock_send", owned(sockSend)},
		{"sock_shutdown", owned(sockShutdown)},
		{"poll_oneoff", pollOneoff},

		// Functions meaningless on a socket answer what Linux answers.
		{"fd_prestat_dir_name", refuse(errnoBadf, 0)},
		{"fd_advise", refuse(errnoSpipe, 0)},
		{"fd_pread", refuse(errnoSpipe, 0)},
		{"fd_pwrite", refuse(errnoSpipe, 0)},
		{"fd_seek", refuse(errnoSpipe, 0)},
		{"fd_tell", refuse(errnoSpipe, 0)},
		{"fd_allocate", refuse(errnoNotsup, 0)},
		{"fd_datasync", refuse(errnoInval, 0)},
		{"fd_sync", refuse(errnoInval, 0)},
		{"fd_fdstat_set_rights", refuse(errnoNotsup, 0)},
		{"fd_filestat_set_size", refuse(errnoInval, 0)},
		{"fd_filestat_set_times", refuse(errnoNotsup, 0)},
		{"fd_readdir", refuse(errnoNotdir, 0)},
		// Renumbering to or from a socket fd is not supported: wazero would
		// otherwise put a file at a number the guest sees as a socket.
		{"fd_renumber", refuse(errnoNotsup, 0, 1)},
		{"path_create_directory", refuse(errnoNotdir, 0)},
		{"path_filestat_get", refuse(errnoNotdir, 0)},
		{"path_filestat_set_times", refuse(errnoNotdir, 0)},
		{"path_link", refuse(errnoNotdir, 0, 4)},
		{"path_open", refuse(errnoNotdir, 0)},
		{"path_readlink", refuse(errnoNotdir, 0)},
		{"path_remove_directory", refuse(errnoNotdir, 0)},
		{"path_rename", refuse(errnoNotdir, 0, 3)},
		{"path_symlink", refuse(errnoNotdir, 2)},
		{"path_unlink_file", refuse(errnoNotdir, 0)},
	}
}

// io runs op until it stops answering EAGAIN, waiting for events in the
// kernel between tries when the guest asked for a blocking fd.
func (t *Table) io(e *entry, events int16, op func() uint32) uint32 {
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
func (t *Table) await(e *entry, events int16) uint32 {
	fds, errno := t.poll([]pollFD{{Fd: int32(e.host), Events: events}}, time.Time{}, e.kind == kindListener)
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
func (t *Table) poll(fds []pollFD, deadline time.Time, watchDrain bool) ([]pollFD, uint32) {
	fds = append(fds, pollFD{Fd: int32(t.wake.fd), Events: pollIn})
	if watchDrain && !t.draining.Load() {
		fds = append(fds, pollFD{Fd: int32(t.drain.fd), Events: pollIn})
	}
	return fds, ppoll(fds, deadline)
}

// rw resolves an iovec array and checks the result pointer before any
// byte moves, so that a bad pointer never loses data.
func rw(mem api.Memory, iovs, count, result uint32) ([][]byte, uint32) {
	if _, ok := mem.Read(result, 4); !ok {
		return nil, errnoFault
	}
	return iovecs(mem, iovs, count, nil)
}

func fdRead(t *Table, mem api.Memory, _ uint32, e *entry, stack []uint64) uint32 {
	if e.kind != kindConn {
		return errnoNotconn
	}
	return recvInto(t, mem, e, stack, 0, uint32(stack[3]))
}

func sockRecv(t *Table, mem api.Memory, _ uint32, e *entry, stack []uint64) uint32 {
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
		mem.WriteUint16Le(roFlags, 0)
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
func recvInto(t *Table, mem api.Memory, e *entry, stack []uint64, flags int, result uint32) uint32 {
	bufs, errno := rw(mem, uint32(stack[1]), uint32(stack[2]), result)
	if errno != errnoSuccess {
		return errno
	}
	var n int
	if total(bufs) > 0 {
		errno = t.io(e, pollIn, func() uint32 {
			n, errno = recv(e.host, bufs, flags)
			return errno
		})
		if errno != errnoSuccess {
			return errno
		}
	}
	mem.WriteUint32Le(result, uint32(n))
	return errnoSuccess
}

func fdWrite(t *Table, mem api.Memory, _ uint32, e *entry, stack []uint64) uint32 {
	return sendFrom(t, mem, e, stack, uint32(stack[3]))
}

func sockSend(t *Table, mem api.Memory, _ uint32, e *entry, stack []uint64) uint32 {
	if uint32(stack[3]) != 0 { // si_flags: none are defined
		return errnoNotsup
	}
	return sendFrom(t, mem, e, stack, uint32(stack[4]))
}

// sendFrom writes the iovecs at stack[1], stack[2] to e and the count at
// result.
func sendFrom(t *Table, mem api.Memory, e *entry, stack []uint64, result uint32) uint32 {
	if e.kind != kindConn {
		return errnoNotconn
	}
	bufs, errno := rw(mem, uint32(stack[1]), uint32(stack[2]), result)
	if errno != errnoSuccess {
		return errno
	}
	var n int
	if total(bufs) > 0 {
		errno = t.io(e, pollOut, func() uint32 {
			n, errno = send(e.host, bufs)
			return errno
		})
		if errno != errnoSuccess {
			return errno
		}
	}
	mem.WriteUint32Le(result, uint32(n))
	return errnoSuccess
}

func total(bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
}

func fdClose(t *Table, _ api.Memory, fd uint32, _ *entry, _ []uint64) uint32 {
	if err := t.remove(fd); err != nil {
		return errnoOf(err)
	}
	return errnoSuccess
}

func fdFdstatGet(_ *Table, mem api.Memory, _ uint32, e *entry, stack []uint64) uint32 {
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

func fdFdstatSetFlags(_ *Table, _ api.Memory, _ uint32, e *entry, stack []uint64) uint32 {
	flags := uint16(stack[1])
	if flags&(fdflagDsync|fdflagRsync|fdflagSync) != 0 {
		return errnoInval
	}
	// FDFLAGS_APPEND means nothing on a socket, as on Linux.
	e.nonblock = flags&fdflagNonblock != 0
	return errnoSuccess
}

func fdFilestatGet(_ *Table, mem api.Memory, _ uint32, e *entry, stack []uint64) uint32 {
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

func sockAccept(t *Table, mem api.Memory, _ uint32, e *entry, stack []uint64) uint32 {
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
	errno := t.io(e, pollIn, func() uint32 {
		if t.draining.Load() {
			return errnoInval
		}
		var errno uint32
		host, errno = accept(e.host)
		return errno
	})
	if errno != errnoSuccess {
		return errno
	}
	fd, errno := t.addConn(host, flags&fdflagNonblock != 0)
	if errno != errnoSuccess {
		closeFD(host)
		return errno
	}
	mem.WriteUint32Le(result, fd)
	return errnoSuccess
}

func sockShutdown(_ *Table, _ api.Memory, _ uint32, e *entry, stack []uint64) uint32 {
	if e.kind != kindConn {
		return errnoNotconn
	}
	return shutdown(e.host, uint8(stack[1]))
}
