package experiment

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/diffinv/diffinv/internal/atomicfile"
)

// errPoints are plot points with symmetric y error bars.
type errPoints struct {
	plotter.XYs
	plotter.YErrors
}

// writePlots writes plots/KEY.png for every sweep key: one panel per
// metric (balanced rows of up to four, the legend in the next tile; see
// layoutPanels), the metric's mean over seeds against the key's value, one line
// per task × method (× the other sweep keys' values) with ± std error
// bars. Numeric values are placed by value (on a log axis when positive
// and spanning a factor ≥ 20), other values evenly in file order.
func writePlots(exp *Experiment, all []cellData, ms []Metric, out string) ([]string, error) {
	return writePlotsAs(exp, all, ms, out, "")
}

// writePlotsAs is writePlots into plots/PREFIX+KEY.png, for the sweep keys
// the cells vary.
func writePlotsAs(exp *Experiment, all []cellData, ms []Metric, out, prefix string) ([]string, error) {
	var files []string
	for _, key := range exp.SweepKeys() {
		if !anySweeps(all, key) {
			continue
		}
		b, err := sweepPlot(exp, all, ms, key)
		if err != nil {
			return nil, fmt.Errorf("sweep %s: %w", key, err)
		}
		if err := os.MkdirAll(filepath.Join(out, PlotsDir), 0o755); err != nil {
			return nil, err
		}
		file := filepath.Join(PlotsDir, prefix+slug(key)+".png")
		if err := atomicfile.WriteFile(filepath.Join(out, file), b); err != nil {
			return nil, err
		}
		files = append(files, file)
	}
	return files, nil
}

// anySweeps reports whether any cell has a value of the sweep key.
func anySweeps(all []cellData, key string) bool {
	for _, d := range all {
		for _, sv := range d.Sweep {
			if sv.Key == key {
				return true
			}
		}
	}
	return false
}

func sweepPlot(exp *Experiment, all []cellData, ms []Metric, key string) ([]byte, error) {
	values := exp.Sweep[key]
	numeric, xs := true, make([]float64, len(values))
	for i, v := range values {
		switch x := v.(type) {
		case int:
			xs[i] = float64(x)
		case float64:
			xs[i] = x
		default:
			numeric = false
		}
	}
	if !numeric {
		for i := range xs {
			xs[i] = float64(i)
		}
	}
	logX := numeric && len(xs) > 1
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, x := range xs {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
		if x <= 0 || math.IsInf(x, 0) || math.IsNaN(x) {
			logX = false
		}
	}
	logX = logX && hi/lo >= 20
	pos := map[string]float64{}
	for i, v := range values {
		pos[canonical(v)] = xs[i]
	}

	// Series: task × method × other sweep values, in expansion order.
	type series struct {
		label string
		byX   map[float64][]float64
	}
	row := make([]*plot.Plot, 0, len(ms))
	legend := plot.New()
	legend.HideAxes()
	legend.Legend.Top, legend.Legend.Left = true, true
	for mi, m := range ms {
		var order []string
		ser := map[string]*series{}
		for _, d := range all {
			var others []string
			var x float64
			for _, sv := range d.Sweep {
				if sv.Key == key {
					x = pos[canonical(sv.Value)]
				} else {
					others = append(others, shortKey(sv.Key)+"="+display(sv.Value))
				}
			}
			label := d.Task.Key() + " · " + d.Method.Key()
			if d.Train != nil {
				label = "training"
			}
			if len(others) > 0 {
				label += " (" + strings.Join(others, ", ") + ")"
			}
			s := ser[label]
			if s == nil {
				s = &series{label: label, byX: map[float64][]float64{}}
				ser[label] = s
				order = append(order, label)
			}
			s.byX[x] = append(s.byX[x], d.value(m))
		}
		p := plot.New()
		p.Title.Text = m.Title
		p.X.Label.Text = shortKey(key)
		if logX {
			p.X.Scale = plot.LogScale{}
			p.X.Tick.Marker = plot.LogTicks{Prec: -1}
		}
		if !numeric {
			var ticks []plot.Tick
			for i, v := range values {
				ticks = append(ticks, plot.Tick{Value: float64(i), Label: display(v)})
			}
			p.X.Tick.Marker = plot.ConstantTicks(ticks)
		}
		p.Add(plotter.NewGrid())
		for si, label := range order {
			s := ser[label]
			var pts errPoints
			for _, x := range xs {
				ys, ok := s.byX[x]
				if !ok {
					continue
				}
				st := stat(ys)
				if math.IsNaN(st.Mean) || math.IsInf(st.Mean, 0) || math.IsNaN(st.Std) || math.IsInf(st.Std, 0) {
					continue
				}
				pts.XYs = append(pts.XYs, plotter.XY{X: x, Y: st.Mean})
				pts.YErrors = append(pts.YErrors, struct{ Low, High float64 }{st.Std, st.Std})
			}
			if len(pts.XYs) == 0 {
				continue
			}
			line, scatter, err := plotter.NewLinePoints(pts.XYs)
			if err != nil {
				return nil, err
			}
			line.Color = plotutil.Color(si)
			scatter.Color = plotutil.Color(si)
			scatter.Shape = plotutil.Shape(si)
			p.Add(line, scatter)
			if len(exp.Seeds) > 1 {
				eb, err := plotter.NewYErrorBars(pts)
				if err != nil {
					return nil, err
				}
				eb.Color = plotutil.Color(si)
				p.Add(eb)
			}
			if mi == len(ms)-1 {
				legend.Legend.Add(label, line, scatter)
			}
		}
		row = append(row, p)
	}
	const panelW, panelH = 3.2 * vg.Inch, 2.8 * vg.Inch
	rows, cols := panelGrid(len(row))
	img := vgimg.NewWith(vgimg.UseWH(panelW*vg.Length(cols), panelH*vg.Length(rows)), vgimg.UseDPI(100))
	dc := draw.New(img)
	canvases, legendC := layoutPanels(row, legend, dc)
	for i, p := range row {
		p.Draw(canvases[i])
	}
	legend.Draw(legendC)
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// panelGrid is the grid for n metric panels and the legend: balanced rows
// of up to four tiles, the legend in the tile after the last panel (never
// alone in a row for up to the six known metrics).
func panelGrid(n int) (rows, cols int) {
	n++ // the legend's tile
	rows = (n + 3) / 4
	cols = (n + rows - 1) / rows
	return rows, cols
}

// layoutPanels places the metric panels and the legend on dc: the panels'
// data areas aligned and of one size (plot.Align), the legend in the tile
// after the last panel. The legend takes part in the alignment as a plot
// of its own: left out, Align gives its empty tile's width to the panels,
// and the last panel's right side spills under the legend.
func layoutPanels(panels []*plot.Plot, legend *plot.Plot, dc draw.Canvas) ([]draw.Canvas, draw.Canvas) {
	rows, cols := panelGrid(len(panels))
	grid := make([][]*plot.Plot, rows)
	for r := range grid {
		grid[r] = make([]*plot.Plot, cols)
	}
	for i, p := range panels {
		grid[i/cols][i%cols] = p
	}
	li := len(panels)
	grid[li/cols][li%cols] = legend
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	aligned := plot.Align(grid, tiles, dc)
	out := make([]draw.Canvas, len(panels))
	for i := range panels {
		out[i] = aligned[i/cols][i%cols]
	}
	return out, aligned[li/cols][li%cols]
}
