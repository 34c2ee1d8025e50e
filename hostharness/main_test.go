package main

import (
	"os"
	"testing"

	"github.com/wasiserve/wasiserve/internal/enginetest"
	"github.com/wasiserve/wasiserve/internal/guestbuild"
)

// built holds what this package's tests run, built once per test binary:
// the echo guest, the bare fd-3 guest, the guest that treats its accept
// error as fatal, and this command itself (for tests that need it as a
// process of its own).
var built struct {
	echo, fd3, fatal, harness string
	// marked answers with the header X-Guest: marked (reload tests);
	// wasmedge is the echo guest with the socket extensions.
	marked, wasmedge string
}

func TestMain(m *testing.M) {
	os.Exit(enginetest.Main(m,
		enginetest.Guest{Pkg: guestbuild.Package, Target: guestbuild.WASI, Path: &built.echo},
		enginetest.Guest{Pkg: "./engine/testdata/fd3guest", Target: guestbuild.WASI, Path: &built.fd3},
		enginetest.Guest{Pkg: "./testdata/fatalguest", Target: guestbuild.WASI, Path: &built.fatal},
		enginetest.Guest{Pkg: ".", Path: &built.harness},
		enginetest.Guest{Pkg: "./engine/testdata/markedguest", Target: guestbuild.WASI, Path: &built.marked},
		enginetest.Guest{Pkg: guestbuild.Package, Target: guestbuild.WASIWasmEdge, Path: &built.wasmedge},
	))
}
