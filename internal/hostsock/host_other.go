//go:build !linux

package hostsock

import (
	"errors"
	"net"
	"runtime"
	"time"
)

// errUnsupported explains why the host socket layer is not available.
var errUnsupported = errors.New("hostsock: host sockets for WASI guests are implemented on linux only, not " + runtime.GOOS)

// Supported reports why host sockets cannot be used on this platform, or
// nil where they can.
func Supported() error { return errUnsupported }

// pollFD mirrors unix.PollFd so that the portable code compiles.
type pollFD struct {
	Fd      int32
	Events  int16
	Revents int16
}

const (
	pollIn   = 0x1
	pollOut  = 0x4
	pollErr  = 0x8
	pollHup  = 0x10
	pollNval = 0x20

	msgPeek    = 0x2
	msgWaitall = 0x100
)

func rawFD(net.Listener) (int, error)      { return -1, errUnsupported }
func newWaker() (*waker, error)            { return nil, errUnsupported }
func signalFD(int)                         {}
func closeFD(int) error                    { return errUnsupported }
func accept(int) (int, Errno)              { return -1, errnoNotsup }
func recv(int, [][]byte, int) (int, Errno) { return 0, errnoNotsup }
func send(int, [][]byte) (int, Errno)      { return 0, errnoNotsup }
func shutdown(int, uint8) Errno            { return errnoNotsup }
func stat(int) (filestat, Errno)           { return filestat{}, errnoNotsup }
func ppoll([]pollFD, time.Time) Errno      { return errnoNotsup }
func errnoOf(error) Errno                  { return errnoIO }

func acceptedHeader(int) ([]byte, Errno) { return nil, errnoNotsup }
