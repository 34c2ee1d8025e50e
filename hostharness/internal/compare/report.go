package compare

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

// Result statuses.
const (
	Pass = "PASS"
	Fail = "FAIL"
	Skip = "SKIP"
)

// Result is the outcome of one case on one target.
type Result struct {
	Case   string `json:"case"`
	Target string `json:"target"`
	// Status is Pass, Fail or Skip.
	Status string `json:"status"`
	// Reason says why a case failed or was skipped.
	Reason string `json:"reason,omitempty"`
	// Diff is cmp.Diff(reference, target) of a failed case.
	Diff string `json:"diff,omitempty"`
	// Took is how long the target took for the case.
	Took Duration `json:"took,omitempty"`
}

// Report is the outcome of Run, printable as a table or JSON.
type Report struct {
	Reference      string          `json:"reference"`
	Targets        []string        `json:"targets"`
	Normalisations []Normalisation `json:"normalisations"`
	Results        []Result        `json:"results"`
	Passed         int             `json:"passed"`
	Failed         int             `json:"failed"`
	Skipped        int             `json:"skipped"`
}

func newReport(ref Target, targets []Target) *Report {
	rep := &Report{Reference: ref.Name, Normalisations: Normalisations()}
	for _, t := range targets {
		rep.Targets = append(rep.Targets, t.Name)
	}
	return rep
}

func (r *Report) add(res Result) {
	r.Results = append(r.Results, res)
	switch res.Status {
	case Pass:
		r.Passed++
	case Fail:
		r.Failed++
	default:
		r.Skipped++
	}
}

// OK reports whether no case failed.
func (r *Report) OK() bool { return r.Failed == 0 }

// Total is the one-line summary: "N passed, N failed[, N skipped]".
func (r *Report) Total() string {
	s := fmt.Sprintf("%d passed, %d failed", r.Passed, r.Failed)
	if r.Skipped > 0 {
		s += fmt.Sprintf(", %d skipped", r.Skipped)
	}
	return s
}

// WriteTable writes the case × target table, the normalisations, the
// diff of every failure and the total line.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "case (reference: %s)\t%s\n", r.Reference, strings.Join(r.Targets, "\t"))
	cells := map[string]map[string]string{}
	var order []string
	reasons := map[string]bool{}
	var skipNotes []string
	for _, res := range r.Results {
		if cells[res.Case] == nil {
			cells[res.Case] = map[string]string{}
			order = append(order, res.Case)
		}
		cell := res.Status
		if res.Status == Skip {
			short, _, _ := strings.Cut(res.Reason, ":")
			cell = "SKIP(" + short + ")"
			if !reasons[res.Reason] {
				reasons[res.Reason] = true
				skipNotes = append(skipNotes, res.Reason)
			}
		}
		cells[res.Case][res.Target] = cell
	}
	for _, c := range order {
		row := []string{c}
		for _, t := range r.Targets {
			row = append(row, cells[c][t])
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nnormalised before comparing:")
	for _, n := range r.Normalisations {
		fmt.Fprintf(w, "  - %s: %s\n", n.Name, n.Reason)
	}
	if len(skipNotes) > 0 {
		fmt.Fprintln(w, "\nskipped:")
		for _, s := range skipNotes {
			fmt.Fprintf(w, "  - %s\n", s)
		}
	}
	for _, res := range r.Results {
		if res.Diff == "" && res.Status != Fail {
			continue
		}
		fmt.Fprintf(w, "\n%s %s on %s: %s\n", res.Status, res.Case, res.Target, res.Reason)
		if res.Diff != "" {
			fmt.Fprintf(w, "diff (-%s +%s):\n%s", r.Reference, res.Target, res.Diff)
		}
	}
	_, err := fmt.Fprintf(w, "\n%s\n", r.Total())
	return err
}

// WriteJSONFile writes the report as indented JSON to path.
func (r *Report) WriteJSONFile(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("json report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("json report: %w", err)
	}
	return nil
}

func join(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, "; ")
}
