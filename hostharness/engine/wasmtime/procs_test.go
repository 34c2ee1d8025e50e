//go:build cgo

package wasmtime

import (
	"runtime"
	"testing"
)

// TestProcPolicy: runs raise GOMAXPROCS to the runs in wasm plus one,
// never lower it, and leave it alone when the environment fixed it.
func TestProcPolicy(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	runtime.GOMAXPROCS(1)
	var p procPolicy
	for _, step := range []struct {
		name string
		do   func()
		want int
	}{
		{"first run", p.enter, 2},
		{"second run", p.enter, 3},
		{"second run ends", p.exit, 3},
		{"first run ends", p.exit, 3},
		{"a run after them", p.enter, 3},
	} {
		step.do()
		if got := runtime.GOMAXPROCS(0); got != step.want {
			t.Errorf("%s: GOMAXPROCS %d, want %d", step.name, got, step.want)
		}
	}
	p.exit()

	runtime.GOMAXPROCS(1)
	fixed := procPolicy{fixed: true}
	fixed.enter()
	defer fixed.exit()
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Errorf("with GOMAXPROCS in the environment: GOMAXPROCS %d, want 1 (left alone)", got)
	}
}
