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

// PredictionDenoiser returns a diffusion.Denoiser of ε for a network whose
// output (what den.Eps returns) is a prediction of the given kind over the
// unrespaced training schedule sched (index = timestep): den itself for
// "eps"; for "x0", ε = (x_t − √ᾱ_t·x̂0)/√(1−ᾱ_t); for "v", ε = √(1−ᾱ_t)·x_t
// + √ᾱ_t·v̂. EpsVJP is converted with the same linear maps, and EpsVar is
// kept when den has it (diffusion.VarianceDenoiser).
func PredictionDenoiser(den diffusion.Denoiser, sched *diffusion.Schedule, prediction string) (diffusion.Denoiser, error) {
	switch prediction {
	case "eps":
		return den, nil
	case "x0", "v":
	default:
		return nil, fmt.Errorf("train: prediction %q, want one of %v", prediction, predictions)
	}
	p := predDenoiser{den: den, sched: sched, pred: prediction}
	if vd, ok := den.(diffusion.VarianceDenoiser); ok {
		return predVarDenoiser{p, vd}, nil
	}
	return p, nil
}

// predDenoiser converts x0 or v predictions into ε.
type predDenoiser struct {
	den   diffusion.Denoiser
	sched *diffusion.Schedule
	pred  string
}

func (p predDenoiser) toEps(xt *tensor.Dense, t []int, out *tensor.Dense) (*tensor.Dense, error) {
	if p.pred == "x0" {
		return p.sched.EpsFromX0(xt, t, out)
	}
	return p.sched.EpsFromV(xt, t, out)
}

// Eps returns the ε that the network's prediction implies.
func (p predDenoiser) Eps(xt *tensor.Dense, t []int) (*tensor.Dense, error) {
	out, err := p.den.Eps(xt, t)
	if err != nil {
		return nil, err
	}
	return p.toEps(xt, t, out)
}

// EpsVJP returns ε and vᵀ∂ε/∂x_t: for x0, (v − √ᾱ·vᵀ∂x̂0/∂x_t)/√(1−ᾱ); for
// v, √(1−ᾱ)·v + √ᾱ·vᵀ∂v̂/∂x_t.
func (p predDenoiser) EpsVJP(xt *tensor.Dense, t []int, v *tensor.Dense) (*tensor.Dense, *tensor.Dense, error) {
	out, vjp, err := p.den.EpsVJP(xt, t, v)
	if err != nil {
		return nil, nil, err
	}
	eps, err := p.toEps(xt, t, out)
	if err != nil {
		return nil, nil, err
	}
	// Both maps are ε = A·x_t + B·out, so vᵀ∂ε/∂x_t = A·v + B·vᵀ∂out/∂x_t:
	// the same combination applied to (v, vjp).
	g, err := p.toEps(v, t, vjp)
	if err != nil {
		return nil, nil, err
	}
	return eps, g, nil
}

// predVarDenoiser is a predDenoiser that keeps the variance output.
type predVarDenoiser struct {
	predDenoiser
	vd diffusion.VarianceDenoiser
}

// EpsVar returns ε (converted) and the unchanged variance channels.
func (p predVarDenoiser) EpsVar(xt *tensor.Dense, t []int) (*tensor.Dense, *tensor.Dense, error) {
	out, v, err := p.vd.EpsVar(xt, t)
	if err != nil {
		return nil, nil, err
	}
	eps, err := p.toEps(xt, t, out)
	return eps, v, err
}

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
	full, err := NewSchedule(cfg.Diffusion)
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
	den, err := PredictionDenoiser(u, full, cfg.Diffusion.Prediction)
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
