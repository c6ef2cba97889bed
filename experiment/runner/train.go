package runner

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/eval"
	"github.com/diffinv/diffinv/experiment"
	"github.com/diffinv/diffinv/metrics"
	"github.com/diffinv/diffinv/prior"
	"github.com/diffinv/diffinv/train"
)

// TrainConfig returns the config a training cell trains with: its base
// config file under the environment (Sources.Env), its settings (the
// file's train.set, the sweep values, train.steps, train.seed), the
// precision it runs in and train.out, the cell's folder (cell.Dir; empty
// before Run sets it).
func (r *Runner) TrainConfig(cell experiment.Cell) (*config.Config, error) {
	t := cell.Train
	if t == nil {
		return nil, fmt.Errorf("cell %s is not a training cell", cell.ID)
	}
	layer := maps.Clone(t.Set)
	prec := cell.Precision
	if prec == "" {
		prec = "fp32"
	}
	layer["engine.precision"] = prec
	if cell.Dir != "" {
		layer["train.out"] = cell.Dir
	}
	cfg, err := config.Load(config.Sources{File: t.Config, Env: r.Sources.Env, Layers: []map[string]any{layer}})
	if err != nil {
		return nil, fmt.Errorf("training cell: %w", err)
	}
	return cfg, nil
}

// notIdentity lists the config keys that do not change a trained model:
// where it is written, how often it is checkpointed or draws progress
// grids, and where the data lie.
var notIdentity = map[string]bool{"train.out": true, "train.checkpoint_every": true, "train.keep_checkpoints": true,
	"train.sample_every": true, "data.dir": true}

// ResolvedTraining is a training cell's resolved settings: the lines of
// cfg.Flat() of the model, diffusion, train and data sections that differ
// from the defaults, less the keys that do not change the model (output
// folder, checkpoint interval, data folder).
func ResolvedTraining(cfg *config.Config) []string {
	out := changedLines(cfg, func(key string) bool { return !notIdentity[key] }, "model.", "diffusion.", "train.", "data.")
	sort.Strings(out)
	return out
}

// validateTrainCell checks a training cell's config and what its
// evaluation needs.
func (r *Runner) validateTrainCell(cell experiment.Cell) error {
	cfg, err := r.TrainConfig(cell)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("training cell: %w", err)
	}
	if cell.Engine != "" && cell.Engine != "native" {
		return fmt.Errorf("training cells train on the native engine, not %q", cell.Engine)
	}
	if m := cfg.Model; m.InChannels != 1 || m.ImageSize != 28 {
		return fmt.Errorf("training cells evaluate on the MNIST classifier, which takes 1×28×28 images, but the model makes %d×%d×%d", m.InChannels, m.ImageSize, m.ImageSize)
	}
	if cell.Train.Eval.Steps > cfg.Diffusion.Steps {
		return fmt.Errorf("train.eval.steps %d exceeds diffusion.steps %d", cell.Train.Eval.Steps, cfg.Diffusion.Steps)
	}
	if r.EvalReference == nil {
		if _, err := os.Stat(r.Classifier); err != nil {
			return fmt.Errorf("training cells are evaluated on the classifier: %w", err)
		}
	}
	return nil
}

// trainCellCost is a training cell's cost in the unit of CellCost (network
// evaluations × images): 3 per image and step (forward and backward), plus
// the evaluation's samples × sampling steps.
func trainCellCost(c experiment.Cell) float64 {
	steps, batch := 0.0, float64(config.Default().Train.BatchSize)
	if v, ok := c.Train.Set["train.steps"].(int); ok {
		steps = float64(v)
	}
	for _, l := range c.Resolved {
		if v, ok := strings.CutPrefix(l, "train.batch_size: "); ok {
			var b float64
			if _, err := fmt.Sscan(v, &b); err == nil && b > 0 {
				batch = b
			}
		}
	}
	if v, ok := c.Train.Set["train.batch_size"].(int); ok {
		batch = float64(v)
	}
	return 3*steps*batch + float64(c.Train.Eval.N*c.Train.Eval.Steps)
}

// runTrainCell trains the cell's model in cell.Dir (resuming from the
// latest checkpoint there), then evaluates its EMA weights
// (cell.Dir/model.safetensors) on the classifier.
func (r *Runner) runTrainCell(ctx context.Context, cell experiment.Cell, progress func(done, total int)) (*experiment.CellResult, error) {
	if cell.Dir == "" {
		return nil, fmt.Errorf("training cell %s: no cell folder (Cell.Dir)", cell.ID)
	}
	cfg, err := r.TrainConfig(cell)
	if err != nil {
		return nil, err
	}
	opts := train.RunOptions{NewModel: train.NewUNet, Resume: true, Progress: r.TrainProgress, StopAt: r.stopAt}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	if r.TrainData != nil {
		if opts.Dataset, err = r.TrainData(cfg); err != nil {
			return nil, err
		}
	}
	if err := train.Run(ctx, cfg, opts); err != nil {
		return nil, err
	}
	if r.stopAt > 0 {
		return nil, errStopped
	}
	progress(1, 2)
	p, err := prior.Open(filepath.Join(cell.Dir, experiment.TrainModel), r.Sources)
	if err != nil {
		return nil, err
	}
	var den diffusion.Denoiser = p.Net
	if r.Network != nil {
		if den, err = r.Network(p); err != nil {
			return nil, err
		}
	}
	c, ref, err := r.evalReference(p.Config)
	if err != nil {
		return nil, err
	}
	ec := *p.Config
	ev := cell.Train.Eval
	ec.Sample.Sampler, ec.Sample.Steps, ec.Sample.NumSamples, ec.Sample.Seed = ev.Sampler, ev.Steps, ev.N, *ev.Seed
	rep, _, err := eval.Samples(&ec, den, c, ref, nil)
	if err != nil {
		return nil, err
	}
	_, losses, err := experiment.ReadLossLog(filepath.Join(cell.Dir, experiment.TrainLog))
	if err != nil {
		return nil, err
	}
	lo, hi := 1.0, 0.0
	res := &experiment.CellResult{CellMetrics: map[string]float64{
		"fid": rep.FID, "kid": rep.KID.Mean, "confident": rep.Confident, "mse": experiment.FinalLoss(losses)}}
	for k, s := range rep.Share {
		res.CellMetrics[experiment.ClassShareKey(k)] = 100 * s
		lo, hi = min(lo, s), max(hi, s)
	}
	res.CellMetrics["class_min"], res.CellMetrics["class_max"] = 100*lo, 100*hi
	progress(2, 2)
	return res, nil
}

// errStopped ends a training cell that a test stopped part-way (stopAt).
var errStopped = fmt.Errorf("training stopped part-way (test)")

// evalReference returns the classifier and its features of the reference
// set (EvalReference, else Classifier and the MNIST test set of
// cfg.Data.Dir), cached.
func (r *Runner) evalReference(cfg *config.Config) (*metrics.Classifier, *metrics.Reference, error) {
	if r.reference != nil {
		return r.evalClassifier, r.reference, nil
	}
	var c *metrics.Classifier
	var ref *metrics.Reference
	var err error
	if r.EvalReference != nil {
		c, ref, err = r.EvalReference(cfg)
	} else {
		if c, err = metrics.LoadClassifier(r.Classifier); err != nil {
			return nil, nil, err
		}
		var test *data.Dataset
		if test, err = data.LoadMNIST(cfg.Data.Dir, "test"); err != nil {
			return nil, nil, fmt.Errorf("reference set: %w (set data.dir)", err)
		}
		ref, err = metrics.NewReference(c, test)
	}
	if err != nil {
		return nil, nil, err
	}
	r.evalClassifier, r.reference = c, ref
	return c, ref, nil
}
