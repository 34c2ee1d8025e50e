package builtin_test

import (
	"context"
	"errors"
	"testing"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/internal/enginetest"
)

// budgetSlack is how far past its budget the host's RSS may grow while a
// hostile module runs: the engine's own bookkeeping and the run's
// buffers.
const budgetSlack = 32 << 20

// TestBudgetBoundsTablesAndMemories runs, under a 64 MiB budget
// (MaxMemory), modules that grow what a cap per linear memory leaves
// out: one table grown 65,536 elements at a time, then four (as many as
// an instance may have) grown so together, 64 tables grown by
// 10,000,000 elements each, and 99 extra memories grown by 62.5 MiB each,
// every element or byte touched. Each engine must refuse the module (at
// Load or when instantiating it) or fail the grows past the budget: the
// host's RSS grows by at most the budget, and the grows that succeeded
// fit in it.
func TestBudgetBoundsTablesAndMemories(t *testing.T) {
	const budget = 64 << 20
	for _, tc := range []struct {
		module string
		// grow is the bytes each grow that succeeded took; the guest
		// exits with 1 + their number, 255 when it could grow without
		// bound.
		grow int64
	}{
		{"table_grow", 65536 * 8},
		{"tables4", 65536 * 8},
		{"tables64", 10_000_000 * 8},
		{"memories100", 1000 * engine.WasmPageSize},
	} {
		for _, name := range engines.EmbeddedNames() {
			t.Run(tc.module+"/"+name, func(t *testing.T) {
				ctx := context.Background()
				eng, err := engines.New(ctx, name, engine.Options{CacheDir: enginetest.CacheDir(), MaxMemory: budget})
				if err != nil {
					t.Fatal(err)
				}
				defer eng.Close(ctx)
				stop := watchRSS(t)
				err = runModule(t, eng, hostileModule(tc.module))
				grown := stop()
				t.Logf("host RSS grew by at most %.1f MB; result: %.300v", float64(grown)/(1<<20), err)
				if grown > budget+budgetSlack {
					t.Errorf("the host's RSS grew by %d MB under a budget of %d MB", grown>>20, budget>>20)
				}
				var exit *engine.ExitError
				if err == nil {
					t.Fatal("the guest exited 0, which it never does")
				}
				if !errors.As(err, &exit) || exit.Trap != "" {
					return // refused: at Load, or instantiating it (which wazy reports as a trap)
				}
				switch took := int64(exit.Code-1) * tc.grow; {
				case exit.Code == 255:
					t.Errorf("no grow failed: it grew without bound")
				case took > budget:
					t.Errorf("exit %d: its grows took %d MB, over the budget of %d MB", exit.Code, took>>20, budget>>20)
				}
			})
		}
	}
}

// runModule loads wasm with eng and runs it to its end; the error is
// Load's, Serve's or the run's.
func runModule(t *testing.T, eng engine.Engine, wasm string) error {
	t.Helper()
	loadErr, runErr := loadAndServe(t, eng, wasm)
	if loadErr != nil {
		return loadErr
	}
	return runErr
}

// loadAndServe loads wasm with eng and runs an instance of it to its end,
// returning Load's error, or else Serve's or the run's.
func loadAndServe(t *testing.T, eng engine.Engine, wasm string) (loadErr, runErr error) {
	t.Helper()
	ctx := context.Background()
	mod, err := eng.Load(ctx, wasm)
	if err != nil {
		return err, nil
	}
	defer mod.Close(ctx)
	inst, err := engine.Serve(ctx, mod, engine.Config{Listener: listen(t)})
	if err == nil {
		err = inst.Wait()
	}
	return nil, err
}
