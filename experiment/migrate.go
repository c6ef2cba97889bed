package experiment

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/diffinv/diffinv/internal/atomicfile"
)

// Migrate is the one-off adoption of cell results stored under identity
// version 2, whose IDs left out the task presets' content (issue 19), by
// identity version 3. For every cell of exp without a result under its
// current ID, it looks for a valid result (store version 1) under the
// cell's version-2 ID, computed with the same checkpoint content, dataset,
// task and method sets, sweep values and seed, and renames it to the
// current ID (its grid PNGs too), recording the settings the cell now
// resolves to (Cell.Resolved). A version-2 ID cannot tell which preset
// content a result was computed with, so run Migrate only where the
// presets have not changed since: the committed experiments/results were
// adopted so (their presets are unchanged since they were computed), and
// later preset edits make cells new as they should. It returns how many
// results were adopted; one line per adoption goes to log (nil: none).
func Migrate(exp *Experiment, out string, log io.Writer) (int, error) {
	if log == nil {
		log = io.Discard
	}
	if exp.Resolver == nil {
		return 0, fmt.Errorf("experiment %q: migrate needs a Resolver (the settings to record)", exp.Name)
	}
	cells, err := exp.Cells()
	if err != nil {
		return 0, err
	}
	if out == "" {
		out = exp.Output
	}
	cdir := filepath.Join(out, CellsDir)
	adopted := 0
	seen := map[string]bool{}
	for _, c := range cells {
		if seen[c.ID] {
			continue
		}
		seen[c.ID] = true
		if _, err := os.Stat(resultPath(cdir, c.ID)); err == nil {
			continue
		}
		old := legacyID(c)
		ok, err := adopt(cdir, old, c)
		if err != nil {
			return adopted, fmt.Errorf("experiment %q: adopting %s as %s: %w", exp.Name, old, c.ID, err)
		}
		if ok {
			adopted++
			fmt.Fprintf(log, "adopted %s as %s\n", old, c.ID)
		}
	}
	return adopted, nil
}

// adopt moves the version-1 result stored as old to c's ID when it matches
// c; false when there is no such result.
func adopt(cdir, old string, c Cell) (bool, error) {
	b, err := os.ReadFile(resultPath(cdir, old))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var s stored
	if err := json.Unmarshal(b, &s); err != nil {
		return false, fmt.Errorf("%s: %w", resultPath(cdir, old), err)
	}
	if s.Version != 1 || s.ID != old {
		return false, nil
	}
	// The stored settings must be the cell's (the ID hashes them; this
	// guards against a hand-edited file).
	if s.CheckpointSHA256 != c.CheckpointSHA256 || s.Dataset != c.Dataset || s.Seed != c.Seed ||
		s.Task.Name != c.Task.Name || s.Method.Name != c.Method.Name {
		return false, fmt.Errorf("stored settings differ from the cell's")
	}
	if len(s.Images) != c.Dataset.N {
		return false, fmt.Errorf("%d images, want %d", len(s.Images), c.Dataset.N)
	}
	var oldFiles []string
	if g := s.Grid; g != nil {
		for _, st := range []*storedStrip{g.Truth, g.Y, g.Recon} {
			if st == nil {
				continue
			}
			if !strings.HasPrefix(st.File, old+".") || !strings.HasSuffix(st.File, ".png") || len(st.File) <= len(old)+len("..png") {
				return false, fmt.Errorf("grid file %q is not named after the cell", st.File)
			}
			role := st.File[len(old)+1 : len(st.File)-len(".png")]
			nf := c.ID + "." + role + ".png"
			pb, err := os.ReadFile(filepath.Join(cdir, st.File))
			if err != nil {
				return false, fmt.Errorf("grid file: %w", err)
			}
			if err := atomicfile.WriteFile(filepath.Join(cdir, nf), pb); err != nil {
				return false, err
			}
			oldFiles = append(oldFiles, st.File)
			st.File = nf
		}
	}
	s.Version, s.ID, s.Resolved = storeVersion, c.ID, c.Resolved
	nb, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return false, err
	}
	if err := atomicfile.WriteFile(resultPath(cdir, c.ID), append(nb, '\n')); err != nil {
		return false, err
	}
	// The new result is complete: drop the old one (JSON first, so an
	// interrupted migration never leaves a JSON without its PNGs).
	if err := os.Remove(resultPath(cdir, old)); err != nil {
		return false, err
	}
	for _, f := range oldFiles {
		if err := os.Remove(filepath.Join(cdir, f)); err != nil {
			return false, err
		}
	}
	return true, nil
}

// Status lists exp's unique cells (in expansion order) and which of them
// hold a valid result in out (the experiment's output folder when empty):
// what Run with Resume would skip.
func Status(exp *Experiment, out string) (cells []Cell, done map[string]bool, err error) {
	all, err := exp.Cells()
	if err != nil {
		return nil, nil, err
	}
	if out == "" {
		out = exp.Output
	}
	cdir := filepath.Join(out, CellsDir)
	done = map[string]bool{}
	seen := map[string]bool{}
	for _, c := range all {
		if seen[c.ID] {
			continue
		}
		seen[c.ID] = true
		cells = append(cells, c)
		if _, err := loadResult(cdir, c); err == nil {
			done[c.ID] = true
		}
	}
	return cells, done, nil
}

// WorkState is an experiment's work in a runner's cost units (network
// calls for diffinv's runner: runner.CellCost), done and left, with the
// measured seconds of the done cells that stored them: their ratio is the
// rate at which the left work can be expected to go.
type WorkState struct {
	Left, Done float64
	// Timed is the cost of the done cells with stored seconds, Seconds
	// their time in all.
	Timed, Seconds float64
}

// Rate is Timed / Seconds, cost units per second (0 when nothing is timed).
func (w WorkState) Rate() float64 {
	if w.Seconds <= 0 {
		return 0
	}
	return w.Timed / w.Seconds
}

// Workload adds up cost over the cells Status lists, split by done.
func Workload(exp *Experiment, out string, cells []Cell, done map[string]bool, cost func(Cell) float64) WorkState {
	if out == "" {
		out = exp.Output
	}
	cdir := filepath.Join(out, CellsDir)
	sec, _ := LookupMetric("seconds")
	var w WorkState
	for _, c := range cells {
		k := cost(c)
		if !done[c.ID] {
			w.Left += k
			continue
		}
		w.Done += k
		r, err := loadResult(cdir, c)
		if err != nil || len(r.Images) == 0 {
			continue
		}
		if _, ok := r.Images[0].Metrics[sec.Name]; !ok {
			continue
		}
		s := cellData{Cell: c, res: r}.value(sec) * float64(len(r.Images))
		if s > 0 {
			w.Timed += k
			w.Seconds += s
		}
	}
	return w
}
