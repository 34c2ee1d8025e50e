package hostsock

import "strings"

// ValueType is the WebAssembly type of a function parameter.
type ValueType byte

// The value types of WASI preview 1 parameters.
const (
	I32 ValueType = iota + 1
	I64
)

// Outcome says how an engine binding goes on after Func.Call.
type Outcome uint8

const (
	// Served: the table answered the call; its errno is in stack[0].
	Served Outcome = iota
	// Delegate: the call is not the table's (no fd it owns is involved):
	// the engine's own function runs it, with the same parameters.
	Delegate
	// Stop: the table's context is done. The binding ends the guest's run
	// as proc_exit would, so that a stopped guest does not run on.
	Stop
)

// Func is one wasi_snapshot_preview1 function that a Table serves: a
// preview 1 function whose fd (or path fd) may be one of the table's
// sockets, poll_oneoff, or a WasmEdge socket extension. Every Func returns
// one i32, the errno. An engine binding defines each Func in the guest's
// wasi_snapshot_preview1 import module, in place of the engine's own
// function of that name (Extension false) or beside them (Extension true).
type Func struct {
	// Name is the function's import name.
	Name string
	// Params are the function's parameter types, in order.
	Params []ValueType
	// ParamNames name the parameters, as in the WASI witx.
	ParamNames []string
	// Extension marks a WasmEdge socket extension: engines have no
	// function of that name, so Call never delegates it.
	Extension bool

	serve func(t *Table, mem Memory, stack []uint64) (Errno, bool)
}

// Call serves one call of f, with the call's parameters in stack (one
// slot each, i32 in the low bits). On Served it has written the errno to
// stack[0]; on Delegate and Stop it has changed nothing. A table whose
// context is done answers Stop to every call, so that a guest is stopped
// at its next call of a Func even when the engine does not check the
// context in compiled code. mem may be nil for a module without memory:
// every pointer is then out of bounds (EFAULT).
func (f *Func) Call(t *Table, mem Memory, stack []uint64) Outcome {
	if t.stopped() {
		return Stop
	}
	if mem == nil {
		mem = noMemory{}
	}
	t.counters.noteMemory(mem)
	errno, served := f.serve(t, mem, stack)
	if !served {
		return Delegate
	}
	stack[0] = uint64(errno)
	return Served
}

// noMemory is the memory of a module that has none.
type noMemory struct{}

func (noMemory) Read(uint32, uint32) ([]byte, bool) { return nil, false }

// fdFunc implements a preview 1 function for an fd the Table owns. It
// returns the errno; stack holds the call's parameters.
type fdFunc func(t *Table, mem Memory, fd uint32, e *entry, stack []uint64) Errno

// owned serves fn when the first parameter is an fd of the table, and
// delegates the call otherwise.
func owned(fn fdFunc) func(*Table, Memory, []uint64) (Errno, bool) {
	return func(t *Table, mem Memory, stack []uint64) (Errno, bool) {
		fd := uint32(stack[0])
		e, ok := t.lookup(fd)
		if !ok {
			return 0, false
		}
		return fn(t, mem, fd, e, stack), true
	}
}

// refuse answers errno when any of the fd parameters at the given stack
// indexes is owned, so that file and path functions never act on a number
// that means a socket to the guest, and delegates the call otherwise.
func refuse(errno Errno, fdParams ...int) func(*Table, Memory, []uint64) (Errno, bool) {
	return func(t *Table, _ Memory, stack []uint64) (Errno, bool) {
		for _, i := range fdParams {
			if _, ok := t.lookup(uint32(stack[i])); ok {
				return errno, true
			}
		}
		return 0, false
	}
}

// always serves fn on every call: the extensions, which no engine has.
func always(fn func(t *Table, mem Memory, stack []uint64) Errno) func(*Table, Memory, []uint64) (Errno, bool) {
	return func(t *Table, mem Memory, stack []uint64) (Errno, bool) {
		return fn(t, mem, stack), true
	}
}

// sig builds a Func's parameter list from name/type pairs, where a name
// ending in ":i64" is an i64 and any other an i32.
func sig(names ...string) ([]ValueType, []string) {
	types := make([]ValueType, len(names))
	out := make([]string, len(names))
	for i, n := range names {
		types[i], out[i] = I32, n
		if base, ok := strings.CutSuffix(n, ":i64"); ok {
			types[i], out[i] = I64, base
		}
	}
	return types, out
}

// fn builds one Func.
func fn(name string, serve func(*Table, Memory, []uint64) (Errno, bool), params ...string) Func {
	types, names := sig(params...)
	return Func{Name: name, Params: types, ParamNames: names, serve: serve}
}

// Funcs lists every function a Table serves: the preview 1 functions that
// take an fd (replacing the engine's), poll_oneoff, and the WasmEdge
// socket extensions (added to the engine's). The list is built anew on
// each call; bindings call it once per engine.
func Funcs() []Func {
	fs := []Func{
		fn("fd_read", owned(fdRead), "fd", "iovs", "iovs_len", "result.nread"),
		fn("fd_write", owned(fdWrite), "fd", "iovs", "iovs_len", "result.nwritten"),
		fn("fd_close", owned(fdClose), "fd"),
		fn("fd_fdstat_get", owned(fdFdstatGet), "fd", "result.stat"),
		fn("fd_fdstat_set_flags", owned(fdFdstatSetFlags), "fd", "flags"),
		fn("fd_prestat_get", refuse(errnoBadf, 0), "fd", "result.prestat"),
		fn("fd_filestat_get", owned(fdFilestatGet), "fd", "result.filestat"),
		fn("sock_accept", owned(sockAccept), "fd", "flags", "result.fd"),
		fn("sock_recv", owned(sockRecv), "fd", "ri_data", "ri_data_len", "ri_flags", "result.ro_datalen", "result.ro_flags"),
		fn("sock_send", owned(sockSend), "fd", "si_data", "si_data_len", "si_flags", "result.so_datalen"),
		fn("sock_shutdown", owned(sockShutdown), "fd", "how"),
		fn("poll_oneoff", pollOneoff, "in", "out", "nsubscriptions", "result.nevents"),

		// Functions meaningless on a socket answer what Linux answers.
		fn("fd_prestat_dir_name", refuse(errnoBadf, 0), "fd", "path", "path_len"),
		fn("fd_advise", refuse(errnoSpipe, 0), "fd", "offset:i64", "len:i64", "advice"),
		fn("fd_pread", refuse(errnoSpipe, 0), "fd", "iovs", "iovs_len", "offset:i64", "result.nread"),
		fn("fd_pwrite", refuse(errnoSpipe, 0), "fd", "iovs", "iovs_len", "offset:i64", "result.nwritten"),
		fn("fd_seek", refuse(errnoSpipe, 0), "fd", "offset:i64", "whence", "result.newoffset"),
		fn("fd_tell", refuse(errnoSpipe, 0), "fd", "result.offset"),
		fn("fd_allocate", refuse(errnoNotsup, 0), "fd", "offset:i64", "len:i64"),
		fn("fd_datasync", refuse(errnoInval, 0), "fd"),
		fn("fd_sync", refuse(errnoInval, 0), "fd"),
		fn("fd_fdstat_set_rights", refuse(errnoNotsup, 0), "fd", "fs_rights_base:i64", "fs_rights_inheriting:i64"),
		fn("fd_filestat_set_size", refuse(errnoInval, 0), "fd", "size:i64"),
		fn("fd_filestat_set_times", refuse(errnoNotsup, 0), "fd", "atim:i64", "mtim:i64", "fst_flags"),
		fn("fd_readdir", refuse(errnoNotdir, 0), "fd", "buf", "buf_len", "cookie:i64", "result.bufused"),
		// Renumbering to or from a socket fd is not supported: the engine
		// would otherwise put a file at a number the guest sees as a socket.
		fn("fd_renumber", refuse(errnoNotsup, 0, 1), "fd", "to"),
		fn("path_create_directory", refuse(errnoNotdir, 0), "fd", "path", "path_len"),
		fn("path_filestat_get", refuse(errnoNotdir, 0), "fd", "flags", "path", "path_len", "result.filestat"),
		fn("path_filestat_set_times", refuse(errnoNotdir, 0), "fd", "flags", "path", "path_len", "atim:i64", "mtim:i64", "fst_flags"),
		fn("path_link", refuse(errnoNotdir, 0, 4), "old_fd", "old_flags", "old_path", "old_path_len", "new_fd", "new_path", "new_path_len"),
		fn("path_open", refuse(errnoNotdir, 0), "fd", "dirflags", "path", "path_len", "oflags", "fs_rights_base:i64", "fs_rights_inheriting:i64", "fdflags", "result.opened_fd"),
		fn("path_readlink", refuse(errnoNotdir, 0), "fd", "path", "path_len", "buf", "buf_len", "result.bufused"),
		fn("path_remove_directory", refuse(errnoNotdir, 0), "fd", "path", "path_len"),
		fn("path_rename", refuse(errnoNotdir, 0, 3), "fd", "old_path", "old_path_len", "new_fd", "new_path", "new_path_len"),
		fn("path_symlink", refuse(errnoNotdir, 2), "old_path", "old_path_len", "fd", "new_path", "new_path_len"),
		fn("path_unlink_file", refuse(errnoNotdir, 0), "fd", "path", "path_len"),
	}
	for _, x := range extensions() {
		f := fn(x.name, always(x.fn), x.params...)
		f.Extension = true
		fs = append(fs, f)
	}
	return fs
}
