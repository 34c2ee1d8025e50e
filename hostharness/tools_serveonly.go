//go:build serveonly

package main

// toolCommands is empty in a serveonly build: the container image's binary
// (scripts/build.sh image) serves guests only, without compare, bench and
// soak and what they link (the request corpus), which an image
// never runs.
func toolCommands() []command { return nil }
