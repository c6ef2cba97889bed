package main

import (
	"fmt"
	"os"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/inverse/task"
	"github.com/diffinv/diffinv/model"
	"github.com/diffinv/diffinv/prior"
	"github.com/diffinv/diffinv/train"
)

// RunConfigKey is the checkpoint metadata key holding the whole run config
// (YAML) that trained it, so that sampling and solving use the same
// diffusion settings (train.MetaRunConfig: one definition).
const RunConfigKey = train.MetaRunConfig

// loadCheckpoint loads a UNet and the run config: the config stored in the
// checkpoint (or the defaults) under the file, DIFFINV_* and --set layers of
// cf (prior.Open: the model section and the trained diffusion settings
// come from the checkpoint; the engine section never does).
func loadCheckpoint(path string, cf *configFlags) (*model.UNet, *config.Config, error) {
	if path == "" {
		return nil, nil, fmt.Errorf("--checkpoint is required (a .safetensors file written by diffinv train)")
	}
	if _, err := os.Stat(path); err != nil {
		return nil, nil, fmt.Errorf("checkpoint: %w", err)
	}
	p, err := prior.Open(path, cf.sources())
	if err != nil {
		return nil, nil, err
	}
	return p.Net, p.Config, nil
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
	p, err := prior.Load(path)
	if err != nil {
		return nil, nil, nil, err
	}
	preset, err := task.LoadVariant(taskName, tasksDir, task.Variant(p.Base))
	if err != nil {
		return nil, nil, nil, err
	}
	cf.presets = []config.Preset{preset.Config}
	if err := p.Layer(cf.sources()); err != nil {
		return nil, nil, nil, err
	}
	return p.Net, p.Config, preset, nil
}

// loadWeights reads a network and the run config it was trained with (the
// defaults when the file has none); trained reports whether the file
// records it (prior.Load).
func loadWeights(path string) (net *model.UNet, cfg config.Config, trained bool, err error) {
	p, err := prior.Load(path)
	if err != nil {
		return nil, config.Config{}, false, err
	}
	return p.Net, p.Base, p.Trained, nil
}

// schedule builds the diffusion schedule of d respaced to steps, and the
// denoiser predicting ε (prior.ScheduleFor).
func schedule(d config.Diffusion, steps int, net diffusion.Denoiser) (*diffusion.Schedule, diffusion.Denoiser, error) {
	return prior.ScheduleFor(d, steps, net)
}

// sampleSchedule is schedule for sampling: respaced to sample.steps with
// sample.spacing.
func sampleSchedule(cfg *config.Config, net diffusion.Denoiser) (*diffusion.Schedule, diffusion.Denoiser, error) {
	return prior.ScheduleSpaced(cfg.Diffusion, cfg.Sample.Steps, cfg.Sample.Spacing, net)
}
