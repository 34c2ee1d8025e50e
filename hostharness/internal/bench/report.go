package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Report is the outcome of one bench run. Every figure of a target also
// has its ratio to the reference target (the first), under the same key.
type Report struct {
	Machine Machine `json:"machine"`
	// Command is the command line that produced the report.
	Command string `json:"command"`
	// Note says how the machine was shared during the run.
	Note       string `json:"note"`
	Duration   string `json:"duration_per_mix"`
	Conns      int    `json:"conns"`
	IdleWindow string `json:"idle_window"`
	IdleConns  int    `json:"idle_conns"`
	// Reference names the target ratios are relative to.
	Reference string `json:"reference"`
	// WrkNote says why the wrk cross-check was skipped, if it was.
	WrkNote string         `json:"wrk_note,omitempty"`
	Targets []TargetResult `json:"targets"`
}

// Machine describes where the report was measured.
type Machine struct {
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model,omitempty"`
	Kernel    string `json:"kernel,omitempty"`
	GoVersion string `json:"go_version"`
}

// TargetResult holds one target's figures.
type TargetResult struct {
	Name   string      `json:"name"`
	Engine string      `json:"engine,omitempty"`
	Mixes  []MixResult `json:"mixes"`
	// IdleCPUSeconds is the host CPU time used over the idle window with
	// the idle connections open.
	IdleCPUSeconds float64 `json:"idle_cpu_s"`
	// ColdStartMS and WarmStartMS run from launch to the first 200, with
	// an empty and a filled compilation cache.
	ColdStartMS float64 `json:"cold_start_ms"`
	WarmStartMS float64 `json:"warm_start_ms"`
	// PeakRSSBytes is VmHWM at the end of the run.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// RSSAfterSmallEchoBytes is VmRSS a second after the 4-byte echo mix:
	// the memory of a server that has been serving small requests, past
	// its start-up, before the large mixes grow the guest's heap.
	RSSAfterSmallEchoBytes int64 `json:"rss_after_small_echo_bytes,omitempty"`
	BinaryBytes            int64 `json:"binary_bytes"`
	WasmBytes              int64 `json:"wasm_bytes,omitempty"`
	// WrkRequestsPerSec is wrk's figure for SmallEcho, 0 when skipped.
	WrkRequestsPerSec float64 `json:"wrk_requests_per_s,omitempty"`
	// WrkErrors holds wrk's error lines, if any.
	WrkErrors string              `json:"wrk_errors,omitempty"`
	Ratios    map[string]*float64 `json:"ratios"`
}

// MixResult holds one target's figures under one mix.
type MixResult struct {
	Mix              string  `json:"mix"`
	Requests         int64   `json:"requests"`
	Errors           int64   `json:"errors"`
	FirstError       string  `json:"first_error,omitempty"`
	RequestsPerSec   float64 `json:"requests_per_s"`
	P50MS            float64 `json:"p50_ms"`
	P90MS            float64 `json:"p90_ms"`
	P99MS            float64 `json:"p99_ms"`
	MaxMS            float64 `json:"max_ms"`
	CPUSecondsPer10k float64 `json:"cpu_s_per_10k_requests"`
	// Ratios are relative to the reference target's result for the same mix.
	Ratios map[string]*float64 `json:"ratios"`
}

func (m MixResult) figures() map[string]float64 {
	return map[string]float64{
		"requests_per_s":         m.RequestsPerSec,
		"p50_ms":                 m.P50MS,
		"p90_ms":                 m.P90MS,
		"p99_ms":                 m.P99MS,
		"max_ms":                 m.MaxMS,
		"cpu_s_per_10k_requests": m.CPUSecondsPer10k,
	}
}

func (t TargetResult) figures() map[string]float64 {
	f := map[string]float64{
		"idle_cpu_s":     t.IdleCPUSeconds,
		"cold_start_ms":  t.ColdStartMS,
		"warm_start_ms":  t.WarmStartMS,
		"peak_rss_bytes": float64(t.PeakRSSBytes),
		"binary_bytes":   float64(t.BinaryBytes),
	}
	if t.RSSAfterSmallEchoBytes > 0 {
		f["rss_after_small_echo_bytes"] = float64(t.RSSAfterSmallEchoBytes)
	}
	if t.WasmBytes > 0 {
		f["wasm_bytes"] = float64(t.WasmBytes)
	}
	if t.WrkRequestsPerSec > 0 {
		f["wrk_requests_per_s"] = t.WrkRequestsPerSec
	}
	return f
}

// ratios divides each figure by the reference's figure of the same key.
// A figure the reference lacks, or whose reference is 0 while it is not,
// has a nil ratio; two zeros have ratio 1.
func ratios(figs, ref map[string]float64) map[string]*float64 {
	out := make(map[string]*float64, len(figs))
	for k, v := range figs {
		r, ok := ref[k]
		switch {
		case !ok || (r == 0 && v != 0):
			out[k] = nil
		case r == 0:
			one := 1.0
			out[k] = &one
		default:
			q := v / r
			out[k] = &q
		}
	}
	return out
}

// fillRatios sets every target's ratios relative to the first target.
func (r *Report) fillRatios() {
	if len(r.Targets) == 0 {
		return
	}
	ref := r.Targets[0]
	r.Reference = ref.Name
	refMix := map[string]MixResult{}
	for _, m := range ref.Mixes {
		refMix[m.Mix] = m
	}
	for i := range r.Targets {
		t := &r.Targets[i]
		t.Ratios = ratios(t.figures(), ref.figures())
		for j := range t.Mixes {
			m := &t.Mixes[j]
			m.Ratios = ratios(m.figures(), refMix[m.Mix].figures())
		}
	}
}

// WriteJSON writes the report, indented, to path.
func (r *Report) WriteJSON(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// WriteMarkdown renders the report as Markdown tables; cells of targets
// other than the reference carry their ratio to it, as "(0.82×)".
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s/%s, %d CPUs", r.Machine.OS, r.Machine.Arch, r.Machine.CPUs)
	if r.Machine.CPUModel != "" {
		fmt.Fprintf(&b, " (%s)", r.Machine.CPUModel)
	}
	if r.Machine.Kernel != "" {
		fmt.Fprintf(&b, ", Linux %s", r.Machine.Kernel)
	}
	fmt.Fprintf(&b, ", %s.  \nCommand: `%s`  \n%s  \nRatios (×) are to %q, measured in the same run.\n\n",
		r.Machine.GoVersion, r.Command, r.Note, r.Reference)

	fmt.Fprintf(&b, "Closed-loop load, %d keep-alive connections (the last mix: a new connection per request), %s per mix:\n\n", r.Conns, r.Duration)
	b.WriteString("| target | mix | requests/s | p50 ms | p90 ms | p99 ms | max ms | CPU s per 10k req | requests | errors |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for i, t := range r.Targets {
		for _, m := range t.Mixes {
			cell := func(key, format string) string { return withRatio(i, format, m.figures()[key], m.Ratios[key]) }
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %d | %d |\n", t.Name, m.Mix,
				cell("requests_per_s", "%.0f"), cell("p50_ms", "%.2f"), cell("p90_ms", "%.2f"), cell("p99_ms", "%.2f"),
				cell("max_ms", "%.1f"), cell("cpu_s_per_10k_requests", "%.2f"), m.Requests, m.Errors)
		}
	}

	fmt.Fprintf(&b, "\nIdle CPU is host CPU seconds over %s with %d idle keep-alive connections open. "+
		"Start is launch to the first 200 from GET /healthz, with an empty (cold) and a filled (warm) compilation cache. "+
		"Sizes and RSS in MiB; RSS after 4 B echo is VmRSS a second after that mix.\n\n", r.IdleWindow, r.IdleConns)
	b.WriteString("| target | idle CPU s | cold start ms | warm start ms | peak RSS | RSS after 4 B echo | wasm size | binary size | 4 B echo requests/s: own | wrk |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for i, t := range r.Targets {
		figs := t.figures()
		cell := func(key, format string, scale float64) string {
			v, ok := figs[key]
			if !ok {
				return "—"
			}
			return withRatio(i, format, v/scale, t.Ratios[key])
		}
		own := "—"
		for _, m := range t.Mixes {
			if m.Mix == SmallEcho.Name {
				own = fmt.Sprintf("%.0f", m.RequestsPerSec)
			}
		}
		wrk := cell("wrk_requests_per_s", "%.0f", 1)
		if t.WrkErrors != "" {
			wrk += " (" + t.WrkErrors + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", t.Name,
			cell("idle_cpu_s", "%.2f", 1), cell("cold_start_ms", "%.0f", 1), cell("warm_start_ms", "%.0f", 1),
			cell("peak_rss_bytes", "%.1f", 1<<20), cell("rss_after_small_echo_bytes", "%.1f", 1<<20),
			cell("wasm_bytes", "%.1f", 1<<20), cell("binary_bytes", "%.1f", 1<<20),
			own, wrk)
	}
	if r.WrkNote != "" {
		fmt.Fprintf(&b, "\n%s\n", r.WrkNote)
	}
	if errs := r.errorSummary(); errs != "" {
		fmt.Fprintf(&b, "\nErrors:\n%s", errs)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// withRatio formats v, followed by its ratio unless target i is the reference.
func withRatio(i int, format string, v float64, ratio *float64) string {
	s := fmt.Sprintf(format, v)
	switch {
	case i == 0:
		return s
	case ratio == nil:
		return s + " (—)"
	default:
		return fmt.Sprintf("%s (%.2f×)", s, *ratio)
	}
}

// errorSummary lists the first error of every mix that had errors.
func (r *Report) errorSummary() string {
	var lines []string
	for _, t := range r.Targets {
		for _, m := range t.Mixes {
			if m.Errors > 0 {
				lines = append(lines, fmt.Sprintf("- %s, %s: %d errors, first: %s\n", t.Name, m.Mix, m.Errors, m.FirstError))
			}
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "")
}
