package experiment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/diffinv/diffinv/internal/atomicfile"
	"github.com/diffinv/diffinv/internal/dirlock"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/internal/progress"
)

// ImageMetrics holds one image's per-image metrics.
type ImageMetrics struct {
	// Index is the image's index in the dataset split (Dataset.Offset + i).
	Index int
	// Values maps a per-image metric name (psnr, ssim, consistency,
	// seconds) to its value.
	Values map[string]float64
}

// GridImages are a cell's images for the task grids, each N×C×H×W float32
// in [-1, 1] with C = 1 or 3; only the first Cell.GridImages are kept, so a
// runner may pass whole batches.
type GridImages struct {
	// Truth are the ground-truth images.
	Truth *tensor.Dense
	// Y are the measurements shown as images; nil (or not N×C×H×W) when y
	// has no image form. Its H×W may differ from Truth's (it is enlarged to
	// Truth's width in the grid).
	Y *tensor.Dense
	// Recon are the method's reconstructions.
	Recon *tensor.Dense
}

// CellResult is what a CellRunner returns for one cell.
type CellResult struct {
	// Images holds one row per image of the cell's dataset range, with every
	// per-image metric of Cell.Metrics. "seconds" may be left out: Run then
	// fills it with the cell's wall time divided by the image count.
	Images []ImageMetrics
	// CellMetrics holds the per-cell metrics of Cell.Metrics (fid, kid).
	CellMetrics map[string]float64
	// Grid is optional (nil: the cell has no images in the task grids).
	Grid *GridImages
}

// CellRunner runs one cell: it solves the cell's task with its method on
// its images and computes its metrics. progress, never nil, may be called
// with the work done so far (steps or images, the runner's choice).
type CellRunner interface {
	RunCell(ctx context.Context, cell Cell, progress func(done, total int)) (*CellResult, error)
}

// ErrDiverged marks a cell whose method diverged (its iteration left the
// finite numbers: a step size too large for the task). A CellRunner wraps
// such an error with Diverged; the cell's failure record says so, a
// table's run goes on with its other cells (table.md marks the entry), and
// a tuning search (Tune) records the trial as failed and goes on to its
// next point.
var ErrDiverged = errors.New("the method diverged")

// Diverged wraps err, a method's divergence, so that errors.Is(…,
// ErrDiverged) holds; its message is err's.
func Diverged(err error) error { return divergedError{err} }

type divergedError struct{ err error }

func (d divergedError) Error() string   { return d.err.Error() }
func (d divergedError) Unwrap() []error { return []error{d.err, ErrDiverged} }

// CellRunnerFunc adapts a function to CellRunner.
type CellRunnerFunc func(ctx context.Context, cell Cell, progress func(done, total int)) (*CellResult, error)

// RunCell calls f.
func (f CellRunnerFunc) RunCell(ctx context.Context, cell Cell, progress func(done, total int)) (*CellResult, error) {
	return f(ctx, cell, progress)
}

// CellValidator is implemented by CellRunners that can check a cell's
// settings (task preset and overrides, solver options) without running it;
// Run checks every cell before running any, so bad input fails fast.
type CellValidator interface {
	ValidateCell(cell Cell) error
}

// RunOptions configures Run.
type RunOptions struct {
	// Out is the output folder; empty means the experiment's Output.
	Out string
	// Resume skips cells whose result file exists and is valid. Without
	// Resume (or Overwrite), existing results of this experiment's cells
	// are an error.
	Resume bool
	// Overwrite recomputes every cell, replacing existing results.
	Overwrite bool
	// Log receives one summary line per finished cell and run messages
	// (nil: standard error).
	Log io.Writer
	// Progress receives the progress bar over cells (nil: standard error).
	Progress io.Writer
	// BarOptions are extra options for the progress bar (tests pass a
	// clock or force non-terminal output).
	BarOptions []progress.Option
	// Shard, when active, runs only this shard's cells (see Shard and
	// Assign); several shards share the results folder, coordinating by
	// per-cell claims instead of the folder lock.
	Shard Shard
	// NoReports leaves the reports out (Tune, which writes its own).
	NoReports bool
	// stopDiverged stops the run on a diverged cell as on any failure
	// (Tune: the trial is over).
	stopDiverged bool
}

// CellsDir is the folder, inside the output folder, of the per-cell results.
const CellsDir = "cells"

// BatchesDir is the folder, inside a solve cell's own folder (Cell.Dir),
// where its runner keeps the batches it has solved until the cell's result
// is stored (experiment/runner: an interrupted cell resumes after its last
// finished batch). Run removes the cell's folder once the result is stored.
const BatchesDir = "batches"

// StoredBatches returns how many solved batches an unfinished cell id of
// the output folder out holds (0 when none or the cell is done).
func StoredBatches(out, id string) int {
	files, _ := filepath.Glob(filepath.Join(out, CellsDir, id, BatchesDir, "batch-*.safetensors"))
	return len(files)
}

// Run expands exp into cells, runs those without a valid result (all of
// them unless opts.Resume), stores each result as it finishes
// (cells/ID.json plus grid PNGs, written atomically, the JSON last) and
// finally regenerates the reports from all cell results (WriteReports). A
// run killed at any point loses at most the cell in flight.
//
// A cell whose method diverges (ErrDiverged) does not stop the run: its
// failure record says so, the other cells run, the table marks its entry
// "diverged", and a resumed run keeps it (delete its .failed record to try
// it again). Any other failure stops the run.
func Run(ctx context.Context, exp *Experiment, runner CellRunner, opts RunOptions) error {
	if runner == nil {
		return fmt.Errorf("experiment: nil CellRunner")
	}
	cells, err := exp.Cells()
	if err != nil {
		return err
	}
	out := opts.Out
	if out == "" {
		out = exp.Output
	}
	if out == "" {
		return fmt.Errorf("experiment %q: no output folder (set output in the file or pass --out)", exp.Name)
	}
	if opts.Resume && opts.Overwrite {
		return fmt.Errorf("experiment %q: resume and overwrite both set, want at most one", exp.Name)
	}
	if v, ok := runner.(CellValidator); ok {
		var errs []error
		for _, c := range cells {
			if err := v.ValidateCell(c); err != nil {
				errs = append(errs, fmt.Errorf("cell %s (task %s, method %s%s): %w", c.ID, c.Task.Key(), c.Method.Key(), sweepSuffix(c), err))
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("experiment %q: %w", exp.Name, errors.Join(errs...))
		}
	}
	logw := opts.Log
	if logw == nil {
		logw = os.Stderr
	}
	cdir := filepath.Join(out, CellsDir)
	if err := os.MkdirAll(cdir, 0o755); err != nil {
		return fmt.Errorf("experiment %q: %w", exp.Name, err)
	}
	var mine map[string]int
	if sh := opts.Shard; sh.Active() {
		if sh.Index < 0 || sh.Index >= sh.Count {
			return fmt.Errorf("experiment %q: shard %s, want 0 ≤ K < N", exp.Name, sh)
		}
		// Shards share the folder (possibly over a network file system
		// where locks fail): each claims its cells one by one instead, and
		// leaves temporary files alone (another shard's may be in flight).
		var cost func(Cell) float64
		if cc, ok := runner.(CellCoster); ok {
			cost = cc.CellCost
		}
		mine = Assign(cells, sh.Count, cost)
	} else {
		// One run per results folder at a time; once it is ours, the
		// temporary files of killed writes go.
		lock, err := dirlock.Acquire(out, "experiment run")
		if err != nil {
			return fmt.Errorf("experiment %q: %w", exp.Name, err)
		}
		defer lock.Release()
		if _, err := atomicfile.CleanStale(out); err != nil {
			return fmt.Errorf("experiment %q: %w", exp.Name, err)
		}
	}

	// Unique cells in expansion order; decide which need running.
	var todo []Cell
	seen := map[string]bool{}
	done, existing, divergedBefore := 0, 0, 0
	others := 0
	for _, c := range cells {
		if seen[c.ID] {
			continue
		}
		seen[c.ID] = true
		if mine != nil && mine[c.ID] != opts.Shard.Index {
			others++
			continue
		}
		if _, err := os.Stat(resultPath(cdir, c.ID)); err != nil && opts.Resume && !opts.stopDiverged {
			if rec, ok := loadFailure(cdir, c.ID); ok && rec.Diverged {
				divergedBefore++ // deterministic: the same settings diverge again
				continue
			}
		} else if err == nil {
			existing++
			if opts.Resume {
				if _, err := loadResult(cdir, c); err == nil {
					done++
					continue
				} else {
					fmt.Fprintf(logw, "cell %s: stored result unusable (%v), recomputing\n", c.ID, err)
				}
			}
		}
		todo = append(todo, c)
	}
	if opts.Resume && len(todo) > 0 {
		legacy := 0
		for _, c := range todo {
			if _, err := os.Stat(resultPath(cdir, legacyID(c))); err == nil {
				legacy++
			}
		}
		if legacy > 0 {
			fmt.Fprintf(logw, "experiment %s: %d of the cells to run have results stored under the old cell identity (version 2, which left out the task presets); if the presets have not changed since, adopt them with `diffinv experiment migrate` instead of recomputing\n", exp.Name, legacy)
		}
	}
	if existing > 0 && !opts.Resume && !opts.Overwrite {
		return fmt.Errorf("experiment %q: %s already holds results for %d of its cells; pass --resume to continue or choose another output folder", exp.Name, out, existing)
	}
	if mine != nil {
		fmt.Fprintf(logw, "experiment %s, shard %s: %d of its %d unique cells are other shards'; %d done, %d to run, output %s\n", exp.Name, opts.Shard, others, len(seen), done, len(todo), out)
	} else {
		fmt.Fprintf(logw, "experiment %s: %d cells (%d unique), %d done, %d to run, output %s\n", exp.Name, len(cells), len(seen), done, len(todo), out)
	}
	if divergedBefore > 0 {
		fmt.Fprintf(logw, "experiment %s: %d cells diverged in an earlier run and are kept as diverged (delete a cell's cells/ID.failed to run it again)\n", exp.Name, divergedBefore)
	}
	var diverged []string // this run's

	if len(todo) > 0 {
		// The bar counts the runner's cost estimate (network calls) where it
		// has one, so that its rate and ETA hold across cells as unequal as
		// a 20-step DDRM and a 1000-step DPS; else cells.
		weight, unit := cellWeights(todo, runner)
		before := make([]int, len(todo)+1) // before[i]: the weight of the cells before todo[i]
		for i, w := range weight {
			before[i+1] = before[i] + w
		}
		bar := progress.New(opts.Progress, exp.Name, before[len(todo)], append([]progress.Option{progress.WithUnit(unit)}, opts.BarOptions...)...)
		for i, c := range todo {
			if err := ctx.Err(); err != nil {
				bar.Finish()
				return fmt.Errorf("experiment %q: stopped before cell %s: %w", exp.Name, c.ID, err)
			}
			bar.Status("cell %d/%d %s", i+1, len(todo), c.ID)
			bar.Set(before[i])
			// A cell resumed from stored batches reports them with its
			// first step: that first count is skipped work (the bar's rate
			// and ETA leave it out), at the cost of one step on a fresh cell.
			first := true
			prog := func(d, t int) {
				bar.Status("cell %d/%d %s %d/%d", i+1, len(todo), c.ID, d, t)
				if t > 0 {
					at := before[i] + int(int64(weight[i])*int64(min(d, t))/int64(t))
					if first && d < t {
						bar.Skip(at)
					} else {
						bar.Set(at)
					}
					first = false
				}
			}
			if c.Trained != nil {
				// It solves with its training cell's model, which must be
				// there (run before it, or by another process).
				if _, err := loadResult(cdir, *c.Trained); err != nil {
					if mine == nil {
						bar.Finish()
						return fmt.Errorf("experiment %q: cell %s (%s): its training cell %s has no result: %w", exp.Name, c.ID, c.Label(), c.Trained.ID, err)
					}
					fmt.Fprintf(logw, "%scell %s: its training cell %s is not done yet (another process holds it): skipped\n", clearLine(logw), c.ID, c.Trained.ID)
					bar.Skip(before[i+1])
					continue
				}
				c.Checkpoint = filepath.Join(cdir, c.Trained.ID, TrainModel)
			}
			var cl *claim
			if mine != nil {
				var err error
				if cl, err = takeClaim(cdir, c.ID); errors.Is(err, errClaimed) {
					fmt.Fprintf(logw, "%s%v: skipped\n", clearLine(logw), err)
					bar.Skip(before[i+1])
					continue
				} else if err != nil {
					bar.Finish()
					return fmt.Errorf("experiment %q: %w", exp.Name, err)
				}
				// Another process may have finished it before the claim.
				if _, err := loadResult(cdir, c); err == nil && !opts.Overwrite {
					cl.release()
					bar.Skip(before[i+1])
					continue
				}
			}
			// A training cell trains in its own folder, and a solve cell
			// keeps its finished batches there (runner.BatchDir), which a
			// resumed or re-sharded run continues from.
			c.Dir = filepath.Join(cdir, c.ID)
			start := time.Now()
			use := startUsage()
			res, err := runner.RunCell(ctx, c, prog)
			wall := time.Since(start).Seconds()
			usage := use.end(wall, cellArithmetic(c))
			if err == nil {
				if err = checkResult(c, res, wall); err != nil {
					err = fmt.Errorf("runner result: %w", err)
				}
			}
			if err == nil {
				err = saveResult(cdir, c, res, wall, usage)
			}
			if err == nil {
				// A failure recorded by an earlier run no longer holds,
				// and a solve cell's stored batches have served.
				if rmErr := os.Remove(failurePath(cdir, c.ID)); rmErr != nil && !os.IsNotExist(rmErr) {
					err = rmErr
				} else if c.Train == nil {
					err = os.RemoveAll(c.Dir)
				}
			} else if ctx.Err() == nil {
				// Recorded for `experiment status` (an interrupted cell is
				// not a failed one); the run stops on it unless the method
				// diverged.
				if ferr := saveFailure(cdir, c.ID, err, wall); ferr != nil {
					err = fmt.Errorf("%w (and recording the failure: %v)", err, ferr)
				}
			}
			if cl != nil {
				cl.release()
			}
			if err != nil && errors.Is(err, ErrDiverged) && ctx.Err() == nil && !opts.stopDiverged {
				fmt.Fprintf(logw, "%scell %s [%s] diverged; the run goes on and the table marks it: %v\n", clearLine(logw), c.ID, c.Label(), err)
				diverged = append(diverged, c.ID)
				bar.Status("")
				bar.Skip(before[i+1]) // the rest of the cell was never run
				continue
			}
			if err != nil {
				bar.Finish()
				return fmt.Errorf("experiment %q: cell %s (%s): %w", exp.Name, c.ID, c.Label(), err)
			}
			fmt.Fprintf(logw, "%s%s\n", clearLine(logw), summary(c, res, wall))
			bar.Status("")
			bar.Set(before[i+1])
		}
		bar.Finish()
	}
	if len(diverged) > 0 {
		fmt.Fprintf(logw, "experiment %s: %d cells diverged: %s\n", exp.Name, len(diverged), strings.Join(diverged, ", "))
	}
	if mine != nil {
		// The reports need every cell: the shard that finishes last writes
		// them (a later `run --resume` or the report job does too).
		missing := 0
		for id := range seen {
			if _, err := os.Stat(resultPath(cdir, id)); err != nil {
				if rec, ok := loadFailure(cdir, id); !ok || !rec.Diverged {
					missing++
				}
			}
		}
		if missing > 0 {
			fmt.Fprintf(logw, "experiment %s, shard %s: done; %d cells of other shards still to come, so no reports yet\n", exp.Name, opts.Shard, missing)
			return nil
		}
	}
	if opts.NoReports {
		return nil
	}
	if err := WriteReports(exp, out); err != nil {
		return err
	}
	fmt.Fprintf(logw, "experiment %s: reports in %s\n", exp.Name, out)
	return nil
}

func sweepSuffix(c Cell) string {
	if len(c.Sweep) == 0 {
		return ""
	}
	return ", " + c.SweepLabel()
}

// checkResult checks a runner's result against the cell and fills
// "seconds" when the runner left it out.
func checkResult(c Cell, res *CellResult, wall float64) error {
	if res == nil {
		return fmt.Errorf("nil result")
	}
	if len(res.Images) != c.Dataset.N {
		return fmt.Errorf("%d image rows, want %d (dataset.n)", len(res.Images), c.Dataset.N)
	}
	seen := map[int]bool{}
	for i := range res.Images {
		r := &res.Images[i]
		if seen[r.Index] {
			return fmt.Errorf("image index %d appears twice", r.Index)
		}
		seen[r.Index] = true
		for _, name := range c.Metrics {
			m, _ := LookupMetric(name)
			if m.PerCell {
				continue
			}
			if _, ok := r.Values[name]; !ok {
				if name == "seconds" {
					if r.Values == nil {
						r.Values = map[string]float64{}
					}
					r.Values[name] = wall / float64(len(res.Images))
					continue
				}
				return fmt.Errorf("image %d lacks metric %q", r.Index, name)
			}
		}
	}
	for _, name := range c.Metrics {
		m, _ := LookupMetric(name)
		if !m.PerCell {
			continue
		}
		if _, ok := res.CellMetrics[name]; !ok {
			return fmt.Errorf("lacks per-cell metric %q", name)
		}
	}
	return nil
}

// summary is the line logged per finished cell.
func summary(c Cell, res *CellResult, wall float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cell %s [%s]", c.ID, c.Label())
	for _, name := range c.Metrics {
		m, _ := LookupMetric(name)
		var v float64
		if m.PerCell {
			v = res.CellMetrics[name]
		} else {
			s := 0.0
			for _, r := range res.Images {
				s += r.Values[name]
			}
			v = s / float64(len(res.Images))
		}
		fmt.Fprintf(&b, " %s "+m.Format, name, v)
	}
	fmt.Fprintf(&b, " (%.1f s)", wall)
	return b.String()
}

func clearLine(w io.Writer) string {
	f, ok := w.(*os.File)
	if !ok {
		return ""
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return ""
	}
	return "\r\033[K"
}

// mean of xs (NaN for none).
func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// std is the sample standard deviation (n − 1 in the denominator; 0 for a
// single value).
func std(xs []float64) float64 {
	if len(xs) < 2 {
		return 0
	}
	m := mean(xs)
	s := 0.0
	for _, x := range xs {
		s += (x - m) * (x - m)
	}
	return math.Sqrt(s / float64(len(xs)-1))
}

// cellWeights returns each cell's weight on the run's progress bar and the
// bar's unit: the runner's CellCost rounded (at least 1) and "call" when
// the runner estimates costs, else 1 and "cell".
func cellWeights(cells []Cell, runner CellRunner) ([]int, string) {
	w := make([]int, len(cells))
	cc, ok := runner.(CellCoster)
	for i, c := range cells {
		w[i] = 1
		if ok {
			w[i] = max(1, int(math.Round(cc.CellCost(c))))
		}
	}
	if ok {
		return w, "call"
	}
	return w, "cell"
}
