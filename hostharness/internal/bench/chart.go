package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	_ "gonum.org/v1/plot/vg/vgimg" // registers png
	_ "gonum.org/v1/plot/vg/vgsvg" // registers svg
)

// WriteChart draws two bar charts side by side into an image file at
// path, SVG or PNG by its extension: requests/s and p99 latency of every
// target under every mix, as ratios to the reference target (absolute
// figures are in the tables).
func (r *Report) WriteChart(path string) error {
	if len(r.Targets) == 0 || len(r.Targets[0].Mixes) == 0 {
		return fmt.Errorf("chart: no results")
	}
	throughput, err := r.barPlot("requests/s ÷ "+r.Reference, "requests_per_s")
	if err != nil {
		return err
	}
	p99, err := r.barPlot("p99 latency ÷ "+r.Reference, "p99_ms")
	if err != nil {
		return err
	}
	format := strings.TrimPrefix(filepath.Ext(path), ".")
	if format != "svg" && format != "png" {
		return fmt.Errorf("chart %s: want a .svg or .png file", path)
	}
	canvas, err := draw.NewFormattedCanvas(28*vg.Centimeter, 12*vg.Centimeter, format)
	if err != nil {
		return fmt.Errorf("chart %s: %w", path, err)
	}
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Centimeter, PadTop: vg.Millimeter, PadBottom: vg.Millimeter,
		PadLeft: vg.Millimeter, PadRight: vg.Millimeter}
	plots := [][]*plot.Plot{{throughput, p99}}
	for j, c := range plot.Align(plots, tiles, draw.New(canvas))[0] {
		plots[0][j].Draw(c)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	if _, err := canvas.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("chart %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("chart %s: %w", path, err)
	}
	return nil
}

// barPlot groups bars by mix, one bar per target, of the ratio of figure key.
func (r *Report) barPlot(title, key string) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = "ratio (1 = reference)"
	p.Legend.Top = true
	p.Legend.Left = false
	var names []string
	for _, m := range r.Targets[0].Mixes {
		names = append(names, m.Mix)
	}
	width := vg.Points(14)
	n := len(r.Targets)
	for i, t := range r.Targets {
		values := make(plotter.Values, len(names))
		for j, m := range t.Mixes {
			if j < len(values) && m.Ratios[key] != nil {
				values[j] = *m.Ratios[key]
			}
		}
		bars, err := plotter.NewBarChart(values, width)
		if err != nil {
			return nil, fmt.Errorf("chart %s: %w", t.Name, err)
		}
		bars.LineStyle.Width = 0
		bars.Color = plotutil.Color(i)
		bars.Offset = vg.Length(float64(i)-float64(n-1)/2) * width
		p.Add(bars)
		p.Legend.Add(t.Name, bars)
	}
	p.NominalX(names...)
	p.Y.Min = 0
	p.Y.Max *= 1.35 // room for the legend above the bars
	return p, nil
}
