package bench

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine/wazy"

	"github.com/wasiserve/wasiserve/internal/enginetest"
	"github.com/wasiserve/wasiserve/internal/guestbuild"
)

// TestRunNativeAndWazy runs the whole bench, briefly, on the native
// guest and on the wasm guest under hostharness serve with wazy (linked
// into every build), and checks that requests were served and reported.
func TestRunNativeAndWazy(t *testing.T) {
	if errUnsupported != nil {
		t.Skipf("bench unsupported here: %v", errUnsupported)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	native, wasm, harness := nativeEcho.Path(t), wasmEcho.Path(t), harnessCmd.Path(t)
	cfg := Config{
		Targets:    []Target{NativeTarget("native GOMAXPROCS=1", native, 1), HarnessTarget(harness, wazy.Name, wasm)},
		Duration:   300 * time.Millisecond,
		Conns:      2,
		IdleWindow: 300 * time.Millisecond,
		IdleConns:  5,
		WorkDir:    dir,
		Command:    "go test",
		Logger:     slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		WrkNote:    "wrk not installed",
	}
	if wrk, err := exec.LookPath("wrk"); err == nil {
		cfg.Wrk, cfg.WrkNote = wrk, ""
	} else {
		t.Log("wrk not installed: its cross-check is not exercised")
	}
	r, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Targets) != 2 || r.Reference != "native GOMAXPROCS=1" {
		t.Fatalf("report has targets %+v, reference %q", r.Targets, r.Reference)
	}
	for _, tr := range r.Targets {
		if len(tr.Mixes) != len(Mixes()) {
			t.Errorf("%s: %d mixes, want %d", tr.Name, len(tr.Mixes), len(Mixes()))
		}
		for _, m := range tr.Mixes {
			if m.Requests == 0 || m.Errors != 0 || m.RequestsPerSec <= 0 || m.MaxMS < m.P50MS || m.P50MS <= 0 {
				t.Errorf("%s, %s: %+v, want requests served without errors and sane latencies", tr.Name, m.Mix, m)
			}
			if m.Ratios["requests_per_s"] == nil {
				t.Errorf("%s, %s: no throughput ratio", tr.Name, m.Mix)
			}
		}
		if tr.ColdStartMS <= 0 || tr.WarmStartMS <= 0 || tr.PeakRSSBytes <= 0 || tr.RSSAfterSmallEchoBytes <= 0 || tr.BinaryBytes <= 0 {
			t.Errorf("%s: start, RSS or size missing: %+v", tr.Name, tr)
		}
		if cfg.Wrk != "" && (tr.WrkRequestsPerSec <= 0 || tr.WrkErrors != "") {
			t.Errorf("%s: wrk measured %.0f requests/s, errors %q", tr.Name, tr.WrkRequestsPerSec, tr.WrkErrors)
		}
	}
	if w := r.Targets[1]; w.WasmBytes <= 0 || w.Engine != wazy.Name {
		t.Errorf("wasm target: engine %q, wasm size %d", w.Engine, w.WasmBytes)
	}
	var md bytes.Buffer
	if err := r.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| native GOMAXPROCS=1 | echo 4 B |", "| wasm " + wazy.Name + " | echo 1 MiB |", "(×)"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md.String())
		}
	}
	if err := r.WriteJSON(filepath.Join(dir, "report.json")); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteChart(filepath.Join(dir, "chart.svg")); err != nil {
		t.Fatal(err)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "chart.svg"))
	if err != nil {
		t.Fatal(err)
	}
	chart := parseChart(t, svg)
	for _, target := range r.Targets {
		if !slices.Contains(chart.texts, target.Name) {
			t.Errorf("chart lacks target %q; has %q", target.Name, chart.texts)
		}
	}
	t.Logf("report:\n%s", md.String())
}

func TestMain(m *testing.M) { os.Exit(enginetest.Main(m)) }

// noCgo is the environment of the servers the tests measure: built
// without cgo.
var noCgo = []string{"CGO_ENABLED=0"}

// The servers the tests measure: the native echo guest, the wasm one, and
// a hostharness, all built without cgo.
var (
	nativeEcho = enginetest.Guest{Pkg: guestbuild.Package, Env: noCgo}
	wasmEcho   = enginetest.Guest{Pkg: guestbuild.Package, Target: guestbuild.WASI, Env: noCgo}
	harnessCmd = enginetest.Guest{Pkg: "github.com/wasiserve/wasiserve/hostharness", Env: noCgo}
)

// testWriter sends the bench's progress log to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
