package diffusion

import (
	"fmt"
	"math"
	"math/rand"

	"gorgonia.org/tensor"
)

// The reverse steps below are the one implementation of DDPM's ancestral
// step, DDIM's step and DDRM/DDNM's mixing step: the samplers (package
// sample) and the solvers (inverse/solve) both take them, on float64
// slices of a batch (image after image), with the noise z drawn by the
// caller, per image (ImageRNGs, FillNormal), so that a result never depends
// on the batch it was computed in.

// Reverse-process variances of the ancestral step, the values of a config's
// diffusion.variance.
const (
	// VarianceFixedSmall is the posterior variance β̃_i (log clipped at
	// index 0, as guided-diffusion).
	VarianceFixedSmall = "fixed_small"
	// VarianceFixedLarge is β_i.
	VarianceFixedLarge = "fixed_large"
	// VarianceLearnedRange interpolates log β̃_i and log β_i with the
	// model's variance output v ∈ [−1, 1] (improved DDPM, guided-diffusion
	// learned_range); the denoiser must be a VarianceDenoiser.
	VarianceLearnedRange = "learned_range"
)

// Variances lists the reverse-process variances.
func Variances() []string {
	return []string{VarianceFixedSmall, VarianceFixedLarge, VarianceLearnedRange}
}

// ValidVariance returns an error naming v unless it is one of Variances
// ("" is read as VarianceFixedSmall).
func ValidVariance(v string) error {
	switch v {
	case "", VarianceFixedSmall, VarianceFixedLarge, VarianceLearnedRange:
		return nil
	}
	return fmt.Errorf("variance %q, want %q, %q or %q (the model's diffusion.variance)", v, VarianceFixedSmall, VarianceFixedLarge, VarianceLearnedRange)
}

// VarianceDenoiser is a denoiser of a model trained with learn_sigma
// (improved DDPM / guided-diffusion): besides ε it outputs v ∈ [−1, 1] per
// element, which interpolates the log variance of the reverse step between
// the posterior variance β̃_t (v = −1) and β_t (v = +1):
//
//	log σ²_t = (v+1)/2 · log β_t + (1−v)/2 · log β̃_t.
//
// v is guided-diffusion's model_var_values, the second half of the output
// channels, unchanged.
type VarianceDenoiser interface {
	Denoiser
	// EpsVar returns ε and v at x_t, original timesteps t, both shaped like xt.
	EpsVar(xt *tensor.Dense, t []int) (eps, v *tensor.Dense, err error)
}

// AncestralStep writes DDPM's step from index i into out: the posterior
// mean of q(x_{i−1} | x_i, x̂0), c0·x̂0 + ct·x, plus σ z, with σ² β̃_i
// (fixed_small, "" too), β_i (fixed_large), or per element
// exp((v+1)/2 · log β_i + (1−v)/2 · log β̃_i) for learned_range (v the
// model's variance output, nil otherwise). z nil adds no noise (the last
// step, i = 0, takes none). On a respaced schedule β and β̃ are the
// respaced ones (guided-diffusion's SpacedDiffusion). x0 is used as
// given: clamp it first where wanted. out may alias x or x0.
func (s *Schedule) AncestralStep(i int, variance string, x, x0, v, z, out []float64) {
	c0, ct := s.PosteriorMeanCoefs(i)
	logSmall := s.PosteriorLogVarianceClipped(i)
	logLarge := math.Log(s.Beta(i))
	sd := math.Exp(0.5 * logSmall)
	if variance == VarianceFixedLarge {
		sd = math.Exp(0.5 * logLarge)
	}
	for j := range out {
		o := c0*x0[j] + ct*x[j]
		if z != nil {
			sj := sd
			if v != nil {
				frac := (v[j] + 1) / 2
				sj = math.Exp(0.5 * (frac*logLarge + (1-frac)*logSmall))
			}
			o += sj * z[j]
		}
		out[j] = o
	}
}

// DDIMStep writes DDIM's step from index i (DDIMCoefs) into out:
// √ᾱ_{i−1} x̂0 + ceps ε̂ + σ z, z nil adding no noise. out may alias x0 or
// eps.
func (s *Schedule) DDIMStep(i int, eta float64, x0, eps, z, out []float64) {
	cx0, dir, sigma := s.DDIMCoefs(i, eta)
	for j := range out {
		o := cx0*x0[j] + dir*eps[j]
		if z != nil {
			o += sigma * z[j]
		}
		out[j] = o
	}
}

// MixStep writes DDRM's and DDNM's step from index i into out:
// √ᾱ_{i−1} x̂0 + √(1−ᾱ_{i−1}) (√(1−η²) ε̂ + η z), z nil adding no noise.
// out may alias x0 or eps.
func (s *Schedule) MixStep(i int, eta float64, x0, eps, z, out []float64) {
	abPrev := s.AlphaBarPrev(i)
	sd := math.Sqrt(1 - abPrev)
	for j := range out {
		v := math.Sqrt(1-eta*eta) * eps[j]
		if z != nil {
			v += eta * z[j]
		}
		out[j] = math.Sqrt(abPrev)*x0[j] + sd*v
	}
}

// Step is what a Callback sees after each denoiser step of a sampler
// (package sample) or a solver (inverse/solve).
type Step struct {
	// Step counts the denoiser steps taken, 1..Total (time travel, restarts
	// and other revisits count each time).
	Step, Total int
	// Index is the index of the schedule walked (the respaced one) that the
	// step left; Timestep is its original timestep.
	Index, Timestep int
	// X is the state after the step (VP coordinates, N×C×H×W) and X0 the
	// step's estimate of the clean image x̂0 (after a solver's data
	// correction where it makes one in image space); X0 is nil for a step
	// that has none.
	X, X0 *tensor.Dense
}

// Callback is called after each denoiser step (k-diffusion's callback): for
// progress, for recording the trajectory, for plotting x̂0 as it forms. The
// tensors are copies the callback may keep.
type Callback func(Step)

// ImageRNGs returns the random streams of images first..first+n−1 of a run
// seeded by seed: image k's stream depends only on (seed, k) (a SplitMix64
// hash), so sampling or solving images one by one or in batches of any
// size gives the same bits.
func ImageRNGs(seed int64, first, n int) []*rand.Rand {
	out := make([]*rand.Rand, n)
	for i := range out {
		z := uint64(seed) + uint64(first+i+1)*0x9E3779B97F4A7C15
		z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
		z = (z ^ (z >> 27)) * 0x94D049BB133111EB
		z ^= z >> 31
		out[i] = rand.New(rand.NewSource(int64(z &^ (1 << 63))))
	}
	return out
}

// FillNormal fills z, len(rngs) blocks of len(z)/len(rngs) values, with
// standard normal draws, block k from rngs[k].
func FillNormal(rngs []*rand.Rand, z []float64) {
	b := len(z) / len(rngs)
	for k, r := range rngs {
		for j := k * b; j < (k+1)*b; j++ {
			z[j] = r.NormFloat64()
		}
	}
}
