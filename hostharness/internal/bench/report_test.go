package bench

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func ptr(v float64) *float64 { return &v }

func TestRatios(t *testing.T) {
	tests := []struct {
		name      string
		figs, ref map[string]float64
		want      map[string]*float64
	}{
		{"quotients", map[string]float64{"a": 3, "b": 1}, map[string]float64{"a": 2, "b": 4}, map[string]*float64{"a": ptr(1.5), "b": ptr(0.25)}},
		{"both zero is 1", map[string]float64{"idle": 0}, map[string]float64{"idle": 0}, map[string]*float64{"idle": ptr(1)}},
		{"zero reference", map[string]float64{"idle": 0.4}, map[string]float64{"idle": 0}, map[string]*float64{"idle": nil}},
		{"zero over non-zero", map[string]float64{"a": 0}, map[string]float64{"a": 2}, map[string]*float64{"a": ptr(0)}},
		{"missing in reference", map[string]float64{"wasm": 9}, map[string]float64{}, map[string]*float64{"wasm": nil}},
		{"extra in reference ignored", map[string]float64{}, map[string]float64{"wasm": 9}, map[string]*float64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ratios(tt.figs, tt.ref)); diff != "" {
				t.Errorf("ratios (-want +got):\n%s", diff)
			}
		})
	}
}

// sampleReport is a two-target report with ratios filled in.
func sampleReport() *Report {
	r := &Report{
		Machine:    Machine{OS: "linux", Arch: "amd64", CPUs: 2, CPUModel: "Test CPU", Kernel: "6.1", GoVersion: "go1.26.8"},
		Command:    "hostharness bench --duration 1s",
		Note:       "Shared machine.",
		Duration:   "1s",
		Conns:      4,
		IdleWindow: "1s",
		IdleConns:  10,
		WrkNote:    "wrk cross-check skipped: wrk is not installed (apt-get install wrk).",
		Targets: []TargetResult{
			{
				Name: "native GOMAXPROCS=1", ColdStartMS: 5, WarmStartMS: 4, PeakRSSBytes: 10 << 20, BinaryBytes: 8 << 20,
				Mixes: []MixResult{
					{Mix: "echo 4 B", Requests: 1000, RequestsPerSec: 1000, P50MS: 1, P90MS: 2, P99MS: 4, MaxMS: 8, CPUSecondsPer10k: 0.5},
					{Mix: "echo 1 MiB", Requests: 100, RequestsPerSec: 100, P50MS: 10, P90MS: 20, P99MS: 40, MaxMS: 80, CPUSecondsPer10k: 5},
				},
			},
			{
				Name: "wasm wazero", Engine: "wazero", IdleCPUSeconds: 0.5, ColdStartMS: 5000, WarmStartMS: 200,
				PeakRSSBytes: 100 << 20, RSSAfterSmallEchoBytes: 60 << 20, BinaryBytes: 32 << 20, WasmBytes: 9 << 20,
				Mixes: []MixResult{
					{Mix: "echo 4 B", Requests: 800, Errors: 2, FirstError: "POST: EOF", RequestsPerSec: 800, P50MS: 2, P90MS: 3, P99MS: 8, MaxMS: 8, CPUSecondsPer10k: 1},
					{Mix: "echo 1 MiB", Requests: 50, RequestsPerSec: 50, P50MS: 20, P90MS: 30, P99MS: 40, MaxMS: 40, CPUSecondsPer10k: 20},
				},
			},
		},
	}
	r.fillRatios()
	return r
}

func TestFillRatios(t *testing.T) {
	r := sampleReport()
	if r.Reference != "native GOMAXPROCS=1" {
		t.Errorf("Reference = %q", r.Reference)
	}
	w := r.Targets[1]
	want := map[string]*float64{
		"requests_per_s": ptr(0.8), "p50_ms": ptr(2), "p90_ms": ptr(1.5), "p99_ms": ptr(2), "max_ms": ptr(1), "cpu_s_per_10k_requests": ptr(2),
	}
	if diff := cmp.Diff(want, w.Mixes[0].Ratios); diff != "" {
		t.Errorf("mix ratios (-want +got):\n%s", diff)
	}
	wantTarget := map[string]*float64{
		"idle_cpu_s": nil, "cold_start_ms": ptr(1000), "warm_start_ms": ptr(50), "peak_rss_bytes": ptr(10),
		"binary_bytes": ptr(4), "wasm_bytes": nil, "rss_after_small_echo_bytes": nil,
	}
	if diff := cmp.Diff(wantTarget, w.Ratios); diff != "" {
		t.Errorf("target ratios (-want +got):\n%s", diff)
	}
	for k, v := range r.Targets[0].Ratios {
		if v == nil || *v != 1 {
			t.Errorf("reference ratio %s = %v, want 1", k, v)
		}
	}
}

func TestWriteMarkdown(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	want := "Machine: linux/amd64, 2 CPUs (Test CPU), Linux 6.1, go1.26.8.  \n" +
		"Command: `hostharness bench --duration 1s`  \n" +
		"Shared machine.  \n" +
		"Ratios (×) are to \"native GOMAXPROCS=1\", measured in the same run.\n\n" +
		"Closed-loop load, 4 keep-alive connections (the last mix: a new connection per request), 1s per mix:\n\n" +
		"| target | mix | requests/s | p50 ms | p90 ms | p99 ms | max ms | CPU s per 10k req | requests | errors |\n" +
		"|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n" +
		"| native GOMAXPROCS=1 | echo 4 B | 1000 | 1.00 | 2.00 | 4.00 | 8.0 | 0.50 | 1000 | 0 |\n" +
		"| native GOMAXPROCS=1 | echo 1 MiB | 100 | 10.00 | 20.00 | 40.00 | 80.0 | 5.00 | 100 | 0 |\n" +
		"| wasm wazero | echo 4 B | 800 (0.80×) | 2.00 (2.00×) | 3.00 (1.50×) | 8.00 (2.00×) | 8.0 (1.00×) | 1.00 (2.00×) | 800 | 2 |\n" +
		"| wasm wazero | echo 1 MiB | 50 (0.50×) | 20.00 (2.00×) | 30.00 (1.50×) | 40.00 (1.00×) | 40.0 (0.50×) | 20.00 (4.00×) | 50 | 0 |\n" +
		"\nIdle CPU is host CPU seconds over 1s with 10 idle keep-alive connections open. " +
		"Start is launch to the first 200 from GET /healthz, with an empty (cold) and a filled (warm) compilation cache. Sizes and RSS in MiB; RSS after 4 B echo is VmRSS a second after that mix.\n\n" +
		"| target | idle CPU s | cold start ms | warm start ms | peak RSS | RSS after 4 B echo | wasm size | binary size | 4 B echo requests/s: own | wrk |\n" +
		"|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n" +
		"| native GOMAXPROCS=1 | 0.00 | 5 | 4 | 10.0 | — | — | 8.0 | 1000 | — |\n" +
		"| wasm wazero | 0.50 (—) | 5000 (1000.00×) | 200 (50.00×) | 100.0 (10.00×) | 60.0 (—) | 9.0 (—) | 32.0 (4.00×) | 800 | — |\n" +
		"\nwrk cross-check skipped: wrk is not installed (apt-get install wrk).\n" +
		"\nErrors:\n- wasm wazero, echo 4 B: 2 errors, first: POST: EOF\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("WriteMarkdown (-want +got):\n%s", diff)
	}
}

// parsedChart is what TestWriteChart reads back from a chart.
type parsedChart struct {
	texts []string       // each text element's character data, its lines joined by spaces
	bars  map[string]int // rects of class "bar" by their panel's data-figure
}

// parseChart decodes an SVG chart with encoding/xml, failing the test
// if it is not well-formed XML with an svg root.
func parseChart(t *testing.T, data []byte) parsedChart {
	t.Helper()
	p := parsedChart{bars: map[string]int{}}
	attr := func(e xml.StartElement, name string) string {
		for _, a := range e.Attr {
			if a.Name.Local == name {
				return a.Value
			}
		}
		return ""
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	var panel string
	var text []string // words of the text element being read, if any
	inText, root := false, true
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("chart is not well-formed: %v\n%s", err, data)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root && (tok.Name.Local != "svg" || tok.Name.Space != "http://www.w3.org/2000/svg") {
				t.Fatalf("root element %v, want svg", tok.Name)
			}
			root = false
			switch {
			case tok.Name.Local == "g" && attr(tok, "class") == "panel":
				panel = attr(tok, "data-figure")
			case tok.Name.Local == "rect" && attr(tok, "class") == "bar":
				p.bars[panel]++
			case tok.Name.Local == "text":
				inText, text = true, nil
			}
		case xml.CharData:
			if inText {
				text = append(text, string(tok))
			}
		case xml.EndElement:
			if tok.Name.Local == "text" {
				p.texts = append(p.texts, strings.Join(text, " "))
				inText = false
			}
		}
	}
	if root {
		t.Fatal("chart is empty")
	}
	return p
}

func TestWriteChart(t *testing.T) {
	dir := t.TempDir()
	// chart writes r's chart to name under dir and parses it.
	chart := func(r *Report, name string) ([]byte, parsedChart) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := r.WriteChart(path); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return data, parseChart(t, data)
	}
	hasText := func(p parsedChart, want string) bool { return slices.Contains(p.texts, want) }

	r := sampleReport()
	_, p := chart(r, "chart.svg")
	for _, want := range []string{"requests/s ÷ native GOMAXPROCS=1", "p99 latency ÷ native GOMAXPROCS=1",
		"native GOMAXPROCS=1", "wasm wazero", "echo 4 B", "echo 1 MiB"} {
		if !hasText(p, want) {
			t.Errorf("chart lacks the text %q; has %q", want, p.texts)
		}
	}
	if want := map[string]int{"requests_per_s": 4, "p99_ms": 4}; !maps.Equal(p.bars, want) {
		t.Errorf("bars per panel = %v, want %v", p.bars, want)
	}

	// Names are arbitrary strings; a missing ratio has no bar.
	const hostile = `<x & "y"></text></svg>`
	r.Targets[1].Name = hostile
	r.Targets[0].Name = "ref & 'co'"
	r.Targets[0].Mixes[1].Mix = "nul\x00 ]]> mix"
	r.Targets[1].Mixes[1].Mix = r.Targets[0].Mixes[1].Mix
	r.fillRatios()
	r.Targets[1].Mixes[0].Ratios["p99_ms"] = nil
	data, p := chart(r, "hostile.svg")
	if bytes.Contains(data, []byte(hostile)) {
		t.Error("the hostile target name is not escaped")
	}
	for _, want := range []string{hostile, "p99 latency ÷ ref & 'co'", "nul\uFFFD ]]> mix"} {
		if !hasText(p, want) {
			t.Errorf("chart lacks the text %q; has %q", want, p.texts)
		}
	}
	if want := map[string]int{"requests_per_s": 4, "p99_ms": 3}; !maps.Equal(p.bars, want) {
		t.Errorf("bars per panel with a missing ratio = %v, want %v", p.bars, want)
	}

	for _, name := range []string{"chart.png", "chart.gif"} {
		path := filepath.Join(dir, name)
		if err := r.WriteChart(path); err == nil {
			t.Errorf("WriteChart to %s: no error", name)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("WriteChart to %s: file written (%v)", name, err)
		}
	}
	if err := (&Report{}).WriteChart(filepath.Join(dir, "empty.svg")); err == nil {
		t.Error("WriteChart of an empty report: no error")
	}
}

func TestDefaultIdleWindow(t *testing.T) {
	tests := []struct{ duration, want time.Duration }{
		{300 * time.Millisecond, time.Second},
		{5 * time.Second, 1250 * time.Millisecond},
		{10 * time.Second, 2500 * time.Millisecond},
		{time.Minute, 10 * time.Second},
	}
	for _, tt := range tests {
		if got := DefaultIdleWindow(tt.duration); got != tt.want {
			t.Errorf("DefaultIdleWindow(%v) = %v, want %v", tt.duration, got, tt.want)
		}
	}
}
