package compare_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve/guest/echo"
	"github.com/wasiserve/wasiserve/guest/wasisock"
	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/internal/compare"
	"github.com/wasiserve/wasiserve/internal/enginetest"
)

func TestMain(m *testing.M) { os.Exit(enginetest.Main(m)) }

// TestCompare runs the whole corpus against the native guest and the wasm
// guest on every embedded engine and every installed runtime CLI. The long
// 256 MiB case runs too, also under -short: it adds seconds per engine
// (docs/COMPARE.md), well under what would justify leaving it out.
func TestCompare(t *testing.T) {
	ctx := context.Background()
	corpus, err := compare.DefaultCorpus()
	if err != nil {
		t.Fatal(err)
	}
	native, err := compare.StartNative(ctx, enginetest.EchoNative.Path(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := native.Stop(); err != nil {
			t.Errorf("native guest: %v", err)
		}
	})
	var targets []compare.Target
	for _, name := range append(enginetest.Engines().EmbeddedNames(), "wasmtime-cli", "wazero-cli") {
		target := compare.Target{Name: name}
		inst, err := serveWasm(t, name)
		if err != nil && strings.HasSuffix(name, "-cli") {
			target.Skip = "not available: " + err.Error()
			t.Logf("%s skipped: %v", name, err)
		} else if err != nil {
			t.Fatal(err)
		} else {
			target.Addr = inst.Addr
		}
		targets = append(targets, target)
	}
	// Known engine bugs (listed in the corpus with their reasons) are
	// reported as skips naming the bug; any other difference fails.
	rep := compare.Run(ctx, corpus, compare.Target{Name: "native", Addr: native.Addr}, targets, compare.Options{AllowKnown: true})
	var table bytes.Buffer
	rep.WriteTable(&table)
	t.Logf("report:\n%s", table.String())
	for _, res := range rep.Results {
		t.Run(res.Case+"/"+res.Target, func(t *testing.T) {
			switch res.Status {
			case compare.Skip:
				t.Skip(res.Reason)
			case compare.Fail:
				t.Errorf("%s\n%s", res.Reason, res.Diff)
			}
			t.Logf("took %s", time.Duration(res.Took))
		})
	}
	if rep.Passed == 0 {
		t.Errorf("no case passed: %s", rep.Total())
	}
}

// serveWasm serves the wasm guest on the named engine until the test ends.
func serveWasm(t *testing.T, name string) (*engine.Instance, error) {
	eng, err := enginetest.NewEngine(t, name)
	if err != nil {
		return nil, err
	}
	return enginetest.Serve(t, eng, enginetest.Echo.Path(t), engine.Config{})
}

// truncating drops the last byte of every echo of a body larger than
// 1 KiB: the kind of transport bug the comparison must catch.
type truncating struct{ next http.Handler }

func (h truncating) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > 1024 {
		w = &limitedWriter{ResponseWriter: w, left: r.ContentLength - 1}
	}
	h.next.ServeHTTP(w, r)
}

// limitedWriter passes on only the first left bytes of the body.
type limitedWriter struct {
	http.ResponseWriter
	left int64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	keep := p[:min(int64(len(p)), max(l.left, 0))]
	l.left -= int64(len(keep))
	if _, err := l.ResponseWriter.Write(keep); err != nil {
		return 0, err
	}
	return len(p), nil
}

// goodAndBad serves the echo handler as it is ("good") and through
// truncating ("bad") until the test ends.
func goodAndBad(t *testing.T) (good, bad compare.Target) {
	handler := echo.NewHandler(wasisock.Info{Source: wasisock.SourceAddress, FD: -1}, nil)
	goodSrv := httptest.NewServer(handler)
	t.Cleanup(goodSrv.Close)
	badSrv := httptest.NewServer(truncating{handler})
	t.Cleanup(badSrv.Close)
	return compare.Target{Name: "good", Addr: goodSrv.Listener.Addr().String()},
		compare.Target{Name: "bad", Addr: badSrv.Listener.Addr().String()}
}

// TestDetectsDifference checks that a server dropping one byte fails the
// large-body cases, with a diff naming the body, and passes the rest.
func TestDetectsDifference(t *testing.T) {
	good, bad := goodAndBad(t)
	all, err := compare.DefaultCorpus()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]compare.Case{}
	for _, c := range all.Cases {
		byName[c.Name] = c
	}
	corpus := &compare.Corpus{Cases: []compare.Case{byName["post-echo"], byName["put-64KiB"], byName["get-healthz"]}}
	rep := compare.Run(context.Background(), corpus,
		good, []compare.Target{bad}, compare.Options{})
	want := map[string]string{"post-echo": compare.Pass, "put-64KiB": compare.Fail, "get-healthz": compare.Pass}
	for _, res := range rep.Results {
		if res.Status != want[res.Case] {
			t.Errorf("%s: %s (%s), want %s\n%s", res.Case, res.Status, res.Reason, want[res.Case], res.Diff)
		}
		if res.Status == compare.Fail && !strings.Contains(res.Diff, "BodyLen") {
			t.Errorf("%s: diff does not show the body length:\n%s", res.Case, res.Diff)
		}
	}
	if rep.OK() || rep.Total() != "2 passed, 1 failed" {
		t.Errorf("total %q, want \"2 passed, 1 failed\"", rep.Total())
	}
}

// TestKnownDifference checks that a known difference fails, naming the
// known reason, and reports SKIP(known) with its diff under AllowKnown.
func TestKnownDifference(t *testing.T) {
	good, bad := goodAndBad(t)
	corpus, err := compare.LoadCorpus([]byte(`{
		"cases": [{"name": "big", "kind": "http", "method": "POST", "path": "/", "body": {"random": 4096, "seed": 1}}],
		"known_differences": [{"target": "bad", "cases": "^big$", "reason": "drops a byte on purpose"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		allowKnown     bool
		status, reason string
	}{
		{false, compare.Fail, "known: drops a byte on purpose"},
		{true, compare.Skip, "known: drops a byte on purpose"},
	} {
		rep := compare.Run(context.Background(), corpus,
			good, []compare.Target{bad}, compare.Options{AllowKnown: tc.allowKnown})
		res := rep.Results[0]
		if res.Status != tc.status || res.Reason != tc.reason || !strings.Contains(res.Diff, "BodyLen") {
			t.Errorf("allowKnown=%v: %s %q, want %s %q with a BodyLen diff:\n%s", tc.allowKnown, res.Status, res.Reason, tc.status, tc.reason, res.Diff)
		}
	}
}
