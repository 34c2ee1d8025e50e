//go:build wasip1

package wasisock

import (
	"fmt"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// checkListenPID is false on WASI: a guest's pid means nothing to its host.
const checkListenPID = false

// maxScanFD bounds the descriptor scan. Hosts number preopens densely from 3,
// so a listener sits within the first few dozen descriptors.
const maxScanFD = 3 + 64

// fdstat mirrors the WASI preview 1 fdstat struct (24 bytes).
type fdstat struct {
	filetype         uint8
	_                uint8
	flags            uint16
	_                uint32
	rightsBase       uint64
	rightsInheriting uint64
}

//go:wasmimport wasi_snapshot_preview1 fd_fdstat_get
//go:noescape
func fdFdstatGet(fd int32, stat unsafe.Pointer) uint32

// fileType returns the WASI filetype of fd.
func fileType(fd int) (uint8, error) {
	var st fdstat
	if errno := fdFdstatGet(int32(fd), unsafe.Pointer(&st)); errno != 0 {
		return 0, syscall.Errno(errno)
	}
	return st.filetype, nil
}

// fileListener wraps a preopened socket. It must be non-blocking first:
// a blocking accept would stall the whole single-threaded module.
func fileListener(fd int, name string) (net.Listener, error) {
	if err := syscall.SetNonblock(fd, true); err != nil {
		return nil, fmt.Errorf("set fd %d non-blocking: %w", fd, err)
	}
	f := os.NewFile(uintptr(fd), fileListenerName(fd, name))
	ln, err := net.FileListener(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &wasiListener{Listener: ln, file: f}, nil
}

// wasiListener keeps the os.File of a preopened socket open for as long as
// the listener. wasip1 has no dup: the file and the listener share the fd,
// and the runtime's netpoll unregisters a descriptor by fd number, so
// closing (or finalizing) the file early would stop accepts from ever
// waking up.
type wasiListener struct {
	net.Listener
	file *os.File
}

// Close closes the listener and then the file that shares its fd.
func (l *wasiListener) Close() error {
	err := l.Listener.Close()
	l.file.Close()
	return err
}

// listenDefault finds the first stream socket among the preopened fds.
func listenDefault(Config) (net.Listener, Info, error) {
	for fd := firstListenFD; fd < maxScanFD; fd++ {
		// Unused fds (EBADF) are skipped too: hosts may leave gaps.
		if ft, err := fileType(fd); err != nil || ft != syscall.FILETYPE_SOCKET_STREAM {
			continue
		}
		ln, err := fileListener(fd, "")
		if err != nil {
			return nil, Info{}, fmt.Errorf("preopened socket fd %d: %w", fd, err)
		}
		return ln, Info{Source: SourceScan, FD: fd}, nil
	}
	return nil, Info{}, fmt.Errorf("%w among fds %d-%d: start the module with a preopened listener, e.g. "+
		"`hostharness serve --listen 127.0.0.1:8080 app.wasm`, "+
		"`wasmtime run -S preview2=n -S tcplisten=127.0.0.1:8080 app.wasm` (wasmtime before wasi-common was removed), "+
		"or `wazero run -listen 127.0.0.1:8080 app.wasm`", ErrNoListener, firstListenFD, maxScanFD-1)
}
