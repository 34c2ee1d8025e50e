package bench

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine/wazy"
)

// TestSoakShort is the CI variant of scripts/soak.sh: a few seconds of
// mixed load with many aborts against the wasm guest served by wazero.
func TestSoakShort(t *testing.T) {
	if errUnsupported != nil {
		t.Skipf("soak unsupported here: %v", errUnsupported)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	wasm, harness := wasmEcho.Path(t), harnessCmd.Path(t)
	r, err := Soak(ctx, SoakConfig{
		Target:      HarnessTarget(harness, wazy.Name, wasm),
		CacheDir:    dir,
		Duration:    3 * time.Second,
		Conns:       4,
		AbortRate:   0.2,
		SampleEvery: 500 * time.Millisecond,
		Seed:        7,
		Logger:      slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", r.Summary())
	if len(r.Problems) > 0 || r.Completed == 0 || r.Aborted == 0 || r.BytesVerified == 0 {
		t.Fatalf("soak not clean or did nothing: %+v", r)
	}
}

func TestSoakCheck(t *testing.T) {
	flat := []SoakSample{{RSS: 100 << 20, FDs: 10}, {RSS: 110 << 20, FDs: 30}, {RSS: 112 << 20, FDs: 30}}
	for _, tc := range []struct {
		name string
		r    SoakReport
		want string // substring of the only problem; "" for none
	}{
		{"clean", SoakReport{Completed: 5, Samples: flat, FDsAfter: 11}, ""},
		{"nothing done", SoakReport{Samples: flat, FDsAfter: 10}, "no echo completed"},
		{"corrupted", SoakReport{Completed: 5, Corrupted: 1, Samples: flat, FDsAfter: 10}, "1 corrupted"},
		{"truncated", SoakReport{Completed: 5, Truncated: 2, Samples: flat, FDsAfter: 10}, "2 truncated"},
		{"failed", SoakReport{Completed: 5, Errors: 3, FirstError: "EOF", Samples: flat, FDsAfter: 10}, "3 requests failed"},
		{"fd leak", SoakReport{Completed: 5, Samples: flat, FDsAfter: 20}, "descriptors grew from 10 to 20"},
		{"rss growth", SoakReport{Completed: 5, Samples: append(flat[:2:2], SoakSample{RSS: 400 << 20}), FDsAfter: 10}, "RSS grew"},
		// The server returns its start-up memory once it serves: a first
		// sample above the later ones is not growth.
		{"start-up memory returned", SoakReport{Completed: 5, Samples: append([]SoakSample{{RSS: 300 << 20, FDs: 10}}, flat[1:]...), FDsAfter: 10}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.r.check()
			switch {
			case tc.want == "" && len(got) != 0:
				t.Fatalf("problems %q, want none", got)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
				t.Fatalf("problems %q, want one containing %q", got, tc.want)
			}
		})
	}
}
