// Package experiment reproduces paper tables and ablations from an experiment
// file: it expands tasks × methods × sweep values × seeds into cells, runs
// each cell through a CellRunner (the solvers: package experiment/runner),
// stores every finished cell atomically so that a killed run resumes where it
// stopped, and regenerates results.csv, table.md, per-task image grids and
// one plot per swept key from all cell results.
//
// An experiment file is YAML, decoded strictly (an unknown key is an error
// naming it):
//
//	name: dps-table-mnist            # required
//	checkpoint: models/mnist/model.safetensors
//	dataset: {name: mnist-test, n: 16, offset: 0}
//	tasks:                           # required, ≥ 1
//	  - name: sr4                    # task preset
//	    label: SR×4                  # optional; the column title
//	    set: {sigma: 0.05}           # optional overrides of the preset
//	methods:                         # required, ≥ 1
//	  - name: dps
//	    label: DPS
//	    set: {scale: 0.3}            # solver options
//	seeds: [0, 1, 2]                 # required, ≥ 1
//	sweep:                           # optional axes, cartesian product
//	  solver.scale: [0.1, 0.3, 1.0]  # solver.K sets K in every method's set
//	  task.sigma: [0, 0.05]          # task.K sets K in every task's set
//	metrics: [psnr, ssim, consistency, fid, kid, seconds]
//	output: experiments/results/dps-table-mnist
//	grid: {images: 4, scale: 2}      # optional; images 0 disables grids
//	exclude: [{task: Motion, method: DDRM}]  # optional (task, method) pairs
//	best_of: psnr                    # optional: also per image the best seed
//
// Tuning (issue 23): a method may carry a search space, and a tune section
// names validation images disjoint from dataset (Validate refuses the same
// split with overlapping indices, naming both):
//
//	methods:
//	  - {name: dps, tune: {scale: [0.1, 0.3, 1.0]}}         # a grid
//	  - {name: reddiff, tune: {lambda: {log: [0.01, 1]}}}    # a range: random trials
//	tune:
//	  dataset: {name: mnist-train, n: 16}  # the validation images (required)
//	  seeds: [0]                  # default: the first of seeds
//	  metric: psnr                # the default; lower-is-better metrics are minimised
//	  budget: 10m                 # per task × method (seconds or a duration); 0: none
//	  trials: 8                   # random points of a space with a range
//	  seed: 0                     # seeds them
//	  output: path/tuned.yaml     # default OUT/tuned.yaml
//
// Tune (`diffinv experiment tune`) searches each task × method on the
// validation images as ordinary cells under OUT/tune (tune.go says how)
// and writes the tuned file; ApplyTuned (`experiment run`, which refuses a
// file with a tune section until it exists) reads it into Tuned, whose
// options the table's cells carry in their method sets, and so in their
// IDs; table.md says on which images they were tuned.
//
// A training experiment (issue 21) has a train section instead of a
// checkpoint: each cell trains a model and evaluates it.
//
//	name: ablate-loss-weight-mnist
//	train:
//	  config: configs/mnist.yaml     # required: the base config file
//	  steps: 1500                    # required: train.steps of every cell
//	  set: {train.batch_size: 64}    # optional config keys (train.*, diffusion.*, model.*, data.*)
//	  eval: {n: 1000, sampler: ddim, steps: 50, seed: 1}  # the defaults
//	sweep:
//	  train.loss_weight: [uniform, min_snr, p2]  # config keys, cartesian product
//	seeds: [0, 1]                    # each cell's train.seed
//	metrics: [fid, kid, confident, class_min, class_max, mse]
//	precision: auto
//	output: experiments/results/ablate-loss-weight-mnist
//
// A training cell (Cell.Train) trains in its own folder OUT/cells/ID
// (checkpoints, log.jsonl, loss.png, the EMA model.safetensors), resuming
// from the latest checkpoint there, and the CellRunner scores its model's
// samples; its ID hashes the config keys it sets, the settings they and the
// base config resolve to (the Resolver's), the evaluation protocol, seed
// and precision. Its reports are one row per setting (sweep point) with the
// metrics as columns, plots/loss.png (the loss curves) and one plot per
// sweep key. With dataset, tasks and methods beside the train section,
// each training cell is followed by the solve cells of its model (Cell.
// Trained; solver./task. sweep axes apply to them, the training seed seeds
// them), reported in solve.csv, the grids, plots/solve-KEY.png and at the
// end of table.md. --set addresses train.config, train.steps,
// train.eval.{n,sampler,steps,seed} and any other config key into
// train.set; --sweep any config key.
//
// Each cell has an ID (Cell.ID, identity version 3) hashing everything
// that determines its result, including the settings its task preset
// resolves to (Experiment.Resolver); a result is reused by a resumed run
// only under the same ID. Results stored under identity version 2, which
// left the preset content out, are adopted once by Migrate.
//
// Command-line overrides (Experiment.Set, "--set k=v") address the same
// keys by dotted paths; see Set. Sweep axes can be added with AddSweep
// ("--sweep k=v1,v2").
package experiment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/diffinv/diffinv/internal/params"
	"github.com/diffinv/diffinv/internal/userfile"
)

// Experiment is a decoded experiment file. Build it with Load or Decode,
// adjust it with Set and AddSweep, check it with Validate, expand it with
// Cells.
type Experiment struct {
	// Name identifies the experiment in reports.
	Name string `yaml:"name"`
	// Checkpoint is the model checkpoint the solvers use (passed through to
	// the CellRunner; part of every cell's identity).
	Checkpoint string `yaml:"checkpoint"`
	// Dataset selects the test images.
	Dataset Dataset `yaml:"dataset"`
	// Tasks are the measurement problems (the table's columns).
	Tasks []Task `yaml:"tasks"`
	// Methods are the solvers (the table's rows).
	Methods []Method `yaml:"methods"`
	// Seeds are the random seeds; tables report mean ± std over them.
	Seeds []int64 `yaml:"seeds"`
	// Sweep maps a key (solver.K or task.K) to the values it takes; the
	// cells cover the cartesian product of all axes, in sorted key order.
	Sweep map[string][]any `yaml:"sweep"`
	// Metrics are the metric names to compute (see MetricNames).
	Metrics []string `yaml:"metrics"`
	// Output is the output folder (overridden by RunOptions.Out).
	Output string `yaml:"output"`
	// Grid configures the per-task image grids.
	Grid Grid `yaml:"grid"`
	// Exclude lists (task, method) pairs not to run, e.g. a method that
	// needs an SVD on a task whose operator has none; the table shows "–".
	Exclude []Exclusion `yaml:"exclude"`
	// Precision is what the network computes in: auto (the default: bf16
	// where the CPU and oneDNN allow it, else fp32), bf16 or fp32. A
	// --precision flag wins over it. The committed paper tables pin fp32,
	// the precision they were computed in.
	Precision string `yaml:"precision"`
	// RunPrecision is the precision the cells run in, resolved by the
	// caller (fp32 or bf16; "" counts as fp32); bf16 cells have their own
	// identity, so a table never mixes the two.
	RunPrecision string `yaml:"-"`
	// RunEngine is the engine the cells' network runs on (native or torch),
	// set by the caller; a torch cell has its own identity ("" and native
	// do not enter it).
	RunEngine string `yaml:"-"`
	// BestOf names a per-image metric (e.g. psnr): table.md then also
	// reports every per-image metric with, for each image, the seed that
	// scored best on it (the DPS paper's "best of 4" for phase retrieval).
	// Needs ≥ 2 seeds and the metric among Metrics; empty: off.
	BestOf string `yaml:"best_of"`
	// Tune, when set, names the validation images and the search of
	// `diffinv experiment tune` (see TuneSpec); the methods' tune entries
	// are the search spaces.
	Tune *TuneSpec `yaml:"tune"`
	// Tuned holds the settings chosen by tune, task key → method key →
	// option → value, read from the tuned file by ApplyTuned; solve cells
	// merge them into their method's set (over the file's set, under the
	// sweep values), so they enter the cells' identity.
	Tuned map[string]map[string]map[string]any `yaml:"-"`
	// TunedFile is the tuned file ApplyTuned read (for table.md).
	TunedFile *TunedFile `yaml:"-"`
	// Train, when set, makes every cell a training cell (see TrainSpec):
	// sweep axes then address config keys and tasks and methods are left
	// out.
	Train *TrainSpec `yaml:"train"`
	// Resolver, set by the caller that knows what tasks and methods mean
	// (experiment/runner: the task presets and solver defaults), returns the
	// settings a cell resolves to as "key: value" lines; Cells puts them in
	// Cell.Resolved and so in the cell's identity, so that a result is
	// reused only while its preset still resolves to the same settings.
	// nil: the identity covers the file's own settings only.
	Resolver func(Cell) ([]string, error) `yaml:"-"`
}

// Exclusion names a task and a method (each by name or label) whose cells
// are left out.
type Exclusion struct {
	Task   string `yaml:"task"`
	Method string `yaml:"method"`
}

// excluded reports whether the pair (t, m) is excluded.
func (e *Experiment) excluded(t Task, m Method) bool {
	for _, x := range e.Exclude {
		if (x.Task == t.Name || x.Task == t.Key()) && (x.Method == m.Name || x.Method == m.Key()) {
			return true
		}
	}
	return false
}

// Dataset selects N test images starting at Offset from the named split
// (e.g. "mnist-test").
type Dataset struct {
	// Name is the split, e.g. mnist-test (interpreted by the CellRunner).
	Name string `yaml:"name" json:"name"`
	// N is the number of images (≥ 1).
	N int `yaml:"n" json:"n"`
	// Offset is the index of the first image (≥ 0).
	Offset int `yaml:"offset" json:"offset"`
}

// Task is one measurement problem: a task preset name and overrides of its
// settings. Its key (Label, or Name without one) must be unique.
type Task struct {
	// Name is the task preset (e.g. sr4).
	Name string `yaml:"name"`
	// Label is the column title (optional).
	Label string `yaml:"label"`
	// Set overrides the preset's settings, key → scalar.
	Set map[string]any `yaml:"set"`
}

// Method is one solver: its registered name, a display label and solver
// option overrides. Its key (Label, or Name without one) must be unique.
type Method struct {
	// Name is the solver or baseline name (e.g. dps).
	Name string `yaml:"name"`
	// Label is the row title (optional).
	Label string `yaml:"label"`
	// Set holds solver options, key → scalar.
	Set map[string]any `yaml:"set"`
	// Tune is the method's search space for `diffinv experiment tune`
	// (see TuneSpec): option key → a list of values (a grid) or a range
	// {log: [lo, hi]} or {uniform: [lo, hi]}. Not part of any cell's
	// identity: a table cell carries the chosen values in Set (through
	// Experiment.Tuned).
	Tune map[string]any `yaml:"tune"`
}

// Grid configures the per-task image grids: the first Images images of
// each task (0 disables grids; unset means DefaultGridImages), each pixel
// drawn Scale×Scale (unset means 2).
type Grid struct {
	// Images is the number of images per grid row (nil: DefaultGridImages).
	Images *int `yaml:"images"`
	// Scale is the pixel enlargement (0: 2).
	Scale int `yaml:"scale"`
}

// DefaultGridImages is the number of images per task grid when the file
// does not say.
const DefaultGridImages = 4

// Key is the task's identifier in reports, --set paths and cell IDs.
func (t Task) Key() string {
	if t.Label != "" {
		return t.Label
	}
	return t.Name
}

// Key is the method's identifier in reports, --set paths and cell IDs.
func (m Method) Key() string {
	if m.Label != "" {
		return m.Label
	}
	return m.Name
}

// GridImages is the number of images per task grid.
func (e *Experiment) GridImages() int {
	if e.Grid.Images == nil {
		return DefaultGridImages
	}
	return *e.Grid.Images
}

// GridScale is the pixel enlargement of the grids.
func (e *Experiment) GridScale() int {
	if e.Grid.Scale <= 0 {
		return 2
	}
	return e.Grid.Scale
}

// Metric describes a metric the runner knows.
type Metric struct {
	// Name is the key in experiment files, CellResult maps and CSV headers.
	Name string
	// Title is the column title in tables and plots.
	Title string
	// PerCell marks metrics computed once over a cell's images (FID, KID)
	// rather than per image.
	PerCell bool
	// HigherBetter orders methods (the best mean per column is bold).
	HigherBetter bool
	// Format is the fmt verb for table values.
	Format string
	// Train marks the metrics training cells compute (fid and kid are
	// also solve cells').
	Train bool
	// NoSolve marks the metrics of training cells only.
	NoSolve bool
}

var metrics = []Metric{
	{Name: "psnr", Title: "PSNR↑", HigherBetter: true, Format: "%.2f"},
	{Name: "ssim", Title: "SSIM↑", HigherBetter: true, Format: "%.3f"},
	{Name: "consistency", Title: "‖y−A(x̂)‖↓", Format: "%.4f"},
	{Name: "fid", Title: "FID↓", PerCell: true, Format: "%.2f", Train: true},
	{Name: "kid", Title: "KID↓", PerCell: true, Format: "%.4f", Train: true},
	{Name: "seconds", Title: "s/img↓", Format: "%.2f"},
	// Training cells: the share of samples the classifier labels with
	// confidence ≥ 0.9, the smallest and largest class share (%), and the
	// training MSE (L_simple, whatever the loss weighting: mean of the last
	// tenth of the logged values).
	{Name: "confident", Title: "confident↑", PerCell: true, HigherBetter: true, Format: "%.3f", Train: true, NoSolve: true},
	{Name: "class_min", Title: "min class %↑", PerCell: true, HigherBetter: true, Format: "%.1f", Train: true, NoSolve: true},
	{Name: "class_max", Title: "max class %↓", PerCell: true, Format: "%.1f", Train: true, NoSolve: true},
	{Name: "mse", Title: "train MSE↓", PerCell: true, Format: "%.4f", Train: true, NoSolve: true},
}

// MetricNames lists the known metric names, in report order.
func MetricNames() []string {
	r := make([]string, len(metrics))
	for i, m := range metrics {
		r[i] = m.Name
	}
	return r
}

// LookupMetric returns the metric named name.
func LookupMetric(name string) (Metric, error) {
	for _, m := range metrics {
		if m.Name == name {
			return m, nil
		}
	}
	return Metric{}, fmt.Errorf("unknown metric %q (known: %s)", name, strings.Join(MetricNames(), ", "))
}

// MaxFileSize caps an experiment file (1 MB: the committed ones are under
// 2 KB), so a wrong path such as /dev/zero fails at once.
const MaxFileSize = 1 << 20

// Load reads and strictly decodes the experiment file at path, a regular
// file of at most MaxFileSize bytes (it does not validate: apply
// overrides, then call Validate).
func Load(path string) (*Experiment, error) {
	b, err := userfile.ReadFile(path, "file", MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("experiment: %w", err)
	}
	e, err := Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("experiment %s: %w", path, err)
	}
	return e, nil
}

// Open loads the experiment file at path, applies the command line's
// "--set k=v" overrides and "--sweep k=v1,v2" axes in order, and validates
// the result: what "diffinv experiment run FILE [--set ...] [--sweep ...]"
// needs before Run.
func Open(path string, sets, sweeps []string) (*Experiment, error) {
	e, err := Load(path)
	if err != nil {
		return nil, err
	}
	for _, s := range sets {
		if err := e.Set(s); err != nil {
			return nil, fmt.Errorf("experiment %s: %w", path, err)
		}
	}
	for _, s := range sweeps {
		if err := e.AddSweep(s); err != nil {
			return nil, fmt.Errorf("experiment %s: %w", path, err)
		}
	}
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("experiment %s: %w", path, err)
	}
	return e, nil
}

// Decode strictly decodes one experiment document from r: unknown keys and
// ill-typed values are errors naming the key and line; sweep and set values
// must be scalars (number, string or bool).
func Decode(r io.Reader) (*Experiment, error) {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	var e Experiment
	if err := dec.Decode(&e); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("empty experiment file")
		}
		return nil, fmt.Errorf("decode: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fmt.Errorf("decode: more than one YAML document, want one")
	}
	if err := e.normalize(); err != nil {
		return nil, err
	}
	return &e, nil
}

// normalize checks that every set and sweep value is a scalar and converts
// integers to int.
func (e *Experiment) normalize() error {
	for i := range e.Tasks {
		if err := normalizeMap(fmt.Sprintf("tasks[%d] (%s).set", i, e.Tasks[i].Key()), e.Tasks[i].Set); err != nil {
			return err
		}
	}
	for i := range e.Methods {
		if err := normalizeMap(fmt.Sprintf("methods[%d] (%s).set", i, e.Methods[i].Key()), e.Methods[i].Set); err != nil {
			return err
		}
	}
	if e.Train != nil {
		if err := normalizeMap("train.set", e.Train.Set); err != nil {
			return err
		}
	}
	for k, vs := range e.Sweep {
		for j, v := range vs {
			s, err := scalar(v)
			if err != nil {
				return fmt.Errorf("sweep.%s[%d]: %w", k, j, err)
			}
			vs[j] = s
		}
	}
	return nil
}

func normalizeMap(where string, m map[string]any) error {
	for k, v := range m {
		s, err := scalar(v)
		if err != nil {
			return fmt.Errorf("%s.%s: %w", where, k, err)
		}
		m[k] = s
	}
	return nil
}

// scalar checks that v is a number, string or bool, returning integers as
// int and other numbers as float64.
func scalar(v any) (any, error) {
	switch x := v.(type) {
	case string, bool:
		return x, nil
	case nil:
		return nil, fmt.Errorf("empty value, want a number, string or bool")
	case float32, float64:
		f, _ := params.Number(x)
		return f, nil
	}
	if n, ok := params.Integer(v); ok {
		return int(n), nil
	}
	return nil, fmt.Errorf("got %T %v, want a number, string or bool", v, v)
}

// parseScalar reads one command-line value of a task or method setting
// (--set task.K=v, --sweep solver.K=v1,v2) with params.Parse, the reader
// of config's --set and DIFFINV_* values, so a value means the same typed
// here as there: "8" is an int, "0.5" and "1e-3" are float64, "true" is a
// bool, "'1e-3'" and other text a string. It must be a scalar: an empty
// value, null, a list or a mapping is an error.
func parseScalar(s string) (any, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("empty value")
	}
	v, err := params.Parse(s)
	if err != nil {
		return nil, err
	}
	switch v.(type) {
	case []any:
		return nil, fmt.Errorf("value %q is a list, want a scalar", s)
	case map[string]any:
		return nil, fmt.Errorf("value %q is a mapping, want a scalar (quote it for a string)", s)
	}
	return scalar(v)
}

// parseInt reads one command-line integer (dataset.n, a seed) with
// params.Parse and params.Integer: "8" and "8.0" are 8, "8.5" and "x" are
// errors.
func parseInt(s string) (int64, error) {
	v, err := params.Parse(s)
	if err == nil {
		if n, ok := params.Integer(v); ok {
			return n, nil
		}
	}
	return 0, fmt.Errorf("value %q, want an integer", s)
}

// splitKV splits "k=v" at the first '='.
func splitKV(flag, s string) (string, string, error) {
	k, v, ok := strings.Cut(s, "=")
	k = strings.TrimSpace(k)
	if !ok || k == "" {
		return "", "", fmt.Errorf("%s %q: want key=value", flag, s)
	}
	return k, v, nil
}

// Set applies one "--set key=value" override. Keys are dotted paths:
//
//	name, checkpoint, output, best_of        strings
//	dataset.name, dataset.n, dataset.offset  the dataset
//	seeds, metrics                           comma-separated lists ("0,1,2")
//	grid.images, grid.scale                  integers
//	tasks.KEY.set.K, tasks.KEY.label         one task (KEY: its label or name)
//	methods.KEY.set.K, methods.KEY.label     one method
//	task.K                                   K in every task's set
//	solver.K                                 K in every method's set
//	tune.dataset.{name,n,offset}, tune.seeds, tune.metric, tune.budget,
//	tune.trials, tune.seed, tune.output      the tune section
//
// K may itself contain dots (tasks.sr4.set.noise.sigma sets "noise.sigma").
// A name that matches several entries is an error; so is a path not listed.
//
// Values are read as config reads a --set value (params.Parse, YAML): a
// setting K is a typed scalar ("0.5" a number, "'0.5'" a string) and an
// integer accepts "8" or "8.0"; the names, paths, labels and metrics are
// taken as typed.
func (e *Experiment) Set(kv string) error {
	k, raw, err := splitKV("--set", kv)
	if err != nil {
		return err
	}
	fail := func(err error) error { return fmt.Errorf("--set %s: %w", k, err) }
	atoi := func() (int, error) {
		n, err := parseInt(raw)
		return int(n), err
	}
	switch k {
	case "name":
		e.Name = raw
		return nil
	case "checkpoint":
		e.Checkpoint = raw
		return nil
	case "output":
		e.Output = raw
		return nil
	case "best_of":
		e.BestOf = raw
		return nil
	case "dataset.name":
		e.Dataset.Name = raw
		return nil
	case "dataset.n", "dataset.offset", "grid.images", "grid.scale":
		n, err := atoi()
		if err != nil {
			return fail(err)
		}
		switch k {
		case "dataset.n":
			e.Dataset.N = n
		case "dataset.offset":
			e.Dataset.Offset = n
		case "grid.images":
			e.Grid.Images = &n
		case "grid.scale":
			e.Grid.Scale = n
		}
		return nil
	case "seeds":
		var seeds []int64
		for _, s := range strings.Split(raw, ",") {
			n, err := parseInt(s)
			if err != nil {
				return fail(fmt.Errorf("seed %q, want an integer", s))
			}
			seeds = append(seeds, n)
		}
		e.Seeds = seeds
		return nil
	case "metrics":
		var ms []string
		for _, s := range strings.Split(raw, ",") {
			ms = append(ms, strings.TrimSpace(s))
		}
		e.Metrics = ms
		return nil
	}
	if e.Train != nil && isTrainKey(k) {
		return e.setTrain(k, raw)
	}
	if strings.HasPrefix(k, "tune.") {
		if err := e.setTune(k, raw); err != nil {
			return fail(err)
		}
		return nil
	}
	switch {
	case strings.HasPrefix(k, "task.") || strings.HasPrefix(k, "solver."):
		prefix, key, _ := strings.Cut(k, ".")
		if key == "" {
			return fail(fmt.Errorf("empty option name after %q", prefix+"."))
		}
		v, err := parseScalar(raw)
		if err != nil {
			return fail(err)
		}
		if prefix == "task" {
			for i := range e.Tasks {
				e.Tasks[i].Set = with(e.Tasks[i].Set, key, v)
			}
		} else {
			for i := range e.Methods {
				e.Methods[i].Set = with(e.Methods[i].Set, key, v)
			}
		}
		return nil
	case strings.HasPrefix(k, "tasks.") || strings.HasPrefix(k, "methods."):
		kind, rest, _ := strings.Cut(k, ".")
		var keys []string
		if kind == "tasks" {
			for _, t := range e.Tasks {
				keys = append(keys, t.Key())
			}
		} else {
			for _, m := range e.Methods {
				keys = append(keys, m.Key())
			}
		}
		// The entry key may contain dots: match the longest known key.
		idx, field := -1, ""
		for i, ek := range keys {
			if strings.HasPrefix(rest, ek+".") {
				if idx >= 0 && len(ek) <= len(keys[idx]) {
					continue
				}
				idx, field = i, rest[len(ek)+1:]
			}
		}
		if idx < 0 {
			// Fall back to the preset/solver name when unambiguous.
			name, f, _ := strings.Cut(rest, ".")
			for i := range keys {
				var nm string
				if kind == "tasks" {
					nm = e.Tasks[i].Name
				} else {
					nm = e.Methods[i].Name
				}
				if nm == name {
					if idx >= 0 {
						return fail(fmt.Errorf("%s %q matches several entries; address one by its label (%s)", kind, name, strings.Join(keys, ", ")))
					}
					idx, field = i, f
				}
			}
		}
		if idx < 0 {
			return fail(fmt.Errorf("no %s entry %q (have: %s)", strings.TrimSuffix(kind, "s"), strings.SplitN(rest, ".", 2)[0], strings.Join(keys, ", ")))
		}
		switch {
		case field == "label":
			if kind == "tasks" {
				e.Tasks[idx].Label = raw
			} else {
				e.Methods[idx].Label = raw
			}
			return nil
		case strings.HasPrefix(field, "set.") && len(field) > len("set."):
			v, err := parseScalar(raw)
			if err != nil {
				return fail(err)
			}
			key := field[len("set."):]
			if kind == "tasks" {
				e.Tasks[idx].Set = with(e.Tasks[idx].Set, key, v)
			} else {
				e.Methods[idx].Set = with(e.Methods[idx].Set, key, v)
			}
			return nil
		}
		return fail(fmt.Errorf("field %q, want label or set.KEY", field))
	}
	return fail(fmt.Errorf("unknown key (want name, checkpoint, output, dataset.{name,n,offset}, seeds, metrics, grid.{images,scale}, task.K, solver.K, tasks.KEY.{label,set.K} or methods.KEY.{label,set.K})"))
}

func with(m map[string]any, k string, v any) map[string]any {
	if m == nil {
		m = map[string]any{}
	}
	m[k] = v
	return m
}

// AddSweep applies one "--sweep key=v1,v2,..." flag: it adds (or replaces)
// the sweep axis key (solver.K or task.K) with the listed values.
func (e *Experiment) AddSweep(spec string) error {
	k, raw, err := splitKV("--sweep", spec)
	if err != nil {
		return err
	}
	if err := e.checkSweepKey(k); err != nil {
		return fmt.Errorf("--sweep %s: %w", k, err)
	}
	var vals []any
	for _, s := range strings.Split(raw, ",") {
		v, err := parseScalar(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("--sweep %s: value %q: %w", k, s, err)
		}
		vals = append(vals, v)
	}
	if e.Sweep == nil {
		e.Sweep = map[string][]any{}
	}
	e.Sweep[k] = vals
	return nil
}

func (e *Experiment) checkSweepKey(k string) error {
	if e.Train != nil && isTrainKey(k) {
		return nil
	}
	if e.Train != nil && len(e.Tasks) == 0 {
		return fmt.Errorf("sweep key %q, want a config key of a training experiment: train.K, diffusion.K, model.K or data.K", k)
	}
	p, rest, _ := strings.Cut(k, ".")
	if (p != "solver" && p != "task") || rest == "" {
		if e.Train != nil {
			return fmt.Errorf("sweep key %q, want train.K, diffusion.K, model.K, data.K, solver.K or task.K", k)
		}
		return fmt.Errorf("sweep key %q, want solver.KEY or task.KEY", k)
	}
	return nil
}

// SweepKeys returns the sweep axes in expansion order (sorted).
func (e *Experiment) SweepKeys() []string {
	ks := make([]string, 0, len(e.Sweep))
	for k := range e.Sweep {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Validate checks the experiment after overrides: required fields, unique
// task and method keys, known metrics, non-empty sweep axes of distinct
// values. Errors name the offending key and value.
func (e *Experiment) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	switch e.Precision {
	case "", "auto", "bf16", "fp32":
	default:
		add("precision %q: want one of auto, bf16, fp32", e.Precision)
	}
	for i, x := range e.Exclude {
		okT, okM := false, false
		for _, t := range e.Tasks {
			okT = okT || x.Task == t.Name || x.Task == t.Key()
		}
		for _, m := range e.Methods {
			okM = okM || x.Method == m.Name || x.Method == m.Key()
		}
		if !okT || !okM {
			add("exclude[%d]: {task: %q, method: %q} names no task or no method of the file", i, x.Task, x.Method)
		}
	}
	if strings.TrimSpace(e.Name) == "" {
		add("name: empty, want the experiment's name")
	}
	if e.Train != nil {
		e.validateTrain(add)
	} else {
		e.validateSolve(add)
	}
	if len(e.Seeds) == 0 {
		add("seeds: empty, want at least one seed")
	}
	seen := map[string]bool{}
	for i, t := range e.Tasks {
		if t.Name == "" {
			add("tasks[%d]: empty name, want a task preset", i)
		}
		if seen[t.Key()] {
			add("tasks[%d]: duplicate key %q, give one a distinct label", i, t.Key())
		}
		seen[t.Key()] = true
	}
	seen = map[string]bool{}
	for i, m := range e.Methods {
		if m.Name == "" {
			add("methods[%d]: empty name, want a solver name", i)
		}
		if seen[m.Key()] {
			add("methods[%d]: duplicate key %q, give one a distinct label", i, m.Key())
		}
		seen[m.Key()] = true
	}
	seenSeed := map[int64]bool{}
	for _, s := range e.Seeds {
		if seenSeed[s] {
			add("seeds: duplicate seed %d", s)
		}
		seenSeed[s] = true
	}
	if len(e.Metrics) == 0 {
		add("metrics: empty, want some of %s", strings.Join(MetricNames(), ", "))
	}
	seen = map[string]bool{}
	for _, m := range e.Metrics {
		if mm, err := LookupMetric(m); err != nil {
			add("metrics: %v", err)
		} else if e.Train != nil && len(e.Tasks) == 0 && !mm.Train {
			add("metrics: %q is a metric of solve cells, want those of training cells (fid, kid, confident, class_min, class_max, mse) or tasks and methods to solve", m)
		} else if e.Train == nil && mm.NoSolve {
			add("metrics: %q is a metric of training cells (a train section)", m)
		}
		if seen[m] {
			add("metrics: duplicate %q", m)
		}
		seen[m] = true
	}
	for _, k := range e.SweepKeys() {
		if err := e.checkSweepKey(k); err != nil {
			add("sweep: %v", err)
		}
		vs := e.Sweep[k]
		if len(vs) == 0 {
			add("sweep.%s: no values", k)
		}
		ids := map[string]bool{}
		for _, v := range vs {
			if _, err := scalar(v); err != nil {
				add("sweep.%s: %v", k, err)
				continue
			}
			c := canonical(v)
			if ids[c] {
				add("sweep.%s: duplicate value %v", k, v)
			}
			ids[c] = true
		}
	}
	if e.BestOf != "" {
		m, err := LookupMetric(e.BestOf)
		switch {
		case err != nil:
			add("best_of: %v", err)
		case m.PerCell:
			add("best_of: %q is computed per cell, want a per-image metric (psnr, ssim, consistency)", e.BestOf)
		case !seen[e.BestOf]:
			add("best_of: %q is not among metrics %v", e.BestOf, e.Metrics)
		}
		if len(e.Seeds) < 2 {
			add("best_of: %q with %d seed(s), want ≥ 2 seeds to choose from", e.BestOf, len(e.Seeds))
		}
	}
	if n := e.GridImages(); n < 0 {
		add("grid.images: %d, want ≥ 0", n)
	}
	if e.Grid.Scale < 0 {
		add("grid.scale: %d, want ≥ 1 (0 for the default)", e.Grid.Scale)
	}
	e.validateTune(add)
	if len(errs) > 0 {
		return fmt.Errorf("experiment %q: %w", e.Name, errors.Join(errs...))
	}
	return nil
}

// validate checks a dataset section (key, e.g. "dataset" or
// "tune.dataset"); want describes the split expected.
func (d Dataset) validate(key, want string, add func(string, ...any)) {
	if d.Name == "" {
		add("%s.name: empty, want %s", key, want)
	}
	if d.N <= 0 {
		add("%s.n: %d, want ≥ 1 images", key, d.N)
	}
	if d.Offset < 0 {
		add("%s.offset: %d, want ≥ 0", key, d.Offset)
	}
}

// validateSolve checks what solve cells need: the dataset, tasks and
// methods.
func (e *Experiment) validateSolve(add func(string, ...any)) {
	e.Dataset.validate("dataset", "a dataset split such as mnist-test", add)
	if len(e.Tasks) == 0 {
		add("tasks: empty, want at least one task")
	}
	if len(e.Methods) == 0 {
		add("methods: empty, want at least one method")
	}
}

// canonical renders a scalar so that equal settings compare equal: every
// number as its shortest float64 form (1 and 1.0 agree), strings quoted.
func canonical(v any) string {
	switch x := v.(type) {
	case int:
		return strconv.FormatFloat(float64(x), 'g', -1, 64)
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return strconv.FormatFloat(x, 'g', -1, 64)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case string:
		return strconv.Quote(x)
	case bool:
		return strconv.FormatBool(x)
	}
	return fmt.Sprintf("%T(%v)", v, v)
}

// display renders a scalar for reports and filenames: numbers in their
// shortest form, strings bare.
func display(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return canonical(v)
}
