package experiment

// Tuning on a validation split (issue 23): `diffinv experiment tune FILE`
// searches each method's key options on validation images disjoint from
// the table's test images, one task × method at a time under a time
// budget, and writes the chosen settings to a tuned file that `experiment
// run` (ApplyTuned) merges into the table's cells.
//
//	dataset: {name: mnist-test, n: 100}   # the table's test images
//	methods:
//	  - name: dps
//	    tune: {scale: [0.1, 0.3, 1.0]}    # a grid: the values, in order
//	  - name: reddiff
//	    tune:
//	      lambda: {log: [0.01, 1]}        # log-uniform range
//	      steps: {uniform: [20, 100]}     # integer bounds: integer draws
//	tune:
//	  dataset: {name: mnist-train, n: 16, offset: 0}  # validation images
//	  seeds: [0]          # default: the first of seeds
//	  metric: psnr        # default psnr; maximised (minimised where lower is better)
//	  budget: 10m         # per task × method: seconds (a number) or a Go duration; 0: none
//	  trials: 8           # random points where a space has a range (default 8)
//	  seed: 0             # seeds the random points
//	  output: experiments/tuned/dps-table-mnist.yaml  # default OUT/tuned.yaml
//
// A space of lists only is searched as its grid (the cartesian product,
// keys sorted, the last fastest, values in file order); a space with a
// range draws trials random points (lists then drawn uniformly), seeded by
// seed, the task and the method, floats rounded to 3 significant digits.
//
// Each trial is an ordinary experiment of one task, one method (the file's
// set plus the trial's values) and the tune seeds on the validation images,
// run by Run with Resume into OUT/tune/TASK.METHOD/: cells are identified,
// cached, resumed and validated as the table's are. The trials of a task ×
// method run in order until the budget is spent: before each trial after
// the first, the sum of the earlier trials' measured seconds (each cell's
// per-image "seconds" summed over its images) is compared with the budget.
// As stored results carry those seconds, a re-run replays the same search
// from the cache and computes nothing. The best trial (mean over seeds of
// the cell's metric value; ties to the earlier) is the choice.
//
// Outputs: OUT/tune/trials.csv (every trial: options, metrics, seconds,
// the chosen one), OUT/tune/plots/TASK.METHOD.png (metric against the tuned
// option; with two or more options, one line per value of the others, or
// a scatter for random points) and the tuned file (TunedFile).

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"hash/fnv"
	"image/color"
	"io"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/diffinv/diffinv/internal/atomicfile"
	"github.com/diffinv/diffinv/internal/params"
	"github.com/diffinv/diffinv/internal/userfile"
)

// TuneSpec is an experiment file's tune section.
type TuneSpec struct {
	// Dataset is the validation images; it must not overlap the
	// experiment's dataset (same name and overlapping index ranges).
	Dataset Dataset `yaml:"dataset"`
	// Seeds are the seeds of every trial (default: the first of the
	// experiment's seeds).
	Seeds []int64 `yaml:"seeds"`
	// Metric is the metric to optimise (default psnr): maximised where
	// higher is better, else minimised.
	Metric string `yaml:"metric"`
	// Budget is the time budget per task × method (0: none).
	Budget Budget `yaml:"budget"`
	// Trials is the number of random points of a space with a range
	// (default DefaultTrials).
	Trials int `yaml:"trials"`
	// Seed seeds the random points.
	Seed int64 `yaml:"seed"`
	// Output is the tuned file (default OUT/tuned.yaml).
	Output string `yaml:"output"`
}

// DefaultTrials is the number of random points of a space with a range
// when the file does not say.
const DefaultTrials = 8

// TunedFileName is the tuned file's name in the output folder when the
// tune section names none.
const TunedFileName = "tuned.yaml"

// TuneDir is the folder, inside the output folder, of the search.
const TuneDir = "tune"

// Budget is a time budget in seconds; in a file a number of seconds or a
// Go duration ("90s", "10m", "1h30m").
type Budget float64

// UnmarshalYAML reads a number of seconds or a duration string.
func (b *Budget) UnmarshalYAML(n *yaml.Node) error {
	var f float64
	if err := n.Decode(&f); err == nil {
		*b = Budget(f)
		return nil
	}
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: budget: want seconds or a duration such as 10m", n.Line)
	}
	v, err := parseBudget(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

func parseBudget(s string) (Budget, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return Budget(f), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("budget %q: want seconds or a duration such as 90s, 10m, 1h", s)
	}
	return Budget(d.Seconds()), nil
}

// tuneAxis is one option of a search space: a list of values, or a range.
type tuneAxis struct {
	key    string
	values []any   // a grid axis
	dist   string  // "log" or "uniform" for a range
	lo, hi float64 // the range
	ints   bool    // integer draws (both bounds written as integers)
}

func (a tuneAxis) isRange() bool { return a.dist != "" }

// parseSpace reads a method's tune entry, keys sorted.
func parseSpace(space map[string]any) ([]tuneAxis, error) {
	keys := make([]string, 0, len(space))
	for k := range space {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var axes []tuneAxis
	for _, k := range keys {
		a := tuneAxis{key: k}
		switch v := space[k].(type) {
		case []any:
			if len(v) == 0 {
				return nil, fmt.Errorf("%s: empty list, want values to try", k)
			}
			seen := map[string]bool{}
			for j, x := range v {
				s, err := scalar(x)
				if err != nil {
					return nil, fmt.Errorf("%s[%d]: %w", k, j, err)
				}
				if seen[canonical(s)] {
					return nil, fmt.Errorf("%s: duplicate value %v", k, s)
				}
				seen[canonical(s)] = true
				a.values = append(a.values, s)
			}
		case map[string]any:
			if len(v) != 1 {
				return nil, fmt.Errorf("%s: want one of {log: [lo, hi]} or {uniform: [lo, hi]}", k)
			}
			for d, b := range v {
				if d != "log" && d != "uniform" {
					return nil, fmt.Errorf("%s: range %q, want log or uniform", k, d)
				}
				bs, ok := b.([]any)
				if !ok || len(bs) != 2 {
					return nil, fmt.Errorf("%s.%s: want [lo, hi]", k, d)
				}
				lo, err1 := scalar(bs[0])
				hi, err2 := scalar(bs[1])
				_, i1 := lo.(int)
				_, i2 := hi.(int)
				flo, ok1 := params.Number(lo)
				fhi, ok2 := params.Number(hi)
				if err1 != nil || err2 != nil || !ok1 || !ok2 || !(flo < fhi) || math.IsInf(flo, 0) || math.IsInf(fhi, 0) {
					return nil, fmt.Errorf("%s.%s: [%v, %v], want two finite numbers lo < hi", k, d, bs[0], bs[1])
				}
				if d == "log" && flo <= 0 {
					return nil, fmt.Errorf("%s.log: [%v, %v], want 0 < lo < hi", k, bs[0], bs[1])
				}
				a.dist, a.lo, a.hi, a.ints = d, flo, fhi, i1 && i2
			}
		default:
			return nil, fmt.Errorf("%s: %v, want a list of values or {log: [lo, hi]} or {uniform: [lo, hi]}", k, space[k])
		}
		axes = append(axes, a)
	}
	return axes, nil
}

// tunePoint is one trial's option values.
type tunePoint map[string]any

// label renders the point as "k=v, k=v" in key order.
func (p tunePoint) label() string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + display(p[k])
	}
	return strings.Join(parts, ", ")
}

// searchPoints lists the trials of a space: its grid, or trials random
// points when it has a range (seeded by seed, task and method), distinct.
func searchPoints(axes []tuneAxis, trials int, seed int64, task, method string) []tunePoint {
	hasRange := false
	for _, a := range axes {
		hasRange = hasRange || a.isRange()
	}
	if !hasRange {
		points := []tunePoint{{}}
		for _, a := range axes {
			var next []tunePoint
			for _, p := range points {
				for _, v := range a.values {
					q := tunePoint{}
					for k, x := range p {
						q[k] = x
					}
					q[a.key] = v
					next = append(next, q)
				}
			}
			points = next
		}
		return points
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%d\x00%s\x00%s", seed, task, method)
	rng := rand.New(rand.NewSource(int64(h.Sum64())))
	var points []tunePoint
	seen := map[string]bool{}
	for try := 0; len(points) < trials && try < 20*trials; try++ {
		p := tunePoint{}
		for _, a := range axes {
			if !a.isRange() {
				p[a.key] = a.values[rng.Intn(len(a.values))]
				continue
			}
			u := rng.Float64()
			var x float64
			if a.dist == "log" {
				x = math.Exp(math.Log(a.lo) + u*(math.Log(a.hi)-math.Log(a.lo)))
			} else {
				x = a.lo + u*(a.hi-a.lo)
			}
			if a.ints {
				p[a.key] = int(math.Round(x))
			} else {
				p[a.key] = round3(x)
			}
		}
		if l := p.label(); !seen[l] {
			seen[l] = true
			points = append(points, p)
		}
	}
	return points
}

// round3 rounds x to 3 significant digits.
func round3(x float64) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'g', 3, 64), 64)
	return f
}

// validateTune checks the tune section and the methods' spaces.
func (e *Experiment) validateTune(add func(string, ...any)) {
	spaces := 0
	for i, m := range e.Methods {
		if m.Tune == nil {
			continue
		}
		spaces++
		axes, err := parseSpace(m.Tune)
		if err != nil {
			add("methods[%d] (%s).tune: %v", i, m.Key(), err)
			continue
		}
		if len(axes) == 0 {
			add("methods[%d] (%s).tune: empty, want options to search", i, m.Key())
		}
		for _, a := range axes {
			if _, ok := e.Sweep["solver."+a.key]; ok {
				add("methods[%d] (%s).tune.%s: the sweep axis solver.%s would override the tuned value in every cell; tune it or sweep it, not both", i, m.Key(), a.key, a.key)
			}
		}
	}
	t := e.Tune
	if t == nil {
		if spaces > 0 {
			add("methods have tune spaces but the file has no tune section naming the validation images (tune: {dataset: {name: ..., n: ...}})")
		}
		return
	}
	if e.Train != nil {
		add("tune: a training experiment (train section) has no solver options to tune")
		return
	}
	if spaces == 0 {
		add("tune: no method has a tune space (methods: [{name: dps, tune: {scale: [0.1, 0.3, 1]}}])")
	}
	t.Dataset.validate("tune.dataset", "the validation split, e.g. mnist-train or celeba-val", add)
	if err := checkDisjoint(t.Dataset, e.Dataset); err != nil {
		add("tune.dataset: %v", err)
	}
	if m, err := LookupMetric(t.metric()); err != nil {
		add("tune.metric: %v", err)
	} else if m.NoSolve || m.Name == "seconds" {
		add("tune.metric: %q, want a quality metric of solve cells (psnr, ssim, consistency, fid, kid)", m.Name)
	}
	if t.Budget < 0 || math.IsNaN(float64(t.Budget)) {
		add("tune.budget: %v, want ≥ 0 seconds (0: no limit)", float64(t.Budget))
	}
	if t.Trials < 0 {
		add("tune.trials: %d, want ≥ 1 (0 for the default %d)", t.Trials, DefaultTrials)
	}
	seen := map[int64]bool{}
	for _, s := range t.Seeds {
		if seen[s] {
			add("tune.seeds: duplicate seed %d", s)
		}
		seen[s] = true
	}
}

// checkDisjoint refuses validation images that are test images: the same
// split with overlapping index ranges.
func checkDisjoint(val, test Dataset) error {
	if val.Name != test.Name || val.N <= 0 || test.N <= 0 {
		return nil
	}
	if val.Offset < test.Offset+test.N && test.Offset < val.Offset+val.N {
		lo, hi := max(val.Offset, test.Offset), min(val.Offset+val.N, test.Offset+test.N)-1
		return fmt.Errorf("the validation images %s (indices %d–%d) overlap the test images, dataset %s (indices %d–%d), at indices %d–%d: tuning on test images would bias the table; take them from another split (e.g. mnist-train, celeba-val) or a disjoint range",
			val.Name, val.Offset, val.Offset+val.N-1, test.Name, test.Offset, test.Offset+test.N-1, lo, hi)
	}
	return nil
}

func (t *TuneSpec) metric() string {
	if t.Metric == "" {
		return "psnr"
	}
	return t.Metric
}

func (t *TuneSpec) trials() int {
	if t.Trials <= 0 {
		return DefaultTrials
	}
	return t.Trials
}

// seeds are the tune seeds: the section's, else the first of the
// experiment's.
func (e *Experiment) tuneSeeds() []int64 {
	if len(e.Tune.Seeds) > 0 {
		return e.Tune.Seeds
	}
	if len(e.Seeds) > 0 {
		return e.Seeds[:1]
	}
	return nil
}

// setTune applies --set tune.K=v.
func (e *Experiment) setTune(k, raw string) error {
	if e.Tune == nil {
		e.Tune = &TuneSpec{}
	}
	t := e.Tune
	atoi := func() (int, error) {
		n, err := parseInt(raw)
		return int(n), err
	}
	var err error
	switch k {
	case "tune.dataset.name":
		t.Dataset.Name = raw
	case "tune.dataset.n":
		t.Dataset.N, err = atoi()
	case "tune.dataset.offset":
		t.Dataset.Offset, err = atoi()
	case "tune.metric":
		t.Metric = raw
	case "tune.output":
		t.Output = raw
	case "tune.budget":
		t.Budget, err = parseBudget(raw)
	case "tune.trials":
		t.Trials, err = atoi()
	case "tune.seed":
		var n int64
		n, err = parseInt(raw)
		t.Seed = n
	case "tune.seeds":
		var seeds []int64
		for _, s := range strings.Split(raw, ",") {
			n, err := parseInt(s)
			if err != nil {
				return fmt.Errorf("seed %q, want an integer", s)
			}
			seeds = append(seeds, n)
		}
		t.Seeds = seeds
	default:
		return fmt.Errorf("unknown key (want tune.dataset.{name,n,offset}, tune.seeds, tune.metric, tune.budget, tune.trials, tune.seed or tune.output)")
	}
	return err
}

// TunedPath is the tuned file of the experiment with output folder out
// (empty: the file's output): tune.output, else OUT/tuned.yaml.
func (e *Experiment) TunedPath(out string) string {
	if e.Tune != nil && e.Tune.Output != "" {
		return e.Tune.Output
	}
	if out == "" {
		out = e.Output
	}
	return filepath.Join(out, TunedFileName)
}

// TunedFile is the tuned file's format (YAML).
type TunedFile struct {
	// Experiment is the experiment's name.
	Experiment string `yaml:"experiment"`
	// TunedOn is the validation images.
	TunedOn Dataset `yaml:"tuned_on"`
	// Seeds are the trials' seeds.
	Seeds []int64 `yaml:"seeds,flow"`
	// Metric is the metric optimised.
	Metric string `yaml:"metric"`
	// Settings maps task key → method key → option → chosen value.
	Settings map[string]map[string]map[string]any `yaml:"settings"`
	// Search records, per task and method, how the choice was made.
	Search map[string]map[string]TunedSearch `yaml:"search"`
}

// TunedSearch summarises one task × method's search.
type TunedSearch struct {
	// Score is the chosen trial's metric value (mean over seeds).
	Score float64 `yaml:"score"`
	// Trials is the number of trials run, of Planned.
	Trials  int `yaml:"trials"`
	Planned int `yaml:"planned"`
	// Seconds is the trials' measured seconds in all.
	Seconds float64 `yaml:"seconds"`
	// Stopped is "budget" when the budget ended the search early, else
	// "complete".
	Stopped string `yaml:"stopped"`
	// Diverged counts the trials whose method diverged (no score).
	Diverged int `yaml:"diverged,omitempty"`
	// Edge names the options whose chosen value lies at the edge of what
	// was searched ("lr high": the largest value tried, near the top of
	// its range), where the best may lie beyond (see pairSearch.edges).
	Edge []string `yaml:"edge,omitempty"`
	// Unexplored names the options whose chosen value is the smallest or
	// largest value tried on a range but lies inside it ("rho_min low":
	// no trial between it and the range's bottom), where a random search
	// left the stretch beyond the best untried (see pairSearch.edges).
	Unexplored []string `yaml:"unexplored,omitempty"`
}

// tunePairs are the task × method pairs to tune: methods with a space, in
// table order, excluded pairs left out.
func (e *Experiment) tunePairs() (pairs [][2]int) {
	for ti, t := range e.Tasks {
		for mi, m := range e.Methods {
			if m.Tune != nil && !e.excluded(t, m) {
				pairs = append(pairs, [2]int{ti, mi})
			}
		}
	}
	return pairs
}

// ApplyTuned reads the tuned file (TunedPath(out)) of an experiment with a
// tune section into Tuned, after checking that it answers this file's
// search: the same validation images, seeds and metric, and an entry with
// the space's options for every task × method tuned. Without a tune
// section it does nothing. A missing file is an error saying to run tune.
func (e *Experiment) ApplyTuned(out string) error {
	if e.Tune == nil {
		return nil
	}
	path := e.TunedPath(out)
	b, err := userfile.ReadFile(path, "tuned file", MaxFileSize)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("experiment %q: no tuned settings at %s: run `diffinv experiment tune` on the file first (the table's methods with a tune space take their options from it)", e.Name, path)
		}
		return fmt.Errorf("experiment %q: %w", e.Name, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var tf TunedFile
	if err := dec.Decode(&tf); err != nil {
		return fmt.Errorf("experiment %q: tuned file %s: %w", e.Name, path, err)
	}
	stale := func(what string, got, want any) error {
		return fmt.Errorf("experiment %q: tuned file %s was tuned with %s %v, the file's tune section says %v: re-run `diffinv experiment tune`", e.Name, path, what, got, want)
	}
	if tf.TunedOn != e.Tune.Dataset {
		return stale("validation images", tf.TunedOn, e.Tune.Dataset)
	}
	if fmt.Sprint(tf.Seeds) != fmt.Sprint(e.tuneSeeds()) {
		return stale("seeds", tf.Seeds, e.tuneSeeds())
	}
	if tf.Metric != e.Tune.metric() {
		return stale("metric", tf.Metric, e.Tune.metric())
	}
	tuned := map[string]map[string]map[string]any{}
	for _, p := range e.tunePairs() {
		t, m := e.Tasks[p[0]], e.Methods[p[1]]
		set, ok := tf.Settings[t.Key()][m.Key()]
		if !ok {
			return fmt.Errorf("experiment %q: tuned file %s has no settings for task %s, method %s: re-run `diffinv experiment tune`", e.Name, path, t.Key(), m.Key())
		}
		axes, err := parseSpace(m.Tune)
		if err != nil {
			return fmt.Errorf("experiment %q: method %s: tune: %w", e.Name, m.Key(), err)
		}
		if len(set) != len(axes) {
			return fmt.Errorf("experiment %q: tuned file %s: task %s, method %s: options %v, want the tune space's %d options: re-run `diffinv experiment tune`", e.Name, path, t.Key(), m.Key(), set, len(axes))
		}
		clean := map[string]any{}
		for _, a := range axes {
			v, ok := set[a.key]
			if !ok {
				return fmt.Errorf("experiment %q: tuned file %s: task %s, method %s: no value of %s: re-run `diffinv experiment tune`", e.Name, path, t.Key(), m.Key(), a.key)
			}
			s, err := scalar(v)
			if err != nil {
				return fmt.Errorf("experiment %q: tuned file %s: task %s, method %s, %s: %w", e.Name, path, t.Key(), m.Key(), a.key, err)
			}
			clean[a.key] = s
		}
		if tuned[t.Key()] == nil {
			tuned[t.Key()] = map[string]map[string]any{}
		}
		tuned[t.Key()][m.Key()] = clean
	}
	e.Tuned, e.TunedFile = tuned, &tf
	return nil
}

// TuneOptions configures Tune.
type TuneOptions struct {
	// Out is the output folder (empty: the experiment's Output); the
	// search goes to OUT/tune.
	Out string
	// Log and Progress are Run's (nil: standard error).
	Log, Progress io.Writer
	// Shard, when active, tunes only the task × method pairs i with
	// i mod Count = Index (pairs in table order); shards share the folder,
	// and whichever finds every pair's search complete writes the reports
	// and the tuned file.
	Shard Shard
	// runOpts are extra Run options (tests: a fixed bar clock).
	runOpts RunOptions
}

// trial is one searched point with its result.
type trial struct {
	task, method string
	index        int
	point        tunePoint
	cells        []cellData
	score        float64
	seconds      float64
	means        map[string]float64
	// failed is the error of a trial whose method diverged (ErrDiverged),
	// failedID its diverged cell: it has no score, and the search went on
	// past it.
	failed, failedID string
}

// failed counts the search's diverged trials.
func (s *pairSearch) failed() int {
	n := 0
	for _, tr := range s.trials {
		if tr.failed != "" {
			n++
		}
	}
	return n
}

// divergedCell returns the failure record of a cell among cells (one
// trial's) that has no result and whose method diverged.
func divergedCell(cdir string, cells []Cell) (failureRecord, bool) {
	for _, c := range cells {
		if _, err := loadResult(cdir, c); err == nil {
			continue
		}
		if rec, ok := loadFailure(cdir, c.ID); ok && rec.Diverged {
			return rec, true
		}
	}
	return failureRecord{}, false
}

// pairSearch is one task × method's search.
type pairSearch struct {
	task   Task
	method Method
	keys   []string
	axes   []tuneAxis
	trials []trial
	// xkey is the plotted option: the first range, else the first key;
	// random marks a space with a range (plotted as a scatter).
	xkey   string
	random bool
	// planned is the number of points; best indexes trials (−1: none).
	planned  int
	best     int
	stopped  string
	complete bool
	// allowed says whether the method accepts the options of a point (nil:
	// every point): a chosen value at an edge that is also the option's
	// bound (DDNM's η = 1) has nothing beyond it to try, and is not flagged.
	allowed func(pt tunePoint) bool
}

// Tune runs the search of every task × method with a tune space (see the
// comment at the top of tune.go), then writes OUT/tune/trials.csv, one plot
// per task × method under OUT/tune/plots and the tuned file.
func Tune(ctx context.Context, e *Experiment, runner CellRunner, opts TuneOptions) error {
	if err := e.Validate(); err != nil {
		return err
	}
	if e.Tune == nil {
		return fmt.Errorf("experiment %q: no tune section: nothing to tune", e.Name)
	}
	out := opts.Out
	if out == "" {
		out = e.Output
	}
	if out == "" {
		return fmt.Errorf("experiment %q: no output folder (set output in the file or pass --out)", e.Name)
	}
	if sh := opts.Shard; sh.Active() && (sh.Index < 0 || sh.Index >= sh.Count) {
		return fmt.Errorf("experiment %q: shard %s, want 0 ≤ K < N", e.Name, sh)
	}
	logw := opts.Log
	if logw == nil {
		logw = os.Stderr
	}
	if err := e.validateTuneCells(runner); err != nil {
		return err
	}
	pairs := e.tunePairs()
	for i, p := range pairs {
		if opts.Shard.Active() && i%opts.Shard.Count != opts.Shard.Index {
			continue
		}
		if _, err := e.searchPair(ctx, p, out, runner, opts, true); err != nil {
			return err
		}
	}
	// Every pair replayed from the stored results.
	var searches []*pairSearch
	for _, p := range pairs {
		s, err := e.searchPair(ctx, p, out, nil, opts, false)
		if err != nil {
			return err
		}
		s.allowed = e.allowedPoint(runner, p)
		if !s.complete {
			fmt.Fprintf(logw, "experiment %s, shard %s: done; the search of %s / %s is not complete yet (another shard's), so no tuned file yet\n", e.Name, opts.Shard, s.task.Key(), s.method.Key())
			return nil
		}
		searches = append(searches, s)
	}
	return e.writeTuneReports(searches, out, logw)
}

// validateTuneCells checks, before anything runs, the cells of every
// trial of every search (all shards') and those of every method without a
// space on the validation images, when the runner can validate cells: a
// misspelt option of the last method would otherwise surface hours into
// the tuning, or only in the table's run.
func (e *Experiment) validateTuneCells(runner CellRunner) error {
	v, ok := runner.(CellValidator)
	if !ok {
		return nil
	}
	var errs []error
	for _, t := range e.Tasks {
		for _, m := range e.Methods {
			if e.excluded(t, m) {
				continue
			}
			points := []tunePoint{{}}
			if m.Tune != nil {
				axes, err := parseSpace(m.Tune)
				if err != nil {
					return err
				}
				points = searchPoints(axes, e.Tune.trials(), e.Tune.Seed, t.Key(), m.Key())
			}
		points:
			for _, pt := range points {
				cells, err := e.pairExperiment(t, m, pt).Cells()
				if err != nil {
					return err
				}
				for _, c := range cells {
					if err := v.ValidateCell(c); err != nil {
						// the first failing trial of a task × method says it
						at := ""
						if len(pt) > 0 {
							at = " (" + pt.label() + ")"
						}
						errs = append(errs, fmt.Errorf("task %s, method %s%s: %w", t.Key(), m.Key(), at, err))
						break points
					}
				}
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("experiment %q: %w", e.Name, errors.Join(errs...))
	}
	return nil
}

// allowedPoint returns, for the task × method pair p, whether the method
// accepts a point's options, asked of the runner's cell validation; nil
// when the runner cannot validate cells. A point whose cells cannot be
// built counts as allowed, so that only a refusal by the method hides an
// edge.
func (e *Experiment) allowedPoint(runner CellRunner, p [2]int) func(pt tunePoint) bool {
	val, ok := runner.(CellValidator)
	if !ok {
		return nil
	}
	t, m := e.Tasks[p[0]], e.Methods[p[1]]
	return func(pt tunePoint) bool {
		cells, err := e.pairExperiment(t, m, pt).Cells()
		if err != nil || len(cells) == 0 {
			return true
		}
		return val.ValidateCell(cells[0]) == nil
	}
}

// pairExperiment is the experiment of one trial: the task, the method with
// the point's values over its set, the tune seeds, on the validation
// images.
func (e *Experiment) pairExperiment(t Task, m Method, p tunePoint) *Experiment {
	set := cloneSet(m.Set)
	for k, v := range p {
		set[k] = v
	}
	ms := []string{"psnr", "ssim", "consistency", "seconds"}
	if mm, _ := LookupMetric(e.Tune.metric()); mm.PerCell {
		ms = append(ms, mm.Name)
	}
	zero := 0
	return &Experiment{
		Name:         fmt.Sprintf("%s tune %s / %s (%s)", e.Name, t.Key(), m.Key(), p.label()),
		Checkpoint:   e.Checkpoint,
		Dataset:      e.Tune.Dataset,
		Tasks:        []Task{{Name: t.Name, Label: t.Label, Set: cloneSet(t.Set)}},
		Methods:      []Method{{Name: m.Name, Label: m.Label, Set: set}},
		Seeds:        e.tuneSeeds(),
		Metrics:      ms,
		Grid:         Grid{Images: &zero},
		Precision:    e.Precision,
		RunPrecision: e.RunPrecision,
		RunEngine:    e.RunEngine,
		Resolver:     e.Resolver,
	}
}

// pairDir is the folder of a task × method's search.
func pairDir(out string, t Task, m Method) string {
	return filepath.Join(out, TuneDir, slug(t.Key())+"."+slug(m.Key()))
}

// searchPair runs (compute) or replays (not compute: stored results only)
// the search of one task × method.
func (e *Experiment) searchPair(ctx context.Context, p [2]int, out string, runner CellRunner, opts TuneOptions, compute bool) (*pairSearch, error) {
	t, m := e.Tasks[p[0]], e.Methods[p[1]]
	axes, err := parseSpace(m.Tune)
	if err != nil {
		return nil, err
	}
	points := searchPoints(axes, e.Tune.trials(), e.Tune.Seed, t.Key(), m.Key())
	s := &pairSearch{task: t, method: m, axes: axes, planned: len(points), best: -1, stopped: "complete"}
	for _, a := range axes {
		s.keys = append(s.keys, a.key)
		if a.isRange() && !s.random {
			s.xkey, s.random = a.key, true
		}
	}
	if s.xkey == "" {
		s.xkey = s.keys[0]
	}
	dir := pairDir(out, t, m)
	cdir := filepath.Join(dir, CellsDir)
	metric, _ := LookupMetric(e.Tune.metric())
	budget := float64(e.Tune.Budget)
	spent := 0.0
	for k, pt := range points {
		if budget > 0 && k > 0 && spent >= budget {
			s.stopped = "budget"
			break
		}
		pe := e.pairExperiment(t, m, pt)
		cells, err := pe.Cells()
		if err != nil {
			return nil, err
		}
		load := func() ([]cellData, error) {
			var ds []cellData
			for _, c := range cells {
				r, err := loadResult(cdir, c)
				if err != nil {
					return nil, err
				}
				ds = append(ds, cellData{Cell: c, res: r})
			}
			return ds, nil
		}
		ds, err := load()
		var failed *failureRecord // the trial's diverged cell
		if err != nil {
			if rec, ok := divergedCell(cdir, cells); ok {
				failed = &rec
			} else if !compute {
				return s, nil // not complete
			} else {
				ro := opts.runOpts
				ro.Out, ro.Resume, ro.NoReports, ro.stopDiverged = dir, true, true, true
				ro.Log, ro.Progress = opts.Log, opts.Progress
				err := Run(ctx, pe, runner, ro)
				switch {
				case errors.Is(err, ErrDiverged) && ctx.Err() == nil:
					rec, ok := divergedCell(cdir, cells)
					if !ok {
						return nil, fmt.Errorf("experiment %q: tune %s / %s: %w (and its failure record is unreadable)", e.Name, t.Key(), m.Key(), err)
					}
					failed = &rec
					logw := opts.Log
					if logw == nil {
						logw = os.Stderr
					}
					fmt.Fprintf(logw, "experiment %s: tune %s / %s: the trial %s diverged; it scores nothing and the search goes on (%s)\n", e.Name, t.Key(), m.Key(), pt.label(), rec.Error)
				case err != nil:
					return nil, err
				}
				if failed == nil {
					if ds, err = load(); err != nil {
						return nil, fmt.Errorf("experiment %q: tune %s / %s: %w", e.Name, t.Key(), m.Key(), err)
					}
				}
			}
		}
		tr := trial{task: t.Key(), method: m.Key(), index: k, point: pt, cells: ds, means: map[string]float64{}}
		sec, _ := LookupMetric("seconds")
		if failed != nil {
			// No score; its time counts against the budget: the cells that
			// finished and the diverged one's run up to its failure.
			tr.failed, tr.failedID, tr.score, tr.seconds = failed.Error, failed.ID, math.NaN(), failed.Seconds
			for _, name := range pe.Metrics {
				tr.means[name] = math.NaN()
			}
			tr.cells = nil
			for _, c := range cells {
				if r, err := loadResult(cdir, c); err == nil {
					d := cellData{Cell: c, res: r}
					tr.cells = append(tr.cells, d)
					tr.seconds += d.value(sec) * float64(len(r.Images))
				}
			}
		} else {
			for _, name := range pe.Metrics {
				mm, _ := LookupMetric(name)
				var xs []float64
				for _, d := range ds {
					xs = append(xs, d.value(mm))
				}
				tr.means[name] = mean(xs)
			}
			tr.score = tr.means[metric.Name]
			for _, d := range ds {
				tr.seconds += d.value(sec) * float64(len(d.res.Images))
			}
		}
		spent += tr.seconds
		s.trials = append(s.trials, tr)
		if !math.IsNaN(tr.score) && (s.best < 0 || better(metric, tr.score, s.trials[s.best].score)) {
			s.best = len(s.trials) - 1
		}
	}
	s.complete = true
	if s.best < 0 {
		if n := s.failed(); n == len(s.trials) {
			return nil, fmt.Errorf("experiment %q: tune %s / %s: every trial diverged (%d of %d; the last: %s): widen the search space towards smaller step sizes", e.Name, t.Key(), m.Key(), n, len(s.trials), s.trials[len(s.trials)-1].failed)
		}
		return nil, fmt.Errorf("experiment %q: tune %s / %s: no trial scored a %s (every value NaN)", e.Name, t.Key(), m.Key(), metric.Name)
	}
	return s, nil
}

// better reports whether a beats b under m's direction.
func better(m Metric, a, b float64) bool {
	if m.HigherBetter {
		return a > b
	}
	return a < b
}

// writeTuneReports writes trials.csv, the plots and the tuned file.
func (e *Experiment) writeTuneReports(searches []*pairSearch, out string, logw io.Writer) error {
	dir := filepath.Join(out, TuneDir)
	if err := os.MkdirAll(filepath.Join(dir, PlotsDir), 0o755); err != nil {
		return err
	}
	// trials.csv: one row per trial, one column per option key of any space.
	keySet := map[string]bool{}
	for _, s := range searches {
		for _, k := range s.keys {
			keySet[k] = true
		}
	}
	var keys []string
	for k := range keySet {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	metric, _ := LookupMetric(e.Tune.metric())
	ms := []string{"psnr", "ssim", "consistency"}
	if metric.PerCell {
		ms = append(ms, metric.Name)
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	head := []string{"task", "method", "trial"}
	for _, k := range keys {
		head = append(head, "opt."+k)
	}
	head = append(head, ms...)
	head = append(head, "score", "seconds", "chosen", "cells", "failed")
	w.Write(head)
	tf := &TunedFile{Experiment: e.Name, TunedOn: e.Tune.Dataset, Seeds: e.tuneSeeds(), Metric: metric.Name,
		Settings: map[string]map[string]map[string]any{}, Search: map[string]map[string]TunedSearch{}}
	for _, s := range searches {
		for i, tr := range s.trials {
			row := []string{tr.task, tr.method, strconv.Itoa(tr.index + 1)}
			for _, k := range keys {
				v, ok := tr.point[k]
				if ok {
					row = append(row, display(v))
				} else {
					row = append(row, "")
				}
			}
			for _, name := range ms {
				row = append(row, formatFloat(tr.means[name]))
			}
			var ids []string
			for _, d := range tr.cells {
				ids = append(ids, d.ID)
			}
			if tr.failedID != "" {
				ids = append(ids, tr.failedID)
			}
			row = append(row, formatFloat(tr.score), formatFloat(tr.seconds), strconv.FormatBool(i == s.best), strings.Join(ids, " "), tr.failed)
			w.Write(row)
		}
		b := s.trials[s.best]
		tk, mk := s.task.Key(), s.method.Key()
		if tf.Settings[tk] == nil {
			tf.Settings[tk] = map[string]map[string]any{}
			tf.Search[tk] = map[string]TunedSearch{}
		}
		tf.Settings[tk][mk] = b.point
		spent := 0.0
		for _, tr := range s.trials {
			spent += tr.seconds
		}
		edge, unexplored, edgeNote := s.edges()
		tf.Search[tk][mk] = TunedSearch{Score: b.score, Trials: len(s.trials), Planned: s.planned, Seconds: spent, Stopped: s.stopped, Diverged: s.failed(), Edge: edge, Unexplored: unexplored}
		plotBytes, err := tunePlot(s, metric)
		if err != nil {
			return fmt.Errorf("experiment %q: tune plot %s / %s: %w", e.Name, tk, mk, err)
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, PlotsDir, slug(tk)+"."+slug(mk)+".png"), plotBytes); err != nil {
			return err
		}
		div := ""
		if n := s.failed(); n > 0 {
			div = fmt.Sprintf(", %d diverged", n)
		}
		fmt.Fprintf(logw, "tuned %s / %s: %s (%s %s over %d of %d trials%s, %.1f s; %s)%s\n", tk, mk, b.point.label(), metric.Name, fmt.Sprintf(metric.Format, b.score), len(s.trials), s.planned, div, spent, s.stopped, edgeNote)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "trials.csv"), buf.Bytes()); err != nil {
		return err
	}
	doc, err := yaml.Marshal(tf)
	if err != nil {
		return err
	}
	head2 := fmt.Sprintf("# Written by `diffinv experiment tune` for experiment %s: the options each method's search\n# chose per task on %d images of %s (indices %d–%d), seeds %v, by %s.\n# `diffinv experiment run` merges settings into the table's cells. The search: %s.\n",
		e.Name, e.Tune.Dataset.N, e.Tune.Dataset.Name, e.Tune.Dataset.Offset, e.Tune.Dataset.Offset+e.Tune.Dataset.N-1, e.tuneSeeds(), metric.Name, filepath.Join(dir, "trials.csv"))
	path := e.TunedPath(out)
	if d := filepath.Dir(path); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := atomicfile.WriteFile(path, append([]byte(head2), doc...)); err != nil {
		return err
	}
	fmt.Fprintf(logw, "experiment %s: tuned settings in %s, the search in %s\n", e.Name, path, dir)
	return nil
}

// tunedNote is table.md's paragraph on tuned settings ("" without).
func (e *Experiment) tunedNote() string {
	tf := e.TunedFile
	if tf == nil || len(e.Tuned) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Tuned settings\n\nThese options were tuned on a validation split, %d images of %s (indices %d–%d), disjoint from the test images above: each method's search space, best mean %s over seeds %v (`diffinv experiment tune`; the search in %s/trials.csv).\n\n",
		tf.TunedOn.N, tf.TunedOn.Name, tf.TunedOn.Offset, tf.TunedOn.Offset+tf.TunedOn.N-1, tf.Metric, tf.Seeds, TuneDir)
	var cols []string
	for _, t := range e.Tasks {
		cols = append(cols, t.Key())
	}
	writeTableHead(&b, cols)
	for _, m := range e.Methods {
		if m.Tune == nil {
			continue
		}
		fmt.Fprintf(&b, "| %s |", mdCell(m.Key()))
		for _, t := range e.Tasks {
			set, ok := e.Tuned[t.Key()][m.Key()]
			if !ok {
				b.WriteString(" – |")
				continue
			}
			fmt.Fprintf(&b, " %s |", mdCell(tunePoint(set).label()))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// tunePlot draws a search: the metric (mean over seeds) against the first
// option (of a random search: its first range), one line per value of the
// other options; for random points with several options, or more than six
// lines, one scatter. The chosen trial is
// ringed. Numeric values are placed by value (log axis when positive and
// spanning a factor ≥ 20), others evenly in order of appearance.
func tunePlot(s *pairSearch, m Metric) ([]byte, error) {
	key := s.xkey
	// x positions
	numeric := true
	for _, tr := range s.trials {
		if _, ok := params.Number(tr.point[key]); !ok {
			numeric = false
		}
	}
	pos := map[string]float64{}
	var ticks []plot.Tick
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, tr := range s.trials {
		c := canonical(tr.point[key])
		if _, ok := pos[c]; ok {
			continue
		}
		if numeric {
			pos[c], _ = params.Number(tr.point[key])
		} else {
			pos[c] = float64(len(pos))
		}
		ticks = append(ticks, plot.Tick{Value: pos[c], Label: display(tr.point[key])})
		lo, hi = math.Min(lo, pos[c]), math.Max(hi, pos[c])
	}
	logX := numeric && lo > 0 && hi/lo >= 20
	// series by the other options' values
	type series struct {
		label string
		pts   plotter.XYs
		fail  []float64 // x of the diverged trials: the line breaks there
	}
	var order []string
	ser := map[string]*series{}
	for _, tr := range s.trials {
		others := tunePoint{}
		for k, v := range tr.point {
			if k != key {
				others[k] = v
			}
		}
		l := others.label()
		if ser[l] == nil {
			ser[l] = &series{label: l}
			order = append(order, l)
		}
		if tr.failed != "" {
			ser[l].fail = append(ser[l].fail, pos[canonical(tr.point[key])])
		}
		if math.IsNaN(tr.score) || math.IsInf(tr.score, 0) {
			continue
		}
		ser[l].pts = append(ser[l].pts, plotter.XY{X: pos[canonical(tr.point[key])], Y: tr.score})
	}
	scatterOnly := (s.random && len(s.keys) > 1) || len(order) > 6
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s / %s: %s on the validation images", s.task.Key(), s.method.Key(), m.Title)
	p.X.Label.Text = key
	p.Y.Label.Text = m.Title
	if logX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	// A category axis, or a numeric one with few values (a grid), is
	// labelled at the values tried; a random search's many points get the
	// scale's own ticks.
	if !numeric || len(ticks) <= 8 {
		p.X.Tick.Marker = plot.ConstantTicks(ticks)
	}
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	entries := 0 // legend entries
	if scatterOnly {
		var all plotter.XYs
		for _, l := range order {
			all = append(all, ser[l].pts...)
		}
		if len(all) > 0 {
			sc, err := plotter.NewScatter(all)
			if err != nil {
				return nil, err
			}
			sc.Color = plotutil.Color(0)
			p.Add(sc)
			var others []string
			for _, k := range s.keys {
				if k != key {
					others = append(others, k)
				}
			}
			p.Legend.Add(fmt.Sprintf("trials (%s vary)", strings.Join(others, ", ")), sc)
			entries++
		}
	} else {
		for si, l := range order {
			pts := ser[l].pts
			if len(pts) == 0 {
				continue
			}
			sort.SliceStable(pts, func(i, j int) bool { return pts[i].X < pts[j].X })
			for k, seg := range splitAt(pts, ser[l].fail) {
				line, sc, err := plotter.NewLinePoints(seg)
				if err != nil {
					return nil, err
				}
				line.Color, sc.Color, sc.Shape = plotutil.Color(si), plotutil.Color(si), plotutil.Shape(si)
				p.Add(line, sc)
				if l != "" && k == 0 {
					p.Legend.Add(l, line, sc)
					entries++
				}
			}
		}
	}
	// Diverged trials: a cross on the bottom of the plot at their value.
	var crosses plotter.XYs
	for _, tr := range s.trials {
		if tr.failed != "" {
			crosses = append(crosses, plotter.XY{X: pos[canonical(tr.point[key])], Y: p.Y.Min})
		}
	}
	if len(crosses) > 0 {
		sc, err := plotter.NewScatter(crosses)
		if err != nil {
			return nil, err
		}
		sc.Color, sc.Shape, sc.Radius = color.RGBA{R: 200, A: 255}, draw.CrossGlyph{}, vg.Points(5)
		p.Add(sc)
		p.Legend.Add("diverged (no score)", sc)
		entries++
	}
	b := s.trials[s.best]
	ring, err := plotter.NewScatter(plotter.XYs{{X: pos[canonical(b.point[key])], Y: b.score}})
	if err != nil {
		return nil, err
	}
	ring.Radius = vg.Points(6)
	ring.Color = color.RGBA{R: 220, A: 255}
	ring.GlyphStyle.Shape = draw.RingGlyph{}
	p.Add(ring)
	// The choice goes in the title, not the legend: a legend glyph sits
	// inside the plot and a ring there reads as one more trial.
	p.Title.Text += fmt.Sprintf("\nringed: the chosen %s (%s %.4g)", b.point.label(), m.Title, b.score)
	if n := s.failed(); n > 0 {
		var at []string
		for _, tr := range s.trials {
			if tr.failed != "" {
				at = append(at, display(tr.point[key]))
			}
		}
		p.Title.Text += fmt.Sprintf("; diverged: %s = %s", key, strings.Join(at, ", "))
	}
	// The series' legend sits inside the top of the plot: raise the y
	// range so that its entries never fall on the data.
	if entries > 0 {
		if span := p.Y.Max - p.Y.Min; span > 0 {
			p.Y.Max += span * 0.12 * float64(entries)
		} else {
			p.Y.Max += 0.5*math.Abs(p.Y.Max) + 1
		}
	}
	var buf bytes.Buffer
	wt, err := p.WriterTo(6*vg.Inch, 4*vg.Inch, "png")
	if err != nil {
		return nil, err
	}
	if _, err := wt.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// edges returns the options whose chosen value lies at the edge of the
// search, where a better value may lie beyond it: on a numeric grid, the
// smallest or largest value listed; on a range, the smallest or largest
// value tried (of the trials that scored) when it also lies in the outer
// quarter of the range (on a log scale for a log range); an edge that is
// also the option's bound (s.allowed refuses a value just beyond it) is not
// one. Each is "KEY low" or "KEY high". unexplored names, in the same
// form, a range's chosen value that is the smallest or largest tried but
// lies inside the range and no trial, diverged ones included, went beyond
// it: the stretch was never tried (the first PnP-DM search chose ρ_min 0.22
// of [0.1, 1] with no trial below it).
// note is the log's sentence on both ("" without).
func (s *pairSearch) edges() (edge, unexplored []string, note string) {
	if s.best < 0 {
		return nil, nil, ""
	}
	b := s.trials[s.best]
	var parts []string
	for _, a := range s.axes {
		v, ok := params.Number(b.point[a.key])
		if !ok {
			continue
		}
		lo, hi := math.Inf(1), math.Inf(-1)
		if a.isRange() {
			for _, tr := range s.trials {
				if x, ok := params.Number(tr.point[a.key]); ok && tr.failed == "" {
					lo, hi = math.Min(lo, x), math.Max(hi, x)
				}
			}
		} else {
			for _, x := range a.values {
				if f, ok := params.Number(x); ok {
					lo, hi = math.Min(lo, f), math.Max(hi, f)
				} else {
					lo = math.NaN() // a non-numeric grid has no edge
				}
			}
		}
		if math.IsNaN(lo) || !(lo < hi) {
			continue
		}
		side := ""
		switch v {
		case lo:
			side = "low"
		case hi:
			side = "high"
		}
		if side == "" {
			continue
		}
		word, end, bound := "smallest", "bottom", a.lo
		if side == "high" {
			word, end, bound = "largest", "top", a.hi
		}
		if a.isRange() {
			at := (v - a.lo) / (a.hi - a.lo)
			if a.dist == "log" {
				at = math.Log(v/a.lo) / math.Log(a.hi/a.lo)
			}
			if (side == "low" && at > 0.25) || (side == "high" && at < 0.75) {
				if triedBeyond(s.trials, a.key, v, side) {
					continue // diverged trials lie beyond: explored
				}
				unexplored = append(unexplored, a.key+" "+side)
				parts = append(parts, fmt.Sprintf("%s = %s is the %s value tried, with no trial between it and the range's %s %s: that stretch is unexplored (a grid or more trials)", a.key, display(b.point[a.key]), word, end, display(bound)))
				continue
			}
		}
		if s.allowed != nil {
			// the chosen point with this option a step beyond the edge,
			// refused by the method (the chosen point itself accepted):
			// the edge is the option's bound, nothing beyond it to try
			step := 1e-6 * math.Max(math.Abs(v), 1)
			if side == "low" {
				step = -step
			}
			beyond := tunePoint{}
			for k, x := range b.point {
				beyond[k] = x
			}
			beyond[a.key] = v + step
			if !s.allowed(beyond) && s.allowed(b.point) {
				continue
			}
		}
		edge = append(edge, a.key+" "+side)
		if a.isRange() {
			parts = append(parts, fmt.Sprintf("%s = %s is the %s value tried, near the range's %s %s", a.key, display(b.point[a.key]), word, end, display(bound)))
		} else {
			parts = append(parts, fmt.Sprintf("%s = %s is the %s value listed", a.key, display(b.point[a.key]), word))
		}
	}
	if len(parts) == 0 {
		return nil, nil, ""
	}
	return edge, unexplored, "; at the edge: " + strings.Join(parts, ", ") + ": a better value may lie beyond"
}

// triedBeyond reports whether a trial, diverged ones included, set key
// beyond v on side ("low": below it, "high": above it).
func triedBeyond(trials []trial, key string, v float64, side string) bool {
	for _, tr := range trials {
		if x, ok := params.Number(tr.point[key]); ok && ((side == "low" && x < v) || (side == "high" && x > v)) {
			return true
		}
	}
	return false
}

// splitAt splits pts, sorted by x, into runs with no x of fail strictly
// between neighbours: one line per run, since a line across a diverged
// trial's value would read as a score there.
func splitAt(pts plotter.XYs, fail []float64) []plotter.XYs {
	var out []plotter.XYs
	start := 0
	for k := range pts {
		if k+1 < len(pts) && !slices.ContainsFunc(fail, func(x float64) bool { return x > pts[k].X && x < pts[k+1].X }) {
			continue
		}
		out = append(out, pts[start:k+1])
		start = k + 1
	}
	return out
}

// TuneState is how far an experiment's tuning has got, from the trials
// stored under its output folder (`experiment status`).
type TuneState struct {
	// Searches is the number of task × method searches; Complete of them
	// are finished (all their points, or their budget spent).
	Searches, Complete int
	// Trials is the number of trials stored, Planned the points of all
	// searches (a search with a budget may stop before its last).
	Trials, Planned int
	// Diverged counts the stored trials whose method diverged.
	Diverged int
	// Seconds is the stored trials' measured time in all.
	Seconds float64
	// LeftSeconds estimates the trial time still to run: each unfinished
	// search's trials left at its method's mean trial time so far (on any
	// task), capped by what is left of its budget, or that budget where the
	// method has no trial yet (a search may overrun its budget by one
	// trial); NaN when a search has neither a budget nor a timed trial of
	// its method.
	LeftSeconds float64
	// Written reports whether the tuned file exists.
	Written bool
}

// TuneProgress replays every search of e from the stored trials in out
// (the file's output folder when empty), running nothing.
func TuneProgress(ctx context.Context, e *Experiment, out string) (TuneState, error) {
	var st TuneState
	if e.Tune == nil {
		return st, fmt.Errorf("experiment %q: no tune section", e.Name)
	}
	if out == "" {
		out = e.Output
	}
	budget := float64(e.Tune.Budget)
	var searches []*pairSearch
	perMethod := map[string][]float64{} // trial seconds by method, any task
	for _, p := range e.tunePairs() {
		s, err := e.searchPair(ctx, p, out, nil, TuneOptions{}, false)
		if err != nil {
			return st, err
		}
		searches = append(searches, s)
		for _, tr := range s.trials {
			perMethod[s.method.Key()] = append(perMethod[s.method.Key()], tr.seconds)
		}
	}
	for _, s := range searches {
		st.Searches++
		st.Planned += s.planned
		st.Trials += len(s.trials)
		st.Diverged += s.failed()
		spent := 0.0
		for _, tr := range s.trials {
			spent += tr.seconds
		}
		st.Seconds += spent
		if s.complete {
			st.Complete++
			continue
		}
		// The trials left at the method's mean trial time so far (on any
		// task), within what is left of the budget; the budget left
		// where the method has no trial yet.
		left := math.NaN()
		if ts := perMethod[s.method.Key()]; len(ts) > 0 {
			left = float64(s.planned-len(s.trials)) * mean(ts)
		}
		if budget > 0 {
			rest := math.Max(budget-spent, 0)
			if math.IsNaN(left) || left > rest {
				left = rest
			}
		}
		st.LeftSeconds += left
	}
	if _, err := os.Stat(e.TunedPath(out)); err == nil {
		st.Written = true
	}
	return st, nil
}
