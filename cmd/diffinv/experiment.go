package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/spf13/cobra"
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
	"github.com/diffinv/diffinv/model"
)

// DefaultClassifier is the shipped MNIST feature net of FID and KID.
const DefaultClassifier = "models/classifier/classifier.safetensors"

func newExperimentCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "experiment", Short: "Paper tables and ablations from experiment files"}
	var shard string
	var resume, overwrite, dryRun bool
	var ef experimentFlags
	runCmd := &cobra.Command{
		Use:   "run FILE.yaml",
		Short: "Run every cell (task × method × sweep value × seed) of an experiment, resumably",
		Long: `Expands the experiment file into cells, runs each with the pipeline of
` + "`diffinv solve`" + `, and writes per-cell results atomically to OUT/cells/,
then results.csv, table.md (tasks as columns, methods as rows, mean ± std
over seeds), grids/<task>.png and plots/<swept key>.png.

A task's set holds config keys (measurement.noise.sigma: 0.2); a method's
set holds its solver options (scale: 0.3). Methods are solvers
(dps, ddnm, ...) or classical baselines (pinv, tikhonov, admm_tv, hio, er).
--resume skips finished cells, so a killed run loses at most one cell.

FID and KID are computed on the features of the shipped MNIST ef.classifier,
between the cell's reconstructions and the whole MNIST test set.`,
		Example: `  diffinv experiment run experiments/dps-table-mnist.yaml
  diffinv experiment run experiments/ablate-dps-scale.yaml --sweep solver.scale=0.1,0.3,1 --set dataset.n=4 --resume`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			exp, r, err := ef.open(cmd, args[0])
			if err != nil {
				return err
			}
			if dryRun {
				// Every cell checked; with the output folder's results,
				// what a --resume run would skip.
				cells, done, err := experiment.Status(exp, ef.out)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				for _, c := range cells {
					if err := r.ValidateCell(c); err != nil {
						return fmt.Errorf("cell %s: %w", c.ID, err)
					}
					state := "to run"
					if done[c.ID] {
						state = "done"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\tseed %d\t%s\n", c.ID, c.Task.Key(), c.Method.Key(), c.SweepLabel(), c.Seed, state)
				}
				dir := ef.out
				if dir == "" {
					dir = exp.Output
				}
				fmt.Fprintf(w, "%d cells, all valid; %d done, %d to run with --resume (output %s)\n", len(cells), len(done), len(cells)-len(done), dir)
				return nil
			}
			var sh experiment.Shard
			if shard != "" {
				if sh, err = experiment.ParseShard(shard); err != nil {
					return fmt.Errorf("--shard: %w", err)
				}
				// Shards share the folder and each other's results.
				resume = true
			}
			return experiment.Run(cmd.Context(), exp, r, experiment.RunOptions{Out: ef.out, Resume: resume, Overwrite: overwrite,
				Log: cmd.OutOrStdout(), Progress: cmd.ErrOrStderr(), Shard: sh})
		},
	}
	f := runCmd.Flags()
	f.BoolVar(&resume, "resume", false, "skip cells whose results exist")
	f.BoolVar(&overwrite, "overwrite", false, "recompute every cell")
	f.BoolVar(&dryRun, "dry-run", false, "check every cell and list them without running")
	f.StringVar(&shard, "shard", "", "run only shard K of N (K/N, 0 ≤ K < N: e.g. $SLURM_ARRAY_TASK_ID/N); shards share the output folder, balanced by each cell's images × steps; implies --resume")
	ef.add(runCmd)
	cmd.AddCommand(runCmd, newExperimentMigrateCmd(), newExperimentReportCmd(), newExperimentSlurmCmd(), newExperimentStatusCmd(), newExperimentK8sCmd())
	return cmd
}

// newExperimentMigrateCmd is the one-off adoption of results stored under
// cell identity version 2 (experiment.Migrate).
func newExperimentMigrateCmd() *cobra.Command {
	var ef experimentFlags
	cmd := &cobra.Command{
		Use:   "migrate FILE.yaml",
		Short: "Adopt cell results stored under the old cell identity (run once, only if the task presets are unchanged)",
		Long: `Cell IDs now cover the settings each cell's task preset and options resolve
to (operator parameters, noise, solver defaults), so that editing a preset
or pointing --tasks at another folder makes its cells new instead of
reusing old numbers. Results stored under the old identity (version 2) do
not say which preset content computed them: this command adopts each one
whose other settings (checkpoint content, dataset, ef.sets, seed) match a
cell under the cell's new ID, recording the settings the presets resolve
to NOW. Run it once, and only if the presets have not changed since those
results were computed (the committed experiments/results were adopted so);
otherwise recompute with --resume.`,
		Example: "  diffinv experiment migrate experiments/dps-table-mnist.yaml",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			exp, _, err := ef.open(cmd, args[0])
			if err != nil {
				return err
			}
			n, err := experiment.Migrate(exp, ef.out, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "experiment %s: %d results adopted\n", exp.Name, n)
			return nil
		},
	}
	ef.add(cmd)
	return cmd
}

// experimentFlags are the flags every experiment subcommand shares: the
// file's overrides, the output and task folders, the feature classifier,
// the precision and the engine.
type experimentFlags struct {
	sets, sweeps              []string
	out, tasksDir, classifier string
	prec                      precisionFlag
	eng                       engineFlags
}

// add registers the shared flags on cmd.
func (ef *experimentFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringArrayVar(&ef.sets, "set", nil, "override a key of the experiment file, e.g. dataset.n=4 or solver.scale=0.5 (repeatable)")
	f.StringArrayVar(&ef.sweeps, "sweep", nil, "add a sweep axis, key=v1,v2,... (solver.K or task.K)")
	f.StringVar(&ef.out, "out", "", "output folder (default: the file's output; for sharded runs on a file system every node sees)")
	f.StringVar(&ef.tasksDir, "tasks", task.DefaultDir, "folder of task presets")
	f.StringVar(&ef.classifier, "classifier", DefaultClassifier, "feature net for fid and kid")
	ef.prec.add(cmd)
	ef.eng.add(cmd)
}

// open opens the experiment file with its overrides, resolves the
// precision its cells run in (--precision, else the file's, else
// engine.precision, else auto; bf16 cells have their own identity) and the
// engine (torch cells too), and returns it with the runner, which is also
// its Resolver: each cell's identity covers the settings its task preset
// and options resolve to.
func (ef *experimentFlags) open(cmd *cobra.Command, path string) (*experiment.Experiment, *cellRunner, error) {
	prec := &ef.prec
	if err := prec.check(); err != nil {
		return nil, nil, err
	}
	exp, err := experiment.Open(path, ef.sets, ef.sweeps)
	if err != nil {
		return nil, nil, err
	}
	setting := prec.value
	if setting == "" && exp.Precision != "" {
		setting, prec.value = exp.Precision, exp.Precision
		if err := prec.check(); err != nil {
			return nil, nil, fmt.Errorf("experiment %s: %w", path, err)
		}
	}
	if setting == "" {
		// engine.precision as every command loads it (default, environment)
		cfg, err := (&configFlags{}).load()
		if err != nil {
			return nil, nil, err
		}
		setting = cfg.Engine.Precision
	}
	engine := ef.eng.name
	if engine == "" {
		engine = "native"
	}
	p, _, err := resolvePrecision(setting, engine)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", prec.source(setting), err)
	}
	exp.RunPrecision = p.String()
	exp.RunEngine = engine
	r := &cellRunner{tasksDir: ef.tasksDir, classifierPath: ef.classifier, nets: map[string]*loadedNet{},
		prec: prec, eng: &ef.eng, log: cmd.ErrOrStderr()}
	exp.Resolver = r.ResolveCell
	return exp, r, nil
}

type loadedNet struct {
	net   *model.UNet
	cfg   *config.Config
	den   diffusion.Denoiser
	sched *diffusion.Schedule
}

// cellRunner runs experiment cells through the solve pipeline, caching the
// network, the dataset and the FID reference across cells.
type cellRunner struct {
	tasksDir       string
	classifierPath string
	prec           *precisionFlag // --precision; nil: engine.precision (DIFFINV_ENGINE_PRECISION, else auto)
	eng            *engineFlags   // --engine, --device; nil: native
	log            io.Writer      // the precision line of each network loaded; nil: none

	mu         sync.Mutex
	nets       map[string]*loadedNet
	ds         *data.Dataset
	dsKey      string
	classifier *metrics.Classifier
	ref        *mat.Dense
}

func (r *cellRunner) net(path string) (*loadedNet, error) {
	if n, ok := r.nets[path]; ok {
		return n, nil
	}
	var cf configFlags
	prec := r.prec
	if prec == nil {
		prec = &precisionFlag{}
	}
	if err := prec.set(&cf); err != nil {
		return nil, err
	}
	net, cfg, err := loadCheckpoint(path, &cf)
	if err != nil {
		return nil, err
	}
	// The UNet runs in the precision asked (the FID/KID classifier, not a
	// UNet, always runs float32).
	log := r.log
	if log == nil {
		log = io.Discard
	}
	eng := r.eng
	if eng == nil {
		eng = &engineFlags{name: "native"}
	}
	netDen, err := eng.denoiser(path, net, cfg, prec, log)
	if err != nil {
		return nil, err
	}
	sched, den, err := schedule(cfg.Diffusion, 0, netDen)
	if err != nil {
		return nil, err
	}
	n := &loadedNet{net: net, cfg: cfg, den: den, sched: sched}
	r.nets[path] = n
	return n, nil
}

// cellConfig loads the cell's task preset and returns the config its task
// and method settings resolve to on the checkpoint's, with the preset's
// solver defaults for the method.
func (r *cellRunner) cellConfig(cell experiment.Cell) (*config.Config, map[string]any, *loadedNet, error) {
	ln, err := r.net(cell.Checkpoint)
	if err != nil {
		return nil, nil, nil, err
	}
	preset, err := task.LoadVariant(cell.Task.Name, r.tasksDir, task.Variant(*ln.cfg))
	if err != nil {
		return nil, nil, nil, err
	}
	sets := []string{"solver.method=" + cell.Method.Name}
	for _, k := range sortedKeys(cell.Task.Set) {
		sets = append(sets, fmt.Sprintf("%s=%v", k, cell.Task.Set[k]))
	}
	for _, k := range sortedKeys(cell.Method.Set) {
		sets = append(sets, fmt.Sprintf("solver.%s=%v", k, cell.Method.Set[k]))
	}
	cfg, err := config.LoadOnto(*ln.cfg, config.Sources{Presets: []config.Preset{preset.Config}, Sets: sets})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("task %s, method %s: %w", cell.Task.Name, cell.Method.Name, err)
	}
	return cfg, preset.Defaults(cell.Method.Name), ln, nil
}

// setup builds the pipeline of one cell without running it.
func (r *cellRunner) setup(cell experiment.Cell) (*pipeline.Setup, *loadedNet, error) {
	cfg, defaults, ln, err := r.cellConfig(cell)
	if err != nil {
		return nil, nil, err
	}
	s, err := pipeline.New(cfg, ln.den, ln.sched, defaults, cell.Seed)
	if err != nil {
		return nil, nil, fmt.Errorf("task %s, method %s: %w", cell.Task.Name, cell.Method.Name, err)
	}
	return s, ln, nil
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
func (r *cellRunner) ResolveCell(cell experiment.Cell) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cfg, defaults, _, err := r.cellConfig(cell)
	if err != nil {
		return nil, err
	}
	return resolvedSettings(cfg, defaults), nil
}

// resolvedSettings is ResolveCell's description of cfg with the task's
// solver defaults.
func resolvedSettings(cfg *config.Config, taskDefaults map[string]any) []string {
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
	isDefault := map[string]bool{}
	for _, l := range def.Flat() {
		isDefault[l] = true
	}
	var out []string
	for _, l := range eff.Flat() {
		if isDefault[l] {
			continue
		}
		if strings.HasPrefix(l, "measurement.") || strings.HasPrefix(l, "solver.") || strings.HasPrefix(l, "diffusion.") {
			out = append(out, l)
		}
	}
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
func (r *cellRunner) ValidateCell(cell experiment.Cell) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, _, err := r.setup(cell); err != nil {
		return err
	}
	if cell.Dataset.Name != "mnist-test" && cell.Dataset.Name != "mnist-train" {
		return fmt.Errorf("dataset.name %q: want mnist-test or mnist-train", cell.Dataset.Name)
	}
	for _, m := range cell.Metrics {
		if m == "fid" || m == "kid" {
			if _, err := os.Stat(r.classifierPath); err != nil {
				return fmt.Errorf("metric %s needs the classifier: %w", m, err)
			}
		}
	}
	return nil
}

// RunCell solves the cell's images and scores them.
func (r *cellRunner) RunCell(ctx context.Context, cell experiment.Cell, progress func(done, total int)) (*experiment.CellResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ln, err := r.setup(cell)
	if err != nil {
		return nil, err
	}
	src := imageSource{dataset: cell.Dataset.Name, n: cell.Dataset.N, offset: cell.Dataset.Offset}
	x, first, err := src.load(ln.cfg)
	if err != nil {
		return nil, err
	}
	res, err := s.Solve(ctx, x, first, progress)
	if err != nil {
		return nil, err
	}
	out := &experiment.CellResult{CellMetrics: map[string]float64{},
		Grid: &experiment.GridImages{Truth: res.Truth, Y: pipeline.DisplayY(res.Y, s.A, s.Shape[0], s.Shape[1], s.Shape[2]), Recon: res.Recon}}
	for i := range res.PSNR {
		out.Images = append(out.Images, experiment.ImageMetrics{Index: first + i, Values: map[string]float64{
			"psnr": res.PSNR[i], "ssim": res.SSIM[i], "consistency": res.Consistency[i], "seconds": res.SecondsPerImage}})
	}
	if wants(cell.Metrics, "fid") || wants(cell.Metrics, "kid") {
		if err := r.featureMetrics(ln.cfg, res.Recon, cell, out.CellMetrics); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// featureMetrics computes FID and KID of the reconstructions against the
// MNIST test set on the classifier's features.
func (r *cellRunner) featureMetrics(cfg *config.Config, recon *tensor.Dense, cell experiment.Cell, into map[string]float64) error {
	if r.classifier == nil {
		c, err := metrics.LoadClassifier(r.classifierPath)
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
	if wants(cell.Metrics, "fid") {
		fid, err := metrics.FID(feat, r.ref)
		if err != nil {
			return err
		}
		into["fid"] = fid
	}
	if wants(cell.Metrics, "kid") {
		kid, err := metrics.KID(feat, r.ref, metrics.KIDOptions{Subsets: 50, SubsetSize: 1000}, rand.New(rand.NewSource(cell.Seed)))
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

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// CellCost is the runner's estimate of a cell's cost for balancing shards:
// images × network evaluations, i.e. the solver's steps (its resolved
// solver.steps, else the method's default) times 3 for the methods that
// back-propagate through the network each step; a classical baseline costs
// its images.
func (r *cellRunner) CellCost(c experiment.Cell) float64 {
	defaults := map[string]float64{"dps": 1000, "mcg": 1000, "projection": 1000, "pigdm": 100,
		"moment-matching": 100, "ddnm": 100, "ddnm+": 100, "ddrm": 20}
	backprop := map[string]bool{"dps": true, "mcg": true, "pigdm": true, "moment-matching": true}
	n := float64(max(c.Dataset.N, 1))
	if baseline.IsMethod(c.Method.Name) {
		return n
	}
	steps := defaults[c.Method.Name]
	if steps == 0 {
		steps = 100
	}
	for _, l := range c.Resolved {
		if v, ok := strings.CutPrefix(l, "solver.steps: "); ok {
			if k, err := strconv.ParseFloat(v, 64); err == nil && k > 0 {
				steps = k
			}
		}
	}
	if backprop[c.Method.Name] {
		steps *= 3
	}
	return n * steps
}
