//go:build !unix

package engine

import "os"

// openNonBlocking opens path for reading (these platforms have no
// O_NONBLOCK open).
func openNonBlocking(path string) (*os.File, error) { return os.Open(path) }
