//go:build !unix

package engine

import "os"

// privateDir has no owner to check on this platform.
func privateDir(string, os.FileInfo) error { return nil }
