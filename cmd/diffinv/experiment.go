package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/experiment"
	"github.com/diffinv/diffinv/experiment/runner"
	"github.com/diffinv/diffinv/inverse/task"
	"github.com/diffinv/diffinv/prior"
)

// DefaultClassifier is the shipped MNIST feature net of FID and KID.
const DefaultClassifier = "models/classifier/classifier.safetensors"

func newExperimentCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "experiment", Short: "Paper tables and ablations from experiment files"}
	var shard string
	var resume, overwrite, dryRun bool
	ef := experimentFlags{needsModel: true}
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
A cell whose method diverges does not stop the run: table.md marks its
entry "diverged", and a resumed run keeps it (delete cells/ID.failed to
retry it); any other failure stops the run.

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
					if c.Train != nil {
						fmt.Fprintf(w, "%s\ttrain\t%s\tseed %d\t%s\n", c.ID, c.SweepLabel(), c.Seed, state)
						continue
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
	cmd.AddCommand(runCmd, newExperimentTuneCmd(), newExperimentMigrateCmd(), newExperimentReportCmd(), newExperimentSlurmCmd(), newExperimentStatusCmd(), newExperimentK8sCmd())
	return cmd
}

// newExperimentTuneCmd searches the options of the methods with a tune
// space on the file's validation images (experiment.Tune).
func newExperimentTuneCmd() *cobra.Command {
	ef := experimentFlags{tuning: true, needsModel: true}
	var shard string
	cmd := &cobra.Command{
		Use:   "tune FILE.yaml",
		Short: "Tune the methods' options on validation images, for the table's cells",
		Long: `For each task × method with a tune space (methods: [{name: dps, tune:
{scale: [0.1, 0.3, 1]}}]), runs the space's trials on the file's tune.dataset,
validation images that must not overlap the table's dataset, as ordinary
cells under OUT/tune/TASK.METHOD/ (resumable: a re-run replays the search
from the stored cells), in order until tune.budget (per task × method) is
spent, and chooses the trial with the best tune.metric (psnr by default).
Writes OUT/tune/trials.csv, OUT/tune/plots/TASK.METHOD.png and the tuned
file (tune.output, default OUT/tuned.yaml), which ` + "`experiment run`" + ` then
merges into the table's cells: they carry the tuned options in their method
sets, and so in their IDs, and table.md names the validation split.`,
		Example: `  diffinv experiment tune experiments/dps-table-mnist.yaml
  diffinv experiment run experiments/dps-table-mnist.yaml --resume`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			exp, r, err := ef.open(cmd, args[0])
			if err != nil {
				return err
			}
			var sh experiment.Shard
			if shard != "" {
				if sh, err = experiment.ParseShard(shard); err != nil {
					return fmt.Errorf("--shard: %w", err)
				}
			}
			return experiment.Tune(cmd.Context(), exp, r, experiment.TuneOptions{Out: ef.out, Log: cmd.OutOrStdout(), Progress: cmd.ErrOrStderr(), Shard: sh})
		},
	}
	cmd.Flags().StringVar(&shard, "shard", "", "tune only shard K of N (K/N) of the task × method pairs (pair i when i mod N = K); shards share the output folder, and the one that finds every search complete writes the tuned file")
	ef.add(cmd)
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
	sets, sweeps                              []string
	out, tasksDir, classifier, faceClassifier string
	prec                                      precisionFlag
	eng                                       engineFlags
	// tuning: the command searches the options (tune), so the tuned
	// file is not applied.
	tuning bool
	// needsModel: the command resolves or runs cells here (run, tune,
	// status), so the file's checkpoint must exist on this machine; slurm
	// and k8s write jobs for nodes that may see it elsewhere.
	needsModel bool
}

// add registers the shared flags on cmd.
func (ef *experimentFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringArrayVar(&ef.sets, "set", nil, "override a key of the experiment file, e.g. dataset.n=4 or solver.scale=0.5 (repeatable)")
	f.StringArrayVar(&ef.sweeps, "sweep", nil, "add a sweep axis, key=v1,v2,... (solver.K or task.K; in a training experiment train.K, diffusion.K, model.K or data.K)")
	f.StringVar(&ef.out, "out", "", "output folder (default: the file's output; for sharded runs on a file system every node sees)")
	f.StringVar(&ef.tasksDir, "tasks", task.DefaultDir, "folder of task presets")
	f.StringVar(&ef.classifier, "classifier", DefaultClassifier, "feature net for fid and kid on MNIST cells")
	f.StringVar(&ef.faceClassifier, "face-classifier", DefaultAttrClassifier, "feature net for fid and kid on CelebA cells (against 1000 test faces)")
	ef.prec.add(cmd)
	ef.eng.add(cmd)
}

// open opens the experiment file with its overrides, resolves the
// precision its cells run in (--precision, else the file's, else
// engine.precision, else auto; bf16 cells have their own identity) and the
// engine (torch cells too), and returns it with the runner, which is also
// its Resolver: each cell's identity covers the settings its task preset
// and options resolve to.
func (ef *experimentFlags) open(cmd *cobra.Command, path string) (*experiment.Experiment, *runner.Runner, error) {
	prec := &ef.prec
	if err := prec.check(); err != nil {
		return nil, nil, err
	}
	exp, err := experiment.Open(path, ef.sets, ef.sweeps)
	if err != nil {
		return nil, nil, err
	}
	if exp.Checkpoint != "" && ef.needsModel {
		// Every solve cell loads it: say so once, before any cell.
		if _, err := os.Stat(exp.Checkpoint); err != nil {
			return nil, nil, fmt.Errorf("experiment %s: checkpoint %s: %w (train or ship that model first, or set checkpoint: to a model file or folder)", path, exp.Checkpoint, errors.Unwrap(err))
		}
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
	r, err := ef.runner(cmd.ErrOrStderr())
	if err != nil {
		return nil, nil, err
	}
	exp.Resolver = r.ResolveCell
	if !ef.tuning {
		// The table's cells take the tuned options of the methods with a
		// tune space (an error until `experiment tune` has written them).
		if err := exp.ApplyTuned(ef.out); err != nil {
			return nil, nil, err
		}
	}
	return exp, r, nil
}

// runner is the cell runner of the flags: each checkpoint opens under the
// environment (DIFFINV_*) and --precision, its network runs on --engine
// (printing the precision line of each network to log), and cells take
// their images from the dataset as `diffinv solve --dataset` does.
func (ef *experimentFlags) runner(log io.Writer) (*runner.Runner, error) {
	var cf configFlags
	if err := ef.prec.set(&cf); err != nil {
		return nil, err
	}
	return &runner.Runner{
		TasksDir:       ef.tasksDir,
		Classifier:     ef.classifier,
		FaceClassifier: ef.faceClassifier,
		Sources:        cf.sources(),
		Network: func(p *prior.Prior) (diffusion.Denoiser, error) {
			return ef.eng.denoiser(p.Path, p.Net, p.Config, &ef.prec, log)
		},
		// A training cell's progress bar.
		TrainProgress: log,
		Images: func(cfg *config.Config, d experiment.Dataset) (*tensor.Dense, int, error) {
			src := imageSource{dataset: d.Name, n: d.N, offset: d.Offset}
			return src.load(cfg)
		},
	}, nil
}
