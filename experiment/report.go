package experiment

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"image"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/internal/atomicfile"
)

// Report file names inside the output folder.
const (
	ResultsCSV = "results.csv"
	TableMD    = "table.md"
	GridsDir   = "grids"
	PlotsDir   = "plots"
)

// cellData is one expanded cell with its stored result.
type cellData struct {
	Cell
	res *stored
}

// value is the cell's value of metric m: the per-cell metric, or the mean
// of the per-image metric over the cell's images.
func (d cellData) value(m Metric) float64 {
	if m.PerCell {
		return float64(d.res.CellMetrics[m.Name])
	}
	xs := make([]float64, len(d.res.Images))
	for i, r := range d.res.Images {
		xs[i] = float64(r.Metrics[m.Name])
	}
	return mean(xs)
}

// loadAll loads the stored result of every cell of exp from out. A cell
// without a result whose failure record says its method diverged is not
// missing: it goes to wh, and so do the other cells of its table entry
// (its method, sweep point and task: the entry's seeds), which leave all,
// so that no entry averages over the seeds that happened not to diverge.
// With partial, a cell without a result is pending rather than an error,
// and its table entry is withheld likewise.
func loadAll(exp *Experiment, out string, partial bool) (all []cellData, wh withheld, err error) {
	cells, err := exp.Cells()
	if err != nil {
		return nil, nil, err
	}
	cdir := filepath.Join(out, CellsDir)
	var missing []string
	wh = withheld{}
	for _, c := range cells {
		s, err := loadResult(cdir, c)
		if err != nil {
			if rec, ok := loadFailure(cdir, c.ID); ok && rec.Diverged {
				wh.add(c, rec.Error)
				continue
			}
			if partial {
				wh.entry(c).pending++
				continue
			}
			missing = append(missing, fmt.Sprintf("%s (%v)", c.ID, err))
			continue
		}
		all = append(all, cellData{Cell: c, res: s})
	}
	if n := len(missing); n > 0 {
		more := ""
		if len(missing) > 3 {
			more = fmt.Sprintf(" and %d more", len(missing)-3)
			missing = missing[:3]
		}
		return nil, nil, fmt.Errorf("experiment %q: %d of %d cells have no usable result in %s: %s%s", exp.Name, n, len(cells), cdir, strings.Join(missing, "; "), more)
	}
	if len(wh) == 0 {
		return all, wh, nil
	}
	kept := all[:0]
	for _, d := range all {
		if e := wh.at(d.Cell); e != nil {
			e.ok++
			continue
		}
		kept = append(kept, d)
	}
	return kept, wh, nil
}

// withheldEntry is a table entry (method × sweep point, task) that the
// table does not average: one of its cells diverged, or (in a partial
// report) has not run yet. It counts its diverged, pending and finished
// cells and keeps the first diverged cell's error.
type withheldEntry struct {
	diverged, pending, ok int
	err, cell             string
}

// withheld are the table's withheld entries.
type withheld map[rowKey]map[string]*withheldEntry

// entry returns c's table entry, adding it.
func (m withheld) entry(c Cell) *withheldEntry {
	r := rowKey{c.Method.Key(), c.SweepLabel()}
	if m[r] == nil {
		m[r] = map[string]*withheldEntry{}
	}
	e := m[r][c.Task.Key()]
	if e == nil {
		e = &withheldEntry{}
		m[r][c.Task.Key()] = e
	}
	return e
}

// add records a diverged cell.
func (m withheld) add(c Cell, msg string) {
	e := m.entry(c)
	if e.diverged == 0 {
		e.err, e.cell = msg, c.ID
	}
	e.diverged++
}

// settled returns the number of cells of withheld entries that are not
// pending (done, or diverged).
func (m withheld) settled() (n int) {
	for _, byTask := range m {
		for _, e := range byTask {
			n += e.ok + e.diverged
		}
	}
	return n
}

// pending returns the number of pending cells and the columns (tasks) with
// a pending entry.
func (m withheld) pending() (n int, cols map[string]bool) {
	cols = map[string]bool{}
	for _, byTask := range m {
		for t, e := range byTask {
			if e.pending > 0 {
				n += e.pending
				cols[t] = true
			}
		}
	}
	return n, cols
}

// at returns c's table entry if it is withheld, or nil.
func (m withheld) at(c Cell) *withheldEntry {
	return m[rowKey{c.Method.Key(), c.SweepLabel()}][c.Task.Key()]
}

// rows adds to a table's rows (in method order) those with a withheld
// entry that are missing, each after its method's other rows.
func (m withheld) rows(exp *Experiment, rows []rowKey) []rowKey {
	if len(m) == 0 {
		return rows
	}
	have := map[rowKey]bool{}
	for _, r := range rows {
		have[r] = true
	}
	var out []rowKey
	for _, meth := range exp.Methods {
		for _, r := range rows {
			if r.method == meth.Key() {
				out = append(out, r)
			}
		}
		var extra []rowKey
		for r := range m {
			if r.method == meth.Key() && !have[r] {
				extra = append(extra, r)
			}
		}
		sort.Slice(extra, func(i, j int) bool { return extra[i].sweep < extra[j].sweep })
		out = append(out, extra...)
	}
	return out
}

// note is table.md's section on the diverged entries ("" without).
func (m withheld) note(exp *Experiment) string {
	diverged := false
	for _, byTask := range m {
		for _, e := range byTask {
			diverged = diverged || e.diverged > 0
		}
	}
	if !diverged {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n## Diverged\n\nThese entries have a cell whose method diverged (its iteration left the finite numbers: a step size too large for the task); the entry reports none of its seeds. Delete a cell's `cells/ID.failed` and run again with `--resume` to retry it.\n\n")
	for _, r := range m.rows(exp, nil) {
		for _, t := range exp.Tasks {
			e := m[r][t.Key()]
			if e == nil || e.diverged == 0 {
				continue
			}
			fmt.Fprintf(&b, "- %s, %s: %d of %d cells diverged (first: `%s`): %s\n", r.label(), t.Key(), e.diverged, e.diverged+e.pending+e.ok, e.cell, e.err)
		}
	}
	return b.String()
}

// label is the entry's text in table.md: diverged if any of its cells
// did, else pending.
func (e *withheldEntry) label() string {
	n := e.diverged + e.pending + e.ok
	switch {
	case e.diverged == n:
		return "diverged"
	case e.diverged > 0:
		return fmt.Sprintf("diverged (%d of %d seeds)", e.diverged, n)
	case e.pending == n:
		return "pending"
	default:
		return fmt.Sprintf("pending (%d of %d seeds)", e.pending, n)
	}
}

// WriteReports regenerates the reports in out from the stored results of
// every cell of exp (all must be present): results.csv, table.md, one grid
// PNG per task under grids/ and one plot PNG per sweep key under plots/.
// Every file is written atomically.
func WriteReports(exp *Experiment, out string) error {
	_, err := writeReports(exp, out, false)
	return err
}

// WritePartialReports writes the reports of a run still under way from the
// cells done so far, for a look at a long table midway: an entry with a
// cell still to run reads "pending", table.md says how many cells are, and
// no column with a pending entry names a winner (a pending row might lead).
// The run's end rewrites every file. It returns the number of pending
// cells. Training experiments have no partial report.
func WritePartialReports(exp *Experiment, out string) (pending int, err error) {
	if exp.Train != nil {
		return 0, fmt.Errorf("experiment %q: a training experiment's report needs every cell (no partial report)", exp.Name)
	}
	return writeReports(exp, out, true)
}

func writeReports(exp *Experiment, out string, partial bool) (pending int, err error) {
	all, wh, err := loadAll(exp, out, partial)
	if err != nil {
		return 0, err
	}
	pending, _ = wh.pending()
	if partial && len(all) == 0 {
		return pending, fmt.Errorf("experiment %q: no cell has a result in %s yet", exp.Name, filepath.Join(out, CellsDir))
	}
	ms := make([]Metric, len(exp.Metrics))
	for i, name := range exp.Metrics {
		ms[i], _ = LookupMetric(name)
	}
	if exp.Train != nil {
		return 0, writeTrainReports(exp, all, ms, out)
	}
	b, err := resultsCSV(exp, all, ms)
	if err != nil {
		return pending, fmt.Errorf("experiment %q: results.csv: %w", exp.Name, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(out, ResultsCSV), b); err != nil {
		return pending, err
	}
	grids, err := writeGrids(exp, all, out)
	if err != nil {
		return pending, fmt.Errorf("experiment %q: grids: %w", exp.Name, err)
	}
	plots, err := writePlots(exp, all, ms, out)
	if err != nil {
		return pending, fmt.Errorf("experiment %q: plots: %w", exp.Name, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(out, TableMD), []byte(tableMD(exp, all, wh, ms, grids, plots))); err != nil {
		return pending, err
	}
	return pending, nil
}

func formatFloat(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

// resultsCSV has one row per cell and image: cell, task, method, one
// column per sweep key, seed, image, then the metrics in the file's order
// (per-cell metrics repeated on each of the cell's rows).
func resultsCSV(exp *Experiment, all []cellData, ms []Metric) ([]byte, error) {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	head := []string{"cell", "task", "method"}
	head = append(head, exp.SweepKeys()...)
	head = append(head, "seed", "image")
	for _, m := range ms {
		head = append(head, m.Name)
	}
	if err := w.Write(head); err != nil {
		return nil, err
	}
	for _, d := range all {
		for _, r := range d.res.Images {
			row := []string{d.ID, d.Task.Key(), d.Method.Key()}
			for _, sv := range d.Sweep {
				row = append(row, display(sv.Value))
			}
			row = append(row, strconv.FormatInt(d.Seed, 10), strconv.Itoa(r.Index))
			for _, m := range ms {
				v := r.Metrics[m.Name]
				if m.PerCell {
					v = d.res.CellMetrics[m.Name]
				}
				row = append(row, formatFloat(float64(v)))
			}
			if err := w.Write(row); err != nil {
				return nil, err
			}
		}
	}
	w.Flush()
	return buf.Bytes(), w.Error()
}

// rowKey identifies a table row: a method at one sweep point.
type rowKey struct{ method, sweep string }

func (k rowKey) label() string {
	if k.sweep == "" {
		return k.method
	}
	return k.method + " (" + k.sweep + ")"
}

// seedStat is a mean ± sample standard deviation over seeds.
type seedStat struct {
	Mean, Std float64
	// N is the number of seeds.
	N int
}

// table groups cell values by row (method × sweep point) and column (task):
// values over seeds.
func table(exp *Experiment, all []cellData, m Metric) (rows []rowKey, cols []string, vals map[rowKey]map[string][]float64) {
	vals = map[rowKey]map[string][]float64{}
	seenCol := map[string]bool{}
	for _, t := range exp.Tasks {
		if !seenCol[t.Key()] {
			cols = append(cols, t.Key())
			seenCol[t.Key()] = true
		}
	}
	for _, d := range all {
		k := rowKey{d.Method.Key(), d.SweepLabel()}
		if vals[k] == nil {
			vals[k] = map[string][]float64{}
			rows = append(rows, k)
		}
		vals[k][d.Task.Key()] = append(vals[k][d.Task.Key()], d.value(m))
	}
	// Rows in method order, then sweep order (the expansion's order within
	// a method).
	var sorted []rowKey
	for _, meth := range exp.Methods {
		for _, r := range rows {
			if r.method == meth.Key() {
				sorted = append(sorted, r)
			}
		}
	}
	return sorted, cols, vals
}

// entry is one table entry: the mean of a metric and its standard error.
// For a per-image metric the images' values are first averaged over the
// seeds, and the mean and standard error are over the images (SE =
// sample std/√images); for a per-cell metric (FID, KID) they are over the
// seeds' cell values (no error with one seed: Err is NaN).
type entry struct {
	Mean, Err float64
	img       map[int]float64 // per-image values (seed-averaged), per-image metrics only
}

// entries returns the table entry of every row and column of metric m.
func entries(exp *Experiment, all []cellData, m Metric) (rows []rowKey, cols []string, es map[rowKey]map[string]entry) {
	rows, cols, vals := table(exp, all, m)
	es = map[rowKey]map[string]entry{}
	for _, r := range rows {
		es[r] = map[string]entry{}
		for c, xs := range vals[r] {
			if len(xs) == 0 {
				continue
			}
			e := entry{Mean: mean(xs), Err: math.NaN()}
			if m.PerCell {
				if len(xs) > 1 {
					e.Err = std(xs) / math.Sqrt(float64(len(xs)))
				}
			} else {
				e.img = perImage(all, r, c, m)
				ys := make([]float64, 0, len(e.img))
				for _, i := range slices.Sorted(maps.Keys(e.img)) {
					ys = append(ys, e.img[i])
				}
				e.Mean = mean(ys)
				if len(ys) > 1 {
					e.Err = std(ys) / math.Sqrt(float64(len(ys)))
				}
			}
			es[r][c] = e
		}
	}
	return rows, cols, es
}

// perImage averages metric m of each image over the seeds of row r, column c.
func perImage(all []cellData, r rowKey, c string, m Metric) map[int]float64 {
	sum, n := map[int]float64{}, map[int]int{}
	for _, d := range all {
		if (rowKey{d.Method.Key(), d.SweepLabel()}) != r || d.Task.Key() != c {
			continue
		}
		for _, im := range d.res.Images {
			sum[im.Index] += float64(im.Metrics[m.Name])
			n[im.Index]++
		}
	}
	for i := range sum {
		sum[i] /= float64(n[i])
	}
	return sum
}

// diffErr is the standard error of the difference between two entries:
// of the per-image differences where both have the same images (a paired
// comparison), else √(Err_a² + Err_b²) (NaN when either is unknown).
func diffErr(a, b entry) float64 {
	if a.img != nil && b.img != nil && len(a.img) == len(b.img) && len(a.img) > 1 {
		ds := make([]float64, 0, len(a.img))
		for _, i := range slices.Sorted(maps.Keys(a.img)) {
			v, ok := b.img[i]
			if !ok {
				ds = nil
				break
			}
			ds = append(ds, a.img[i]-v)
		}
		if ds != nil {
			return std(ds) / math.Sqrt(float64(len(ds)))
		}
	}
	return math.Sqrt(a.Err*a.Err + b.Err*b.Err)
}

// winners returns, per column, the row whose mean is best and ahead of
// every other row's by more than the standard error of their difference
// and by enough to show in the printed means (format, the metric's Format:
// a lead of 0.001 dB over 100 images can be many standard errors yet print
// as a tie, and a bold 25.04 beside a plain 25.04 reads as a mistake). No
// winner in a column where that fails or the error is unknown.
func winners(rows []rowKey, cols []string, es map[rowKey]map[string]entry, higher bool, format string) map[string]rowKey {
	win := map[string]rowKey{}
	for _, c := range cols {
		var best rowKey
		found := false
		for _, r := range rows {
			e, ok := es[r][c]
			if !ok || math.IsNaN(e.Mean) {
				continue
			}
			if !found || (higher && e.Mean > es[best][c].Mean) || (!higher && e.Mean < es[best][c].Mean) {
				best, found = r, true
			}
		}
		if !found {
			continue
		}
		ok := true
		for _, r := range rows {
			e, has := es[r][c]
			if r == best || !has || math.IsNaN(e.Mean) {
				continue
			}
			gap := math.Abs(es[best][c].Mean - e.Mean)
			if se := diffErr(es[best][c], e); !(gap > se) || fmt.Sprintf(format, es[best][c].Mean) == fmt.Sprintf(format, e.Mean) {
				ok = false
				break
			}
		}
		if ok {
			win[c] = best
		}
	}
	return win
}

// bestOfTable returns, per row and column, the entry of metric m where
// each image takes the seed (cell) with the best value of sel for that
// image (ties go to the earlier seed): the mean over images, its standard
// error, and the per-image values for paired comparisons.
func bestOfTable(exp *Experiment, all []cellData, sel, m Metric) (rows []rowKey, cols []string, es map[rowKey]map[string]entry) {
	rows, cols, _ = table(exp, all, m)
	type pick struct{ sel, val float64 }
	best := map[rowKey]map[string]map[int]pick{}
	for _, d := range all {
		k := rowKey{d.Method.Key(), d.SweepLabel()}
		if best[k] == nil {
			best[k] = map[string]map[int]pick{}
		}
		c := d.Task.Key()
		if best[k][c] == nil {
			best[k][c] = map[int]pick{}
		}
		for _, r := range d.res.Images {
			sv, v := float64(r.Metrics[sel.Name]), float64(r.Metrics[m.Name])
			old, ok := best[k][c][r.Index]
			if !ok || (sel.HigherBetter && sv > old.sel) || (!sel.HigherBetter && sv < old.sel) {
				best[k][c][r.Index] = pick{sv, v}
			}
		}
	}
	es = map[rowKey]map[string]entry{}
	for k, byCol := range best {
		es[k] = map[string]entry{}
		for c, byImg := range byCol {
			idx := slices.Sorted(maps.Keys(byImg))
			e := entry{Err: math.NaN(), img: map[int]float64{}}
			xs := make([]float64, len(idx))
			for j, i := range idx {
				xs[j] = byImg[i].val
				e.img[i] = xs[j]
			}
			e.Mean = mean(xs)
			if len(xs) > 1 {
				e.Err = std(xs) / math.Sqrt(float64(len(xs)))
			}
			es[k][c] = e
		}
	}
	return rows, cols, es
}

func stat(xs []float64) seedStat { return seedStat{Mean: mean(xs), Std: std(xs), N: len(xs)} }

// tableMD renders the markdown report: one table per metric, tasks as
// columns, methods (× sweep points) as rows, mean ± sample std over seeds,
// the best mean of each column in bold.
func tableMD(exp *Experiment, all []cellData, wh withheld, ms []Metric, grids map[string]gridInfo, plots []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", exp.Name)
	seeds := make([]string, len(exp.Seeds))
	for i, s := range exp.Seeds {
		seeds[i] = strconv.FormatInt(s, 10)
	}
	if exp.Checkpoint != "" {
		fmt.Fprintf(&b, "Checkpoint `%s`; ", exp.Checkpoint)
	}
	fmt.Fprintf(&b, "%d images of %s (indices %d–%d); seeds %s.\n",
		exp.Dataset.N, exp.Dataset.Name, exp.Dataset.Offset, exp.Dataset.Offset+exp.Dataset.N-1, strings.Join(seeds, ", "))
	b.WriteString("Entries are mean ± standard error. For per-image metrics each image's value is first averaged over the seeds")
	if len(exp.Seeds) > 1 {
		fmt.Fprintf(&b, " (%d)", len(exp.Seeds))
	}
	b.WriteString("; the mean and its standard error (sample std/√n) are over the images. FID and KID are computed once per cell over its images; their error is over the seeds (none with one seed). A column's best mean is bold only where it is ahead of every other row by more than the standard error of the difference (of the per-image differences, a paired comparison, where both rows have the same images) and the lead shows in the printed means.\n")
	pend, pendCols := wh.pending()
	if pend > 0 {
		fmt.Fprintf(&b, "\n**Partial report: %d of %d cells are still to run.** Their entries read \"pending\" (with how many of the entry's seeds are, if not all); no column with a pending entry names a winner; the run's end rewrites this file.\n\n", pend, pend+len(all)+wh.settled())
	}
	if tf := exp.TunedFile; tf != nil && len(exp.Tuned) > 0 {
		fmt.Fprintf(&b, "Options of the methods with a tune space were tuned per task on %d images of %s (indices %d–%d), not on these test images (see Tuned settings below).\n",
			tf.TunedOn.N, tf.TunedOn.Name, tf.TunedOn.Offset, tf.TunedOn.Offset+tf.TunedOn.N-1)
	}
	for _, m := range ms {
		rows, cols, es := entries(exp, all, m)
		rows = wh.rows(exp, rows)
		fmt.Fprintf(&b, "\n## %s\n\n", m.Title)
		writeTableHead(&b, cols)
		win := winners(rows, cols, es, m.HigherBetter, m.Format)
		perBatch := false
		for _, r := range rows {
			fmt.Fprintf(&b, "| %s |", mdCell(r.label()))
			for _, c := range cols {
				e, ok := es[r][c]
				if d := wh[r][c]; d != nil {
					fmt.Fprintf(&b, " %s |", d.label())
					continue
				}
				if !ok {
					b.WriteString(" – |")
					continue
				}
				txt := fmt.Sprintf(m.Format, e.Mean)
				switch {
				case m.Name == "seconds" && constant(e.img):
					perBatch = true // no error: see the note below
				case !math.IsNaN(e.Err):
					txt += " ± " + fmt.Sprintf(m.Format, e.Err)
				}
				if w, ok := win[c]; ok && w == r && len(rows) > 1 && !pendCols[c] {
					txt = "**" + txt + "**"
				}
				fmt.Fprintf(&b, " %s |", txt)
			}
			b.WriteString("\n")
		}
		if m.Name == "seconds" {
			if perBatch {
				b.WriteString("\nSeconds without an error were timed per cell or batch of images, each image getting its share: their spread over the images (zero) says nothing of the timing's, so none is given.\n")
			}
			b.WriteString(usageNote(all))
		}
	}
	if exp.BestOf != "" {
		sel, _ := LookupMetric(exp.BestOf)
		fmt.Fprintf(&b, "\n## Best of %d seeds per image (by %s)\n\nEach image takes the seed with the best %s; entries are the mean over images ± its standard error, bold as above (paired over the images).\n", len(exp.Seeds), sel.Title, sel.Title)
		for _, m := range ms {
			if m.PerCell || m.Name == "seconds" {
				continue // per-cell, or not a quality measure
			}
			rows, cols, es := bestOfTable(exp, all, sel, m)
			rows = wh.rows(exp, rows)
			fmt.Fprintf(&b, "\n### %s, best of %d\n\n", m.Title, len(exp.Seeds))
			writeTableHead(&b, cols)
			win := winners(rows, cols, es, m.HigherBetter, m.Format)
			for _, r := range rows {
				fmt.Fprintf(&b, "| %s |", mdCell(r.label()))
				for _, c := range cols {
					e, ok := es[r][c]
					if d := wh[r][c]; d != nil {
						fmt.Fprintf(&b, " %s |", d.label())
						continue
					}
					if !ok {
						b.WriteString(" – |")
						continue
					}
					txt := fmt.Sprintf(m.Format, e.Mean)
					if !math.IsNaN(e.Err) {
						txt += " ± " + fmt.Sprintf(m.Format, e.Err)
					}
					if w, ok := win[c]; ok && w == r && len(rows) > 1 && !pendCols[c] {
						txt = "**" + txt + "**"
					}
					fmt.Fprintf(&b, " %s |", txt)
				}
				b.WriteString("\n")
			}
		}
	}
	b.WriteString(wh.note(exp))
	b.WriteString(exp.tunedNote())
	if len(grids) > 0 {
		b.WriteString("\n## Grids\n\n")
		for _, t := range exp.Tasks {
			g, ok := grids[t.Key()]
			if !ok {
				continue
			}
			fmt.Fprintf(&b, "- %s: `%s`, rows: %s\n", t.Key(), g.file, strings.Join(g.rows, ", "))
		}
	}
	if len(plots) > 0 {
		b.WriteString("\n## Plots\n\n")
		for _, p := range plots {
			fmt.Fprintf(&b, "- `%s`\n", p)
		}
	}
	return b.String()
}

// constant reports whether the per-image values are all the same (within
// rounding: their mean's subtraction leaves the error a few ulps above zero).
func constant(img map[int]float64) bool {
	if len(img) < 2 {
		return false
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range img {
		lo, hi = min(lo, v), max(hi, v)
	}
	return hi-lo <= 1e-9*max(math.Abs(lo), math.Abs(hi))
}

// writeTableHead writes a markdown table's header: Method, then one
// right-aligned column per task.
func writeTableHead(b *strings.Builder, cols []string) {
	b.WriteString("| Method |")
	for _, c := range cols {
		fmt.Fprintf(b, " %s |", mdCell(c))
	}
	b.WriteString("\n|---|")
	for range cols {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
}

// mdCell escapes the characters that would end a markdown table cell.
func mdCell(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ").Replace(s)
}

type gridInfo struct {
	file string
	rows []string
}

// writeGrids writes grids/TASK.png per task: the truth row, the
// measurement row (when the cells have one), then one reconstruction row
// per method and sweep point, all from the first seed.
func writeGrids(exp *Experiment, all []cellData, out string) (map[string]gridInfo, error) {
	cdir := filepath.Join(out, CellsDir)
	scale := exp.GridScale()
	info := map[string]gridInfo{}
	for _, t := range exp.Tasks {
		var imgs []image.Image
		var rows []string
		first := true
		for _, d := range all {
			if d.Task.Key() != t.Key() || d.Seed != exp.Seeds[0] || d.res.Grid == nil {
				continue
			}
			g := d.res.Grid
			if first {
				first = false
				truth, err := gridRow(cdir, g.Truth, scale)
				if err != nil {
					return nil, err
				}
				imgs, rows = append(imgs, truth), append(rows, "truth")
				if g.Y != nil {
					ys := scale
					if g.Y.W < g.Truth.W {
						ys = scale * max(1, (g.Truth.W+g.Y.W/2)/g.Y.W)
					}
					y, err := gridRow(cdir, g.Y, ys)
					if err != nil {
						return nil, err
					}
					imgs, rows = append(imgs, y), append(rows, "y")
				}
			}
			r, err := gridRow(cdir, g.Recon, scale)
			if err != nil {
				return nil, err
			}
			imgs, rows = append(imgs, r), append(rows, rowKey{d.Method.Key(), d.SweepLabel()}.label())
		}
		if len(imgs) == 0 {
			continue
		}
		grid, err := data.StackRows(2, 128, imgs...)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Join(out, GridsDir), 0o755); err != nil {
			return nil, err
		}
		file := filepath.Join(GridsDir, slug(t.Key())+".png")
		if err := data.WritePNG(filepath.Join(out, file), grid); err != nil {
			return nil, err
		}
		info[t.Key()] = gridInfo{file: file, rows: rows}
	}
	return info, nil
}

func gridRow(cdir string, s *storedStrip, scale int) (image.Image, error) {
	t, err := loadStrip(cdir, s)
	if err != nil {
		return nil, err
	}
	return data.GridImage(t, data.GridOptions{PerRow: s.N, Pad: 2, Scale: scale, PadGray: 128})
}

// usageNote says under the seconds table how much of the machine the cells
// had (their stored Usage): the cores the process kept busy on average per
// cell, against the machine's, and the one-minute load average at the
// cells' ends. Timings taken beside other work are slower than alone.
func usageNote(all []cellData) string {
	var busy, load []float64
	cores, missing := 0, 0
	for _, d := range all {
		u := d.res.Usage
		if u == nil || d.res.WallSeconds <= 0 {
			missing++
			continue
		}
		busy = append(busy, u.CPUSeconds/d.res.WallSeconds)
		load = append(load, u.Load1)
		cores = max(cores, u.Cores)
	}
	if len(busy) == 0 {
		return "\nThe cells did not record how much of the machine they had (results stored before that was kept).\n"
	}
	sort.Float64s(busy)
	sort.Float64s(load)
	note := fmt.Sprintf("\nMachine use while timed: %d logical CPUs; the process kept %.2f–%.2f of them busy per cell (median %.2f); one-minute load average %.2f–%.2f at the cells' ends (above %d: other work shared the machine, and the seconds are longer than alone).",
		cores, busy[0], busy[len(busy)-1], busy[len(busy)/2], load[0], load[len(load)-1], cores)
	if missing > 0 {
		note += fmt.Sprintf(" %d of %d cells carry no record.", missing, len(all))
	}
	return note + machinesNote(all) + "\n"
}

// machinesNote says which machines timed the cells, from their stored
// Usage: each CPU model and network arithmetic with its number of cells,
// most first; cells stored before the machine was kept are counted apart.
// Seconds from different machines (or bf16 on bf16 units against bf16
// emulated) are not comparable, so the note says where they mix.
func machinesNote(all []cellData) string {
	count := map[string]int{}
	unknown := 0
	for _, d := range all {
		u := d.res.Usage
		if u == nil || u.CPU == "" {
			unknown++
			continue
		}
		k := u.CPU
		if u.Arithmetic != "" && u.Arithmetic != "none" {
			k += " (network: " + u.Arithmetic + ")"
		} else if u.Arithmetic == "none" {
			k += " (no network)"
		}
		count[k]++
	}
	if len(count) == 0 {
		return ""
	}
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if count[keys[i]] != count[keys[j]] {
			return count[keys[i]] > count[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d on %s", count[k], k)
	}
	note := " Machines: " + strings.Join(parts, "; ")
	if unknown > 0 {
		note += fmt.Sprintf("; %d stored before the machine was recorded", unknown)
	}
	return note + "."
}
