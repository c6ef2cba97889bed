package experiment

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"sort"
	"strings"

	"github.com/diffinv/diffinv/internal/userfile"
)

// SweepValue is one swept key's value in a cell.
type SweepValue struct {
	Key   string
	Value any
}

// Cell is one unit of work: one task, one method with its options, one
// point of the sweep, one seed, over the experiment's dataset images.
type Cell struct {
	// ID identifies the cell's settings: the task and solver names, the seed
	// and a hash of everything that determines its result (identity
	// version 3): the checkpoint's content, dataset, task and method names
	// and merged sets, seed, precision, and Resolved, the settings the
	// cell's task preset and options resolve to (operator parameters,
	// noise, solver options with the preset's solver_defaults). Labels, the
	// metric list and the cell's position do not enter it, so a finished
	// cell is recognised after the file gains tasks, methods or seeds; nor
	// does the checkpoint's path, so moving the file keeps its results,
	// while retraining it in place makes every cell new; nor do the preset
	// file's bytes, so a comment or key order changes nothing, while a
	// changed operator parameter, noise level or solver default (or --tasks
	// pointing at another folder with other presets) makes the cells new.
	// (Where the checkpoint file does not exist, e.g. a runner that does not
	// read one, its path stands in for the content.)
	ID string
	// Index is the cell's position in the expansion.
	Index int
	// Checkpoint and Dataset are the experiment's.
	Checkpoint string
	// CheckpointSHA256 is the hex SHA-256 of the checkpoint file's bytes,
	// empty when the file does not exist.
	CheckpointSHA256 string
	Dataset          Dataset
	// Task and Method carry their file entries with Set merged with this
	// cell's sweep values (sweep wins). Set is never nil.
	Task   Task
	Method Method
	// Sweep lists this cell's value of every sweep axis, in SweepKeys order.
	Sweep []SweepValue
	// Precision is the network's arithmetic the cell runs in (fp32 or
	// bf16; "" is fp32). bf16 enters the identity; fp32 does not, so cells
	// computed before the setting existed keep their IDs.
	Precision string
	// Engine is the engine the network runs on; "" and "native" do not
	// enter the identity (cells computed before the setting keep their
	// IDs), any other engine does.
	Engine string
	// Seed seeds every random draw of the cell.
	Seed int64
	// Resolved lists the settings the cell resolves to, as sorted
	// "key: value" lines (see Experiment.Resolver); nil without a
	// Resolver. Part of the identity.
	Resolved []string
	// Metrics are the metric names to compute.
	Metrics []string
	// GridImages is how many leading images the runner should return in
	// CellResult.Grid (0: none).
	GridImages int
	// Train, for a training cell (an experiment with a train section), is
	// what it trains and how it evaluates the model; nil for a solve cell.
	// A training cell has no dataset images (Dataset is zero) and its Task
	// and Method are named "train".
	Train *TrainCell
	// Trained, for a solve cell of a training experiment (tasks and
	// methods beside the train section), is the training cell whose
	// exported model it solves with: its ID stands in the identity for the
	// checkpoint's content, and Run sets Checkpoint to that cell's
	// OUT/cells/ID/model.safetensors and runs it after the training cell.
	Trained *Cell
	// Dir is the cell's own folder, OUT/cells/ID, where a training cell
	// trains (checkpoints, log.jsonl, model.safetensors) and a solve cell
	// keeps the batches it has solved until its result is stored (so an
	// interrupted cell resumes after its last finished batch); set by Run,
	// not part of the identity.
	Dir string
}

// Label names the cell in logs: task / method, or "train" for a training
// cell; then its sweep values and seed.
func (c Cell) Label() string {
	var b strings.Builder
	if c.Train != nil {
		b.WriteString("train")
	} else {
		fmt.Fprintf(&b, "%s / %s", c.Task.Key(), c.Method.Key())
	}
	if len(c.Sweep) > 0 {
		fmt.Fprintf(&b, " / %s", c.SweepLabel())
	}
	fmt.Fprintf(&b, " / seed %d", c.Seed)
	return b.String()
}

// SweepLabel renders the cell's sweep values as "k=v, k=v" (empty without
// a sweep).
func (c Cell) SweepLabel() string {
	parts := make([]string, len(c.Sweep))
	for i, s := range c.Sweep {
		parts[i] = shortKey(s.Key) + "=" + display(s.Value)
	}
	return strings.Join(parts, ", ")
}

// shortKey drops the solver./task. prefix of a sweep key.
func shortKey(k string) string {
	_, rest, ok := strings.Cut(k, ".")
	if !ok {
		return k
	}
	return rest
}

// Cells validates the experiment and expands it into cells: tasks (outer)
// × methods × sweep points (cartesian over SweepKeys, last key fastest) ×
// seeds (inner).
func (e *Experiment) Cells() ([]Cell, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	points := e.sweepPoints(e.SweepKeys())
	if e.Train != nil {
		return e.trainCells()
	}
	digest, err := FileSHA256(e.Checkpoint)
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("experiment %q: checkpoint: %w", e.Name, err)
	}
	return e.solveCells(points, nil, digest, nil)
}

// sweepPoints expands the sweep axes keys (in order) into their cartesian
// product, last key fastest.
func (e *Experiment) sweepPoints(keys []string) [][]SweepValue {
	points := [][]SweepValue{nil}
	for _, k := range keys {
		var next [][]SweepValue
		for _, p := range points {
			for _, v := range e.Sweep[k] {
				q := append(append([]SweepValue(nil), p...), SweepValue{Key: k, Value: v})
				next = append(next, q)
			}
		}
		points = next
	}
	return points
}

// solveCells expands tasks × methods × points × seeds (appending to
// cells); with trained, the one training cell's seed instead of the seeds,
// and that cell's sweep values joined to each point's (in SweepKeys order).
func (e *Experiment) solveCells(points [][]SweepValue, trained *Cell, digest string, cells []Cell) ([]Cell, error) {
	seeds := e.Seeds
	if trained != nil {
		seeds = []int64{trained.Seed}
	}
	for _, t := range e.Tasks {
		for _, m := range e.Methods {
			if e.excluded(t, m) {
				continue
			}
			for _, p := range points {
				if trained != nil {
					p = mergeSweep(trained.Sweep, p)
				}
				for _, seed := range seeds {
					c := Cell{
						Index:            len(cells),
						Checkpoint:       e.Checkpoint,
						CheckpointSHA256: digest,
						Dataset:          e.Dataset,
						Task:             Task{Name: t.Name, Label: t.Label, Set: cloneSet(t.Set)},
						Method:           Method{Name: m.Name, Label: m.Label, Set: cloneSet(m.Set)},
						Sweep:            p,
						Seed:             seed,
						Precision:        e.RunPrecision,
						Engine:           e.RunEngine,
						Metrics:          append([]string(nil), e.Metrics...),
						GridImages:       min(e.GridImages(), e.Dataset.N),
						Trained:          trained,
					}
					if trained != nil {
						c.Checkpoint, c.Metrics = "", solveMetrics(e.Metrics)
					}
					// Tuned options (ApplyTuned) over the file's set,
					// under the sweep values.
					for k, v := range e.Tuned[t.Key()][m.Key()] {
						c.Method.Set[k] = v
					}
					for _, sv := range p {
						prefix, key, _ := strings.Cut(sv.Key, ".")
						if prefix == "task" {
							c.Task.Set[key] = sv.Value
						} else if prefix == "solver" {
							c.Method.Set[key] = sv.Value
						}
					}
					if e.Resolver != nil {
						r, err := e.Resolver(c)
						if err != nil {
							return nil, fmt.Errorf("experiment %q: cell (task %s, method %s%s, seed %d): %w", e.Name, c.Task.Key(), c.Method.Key(), sweepSuffix(c), c.Seed, err)
						}
						c.Resolved = append([]string{}, r...)
						sort.Strings(c.Resolved)
					}
					c.ID = cellID(c)
					cells = append(cells, c)
				}
			}
		}
	}
	return cells, nil
}

// mergeSweep joins two cells' sweep values in sorted key order.
func mergeSweep(a, b []SweepValue) []SweepValue {
	r := append(append([]SweepValue(nil), a...), b...)
	sort.SliceStable(r, func(i, j int) bool { return r[i].Key < r[j].Key })
	return r
}

func cloneSet(m map[string]any) map[string]any {
	r := make(map[string]any, len(m))
	maps.Copy(r, m)
	return r
}

// MaxCheckpointSize caps the checkpoint file an experiment hashes (as
// checkpoint.MaxFileSize caps what Load reads).
const MaxCheckpointSize = 64 << 30

// FileSHA256 returns the hex SHA-256 of a regular file's bytes (at most
// MaxCheckpointSize): a device such as /dev/zero, a named pipe or a
// directory is an error naming it, where hashing it would never end. A
// missing file's error wraps fs.ErrNotExist.
func FileSHA256(path string) (string, error) {
	f, _, err := userfile.Open(path, "file", MaxCheckpointSize)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// cellID derives the cell's ID from its settings (see Cell.ID), identity
// version 3: version 2's content plus the resolved settings.
func cellID(c Cell) string {
	var b strings.Builder
	b.WriteString("diffinv-experiment-cell v3\n")
	writeIdentity(&b, c)
	b.WriteString("resolved:\n")
	for _, l := range c.Resolved {
		fmt.Fprintf(&b, "%q\n", l)
	}
	return idOf(c, b.String())
}

// legacyID is the cell's ID under identity version 2 (version 1 for a
// checkpoint that does not exist as a file), which left out the task
// preset's content: results stored under it are only adopted by Migrate.
func legacyID(c Cell) string {
	var b strings.Builder
	if c.CheckpointSHA256 != "" {
		b.WriteString("diffinv-experiment-cell v2\n")
	} else {
		b.WriteString("diffinv-experiment-cell v1\n")
	}
	writeIdentity(&b, c)
	return idOf(c, b.String())
}

// writeIdentity writes the settings versions 1 to 3 share.
func writeIdentity(b *strings.Builder, c Cell) {
	if c.Trained != nil {
		fmt.Fprintf(b, "trained=%s\n", c.Trained.ID)
	} else if c.CheckpointSHA256 != "" {
		fmt.Fprintf(b, "checkpoint_sha256=%s\n", c.CheckpointSHA256)
	} else {
		fmt.Fprintf(b, "checkpoint=%q\n", c.Checkpoint)
	}
	fmt.Fprintf(b, "dataset=%q n=%d offset=%d\n", c.Dataset.Name, c.Dataset.N, c.Dataset.Offset)
	writeSet := func(prefix, name string, set map[string]any) {
		fmt.Fprintf(b, "%s=%q\n", prefix, name)
		ks := make([]string, 0, len(set))
		for k := range set {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		for _, k := range ks {
			fmt.Fprintf(b, "%s.set.%q=%s\n", prefix, k, canonical(set[k]))
		}
	}
	writeSet("task", c.Task.Name, c.Task.Set)
	writeSet("method", c.Method.Name, c.Method.Set)
	fmt.Fprintf(b, "seed=%d\n", c.Seed)
	if c.Precision != "" && c.Precision != "fp32" {
		fmt.Fprintf(b, "precision=%s\n", c.Precision)
	}
	if c.Engine != "" && c.Engine != "native" {
		fmt.Fprintf(b, "engine=%s\n", c.Engine)
	}
}

// idOf names a cell by its task, method and seed plus a hash of identity.
func idOf(c Cell, identity string) string {
	h := sha256.Sum256([]byte(identity))
	return fmt.Sprintf("%s_%s_s%d_%s", slug(c.Task.Name), slug(c.Method.Name), c.Seed, hex.EncodeToString(h[:6]))
}

// slug keeps [A-Za-z0-9.+-] and maps anything else to '-'.
func slug(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '+', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	if b.Len() == 0 {
		return "x"
	}
	return b.String()
}
