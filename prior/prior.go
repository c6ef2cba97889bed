// Package prior turns a checkpoint file into what sampling and solving
// need: the network (the native engine's UNet), the run config with the
// caller's layers on top, and the diffusion schedule with the denoiser that
// reads the network's prediction as ε. It is the library form of what every
// `diffinv` command does with --checkpoint, so outside code loads a prior in
// one call:
//
//	p, err := prior.Open("models/mnist/model.safetensors", config.Sources{Sets: []string{"sample.steps=50"}})
//	sched, den, err := p.Schedule(0)
//
// A diffinv model file, an imported checkpoint or a training checkpoint
// (whose EMA weights are used) all open the same way.
package prior

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/diffinv/diffinv/checkpoint"
	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/model"
	"github.com/diffinv/diffinv/train"
)

// Prior is an opened checkpoint.
type Prior struct {
	// Path is the file it came from.
	Path string
	// Net is the network; a Denoiser predicting what Config.Diffusion
	// says (ε, x0 or v): Schedule wraps it to predict ε.
	Net *model.UNet
	// Config is the run config: the checkpoint's (or the defaults), under
	// the caller's layers. Its model section is the network's; its engine
	// section never comes from the file.
	Config *config.Config
	// Base is the checkpoint's own run config (the defaults when it has
	// none), before the caller's layers.
	Base config.Config
	// Trained reports whether the file records its run config (diffinv's
	// own files): its diffusion settings are then fixed (see Open).
	Trained bool
}

// ModelFile is the file a model folder holds (models/mnist/model.safetensors,
// a training run's OUT/model.safetensors): a folder given as a checkpoint
// path means it.
const ModelFile = "model.safetensors"

// Load reads the network and the run config the checkpoint at path was
// trained with, without layering anything on it. path may be a model
// folder (see ModelFile).
func Load(path string) (*Prior, error) {
	if path == "" {
		return nil, fmt.Errorf("prior: no checkpoint path (a .safetensors file written by diffinv train)")
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, ModelFile)
	}
	f, err := checkpoint.Load(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	p := &Prior{Path: path}
	if f.Metadata[train.MetaFormat] == train.FormatTrain {
		ema, cfg, err := train.LoadModel(path)
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: %w", path, err)
		}
		if p.Net, err = model.NewFromTensors(cfg.Model, ema); err != nil {
			return nil, fmt.Errorf("checkpoint %s: EMA weights: %w", path, err)
		}
		p.Base, p.Trained = *cfg, true
		return p, nil
	}
	net, meta, err := model.Load(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	p.Net, p.Base = net, config.Default()
	if doc, ok := meta[train.MetaRunConfig]; ok {
		if p.Base, err = config.FromYAML([]byte(doc)); err != nil {
			return nil, fmt.Errorf("checkpoint %s: %w", path, err)
		}
		p.Trained = true
	}
	return p, nil
}

// Open loads the checkpoint at path and layers src (presets, file,
// environment, sets) over its run config into Config. The model section
// always comes from the checkpoint (a layer that changes it is an error:
// the weights fix the architecture); so do the diffusion settings the
// network was trained with when the file records them (steps, schedule,
// betas, prediction: an error naming each that differs). The engine section
// starts from the defaults: how the training machine ran the network must
// not force itself on this one.
func Open(path string, src config.Sources) (*Prior, error) {
	p, err := Load(path)
	if err != nil {
		return nil, err
	}
	return p, p.Layer(src)
}

// Layer (re)computes Config from Base and src (see Open).
func (p *Prior) Layer(src config.Sources) error {
	base := p.Base
	base.Model = p.Net.Config()
	base.Engine = config.Default().Engine
	cfg, err := config.LoadOnto(base, src)
	if err != nil {
		return err
	}
	if !sameModel(cfg.Model, p.Net.Config()) {
		return fmt.Errorf("the model section differs from the checkpoint's architecture (%s): the weights fix it, so drop the model.* settings", p.Path)
	}
	if p.Trained {
		if err := SameTrainedDiffusion(cfg.Diffusion, p.Base.Diffusion); err != nil {
			return fmt.Errorf("checkpoint %s: %w", p.Path, err)
		}
	}
	p.Config = cfg
	return nil
}

// SameTrainedDiffusion returns an error naming every diffusion setting of
// got that differs from the one the network was trained with: the number
// of steps, the β schedule and the prediction target are fixed by training
// (a network trained on ε read as x0 gives noise, not an error). The
// reverse variance may change between fixed_small and fixed_large (both are
// sampling choices for a network that predicts no variance, DDPM §3.2);
// learned_range is tied to model.learn_sigma.
func SameTrainedDiffusion(got, want config.Diffusion) error {
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

// Schedule returns the diffusion schedule of Config, respaced to steps
// when 0 < steps < diffusion.steps (uniform DDIM-style spacing), and the
// network as a denoiser predicting ε over the full schedule.
func (p *Prior) Schedule(steps int) (*diffusion.Schedule, diffusion.Denoiser, error) {
	return ScheduleFor(p.Config.Diffusion, steps, p.Net)
}

// ScheduleFor is Schedule for any network (another engine's, say) and
// diffusion settings.
func ScheduleFor(d config.Diffusion, steps int, net diffusion.Denoiser) (*diffusion.Schedule, diffusion.Denoiser, error) {
	return ScheduleSpaced(d, steps, diffusion.SpacingUniform, net)
}

// ScheduleSpaced is ScheduleFor with the respaced timesteps chosen by
// spacing (diffusion.SpacingUniform or SpacingQuad; sample.spacing).
func ScheduleSpaced(d config.Diffusion, steps int, spacing string, net diffusion.Denoiser) (*diffusion.Schedule, diffusion.Denoiser, error) {
	s, err := d.NewSchedule()
	if err != nil {
		return nil, nil, err
	}
	den, err := diffusion.PredictionDenoiser(net, s, d.Prediction)
	if err != nil {
		return nil, nil, err
	}
	if steps <= 0 || steps >= d.Steps {
		return s, den, nil
	}
	ts, err := diffusion.SpacedTimesteps(d.Steps, steps, spacing)
	if err != nil {
		return nil, nil, err
	}
	rs, err := diffusion.Respace(s, ts)
	return rs, den, err
}

// sameModel compares two model sections by content: an empty list and a
// nil one (attention_resolutions: [] read back from YAML) are the same.
func sameModel(a, b config.Model) bool {
	norm := func(m config.Model) config.Model {
		if len(m.ChannelMult) == 0 {
			m.ChannelMult = nil
		}
		if len(m.AttentionResolutions) == 0 {
			m.AttentionResolutions = nil
		}
		return m
	}
	return reflect.DeepEqual(norm(a), norm(b))
}
