//go:build !unix

package wasiserve

// openFileLimit is 0: no descriptor limit is known on this platform.
func openFileLimit() uint64 { return 0 }
