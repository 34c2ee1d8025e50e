//go:build cgo

package wasmtime

import (
	"os"
	"runtime"
	"sync"
)

// procPolicy keeps a P for the Go side of the process beside every guest
// that runs in wasm. A run's _start is one long cgo call, holding its P
// in a syscall state, and the host calls inside it are cgo callbacks that
// need that P back. With no idle P the Go scheduler's monitor retakes it
// from the guest's thread after 20 µs and wakes another thread to look
// for work (runtime.handoffp), and the guest's next host call waits for a
// P: on a process confined to one core (GOMAXPROCS=1 there) this cost
// 0.93 context switches per request of the echo guest, against 0.66 with
// GOMAXPROCS=2, at 1.47× the requests/s (docs/BENCHMARKS.md). So a run
// raises GOMAXPROCS to at least the number of runs in wasm plus one. It
// never lowers it (changing it stops the world; extra Ps cost a few KiB),
// and it leaves GOMAXPROCS alone when the environment sets it: the
// operator chose.
type procPolicy struct {
	mu   sync.Mutex
	runs int // runs in wasm now
	// fixed: the GOMAXPROCS environment variable is set.
	fixed bool
}

// procs is the process's policy: GOMAXPROCS is the process's, shared by
// every engine in it.
var procs = procPolicy{fixed: os.Getenv("GOMAXPROCS") != ""}

// enter counts a run entering wasm, raising GOMAXPROCS if it must.
func (p *procPolicy) enter() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.runs++
	if want := p.runs + 1; !p.fixed && runtime.GOMAXPROCS(0) < want {
		runtime.GOMAXPROCS(want)
	}
}

// exit counts a run leaving wasm.
func (p *procPolicy) exit() {
	p.mu.Lock()
	p.runs--
	p.mu.Unlock()
}

// call calls f, counted as a run in wasm.
func (p *procPolicy) call(f func() (any, error)) (any, error) {
	p.enter()
	defer p.exit()
	return f()
}
