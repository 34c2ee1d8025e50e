package supervise_test

import (
	"os"
	"testing"

	"github.com/wasiserve/wasiserve/internal/enginetest"
	"github.com/wasiserve/wasiserve/internal/guestbuild"
)

// echoWasm is the echo guest, built once per test binary.
var echoWasm string

func TestMain(m *testing.M) {
	os.Exit(enginetest.Main(m, enginetest.Guest{Pkg: guestbuild.Package, Target: guestbuild.WASI, Path: &echoWasm}))
}
