//go:build !plan9

package listener

import (
	"errors"
	"syscall"
)

// refused reports whether a dial failed because nothing listened.
func refused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
