package sample

import (
	"fmt"
	"math"
	"math/rand"

	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/internal/tensors"
	"gorgonia.org/tensor"
)

// DDPM variance choices.
const (
	// FixedSmall uses the posterior variance β̃_t (log clipped at t = 0).
	FixedSmall = "fixed-small"
	// FixedLarge uses β_t (β̃_1 at t = 0, as guided-diffusion).
	FixedLarge = "fixed-large"
	// LearnedRange interpolates log β̃_t and log β_t with the model's v
	// output; the denoiser must be a VarianceDenoiser.
	LearnedRange = "learned-range"
)

// DDPMOptions configures DDPM.
type DDPMOptions struct {
	// Variance is FixedSmall, FixedLarge or LearnedRange.
	Variance string
	// ClipX0 clamps x̂0 to [−1, 1] before forming the posterior mean (image
	// models; leave off for unbounded data).
	ClipX0 bool
}

// DefaultDDPMOptions returns fixed-small variance without clipping.
func DefaultDDPMOptions() DDPMOptions { return DDPMOptions{Variance: FixedSmall} }

// Validate returns an error naming a bad option.
func (o DDPMOptions) Validate() error {
	switch o.Variance {
	case FixedSmall, FixedLarge, LearnedRange:
		return nil
	}
	return fmt.Errorf("sample: ddpm variance %q, want one of [%s %s %s]", o.Variance, FixedSmall, FixedLarge, LearnedRange)
}

// DDPM runs ancestral sampling (Ho et al. 2020) over the schedule: at each
// index i = K−1..0, x̂0 = (x_i − √(1−ᾱ_i) ε̂)/√ᾱ_i, then
// x_{i−1} = μ̃(x̂0, x_i) + σ_i z with μ̃ the posterior mean of q(x_{i−1} | x_i, x0)
// and σ_i² from o.Variance; no noise is added at i = 0. On a respaced
// schedule β_i and β̃_i are the respaced ones (guided-diffusion's
// SpacedDiffusion).
func DDPM(den diffusion.Denoiser, xT *tensor.Dense, sched *diffusion.Schedule, o DDPMOptions, rng *rand.Rand, progress Progress) (*tensor.Dense, error) {
	n, d, err := checkInputs("ddpm", den, xT, sched, rng, true)
	if err != nil {
		return nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	var vden VarianceDenoiser
	if o.Variance == LearnedRange {
		var ok bool
		if vden, ok = den.(VarianceDenoiser); !ok {
			return nil, fmt.Errorf("sample: ddpm variance %q needs a denoiser with a learned variance output (sample.VarianceDenoiser), got %T", LearnedRange, den)
		}
	}
	x := tensors.Clone(xT)
	xs := tensors.F32(x)
	z := make([]float64, n*d)
	K := sched.Len()
	for i := K - 1; i >= 0; i-- {
		var eps, vv []float32
		if vden != nil {
			ts := repeat(sched.Timestep(i), n)
			e, v, err := vden.EpsVar(x, ts)
			if err != nil {
				return nil, fmt.Errorf("sample: ddpm: denoiser at timestep %d: %w", ts[0], err)
			}
			if err := tensors.SameShape("eps", e, "x_t", x); err != nil {
				return nil, fmt.Errorf("sample: ddpm: %w", err)
			}
			if err := tensors.SameShape("v", v, "x_t", x); err != nil {
				return nil, fmt.Errorf("sample: ddpm: %w", err)
			}
			eps, vv = tensors.F32(e), tensors.F32(v)
		} else {
			eps, err = epsAt(den, x, sched, i)
			if err != nil {
				return nil, fmt.Errorf("sample: ddpm: %w", err)
			}
		}
		a, s := sched.SqrtAlphaBar(i), sched.SqrtOneMinusAlphaBar(i)
		c0, ct := sched.PosteriorMeanCoefs(i)
		logSmall := sched.PosteriorLogVarianceClipped(i)
		logLarge := math.Log(sched.Beta(i))
		fixedLog := logSmall
		if o.Variance == FixedLarge && i > 0 {
			fixedLog = logLarge
		}
		if i > 0 {
			noise(rng, z)
		}
		fixedStd := math.Exp(0.5 * fixedLog)
		for j := range xs {
			xt := float64(xs[j])
			x0 := (xt - s*float64(eps[j])) / a
			if o.ClipX0 {
				x0 = clip1(x0)
			}
			mean := c0*x0 + ct*xt
			if i == 0 {
				xs[j] = float32(mean)
				continue
			}
			std := fixedStd
			if vv != nil {
				frac := (float64(vv[j]) + 1) / 2
				std = math.Exp(0.5 * (frac*logLarge + (1-frac)*logSmall))
			}
			xs[j] = float32(mean + std*z[j])
		}
		report(progress, K-i, K)
	}
	return x, nil
}

// DDIMOptions configures DDIM.
type DDIMOptions struct {
	// Eta scales the noise: 0 is the deterministic DDIM, 1 is DDPM with
	// posterior variance (on the full schedule, the same process).
	Eta float64
	// ClipX0 clamps x̂0 to [−1, 1] (ε is then recomputed from the clamped x̂0,
	// as guided-diffusion does).
	ClipX0 bool
}

// DefaultDDIMOptions returns η = 0 without clipping.
func DefaultDDIMOptions() DDIMOptions { return DDIMOptions{} }

// Validate returns an error naming a bad option.
func (o DDIMOptions) Validate() error {
	if !(o.Eta >= 0) || math.IsInf(o.Eta, 0) {
		return fmt.Errorf("sample: ddim eta = %g, want a finite value ≥ 0", o.Eta)
	}
	return nil
}

// DDIM runs the generalised DDIM update (Song et al. 2021) over the
// schedule, normally a respaced one:
//
//	x_{i−1} = √ᾱ_{i−1} x̂0 + √(1−ᾱ_{i−1}−σ_i²) ε̂ + σ_i z,
//	σ_i = η √((1−ᾱ_{i−1})/(1−ᾱ_i)) √(1−ᾱ_i/ᾱ_{i−1}),
//
// with ᾱ_{−1} = 1, so the last step returns x̂0. Noise is drawn only when
// η > 0 and i > 0; with η = 0 the result does not depend on rng.
func DDIM(den diffusion.Denoiser, xT *tensor.Dense, sched *diffusion.Schedule, o DDIMOptions, rng *rand.Rand, progress Progress) (*tensor.Dense, error) {
	n, d, err := checkInputs("ddim", den, xT, sched, rng, o.Eta > 0)
	if err != nil {
		return nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	x := tensors.Clone(xT)
	xs := tensors.F32(x)
	z := make([]float64, n*d)
	K := sched.Len()
	for i := K - 1; i >= 0; i-- {
		eps, err := epsAt(den, x, sched, i)
		if err != nil {
			return nil, fmt.Errorf("sample: ddim: %w", err)
		}
		a, s := sched.SqrtAlphaBar(i), sched.SqrtOneMinusAlphaBar(i)
		cx0, dirCoef, sigma := sched.DDIMCoefs(i, o.Eta)
		stochastic := sigma > 0 && i > 0
		if stochastic {
			noise(rng, z)
		}
		for j := range xs {
			xt, e := float64(xs[j]), float64(eps[j])
			x0 := (xt - s*e) / a
			if o.ClipX0 {
				x0 = clip1(x0)
				e = (xt - a*x0) / s
			}
			v := cx0*x0 + dirCoef*e
			if stochastic {
				v += sigma * z[j]
			}
			xs[j] = float32(v)
		}
		report(progress, K-i, K)
	}
	return x, nil
}
