//go:build cgo

package wasmtime

import (
	"os"
	"syscall"
	"testing"
	"time"

	wt "github.com/bytecodealliance/wasmtime-go/v42"
)

// cpuTime is this process's user and system time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCompileGuest compiles the guest at $WASISERVE_COMPILE_GUEST
// (e.g. the echo guest, 10.6 MB) with the engine's configuration and with
// each setting that trades code for compile time, reporting the CPU time
// of a compilation (cpu-s/op; wall time follows the machine's load).
func BenchmarkCompileGuest(b *testing.B) {
	path := os.Getenv("WASISERVE_COMPILE_GUEST")
	if path == "" {
		b.Skip("set WASISERVE_COMPILE_GUEST to a guest .wasm to compile")
	}
	wasm, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		set  func(*wt.Config)
	}{
		{"engine", func(*wt.Config) {}},
		{"sequential", func(c *wt.Config) { c.SetParallelCompilation(false) }},
		{"opt-none", func(c *wt.Config) { c.SetCraneliftOptLevel(wt.OptLevelNone) }},
		{"opt-speed-and-size", func(c *wt.Config) { c.SetCraneliftOptLevel(wt.OptLevelSpeedAndSize) }},
		{"regalloc-single-pass", func(c *wt.Config) { c.SetCraneliftFlag("regalloc_algorithm", "single_pass") }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := wasmtimeConfig()
			bc.set(cfg)
			eng := wt.NewEngineWithConfig(cfg)
			defer eng.Close()
			start := cpuTime(b)
			for b.Loop() {
				mod, err := wt.NewModule(eng, wasm)
				if err != nil {
					b.Fatal(err)
				}
				mod.Close()
			}
			b.ReportMetric((cpuTime(b)-start).Seconds()/float64(b.N), "cpu-s/op")
		})
	}
}
