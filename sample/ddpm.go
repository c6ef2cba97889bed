package sample

import (
	"fmt"
	"math"
	"math/rand"

	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/internal/tensors"
	"gorgonia.org/tensor"
)

// DDPMOptions configures DDPM.
type DDPMOptions struct {
	// Variance is diffusion.VarianceFixedSmall, VarianceFixedLarge or
	// VarianceLearnedRange ("fixed_small", "fixed_large", "learned_range",
	// a config's diffusion.variance).
	Variance string
	// ClipX0 clamps x̂0 to [−1, 1] before forming the posterior mean (image
	// models; leave off for unbounded data).
	ClipX0 bool
}

// DefaultDDPMOptions returns fixed_small variance without clipping.
func DefaultDDPMOptions() DDPMOptions { return DDPMOptions{Variance: diffusion.VarianceFixedSmall} }

// Validate returns an error naming a bad option.
func (o DDPMOptions) Validate() error {
	switch o.Variance {
	case diffusion.VarianceFixedSmall, diffusion.VarianceFixedLarge, diffusion.VarianceLearnedRange:
		return nil
	}
	return fmt.Errorf("sample: ddpm variance %q, want one of %v", o.Variance, diffusion.Variances())
}

// DDPM runs ancestral sampling (Ho et al. 2020) over the schedule: at each
// index i = K−1..0, x̂0 = (x_i − √(1−ᾱ_i) ε̂)/√ᾱ_i (clamped with ClipX0),
// then the schedule's ancestral step (diffusion.Schedule.AncestralStep)
// x_{i−1} = μ̃(x̂0, x_i) + σ_i z with μ̃ the posterior mean of
// q(x_{i−1} | x_i, x0) and σ_i² from o.Variance; no noise is added at
// i = 0. On a respaced schedule β_i and β̃_i are the respaced ones
// (guided-diffusion's SpacedDiffusion). rngs holds one stream per sample.
func DDPM(den diffusion.Denoiser, xT *tensor.Dense, sched *diffusion.Schedule, o DDPMOptions, rngs []*rand.Rand, cb diffusion.Callback) (*tensor.Dense, error) {
	n, d, err := checkInputs("ddpm", den, xT, sched, rngs, true)
	if err != nil {
		return nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	var vden diffusion.VarianceDenoiser
	if o.Variance == diffusion.VarianceLearnedRange {
		var ok bool
		if vden, ok = den.(diffusion.VarianceDenoiser); !ok {
			return nil, fmt.Errorf("sample: ddpm variance %q needs a denoiser with a learned variance output (diffusion.VarianceDenoiser), got %T", o.Variance, den)
		}
	}
	x := tensors.Clone(xT)
	xs := tensors.F32(x)
	xt, x0, z := make([]float64, n*d), make([]float64, n*d), make([]float64, n*d)
	var v []float64
	if vden != nil {
		v = make([]float64, n*d)
	}
	K := sched.Len()
	for i := K - 1; i >= 0; i-- {
		var eps []float32
		if vden != nil {
			ts := repeat(sched.Timestep(i), n)
			e, vt, err := vden.EpsVar(x, ts)
			if err != nil {
				return nil, fmt.Errorf("sample: ddpm: denoiser at timestep %d: %w", ts[0], err)
			}
			if err := tensors.SameShape("eps", e, "x_t", x); err != nil {
				return nil, fmt.Errorf("sample: ddpm: %w", err)
			}
			if err := tensors.SameShape("v", vt, "x_t", x); err != nil {
				return nil, fmt.Errorf("sample: ddpm: %w", err)
			}
			eps = tensors.F32(e)
			for j, vj := range tensors.F32(vt) {
				v[j] = float64(vj)
			}
		} else {
			eps, err = epsAt(den, x, sched, i)
			if err != nil {
				return nil, fmt.Errorf("sample: ddpm: %w", err)
			}
		}
		a, s := sched.SqrtAlphaBar(i), sched.SqrtOneMinusAlphaBar(i)
		for j := range xs {
			xt[j] = float64(xs[j])
			x0[j] = (xt[j] - s*float64(eps[j])) / a
			if o.ClipX0 {
				x0[j] = clip1(x0[j])
			}
		}
		noise := z
		if i > 0 {
			diffusion.FillNormal(rngs, z)
		} else {
			noise = nil
		}
		sched.AncestralStep(i, o.Variance, xt, x0, v, noise, xt)
		for j := range xs {
			xs[j] = float32(xt[j])
		}
		report(cb, K-i, K, sched, i, xs, x0, x.Shape())
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
// schedule, normally a respaced one, the schedule's DDIM step
// (diffusion.Schedule.DDIMStep):
//
//	x_{i−1} = √ᾱ_{i−1} x̂0 + √(1−ᾱ_{i−1}−σ_i²) ε̂ + σ_i z,
//	σ_i = η √((1−ᾱ_{i−1})/(1−ᾱ_i)) √(1−ᾱ_i/ᾱ_{i−1}),
//
// with ᾱ_{−1} = 1, so the last step returns x̂0. Noise is drawn only when
// η > 0 and i > 0, one stream per sample from rngs; with η = 0 the result
// does not depend on rngs, which may be nil.
func DDIM(den diffusion.Denoiser, xT *tensor.Dense, sched *diffusion.Schedule, o DDIMOptions, rngs []*rand.Rand, cb diffusion.Callback) (*tensor.Dense, error) {
	n, d, err := checkInputs("ddim", den, xT, sched, rngs, o.Eta > 0)
	if err != nil {
		return nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	x := tensors.Clone(xT)
	xs := tensors.F32(x)
	x0, e, z := make([]float64, n*d), make([]float64, n*d), make([]float64, n*d)
	K := sched.Len()
	for i := K - 1; i >= 0; i-- {
		eps, err := epsAt(den, x, sched, i)
		if err != nil {
			return nil, fmt.Errorf("sample: ddim: %w", err)
		}
		a, s := sched.SqrtAlphaBar(i), sched.SqrtOneMinusAlphaBar(i)
		for j := range xs {
			xt := float64(xs[j])
			e[j] = float64(eps[j])
			x0[j] = (xt - s*e[j]) / a
			if o.ClipX0 {
				x0[j] = clip1(x0[j])
				e[j] = (xt - a*x0[j]) / s
			}
		}
		var noise []float64
		if _, _, sigma := sched.DDIMCoefs(i, o.Eta); sigma > 0 && i > 0 {
			diffusion.FillNormal(rngs, z)
			noise = z
		}
		var x0rep []float64 // x̂0 for the callback (the step overwrites x0)
		if cb != nil {
			x0rep = append(x0rep, x0...)
		}
		sched.DDIMStep(i, o.Eta, x0, e, noise, x0)
		for j := range xs {
			xs[j] = float32(x0[j])
		}
		report(cb, K-i, K, sched, i, xs, x0rep, x.Shape())
	}
	return x, nil
}
