package wasiserve_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/wasiserve/wasiserve"
	"github.com/wasiserve/wasiserve/internal/enginetest"
)

// TestDefaultMaxMemory: without MaxMemory, each instance's budget is
// half the memory available over the instances, rounded down to a power
// of two, at most 4 GiB.
func TestDefaultMaxMemory(t *testing.T) {
	const gib = 1 << 30
	for _, tc := range []struct {
		avail     uint64
		instances int
		want      uint64
	}{
		{0, 1, 4 * gib}, {64 * gib, 1, 4 * gib}, {8 * gib, 1, 4 * gib}, {7 * gib, 1, 2 * gib},
		{7 * gib, 0, 2 * gib}, {7 * gib, 4, 512 << 20}, {24 * gib, 1024, 8 << 20}, {1, 1, 0},
	} {
		if got := wasiserve.DefaultMaxMemory(tc.avail, tc.instances); got != tc.want {
			t.Errorf("DefaultMaxMemory(%d MiB, %d instances) = %d MiB, want %d MiB", tc.avail>>20, tc.instances, got>>20, tc.want>>20)
		}
	}
}

// TestInstancesMustFit: more instances than the memory available holds
// at the least default budget each are refused with an OptionError naming
// Instances, before anything slow starts; the same number with a budget
// of their own (MaxMemory) is accepted.
func TestInstancesMustFit(t *testing.T) {
	avail := wasiserve.AvailableMemory()
	if avail == 0 {
		t.Skip("cannot tell the memory available here")
	}
	n := int(avail/2/wasiserve.MinDefaultMemory) + 1
	if n > wasiserve.MaxInstances {
		t.Skipf("%d MiB available: %d instances of the least default budget fit", avail>>20, wasiserve.MaxInstances)
	}
	guest := enginetest.Testdata("exit7.wasm")
	opts := wasiserve.Options{Engines: enginetest.Engines(), Instances: n, CacheDir: t.TempDir()}
	err := opts.Validate(guest)
	var optErr *wasiserve.OptionError
	if !errors.As(err, &optErr) || optErr.Option != "Instances" || !strings.Contains(err.Error(), "do not fit") {
		t.Fatalf("%d instances with %d MiB available: %v, want an OptionError on Instances", n, avail>>20, err)
	}
	t.Logf("refused: %v", err)
	opts.MaxMemory = 16 << 20
	if err := opts.Validate(guest); err != nil && !strings.Contains(err.Error(), "each instance takes") {
		t.Errorf("%d instances of 16 MiB each: %v", n, err)
	}
}
