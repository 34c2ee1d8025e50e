// Package hostile holds the hostile-input tests of wasiserve: garbage,
// truncated and oversized requests, request-smuggling shapes, slowloris,
// slow readers, connection floods and abrupt resets, thrown at the echo
// guest under each embedded engine on 127.0.0.1. After each attack a
// normal echo must still work and the host's open descriptors must return
// to their baseline (every guest socket is a host descriptor, so a leak
// in the guest or the engine shows there).
//
// The package has no code of its own outside its tests.
package hostile
