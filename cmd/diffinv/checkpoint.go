package main

import (
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/diffinv/diffinv/checkpoint"
	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/model"
	"github.com/diffinv/diffinv/task"
	"github.com/diffinv/diffinv/train"
)

// RunConfigKey is the checkpoint metadata key holding the whole run config
// (YAML) that trained it, so that sampling and solving use the same
// diffusion settings.
const RunConfigKey = "run_config"

// loadCheckpoint loads a UNet and the run config: the config stored in the
// checkpoint (or the defaults) under the file, DIFFINV_* and --set layers of
// cf. The model section always comes from the checkpoint; a --set or file
// that changes it is an error, since the weights fix the architecture. The
// engine section never comes from the checkpoint: how the machine that
// trained it ran the network (engine.precision) must not force itself on
// this command, so it starts from the defaults like any other run's.
func loadCheckpoint(path string, cf *configFlags) (*model.UNet, *config.Config, error) {
	if path == "" {
		return nil, nil, fmt.Errorf("--checkpoint is required (a .safetensors file written by diffinv train)")
	}
	if _, err := os.Stat(path); err != nil {
		return nil, nil, fmt.Errorf("checkpoint: %w", err)
	}
	net, base, trained, err := loadWeights(path)
	if err != nil {
		return nil, nil, err
	}
	return configure(path, net, base, trained, cf)
}

// loadCheckpointTask is loadCheckpoint for a command that solves a task:
// the task preset (name or path, under tasksDir) is the variant of the
// checkpoint's images (task.Variant: a face model's presets come from
// tasksDir/celeba64), layered under cf's file, environment and sets.
func loadCheckpointTask(path string, cf *configFlags, taskName, tasksDir string) (*model.UNet, *config.Config, *task.Preset, error) {
	if path == "" {
		return nil, nil, nil, fmt.Errorf("--checkpoint is required (a .safetensors file written by diffinv train)")
	}
	if _, err := os.Stat(path); err != nil {
		return nil, nil, nil, fmt.Errorf("checkpoint: %w", err)
	}
	net, base, trained, err := loadWeights(path)
	if err != nil {
		return nil, nil, nil, err
	}
	preset, err := task.LoadVariant(taskName, tasksDir, task.Variant(base))
	if err != nil {
		return nil, nil, nil, err
	}
	cf.presets = []config.Preset{preset.Config}
	net, cfg, err := configure(path, net, base, trained, cf)
	return net, cfg, preset, err
}

// configure layers cf over a loaded checkpoint's run config (see
// loadCheckpoint).
func configure(path string, net *model.UNet, base config.Config, trained bool, cf *configFlags) (*model.UNet, *config.Config, error) {
	base.Model = net.Config()
	base.Engine = config.Default().Engine
	cfg, err := config.LoadOnto(base, config.Sources{Presets: cf.presets, File: cf.file, Env: os.Environ(), Sets: cf.sets})
	if err != nil {
		return nil, nil, err
	}
	if !reflect.DeepEqual(cfg.Model, net.Config()) {
		return nil, nil, fmt.Errorf("the model section differs from the checkpoint's architecture (%s): the weights fix it, so drop the model.* settings", path)
	}
	if trained {
		if err := sameTrainedDiffusion(cfg.Diffusion, base.Diffusion); err != nil {
			return nil, nil, fmt.Errorf("checkpoint %s: %w", path, err)
		}
	}
	return net, cfg, nil
}

// sameTrainedDiffusion returns an error naming every diffusion.* setting of
// got that differs from the one the network was trained with: the number
// of steps, the β schedule and the prediction target are fixed by training
// (a network trained on ε read as x0 gives noise, not an error). The
// reverse variance may change between fixed_small and fixed_large (both are
// sampling choices for a network that predicts no variance, DDPM §3.2);
// learned_range is tied to model.learn_sigma and checked with the model.
func sameTrainedDiffusion(got, want config.Diffusion) error {
	var diffs []string
	add := func(key string, g, w any) {
		if g != w {
			diffs = append(diffs, fmt.Sprintf("diffusion.%s is %v, the network was trained with %v", key, g, w))
		}
	}
	add("steps", got.Steps, want.Steps)
	add("schedule", got.Schedule, want.Schedule)
	if want.Schedule == "linear" {
		add("beta_start", got.BetaStart, want.BetaStart)
		add("beta_end", got.BetaEnd, want.BetaEnd)
	}
	add("prediction", got.Prediction, want.Prediction)
	if (got.Variance == "learned_range") != (want.Variance == "learned_range") {
		add("variance", got.Variance, want.Variance)
	}
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("%s: the weights fix these, so drop the diffusion.* settings (from --set, DIFFINV_DIFFUSION_* or the config file)", strings.Join(diffs, "; "))
}

// loadWeights reads a network and the run config it was trained with (the
// defaults when the file has none): a model file, an imported checkpoint, or
// a training checkpoint (runs/NAME/checkpoints/step-*.safetensors), whose EMA
// weights are the ones used. trained reports whether the file records its
// run config (diffinv's own files), so that its diffusion settings are
// known rather than defaults.
func loadWeights(path string) (net *model.UNet, cfg config.Config, trained bool, err error) {
	f, err := checkpoint.Load(path)
	if err != nil {
		return nil, config.Config{}, false, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if f.Metadata[train.MetaFormat] == train.FormatTrain {
		ema, cfg, err := train.LoadModel(path)
		if err != nil {
			return nil, config.Config{}, false, fmt.Errorf("checkpoint %s: %w", path, err)
		}
		net, err := model.NewFromTensors(cfg.Model, ema)
		if err != nil {
			return nil, config.Config{}, false, fmt.Errorf("checkpoint %s: EMA weights: %w", path, err)
		}
		return net, *cfg, true, nil
	}
	net, meta, err := model.Load(path)
	if err != nil {
		return nil, config.Config{}, false, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	base := config.Default()
	doc, ok := meta[RunConfigKey]
	if ok {
		if base, err = config.FromYAML([]byte(doc)); err != nil {
			return nil, config.Config{}, false, fmt.Errorf("checkpoint %s: %w", path, err)
		}
	}
	return net, base, ok, nil
}

// schedule builds the diffusion schedule of cfg, respaced to steps when
// steps < diffusion.steps (uniform DDIM-style spacing), and the denoiser
// that turns the network's prediction (eps, x0 or v) into ε over the full
// schedule.
func schedule(d config.Diffusion, steps int, net diffusion.Denoiser) (*diffusion.Schedule, diffusion.Denoiser, error) {
	s, err := train.NewSchedule(d)
	if err != nil {
		return nil, nil, err
	}
	den, err := train.PredictionDenoiser(net, s, d.Prediction)
	if err != nil {
		return nil, nil, err
	}
	if steps <= 0 || steps >= d.Steps {
		return s, den, nil
	}
	ts, err := diffusion.SpacedTimesteps(d.Steps, steps, diffusion.SpacingUniform)
	if err != nil {
		return nil, nil, err
	}
	rs, err := diffusion.Respace(s, ts)
	return rs, den, err
}
