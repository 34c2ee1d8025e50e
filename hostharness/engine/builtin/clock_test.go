package builtin_test

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/internal/enginetest"
	"github.com/wasiserve/wasiserve/internal/syncbuf"
)

// TestClockTimeGet runs the clock guest (testdata/clock.wat) on every
// embedded engine: each answers clock_time_get with the same errnos, never
// a trap, and realtime and monotonic values of those clocks. The CPU-time
// clocks are the one difference: neither engine provides them, and each
// answers as its WASI does (wazero EINVAL, wasmtime EBADF).
func TestClockTimeGet(t *testing.T) {
	const (
		errnoSuccess = 0
		errnoBadf    = 8
		errnoFault   = 21
		errnoInval   = 28
	)
	cpuTime := map[string]uint32{"wazy": errnoInval, "wazy-sock": errnoInval, "wasmtime": errnoBadf}
	for _, name := range engines.EmbeddedNames() {
		t.Run(name, func(t *testing.T) {
			cpu, ok := cpuTime[name]
			if !ok {
				t.Skipf("no CPU-time clock answer recorded for engine %s", name)
			}
			var stdout syncbuf.Buffer
			before := time.Now()
			mod := loadModule(t, name, enginetest.Testdata("clock.wasm"))
			if err := mod.Run(context.Background(), engine.Config{Listener: listen(t), Stdout: &stdout}); err != nil {
				t.Fatalf("run: %v", err)
			}
			after := time.Now()
			out := []byte(stdout.String())
			cases := []struct {
				name  string
				errno uint32
				clock int // 0 realtime, 1 monotonic, -1 no value
			}{
				{"realtime", errnoSuccess, 0},
				{"monotonic", errnoSuccess, 1},
				{"monotonic again", errnoSuccess, 1},
				{"process CPU time", cpu, -1},
				{"thread CPU time", cpu, -1},
				{"realtime in the last bytes of memory", errnoSuccess, 0},
				{"clock id 4", errnoInval, -1},
				{"clock id 0xffffffff", errnoInval, -1},
				{"result past memory", errnoFault, -1},
				{"result at 0xffffffff", errnoFault, -1},
				{"unaligned result", errnoSuccess, 0},
			}
			if len(out) != 12*len(cases) {
				t.Fatalf("guest wrote %d bytes, want %d", len(out), 12*len(cases))
			}
			var lastMonotonic uint64
			for i, c := range cases {
				errno := binary.LittleEndian.Uint32(out[12*i:])
				value := binary.LittleEndian.Uint64(out[12*i+4:])
				if errno != c.errno {
					t.Errorf("%s: errno %d, want %d", c.name, errno, c.errno)
					continue
				}
				switch c.clock {
				case 0:
					if lo, hi := uint64(before.UnixNano()), uint64(after.UnixNano()); value < lo || value > hi {
						t.Errorf("%s: %d, not within [%d, %d]", c.name, value, lo, hi)
					}
				case 1:
					if value < lastMonotonic {
						t.Errorf("%s: %d, before the previous reading %d", c.name, value, lastMonotonic)
					}
					lastMonotonic = value
				default:
					if value != 0 {
						t.Errorf("%s: errno %d, and the result was written: %#x", c.name, errno, value)
					}
				}
			}
		})
	}
}
