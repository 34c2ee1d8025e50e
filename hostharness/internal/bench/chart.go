package bench

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The chart is written as SVG by hand, with the standard library only: a
// plotting library with its embedded fonts made the hostharness binary
// 8.4 MB larger and every serve process about 4 MiB larger in memory,
// although only bench draws a chart.

// chartPanels are the panels of the chart, left to right: the key of the
// ratio drawn (in MixResult.Ratios) and the title before the reference's name.
var chartPanels = []struct{ key, title string }{
	{"requests_per_s", "requests/s"},
	{"p99_ms", "p99 latency"},
}

// chartColors are the bars' colours (Tableau 10), one per target in turn;
// past ten targets they repeat.
var chartColors = []string{
	"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
	"#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
}

// Geometry of the chart, in SVG user units (pixels).
const (
	chartPanelWidth = 500
	chartPlotLeft   = 64 // room for the y tick labels and the y axis title
	chartPlotRight  = 16
	chartPlotTop    = 44 // below the panel's title
	chartPlotHeight = 260
	chartFontSize   = 12
	chartLineHeight = 16
	// chartCharWidth estimates the mean advance of a character at
	// chartFontSize in a sans-serif font: SVG gives no text measurement
	// without a renderer, and labels are wrapped and the legend laid out
	// by this estimate.
	chartCharWidth = 0.58 * chartFontSize
	chartMaxBar    = 32 // widest bar
)

// WriteChart draws two bar charts side by side into an SVG file at path:
// requests/s and p99 latency of every target under every mix, as ratios
// to the reference target (absolute figures are in the tables). Bars are
// grouped by the reference's mixes, one per target; a ratio that is
// missing has no bar.
func (r *Report) WriteChart(path string) error {
	if len(r.Targets) == 0 || len(r.Targets[0].Mixes) == 0 {
		return fmt.Errorf("chart: no results")
	}
	if !strings.EqualFold(filepath.Ext(path), ".svg") {
		return fmt.Errorf("chart %s: want a .svg file", path)
	}
	if err := os.WriteFile(path, r.chartSVG(), 0o644); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	return nil
}

// chartSVG returns the chart of a report with at least one target and mix.
func (r *Report) chartSVG() []byte {
	mixes := make([]string, len(r.Targets[0].Mixes))
	for j, m := range r.Targets[0].Mixes {
		mixes[j] = m.Mix
	}
	groupWidth := float64(chartPanelWidth-chartPlotLeft-chartPlotRight) / float64(len(mixes))
	labels := make([][]string, len(mixes))
	lines := 1
	for j, m := range mixes {
		labels[j] = wrapLabel(m, groupWidth-8)
		lines = max(lines, len(labels[j]))
	}

	// The legend, below the panels: one entry per target in columns as
	// wide as the longest name.
	longest := 0
	for _, t := range r.Targets {
		longest = max(longest, utf8.RuneCountInString(t.Name))
	}
	entryWidth := 18 + chartCharWidth*float64(longest) + 24
	width := math.Max(float64(len(chartPanels)*chartPanelWidth), entryWidth+32)
	cols := min(len(r.Targets), max(1, int((width-32)/entryWidth)))
	rows := (len(r.Targets) + cols - 1) / cols
	legendTop := float64(chartPlotTop+chartPlotHeight+12+lines*chartLineHeight) + 16
	height := legendTop + float64(rows*chartLineHeight) + 12

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="%d">`+"\n",
		width, height, width, height, chartFontSize)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	for i, p := range chartPanels {
		r.writePanel(&b, float64(i*chartPanelWidth), p.key, p.title+" ÷ "+r.Reference, mixes, labels)
	}
	fmt.Fprintf(&b, `<g class="legend" transform="translate(%.1f,%.1f)">`+"\n", (width-float64(cols)*entryWidth)/2, legendTop)
	for i, t := range r.Targets {
		x, y := float64(i%cols)*entryWidth, float64(i/cols*chartLineHeight)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="12" height="12" fill="%s"/><text x="%.1f" y="%.1f">%s</text>`+"\n",
			x, y, chartColors[i%len(chartColors)], x+18, y+10, esc(t.Name))
	}
	b.WriteString("</g>\n</svg>\n")
	return b.Bytes()
}

// writePanel writes the panel of ratio key at x offset x0: its title, a
// y axis from 0 with its ticks, the bars (each a rect of class "bar"), a
// dashed line at ratio 1, and the mixes' labels (lines of text each)
// under their groups.
func (r *Report) writePanel(b *bytes.Buffer, x0 float64, key, title string, mixes []string, labels [][]string) {
	const left, right = chartPlotLeft, chartPanelWidth - chartPlotRight
	const top, bottom = chartPlotTop, chartPlotTop + chartPlotHeight
	values := make([][]float64, len(r.Targets)) // NaN where a bar is missing
	highest := 1.0
	for i, t := range r.Targets {
		values[i] = make([]float64, len(mixes))
		for j, mix := range mixes {
			values[i][j] = chartRatio(t, mix, key)
			if !math.IsNaN(values[i][j]) {
				highest = math.Max(highest, values[i][j])
			}
		}
	}
	step, ceiling := chartScale(highest)
	y := func(v float64) float64 { return bottom - v/ceiling*chartPlotHeight }

	fmt.Fprintf(b, `<g class="panel" data-figure="%s" transform="translate(%.0f,0)">`+"\n", esc(key), x0)
	fmt.Fprintf(b, `<text class="title" x="%.1f" y="24" text-anchor="middle" font-size="14" font-weight="bold">%s</text>`+"\n",
		(left+right)/2.0, esc(title))
	fmt.Fprintf(b, `<text x="16" y="%.1f" text-anchor="middle" transform="rotate(-90 16 %.1f)">ratio (1 = reference)</text>`+"\n",
		(top+bottom)/2.0, (top+bottom)/2.0)
	decimals := max(0, int(-math.Floor(math.Log10(step))))
	for k := 0; float64(k)*step <= ceiling*(1+1e-9); k++ {
		v := float64(k) * step
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#dddddd"/><text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n",
			left, y(v), right, y(v), left-6, y(v), strconv.FormatFloat(v, 'f', decimals, 64))
	}

	groupWidth := float64(right-left) / float64(len(mixes))
	barWidth := math.Min(0.8*groupWidth/float64(len(r.Targets)), chartMaxBar)
	gap := math.Min(2, 0.15*barWidth)
	for j, mix := range mixes {
		center := left + (float64(j)+0.5)*groupWidth
		for i, t := range r.Targets {
			v := values[i][j]
			if math.IsNaN(v) {
				continue
			}
			x := center + (float64(i)-float64(len(r.Targets)-1)/2-0.5)*barWidth + gap/2
			fmt.Fprintf(b, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s, %s: %s×</title></rect>`+"\n",
				x, y(v), barWidth-gap, bottom-y(v), chartColors[i%len(chartColors)], esc(t.Name), esc(mix), strconv.FormatFloat(v, 'f', 2, 64))
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">`, center, bottom+12)
		for n, line := range labels[j] {
			dy := chartLineHeight
			if n == 0 {
				dy = chartFontSize
			}
			fmt.Fprintf(b, `<tspan x="%.1f" dy="%d">%s</tspan>`, center, dy, esc(line))
		}
		b.WriteString("</text>\n")
	}
	fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#333333" stroke-dasharray="6 4"/>`+"\n", left, y(1), right, y(1))
	fmt.Fprintf(b, `<path d="M%d %d V%d H%d" fill="none" stroke="#333333"/>`+"\n", left, top, bottom, right)
	b.WriteString("</g>\n")
}

// chartRatio is target t's ratio key under the mix named mix, NaN if it
// has none or it cannot be drawn as a bar (negative or infinite).
func chartRatio(t TargetResult, mix, key string) float64 {
	for _, m := range t.Mixes {
		if m.Mix != mix {
			continue
		}
		if v := m.Ratios[key]; v != nil && *v >= 0 && !math.IsInf(*v, 1) {
			return *v
		}
		break
	}
	return math.NaN()
}

// chartScale returns the y axis' tick step, 1, 2 or 5 times a power of
// ten, and its top, a multiple of the step: about five ticks from 0 to a
// little above highest.
func chartScale(highest float64) (step, ceiling float64) {
	raw := highest / 4 * 1.05
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step = 10 * mag
	for _, m := range []float64{1, 2, 5} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	return step, math.Ceil(highest/step*1.05) * step
}

// wrapLabel splits label at spaces into lines of about width units at
// most; a longer word has a line of its own.
func wrapLabel(label string, width float64) []string {
	words := strings.Fields(label)
	if len(words) == 0 {
		return []string{label}
	}
	lines := []string{words[0]}
	for _, w := range words[1:] {
		last := &lines[len(lines)-1]
		if chartCharWidth*float64(utf8.RuneCountInString(*last)+1+utf8.RuneCountInString(w)) <= width {
			*last += " " + w
		} else {
			lines = append(lines, w)
		}
	}
	return lines
}

// esc escapes s for SVG text and attribute values. Characters XML cannot
// hold (such as NUL, or invalid UTF-8) become U+FFFD, so any name from a
// report gives a well-formed file.
func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder does not fail
	return b.String()
}
