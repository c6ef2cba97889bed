package experiment

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/diffinv/diffinv/internal/atomicfile"
)

// LossPlot is the loss-curve plot of a training experiment, under PlotsDir.
const LossPlot = "loss.png"

// ClassShareKey is the CellMetrics key of a training cell's share of
// samples classified as class k (0..9), in %.
func ClassShareKey(k int) string { return fmt.Sprintf("class_%d", k) }

// writeTrainReports writes a training experiment's reports: results.csv
// (one row per cell: its sweep values, seed and metrics), table.md (one
// row per setting, the metrics as columns, mean ± std over seeds; the
// class shares), plots/loss.png (the loss curve of each setting, mean over
// seeds, from the cells' log.jsonl) and plots/KEY.png per sweep key (each
// metric against the key's value). The solve cells of the trained models,
// when the file has tasks, get the solve experiments' reports beside them:
// solve.csv, grids/TASK.png, plots/solve-KEY.png and their tables at the
// end of table.md (one row per method and setting).
func writeTrainReports(exp *Experiment, cells []cellData, ms []Metric, out string) error {
	var all, solved []cellData
	for _, d := range cells {
		if d.Train != nil {
			all = append(all, d)
		} else {
			solved = append(solved, d)
		}
	}
	var tms, sms []Metric
	for _, m := range ms {
		if m.Train {
			tms = append(tms, m)
		}
		if !m.NoSolve {
			sms = append(sms, m)
		}
	}
	solveMD := ""
	if len(solved) > 0 {
		b, err := resultsCSV(exp, solved, sms)
		if err != nil {
			return fmt.Errorf("experiment %q: %s: %w", exp.Name, SolveCSV, err)
		}
		if err := atomicfile.WriteFile(filepath.Join(out, SolveCSV), b); err != nil {
			return err
		}
		grids, err := writeGrids(exp, solved, out)
		if err != nil {
			return fmt.Errorf("experiment %q: grids: %w", exp.Name, err)
		}
		plots, err := writePlotsAs(exp, solved, sms, out, "solve-")
		if err != nil {
			return fmt.Errorf("experiment %q: plots: %w", exp.Name, err)
		}
		_, md, _ := strings.Cut(tableMD(exp, solved, nil, sms, grids, plots), "\n\n")
		solveMD = "\n# Solving with the trained models\n\nEach training cell's model (EMA) solves every task with every method; rows are a method at one setting, entries mean ± std over the training seeds (one solve per trained model, seeded with its training seed); per-cell results in " + SolveCSV + ".\n" + md
	}
	ms = tms
	b, err := trainCSV(exp, all, ms)
	if err != nil {
		return fmt.Errorf("experiment %q: results.csv: %w", exp.Name, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(out, ResultsCSV), b); err != nil {
		return err
	}
	plots, err := writePlotsAs(exp, all, ms, out, "")
	if err != nil {
		return fmt.Errorf("experiment %q: plots: %w", exp.Name, err)
	}
	lp, err := lossPlot(exp, all, out)
	if err != nil {
		return fmt.Errorf("experiment %q: loss plot: %w", exp.Name, err)
	}
	if lp != nil {
		file := filepath.Join(PlotsDir, LossPlot)
		if err := os.MkdirAll(filepath.Join(out, PlotsDir), 0o755); err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(out, file), lp); err != nil {
			return err
		}
		plots = append([]string{file}, plots...)
	}
	return atomicfile.WriteFile(filepath.Join(out, TableMD), []byte(trainTableMD(exp, all, ms, plots)+solveMD))
}

// SolveCSV is the per-cell, per-image results file of the solve cells of a
// training experiment.
const SolveCSV = "solve.csv"

func trainCSV(exp *Experiment, all []cellData, ms []Metric) ([]byte, error) {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	head := []string{"cell"}
	head = append(head, exp.SweepKeys()...)
	head = append(head, "seed")
	for _, m := range ms {
		head = append(head, m.Name)
	}
	if err := w.Write(head); err != nil {
		return nil, err
	}
	for _, d := range all {
		row := []string{d.ID}
		for _, sv := range d.Sweep {
			row = append(row, display(sv.Value))
		}
		row = append(row, strconv.FormatInt(d.Seed, 10))
		for _, m := range ms {
			row = append(row, formatFloat(d.value(m)))
		}
		if err := w.Write(row); err != nil {
			return nil, err
		}
	}
	w.Flush()
	return buf.Bytes(), w.Error()
}

// trainRows groups the cells by setting (sweep point), in expansion order.
func trainRows(all []cellData) (labels []string, cells map[string][]cellData) {
	cells = map[string][]cellData{}
	for _, d := range all {
		l := d.SweepLabel()
		if l == "" {
			l = "base"
		}
		if _, ok := cells[l]; !ok {
			labels = append(labels, l)
		}
		cells[l] = append(cells[l], d)
	}
	return labels, cells
}

func trainTableMD(exp *Experiment, all []cellData, ms []Metric, plots []string) string {
	var b strings.Builder
	t := exp.Train
	ev := t.Eval.Resolved()
	fmt.Fprintf(&b, "# %s\n\n", exp.Name)
	seeds := make([]string, len(exp.Seeds))
	for i, s := range exp.Seeds {
		seeds[i] = strconv.FormatInt(s, 10)
	}
	fmt.Fprintf(&b, "Training cells: `%s`", t.Config)
	if len(t.Set) > 0 {
		ks := make([]string, 0, len(t.Set))
		for k := range t.Set {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		parts := make([]string, len(ks))
		for i, k := range ks {
			parts[i] = k + "=" + display(t.Set[k])
		}
		fmt.Fprintf(&b, " with %s", strings.Join(parts, ", "))
	}
	fmt.Fprintf(&b, ", %d steps; each model (EMA) evaluated on %d %s samples at %d steps (seed %d) with the MNIST classifier against the test set; training seeds %s.\n",
		t.Steps, ev.N, ev.Sampler, ev.Steps, *ev.Seed, strings.Join(seeds, ", "))
	if len(exp.Seeds) > 1 {
		fmt.Fprintf(&b, "Entries are mean ± std over the %d training seeds (sample std, n − 1).", len(exp.Seeds))
	} else {
		b.WriteString("Entries are each cell's value.")
	}
	b.WriteString(" The best mean of each column is bold (unless all rows tie).\n\n")
	labels, cells := trainRows(all)
	b.WriteString("| Setting |")
	for _, m := range ms {
		fmt.Fprintf(&b, " %s |", mdCell(m.Title))
	}
	b.WriteString("\n|---|")
	for range ms {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	best := map[string]float64{}
	ties := map[string]bool{}
	for _, m := range ms {
		bv := math.NaN()
		var mus []float64
		for _, l := range labels {
			mu := mean(values(cells[l], m))
			mus = append(mus, mu)
			if !math.IsNaN(mu) && (math.IsNaN(bv) || (m.HigherBetter && mu > bv) || (!m.HigherBetter && mu < bv)) {
				bv = mu
			}
		}
		best[m.Name] = bv
		ties[m.Name] = true
		for _, mu := range mus {
			if mu != bv {
				ties[m.Name] = false
			}
		}
	}
	for _, l := range labels {
		fmt.Fprintf(&b, "| %s |", mdCell(l))
		for _, m := range ms {
			s := stat(values(cells[l], m))
			txt := fmt.Sprintf(m.Format, s.Mean)
			if s.N > 1 {
				txt += " ± " + fmt.Sprintf(m.Format, s.Std)
			}
			if len(labels) > 1 && s.Mean == best[m.Name] && !ties[m.Name] {
				txt = "**" + txt + "**"
			}
			fmt.Fprintf(&b, " %s |", txt)
		}
		b.WriteString("\n")
	}
	// The class histogram, where the cells recorded it.
	if _, ok := all[0].res.CellMetrics[ClassShareKey(0)]; ok {
		b.WriteString("\n## Class shares of the samples (%, mean over seeds)\n\n| Setting |")
		for k := range 10 {
			fmt.Fprintf(&b, " %d |", k)
		}
		b.WriteString("\n|---|" + strings.Repeat("---:|", 10) + "\n")
		for _, l := range labels {
			fmt.Fprintf(&b, "| %s |", mdCell(l))
			for k := range 10 {
				var xs []float64
				for _, d := range cells[l] {
					xs = append(xs, float64(d.res.CellMetrics[ClassShareKey(k)]))
				}
				fmt.Fprintf(&b, " %.1f |", mean(xs))
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("\nEach cell's training run (checkpoints, log.jsonl, loss.png) and exported model (model.safetensors) are in `cells/ID/`.\n")
	if len(plots) > 0 {
		b.WriteString("\n## Plots\n\n")
		for _, p := range plots {
			fmt.Fprintf(&b, "- `%s`\n", p)
		}
	}
	return b.String()
}

func values(ds []cellData, m Metric) []float64 {
	xs := make([]float64, len(ds))
	for i, d := range ds {
		xs[i] = d.value(m)
	}
	return xs
}

// ReadLossLog reads the "step" records of a training log (log.jsonl), in
// step order: the step and its MSE, L_simple (the loss itself where the
// record has no MSE), which a loss weighting does not rescale, so that
// the curves of different weightings compare; a step logged twice (a
// resumed run) keeps its last value.
func ReadLossLog(path string) (steps []int, losses []float64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	byStep := map[int]float64{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var r struct {
			Type string  `json:"type"`
			Step int     `json:"step"`
			Loss float64 `json:"loss"`
			MSE  float64 `json:"mse"`
		}
		if json.Unmarshal(sc.Bytes(), &r) != nil || r.Type != "step" {
			continue
		}
		byStep[r.Step] = r.Loss
		if r.MSE != 0 {
			byStep[r.Step] = r.MSE
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	for s := range byStep {
		steps = append(steps, s)
	}
	sort.Ints(steps)
	for _, s := range steps {
		losses = append(losses, byStep[s])
	}
	return steps, losses, nil
}

// FinalLoss is the "mse" metric of a training log: the mean of the last
// tenth (at least one) of its logged MSEs (ReadLossLog).
func FinalLoss(losses []float64) float64 {
	if len(losses) == 0 {
		return math.NaN()
	}
	k := max(1, len(losses)/10)
	return mean(losses[len(losses)-k:])
}

// lossPlot draws each setting's loss (MSE) curve (mean over its seeds at each
// logged step) from the cells' logs; nil when no cell has a log.
func lossPlot(exp *Experiment, all []cellData, out string) ([]byte, error) {
	labels, cells := trainRows(all)
	p := plot.New()
	p.Title.Text = exp.Name + ": training MSE (L_simple, mean over seeds)"
	p.X.Label.Text = "step"
	p.Y.Label.Text = "MSE (log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	drawn := false
	for i, l := range labels {
		sum := map[int][]float64{}
		for _, d := range cells[l] {
			steps, losses, err := ReadLossLog(filepath.Join(out, CellsDir, d.ID, TrainLog))
			if err != nil {
				continue
			}
			for j, s := range steps {
				sum[s] = append(sum[s], losses[j])
			}
		}
		if len(sum) == 0 {
			continue
		}
		steps := make([]int, 0, len(sum))
		for s := range sum {
			steps = append(steps, s)
		}
		sort.Ints(steps)
		xys := make(plotter.XYs, 0, len(steps))
		for _, s := range steps {
			if y := mean(sum[s]); y > 0 && !math.IsInf(y, 0) {
				xys = append(xys, plotter.XY{X: float64(s), Y: y})
			}
		}
		if len(xys) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, err
		}
		line.Color = plotutil.Color(i)
		line.Dashes = plotutil.Dashes(i)
		points.Color = plotutil.Color(i)
		points.Shape = plotutil.Shape(i)
		points.Radius = vg.Points(1.5)
		p.Add(line, points)
		p.Legend.Add(l, line, points)
		drawn = true
	}
	if !drawn {
		return nil, nil
	}
	w, err := p.WriterTo(7*vg.Inch, 4*vg.Inch, "png")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
