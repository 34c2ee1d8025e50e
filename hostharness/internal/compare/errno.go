//go:build !plan9

package compare

import "syscall"

// errnoClasses name the socket errors errClass tells apart.
var errnoClasses = []struct {
	errno error
	class string
}{
	{syscall.ECONNRESET, "connection reset"},
	{syscall.EPIPE, "broken pipe"},
	{syscall.ECONNREFUSED, "connection refused"},
}
