// Package runner runs experiment cells: it is the experiment.CellRunner
// (and the Experiment's Resolver) that turns a cell of an experiment file
// into a solve and its scores. For each cell it opens the checkpoint
// (prior.Open, cached per path), layers the cell's task preset and its task
// and method settings over the checkpoint's run config, builds the
// pipeline of `diffinv solve` (pipeline.New) on the cell's images, and
// computes the per-image metrics and, on a feature classifier, FID and KID.
//
// It lives outside package main so that the cell runner is a library like
// the experiment engine and the pipeline it joins: the command only parses
// flags and hands the runner what is the command's to decide (the layers
// on each checkpoint's config, the engine that runs the network, where
// images come from).
//
// A cell's settings reach the config as a typed layer (config.Sources
// Layers), not as "key=value" text parsed again: a value keeps the type the
// experiment file gave it.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"gonum.org/v1/gonum/mat"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/experiment"
	"github.com/diffinv/diffinv/inverse/baseline"
	"github.com/diffinv/diffinv/inverse/op"
	"github.com/diffinv/diffinv/inverse/pipeline"
	"github.com/diffinv/diffinv/inverse/solve"
	"github.com/diffinv/diffinv/inverse/task"
	"github.com/diffinv/diffinv/metrics"
	"github.com/diffinv/diffinv/prior"
)

// Runner runs experiment cells through the solve pipeline, caching the
// network of each checkpoint, and the classifier and the FID reference,
// across cells. Its methods are safe for concurrent use (cells run one at
// a time).
type Runner struct {
	// TasksDir is the folder of task presets (task.DefaultDir).
	TasksDir string
	// Classifier is the feature net of FID and KID on MNIST cells.
	Classifier string
	// FaceClassifier is the feature net of FID and KID on CelebA cells (the
	// face attribute classifier); their reference is 1000 test faces, as
	// eval samples' face gate uses.
	FaceClassifier string
	// Sources are the layers over each checkpoint's run config
	// (prior.Open): the command's environment and its --precision.
	Sources config.Sources
	// Network returns the opened checkpoint's network as the engine runs
	// it, predicting what p.Config.Diffusion says (it chooses the engine
	// and sets the precision); nil: p.Net as it is.
	Network func(p *prior.Prior) (diffusion.Denoiser, error)
	// Images returns the cell's ground-truth images (N×C×H×W in [−1, 1])
	// for the network's config, and the dataset index of the first.
	Images func(cfg *config.Config, d experiment.Dataset) (*tensor.Dense, int, error)
	// TrainProgress receives a training cell's progress bar (nil: none).
	TrainProgress io.Writer
	// TrainData, when set, returns the data a training cell trains on
	// (nil: train.Run loads the config's data section).
	TrainData func(cfg *config.Config) (*data.Dataset, error)
	// EvalReference, when set, returns the classifier and reference set a
	// training cell is evaluated against (nil: Classifier and the MNIST
	// test set of the config's data.dir).
	EvalReference func(cfg *config.Config) (*metrics.Classifier, *metrics.Reference, error)

	mu         sync.Mutex
	nets       map[string]*net
	classifier *metrics.Classifier
	ref        *mat.Dense
	faces      *metrics.AttrClassifier
	faceRef    *mat.Dense
	// a training cell's evaluation classifier and reference, cached
	evalClassifier *metrics.Classifier
	reference      *metrics.Reference
	// stopAt > 0 stops every training cell after that step with an error,
	// as a kill would (tests).
	stopAt int
}

// net is an opened checkpoint with its schedule and ε-denoiser.
type net struct {
	cfg   *config.Config
	den   diffusion.Denoiser
	sched *diffusion.Schedule
}

func (r *Runner) net(path string) (*net, error) {
	if n, ok := r.nets[path]; ok {
		return n, nil
	}
	p, err := prior.Open(path, r.Sources)
	if err != nil {
		return nil, err
	}
	var den diffusion.Denoiser = p.Net
	if r.Network != nil {
		if den, err = r.Network(p); err != nil {
			return nil, err
		}
	}
	sched, den, err := prior.ScheduleFor(p.Config.Diffusion, 0, den)
	if err != nil {
		return nil, err
	}
	n := &net{cfg: p.Config, den: den, sched: sched}
	if r.nets == nil {
		r.nets = map[string]*net{}
	}
	r.nets[path] = n
	return n, nil
}

// Config returns the run config of the checkpoint at path under Sources
// (what its cells start from), opening it as a cell would.
func (r *Runner) Config(path string) (*config.Config, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, err := r.net(path)
	if err != nil {
		return nil, err
	}
	return n.cfg, nil
}

// Layer is the config layer of a cell's settings: solver.method, the task's
// set (config keys) and the method's set (solver options, under solver.),
// with the values as the experiment file typed them.
func Layer(cell experiment.Cell) map[string]any {
	l := map[string]any{"solver.method": cell.Method.Name}
	for k, v := range cell.Task.Set {
		l[k] = v
	}
	for k, v := range cell.Method.Set {
		l["solver."+k] = v
	}
	return l
}

// cellConfig loads the cell's task preset and returns the config its task
// and method settings resolve to on the checkpoint's, with the preset's
// solver defaults for the method.
//
// A solve cell of a trained model (cell.Trained) starts from its training
// cell's config instead (what the model's file will record), so that it
// resolves alike before and after the training; n is then nil.
func (r *Runner) cellConfig(cell experiment.Cell) (*config.Config, map[string]any, *net, error) {
	var base *config.Config
	var n *net
	var err error
	if cell.Trained != nil {
		if base, err = r.TrainConfig(*cell.Trained); err != nil {
			return nil, nil, nil, err
		}
	} else {
		if n, err = r.net(cell.Checkpoint); err != nil {
			return nil, nil, nil, err
		}
		base = n.cfg
	}
	preset, err := task.LoadVariant(cell.Task.Name, r.TasksDir, task.Variant(*base))
	if err != nil {
		return nil, nil, nil, err
	}
	cfg, err := config.LoadOnto(*base, config.Sources{Presets: []config.Preset{preset.Config}, Layers: []map[string]any{Layer(cell)}})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("task %s, method %s: %w", cell.Task.Name, cell.Method.Name, err)
	}
	return cfg, preset.Defaults(cell.Method.Name), n, nil
}

// setup builds the pipeline of one cell without running it.
func (r *Runner) setup(cell experiment.Cell) (*pipeline.Setup, *net, error) {
	cfg, defaults, n, err := r.cellConfig(cell)
	if err != nil {
		return nil, nil, err
	}
	if n == nil { // a trained model: there once its training cell ran
		if n, err = r.net(cell.Checkpoint); err != nil {
			return nil, nil, err
		}
	}
	s, err := pipeline.New(cfg, n.den, n.sched, defaults, cell.Seed)
	if err != nil {
		return nil, nil, fmt.Errorf("task %s, method %s: %w", cell.Task.Name, cell.Method.Name, err)
	}
	return s, n, nil
}

// solveSetup is setup for running the cell: a solver cell without the
// solve's comparison baseline (solver.baseline, "auto" by default), which a cell
// never reports (a table has its baselines as rows of their own) and which
// can cost more than the solve: for phase retrieval "auto" is HIO, 10,000
// iterations × 4 restarts, about 16 s per 28-px digit against DPS's 5.4.
// The setting stays in the cell's resolved settings, so identities and
// results are unchanged.
func (r *Runner) solveSetup(cell experiment.Cell) (*pipeline.Setup, *net, error) {
	s, n, err := r.setup(cell)
	if err != nil {
		return nil, nil, err
	}
	if !baseline.IsMethod(s.Method) { // a classical method's baseline is its solve
		s.Baseline = "none"
	}
	return s, n, nil
}

// ResolveCell is the experiment's Resolver: the settings that determine
// the cell's result beyond the checkpoint (whose content the identity
// already covers), as the sorted "key: value" lines of config's Flat form
// of the sections the solve reads (measurement, solver, diffusion), after
// the task preset, the cell's sets and, for a solver, the preset's
// solver_defaults merged under its options, as pipeline.New layers them.
// Lines equal to the defaults are left out, so a key added to the config
// later (with its default) changes no identity, and neither does a
// preset's comment or key order; any changed value does.
func (r *Runner) ResolveCell(cell experiment.Cell) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cell.Train != nil {
		cfg, err := r.TrainConfig(cell)
		if err != nil {
			return nil, err
		}
		return ResolvedTraining(cfg), nil
	}
	cfg, defaults, _, err := r.cellConfig(cell)
	if err != nil {
		return nil, err
	}
	return ResolvedSettings(cfg, defaults), nil
}

// ResolvedSettings is ResolveCell's description of cfg with the task's
// solver defaults.
func ResolvedSettings(cfg *config.Config, taskDefaults map[string]any) []string {
	def := config.Default()
	eff := def
	eff.Measurement = cfg.Measurement
	eff.Diffusion = cfg.Diffusion
	eff.Solver = cfg.Solver
	eff.Solver.Options = map[string]any{}
	if !baseline.IsMethod(cfg.Solver.Method) {
		maps.Copy(eff.Solver.Options, taskDefaults)
	}
	maps.Copy(eff.Solver.Options, cfg.Solver.Options)
	out := changedLines(&eff, func(string) bool { return true }, "measurement.", "solver.", "diffusion.")
	// A solver or operator whose results changed for the same settings
	// carries its revision, so older results are not reused for it.
	if rev := solve.Revision(cfg.Solver.Method); rev > 1 {
		out = append(out, fmt.Sprintf("solver.revision: %d", rev))
	}
	if rev := op.Revision(cfg.Measurement.Operator.Name); rev > 1 {
		out = append(out, fmt.Sprintf("measurement.operator.revision: %d", rev))
	}
	sort.Strings(out)
	return out
}

// ValidateCell checks a cell's task, method and options before anything runs.
func (r *Runner) ValidateCell(cell experiment.Cell) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cell.Train != nil {
		return r.validateTrainCell(cell)
	}
	if cell.Trained != nil {
		// The model does not exist before its training cell ran: check
		// the settings only.
		if _, _, _, err := r.cellConfig(cell); err != nil {
			return err
		}
	} else if _, _, err := r.setup(cell); err != nil {
		return err
	}
	kind, _, err := data.ParseSplitName(cell.Dataset.Name)
	if err != nil {
		return fmt.Errorf("dataset.name: %w", err)
	}
	for _, m := range cell.Metrics {
		if m != "fid" && m != "kid" {
			continue
		}
		switch kind {
		case "mnist":
			if _, err := os.Stat(r.Classifier); err != nil {
				return fmt.Errorf("metric %s needs the classifier: %w", m, err)
			}
		case "celeba":
			if _, err := os.Stat(r.FaceClassifier); err != nil {
				return fmt.Errorf("metric %s on dataset %s needs the face attribute classifier: %w", m, cell.Dataset.Name, err)
			}
		default:
			return fmt.Errorf("metric %s on dataset %s: experiment cells compute FID and KID on MNIST (the digit classifier's features) and CelebA (the face attribute classifier's) only", m, cell.Dataset.Name)
		}
	}
	return nil
}

// RunCell solves the cell's images and scores them.
func (r *Runner) RunCell(ctx context.Context, cell experiment.Cell, progress func(done, total int)) (*experiment.CellResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cell.Train != nil {
		return r.runTrainCell(ctx, cell, progress)
	}
	s, n, err := r.solveSetup(cell)
	if err != nil {
		return nil, err
	}
	if r.Images == nil {
		return nil, fmt.Errorf("runner: no image source (Runner.Images)")
	}
	x, first, err := r.Images(n.cfg, cell.Dataset)
	if err != nil {
		return nil, err
	}
	if cell.Dir != "" {
		s.Store = batchStore{dir: filepath.Join(cell.Dir, experiment.BatchesDir)}
	}
	res, err := s.Solve(ctx, x, first, progress)
	if errors.Is(err, solve.ErrDiverged) {
		return nil, experiment.Diverged(err) // a tuning search goes on past it
	} else if err != nil {
		return nil, err
	}
	out := &experiment.CellResult{CellMetrics: map[string]float64{},
		Grid: &experiment.GridImages{Truth: res.Truth, Y: pipeline.DisplayY(res.Y, s.A, s.Shape[0], s.Shape[1], s.Shape[2]), Recon: res.Recon}}
	for i := range res.PSNR {
		out.Images = append(out.Images, experiment.ImageMetrics{Index: first + i, Values: map[string]float64{
			"psnr": res.PSNR[i], "ssim": res.SSIM[i], "consistency": res.Consistency[i], "seconds": res.SecondsPerImage}})
	}
	if wants(cell.Metrics, "fid") || wants(cell.Metrics, "kid") {
		if err := r.featureMetrics(n.cfg, res.Recon, cell, out.CellMetrics); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// featureMetrics computes FID and KID of the reconstructions against the
// MNIST test set on the classifier's features, or for CelebA cells against
// 1000 test faces on the face attribute classifier's.
func (r *Runner) featureMetrics(cfg *config.Config, recon *tensor.Dense, cell experiment.Cell, into map[string]float64) error {
	if kind, _, _ := data.ParseSplitName(cell.Dataset.Name); kind == "celeba" {
		if r.faces == nil {
			c, err := metrics.LoadAttrClassifier(r.FaceClassifier)
			if err != nil {
				return err
			}
			s := cfg.Model.ImageSize
			test, _, err := data.LoadCelebA(cfg.Data.Dir, "test", s, cfg.Data.Crop, 1000)
			if err != nil {
				return fmt.Errorf("fid/kid reference: %w", err)
			}
			out, err := c.DatasetForward(test, 64)
			if err != nil {
				return fmt.Errorf("fid/kid reference: %w", err)
			}
			r.faces, r.faceRef = c, out.Features
		}
		out, err := r.faces.Forward(recon)
		if err != nil {
			return err
		}
		return featureDistances(out.Features, r.faceRef, cell, into)
	}
	if r.classifier == nil {
		c, err := metrics.LoadClassifier(r.Classifier)
		if err != nil {
			return err
		}
		test, err := data.LoadMNIST(cfg.Data.Dir, "test")
		if err != nil {
			return fmt.Errorf("fid/kid reference: %w", err)
		}
		ref, err := metrics.NewReference(c, test)
		if err != nil {
			return err
		}
		r.classifier, r.ref = c, ref.Features
	}
	feat, err := r.classifier.Features(recon)
	if err != nil {
		return err
	}
	return featureDistances(feat, r.ref, cell, into)
}

// featureDistances writes the FID and KID (as the cell asks) of features
// feat against ref into into.
func featureDistances(feat, ref *mat.Dense, cell experiment.Cell, into map[string]float64) error {
	if wants(cell.Metrics, "fid") {
		fid, err := metrics.FID(feat, ref)
		if err != nil {
			return err
		}
		into["fid"] = fid
	}
	if wants(cell.Metrics, "kid") {
		kid, err := metrics.KID(feat, ref, metrics.KIDOptions{Subsets: 50, SubsetSize: 1000}, rand.New(rand.NewSource(cell.Seed)))
		if err != nil {
			return err
		}
		into["kid"] = kid.Mean
	}
	return nil
}

func wants(ms []string, m string) bool {
	for _, x := range ms {
		if x == m {
			return true
		}
	}
	return false
}

// CellCost is the runner's estimate of a cell's cost for balancing shards:
// images × network evaluations per image, from the method's resolved
// options (solver.*) or its defaults: the solver's steps, times 3 for the
// methods that back-propagate through the network each step (DPS, MCG,
// ΠGDM, moment matching); DAPS's annealing levels × ODE steps; PnP-DM's
// iterations × about 29.4 calls each (2936 calls for its default 100: the
// prior steps walk fewer levels as ρ anneals); a classical baseline costs
// its images. A training cell costs 3 × train.steps × train.batch_size (a
// forward and a backward pass per image) plus its evaluation's samples ×
// sampling steps.
func (r *Runner) CellCost(c experiment.Cell) float64 {
	if c.Train != nil {
		return trainCellCost(c)
	}
	n := float64(max(c.Dataset.N, 1))
	if baseline.IsMethod(c.Method.Name) {
		return n
	}
	opt := func(key string, def float64) float64 {
		for _, l := range c.Resolved {
			if v, ok := strings.CutPrefix(l, "solver."+key+": "); ok {
				if k, err := strconv.ParseFloat(v, 64); err == nil && k > 0 {
					return k
				}
			}
		}
		return def
	}
	var calls float64
	switch m := c.Method.Name; m {
	case "dps", "mcg":
		calls = 3 * opt("steps", 1000)
	case "pigdm", "moment-matching":
		calls = 3 * opt("steps", 100)
	case "projection", "red-diff":
		calls = opt("steps", 1000)
	case "ddrm":
		calls = opt("steps", 20)
	case "daps":
		calls = opt("steps", 200) * opt("ode_steps", 5)
	case "pnp-dm":
		calls = 29.36 * opt("iters", 100)
	default: // ddnm, ddnm+, diffpir and any other: 100 steps
		calls = opt("steps", 100)
	}
	return n * calls
}

var _ experiment.CellRunner = (*Runner)(nil)

// changedLines returns the lines of cfg.Flat() that differ from the
// defaults' and start with one of prefixes, whose key keep accepts: the
// resolved settings that enter a cell's identity.
func changedLines(cfg *config.Config, keep func(key string) bool, prefixes ...string) []string {
	isDefault := map[string]bool{}
	def := config.Default()
	for _, l := range def.Flat() {
		isDefault[l] = true
	}
	var out []string
	for _, l := range cfg.Flat() {
		if isDefault[l] {
			continue
		}
		key, _, _ := strings.Cut(l, ": ")
		if !keep(key) {
			continue
		}
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
				break
			}
		}
	}
	return out
}
