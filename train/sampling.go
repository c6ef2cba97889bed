package train

import (
	"fmt"
	"math/rand"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/model"
	"github.com/diffinv/diffinv/sample"
	"gorgonia.org/tensor"
)

// UNetSampler returns a RunOptions.Sample that draws n images from the EMA
// weights with deterministic DDIM (η = 0, x̂0 clipped) over steps uniformly
// spaced timesteps, from the same seeded x_T at every call, so successive
// grids show the same samples as training goes on. It builds one UNet for
// cfg.Model, in the precision engine.precision resolves to, and copies the
// EMA weights into it at each call.
func UNetSampler(cfg *config.Config, n, steps int, seed int64) (func(step int, ema map[string]*tensor.Dense) (*tensor.Dense, error), error) {
	if n < 1 || steps < 1 || steps > cfg.Diffusion.Steps {
		return nil, fmt.Errorf("train: sampler with %d images and %d steps, want ≥ 1 images and 1..%d steps", n, steps, cfg.Diffusion.Steps)
	}
	full, err := cfg.Diffusion.NewSchedule()
	if err != nil {
		return nil, err
	}
	ts, err := diffusion.SpacedTimesteps(cfg.Diffusion.Steps, steps, diffusion.SpacingUniform)
	if err != nil {
		return nil, fmt.Errorf("train: sampler: %w", err)
	}
	sched, err := diffusion.Respace(full, ts)
	if err != nil {
		return nil, fmt.Errorf("train: sampler: %w", err)
	}
	u, err := model.New(cfg.Model, rand.New(rand.NewSource(0)))
	if err != nil {
		return nil, fmt.Errorf("train: sampler: %w", err)
	}
	if err := setPrecision(u, cfg.Engine.Precision); err != nil {
		return nil, err
	}
	den, err := diffusion.PredictionDenoiser(u, full, cfg.Diffusion.Prediction)
	if err != nil {
		return nil, err
	}
	m := cfg.Model
	return func(step int, ema map[string]*tensor.Dense) (*tensor.Dense, error) {
		if err := u.SetParams(ema); err != nil {
			return nil, err
		}
		xT := tensors.Randn(rand.New(rand.NewSource(seed)), n, m.InChannels, m.ImageSize, m.ImageSize)
		return sample.DDIM(den, xT, sched, sample.DDIMOptions{Eta: 0, ClipX0: true}, nil, nil) // η = 0 draws no noise
	}, nil
}
