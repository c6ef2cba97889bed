// Package diffusion holds the mathematics of denoising diffusion models that
// every other diffinv package shares: discrete noise schedules (β_t, ᾱ_t),
// sampling from q(x_t | x_0), conversions between the ε, x̂0 and v
// parameterisations, the posterior q(x_{t−1} | x_t, x_0), timestep
// respacing (DDIM subsequences and guided-diffusion's "ddimK" strings), the
// reverse steps the samplers and solvers share (AncestralStep, DDIMStep,
// MixStep; per-image random streams, ImageRNGs; the Step a Callback sees),
// the conversion of x0- and v-predicting networks into ε-denoisers
// (PredictionDenoiser), and the VP SDE a discrete schedule implies
// (ScheduleSDE), whose terms the SDE samplers use.
//
// Everything schedule-related is computed in float64; tensors are the float32
// N×C×H×W batches of the rest of diffinv, converted element by element.
//
// Indices and timesteps: a Schedule has K steps indexed 0..K−1. A schedule
// built by NewSchedule has K = T and index i is timestep i. A respaced
// schedule keeps a subset of the original timesteps; index i then stands for
// original timestep Timestep(i), and a network must always be called with
// Timestep(i), never with i.
package diffusion

import (
	"fmt"
	"math"
	"sort"
)

// Schedule kinds accepted by NewSchedule.
const (
	// Linear is DDPM's linear β schedule (guided-diffusion "linear").
	Linear = "linear"
	// Cosine is the improved-DDPM cosine ᾱ schedule (guided-diffusion "cosine").
	Cosine = "cosine"
)

// scheduleKinds lists the schedule names NewSchedule accepts.
var scheduleKinds = []string{Linear, Cosine}

// ScheduleKinds returns the schedule names NewSchedule accepts.
func ScheduleKinds() []string { return append([]string(nil), scheduleKinds...) }

// Default linear β endpoints for T = 1000 (DDPM); guided-diffusion scales
// both by 1000/T for other T.
const (
	DefaultBetaStart = 1e-4
	DefaultBetaEnd   = 0.02
)

// cosineS is the offset s of the improved-DDPM cosine schedule and cosineMaxBeta
// the clip that keeps β_t < 1 near t = T.
const (
	cosineS       = 0.008
	cosineMaxBeta = 0.999
)

// Schedule is an immutable discrete noise schedule of K steps. All per-step
// quantities are precomputed in float64. Create one with NewSchedule,
// FromBetas or Respace.
type Schedule struct {
	betas         []float64
	alphaBars     []float64
	alphaBarsPrev []float64
	timesteps     []int     // index → original timestep
	origAlphaBars []float64 // ᾱ of the original (unrespaced) schedule, by original timestep

	postVar        []float64
	postLogVarClip []float64
	postCoefX0     []float64
	postCoefXt     []float64
}

// NewSchedule builds a T-step schedule of the given kind.
//
// "linear": β_t = linspace(betaStart, betaEnd, T). When both betaStart and
// betaEnd are 0 the guided-diffusion defaults are used, 1e-4·1000/T and
// 0.02·1000/T (DDPM's values at T = 1000, scaled so that β_t·T and thus the
// matching VP SDE do not depend on T). Otherwise both must satisfy
// 0 < betaStart ≤ betaEnd < 1.
//
// "cosine": ᾱ(t) = cos²((t/T + s)/(1 + s)·π/2) with s = 0.008, β_t =
// min(1 − ᾱ((t+1)/T)/ᾱ(t/T), 0.999) (improved DDPM); betaStart and betaEnd
// must be 0.
func NewSchedule(kind string, T int, betaStart, betaEnd float64) (*Schedule, error) {
	if T <= 0 {
		return nil, fmt.Errorf("diffusion: schedule T = %d, want a positive number of steps", T)
	}
	var betas []float64
	switch kind {
	case Linear:
		if betaStart == 0 && betaEnd == 0 {
			scale := 1000 / float64(T)
			betaStart, betaEnd = DefaultBetaStart*scale, DefaultBetaEnd*scale
			if betaEnd >= 1 {
				return nil, fmt.Errorf("diffusion: linear schedule with T = %d gives default β_end = 0.02·1000/T = %g, want < 1 (use T ≥ 21 or set beta_end)", T, betaEnd)
			}
		} else {
			if !(betaStart > 0 && betaStart < 1) {
				return nil, fmt.Errorf("diffusion: linear schedule beta_start = %g, want in (0, 1)", betaStart)
			}
			if !(betaEnd > 0 && betaEnd < 1) {
				return nil, fmt.Errorf("diffusion: linear schedule beta_end = %g, want in (0, 1)", betaEnd)
			}
			if betaStart > betaEnd {
				return nil, fmt.Errorf("diffusion: linear schedule beta_start = %g > beta_end = %g, want beta_start ≤ beta_end", betaStart, betaEnd)
			}
		}
		betas = linspace(betaStart, betaEnd, T)
	case Cosine:
		if betaStart != 0 || betaEnd != 0 {
			return nil, fmt.Errorf("diffusion: cosine schedule takes no beta_start/beta_end (got %g, %g), want both 0", betaStart, betaEnd)
		}
		ab := func(u float64) float64 {
			c := math.Cos((u + cosineS) / (1 + cosineS) * math.Pi / 2)
			return c * c
		}
		betas = make([]float64, T)
		for i := range betas {
			b := 1 - ab(float64(i+1)/float64(T))/ab(float64(i)/float64(T))
			betas[i] = math.Min(b, cosineMaxBeta)
		}
	default:
		return nil, fmt.Errorf("diffusion: unknown schedule kind %q, want one of %v", kind, scheduleKinds)
	}
	return FromBetas(betas)
}

// FromBetas builds a schedule from explicit β_t, each in (0, 1), one per
// timestep 0..len(betas)−1.
func FromBetas(betas []float64) (*Schedule, error) {
	if len(betas) == 0 {
		return nil, fmt.Errorf("diffusion: empty β schedule, want at least one step")
	}
	ts := make([]int, len(betas))
	for i := range ts {
		ts[i] = i
	}
	s, err := build(betas, ts, nil, nil)
	if err != nil {
		return nil, err
	}
	s.origAlphaBars = s.alphaBars
	return s, nil
}

// build precomputes a schedule from betas; when exactAB is non-nil it holds
// ᾱ (already known, e.g. kept from a parent schedule) and is used as is
// rather than recomputed as a product, which would drift by rounding.
func build(betas []float64, timesteps []int, orig, exactAB []float64) (*Schedule, error) {
	K := len(betas)
	s := &Schedule{
		betas:          append([]float64(nil), betas...),
		alphaBars:      make([]float64, K),
		alphaBarsPrev:  make([]float64, K),
		timesteps:      append([]int(nil), timesteps...),
		origAlphaBars:  orig,
		postVar:        make([]float64, K),
		postLogVarClip: make([]float64, K),
		postCoefX0:     make([]float64, K),
		postCoefXt:     make([]float64, K),
	}
	prod := 1.0
	for i, b := range betas {
		if !(b > 0 && b < 1) {
			return nil, fmt.Errorf("diffusion: β[%d] = %g, want in (0, 1)", i, b)
		}
		s.alphaBarsPrev[i] = prod
		prod *= 1 - b
		if exactAB != nil {
			prod = exactAB[i]
		}
		s.alphaBars[i] = prod
	}
	for i := range betas {
		b, ab, abPrev := betas[i], s.alphaBars[i], s.alphaBarsPrev[i]
		s.postVar[i] = b * (1 - abPrev) / (1 - ab)
		s.postCoefX0[i] = b * math.Sqrt(abPrev) / (1 - ab)
		s.postCoefXt[i] = (1 - abPrev) * math.Sqrt(1-b) / (1 - ab)
	}
	// guided-diffusion: the posterior variance is 0 at index 0, so its log is
	// clipped by repeating the value of index 1.
	for i := range betas {
		v := s.postVar[i]
		if i == 0 {
			if K > 1 {
				v = s.postVar[1]
			} else {
				v = betas[0]
			}
		}
		s.postLogVarClip[i] = math.Log(v)
	}
	return s, nil
}

func linspace(a, b float64, n int) []float64 {
	out := make([]float64, n)
	if n == 1 {
		out[0] = a
		return out
	}
	for i := range out {
		out[i] = a + (b-a)*float64(i)/float64(n-1)
	}
	return out
}

// Len returns the number of steps K of the schedule.
func (s *Schedule) Len() int { return len(s.betas) }

// OriginalT returns the number of timesteps of the schedule this one was
// respaced from (equal to Len for an unrespaced schedule).
func (s *Schedule) OriginalT() int { return len(s.origAlphaBars) }

// Timestep returns the original timestep that index i stands for: the
// timestep a network must be called with.
func (s *Schedule) Timestep(i int) int { return s.timesteps[i] }

// Timesteps returns a copy of the map from index to original timestep.
func (s *Schedule) Timesteps() []int { return append([]int(nil), s.timesteps...) }

// Beta returns β_i (for a respaced schedule, 1 − ᾱ_i/ᾱ_{i−1}).
func (s *Schedule) Beta(i int) float64 { return s.betas[i] }

// Betas returns a copy of all β_i.
func (s *Schedule) Betas() []float64 { return append([]float64(nil), s.betas...) }

// Alpha returns α_i = 1 − β_i.
func (s *Schedule) Alpha(i int) float64 { return 1 - s.betas[i] }

// AlphaBar returns ᾱ_i = Π_{j≤i} α_j.
func (s *Schedule) AlphaBar(i int) float64 { return s.alphaBars[i] }

// AlphaBars returns a copy of all ᾱ_i.
func (s *Schedule) AlphaBars() []float64 { return append([]float64(nil), s.alphaBars...) }

// AlphaBarPrev returns ᾱ_{i−1}, with ᾱ_{−1} = 1.
func (s *Schedule) AlphaBarPrev(i int) float64 { return s.alphaBarsPrev[i] }

// SqrtAlphaBar returns √ᾱ_i, the signal coefficient of x_i.
func (s *Schedule) SqrtAlphaBar(i int) float64 { return math.Sqrt(s.alphaBars[i]) }

// SqrtOneMinusAlphaBar returns √(1−ᾱ_i), the noise standard deviation of x_i.
func (s *Schedule) SqrtOneMinusAlphaBar(i int) float64 { return math.Sqrt(1 - s.alphaBars[i]) }

// Sigma returns the VE noise level of index i, σ_i = √(1−ᾱ_i)/√ᾱ_i: x_i/√ᾱ_i = x_0 + σ_i ε.
func (s *Schedule) Sigma(i int) float64 { return math.Sqrt((1 - s.alphaBars[i]) / s.alphaBars[i]) }

// NearestSigma returns the index whose VE level Sigma(i) is nearest s (the
// lowest such index on a tie): where a solver that works on noise levels
// (DiffPIR's start, PnP-DM's coupling ρ, DAPS's annealing) meets the
// integer timesteps the network takes.
func (s *Schedule) NearestSigma(sigma float64) int {
	best, bd := 0, math.Inf(1)
	for i := range s.alphaBars {
		if d := math.Abs(s.Sigma(i) - sigma); d < bd {
			best, bd = i, d
		}
	}
	return best
}

// AlphaBarAtTimestep returns ᾱ at original timestep t (0..OriginalT()−1),
// whichever indices this schedule keeps: what a closed-form denoiser that is
// called with original timesteps needs.
func (s *Schedule) AlphaBarAtTimestep(t int) (float64, error) {
	if t < 0 || t >= len(s.origAlphaBars) {
		return 0, fmt.Errorf("diffusion: timestep %d out of range, want 0..%d", t, len(s.origAlphaBars)-1)
	}
	return s.origAlphaBars[t], nil
}

// PosteriorVariance returns β̃_i = β_i (1−ᾱ_{i−1})/(1−ᾱ_i), the variance of
// q(x_{i−1} | x_i, x_0) (0 at index 0).
func (s *Schedule) PosteriorVariance(i int) float64 { return s.postVar[i] }

// PosteriorLogVarianceClipped returns log β̃_i with index 0 replaced by
// index 1 (guided-diffusion's posterior_log_variance_clipped), finite everywhere.
func (s *Schedule) PosteriorLogVarianceClipped(i int) float64 { return s.postLogVarClip[i] }

// PosteriorMeanCoefs returns (c0, ct) with the mean of q(x_{i−1} | x_i, x_0)
// equal to c0·x_0 + ct·x_i: c0 = β_i √ᾱ_{i−1}/(1−ᾱ_i), ct = (1−ᾱ_{i−1}) √α_i/(1−ᾱ_i).
func (s *Schedule) PosteriorMeanCoefs(i int) (c0, ct float64) {
	return s.postCoefX0[i], s.postCoefXt[i]
}

// DDIMCoefs returns the coefficients of DDIM's step from index i (Song et
// al. 2021, eq. 12): x_{i−1} = cx0·x̂0 + ceps·ε̂ + sigma·z with
//
//	cx0 = √ᾱ_{i−1}, sigma = η √((1−ᾱ_{i−1})/(1−ᾱ_i)) √(1−ᾱ_i/ᾱ_{i−1}),
//	ceps = √(1−ᾱ_{i−1}−sigma²)  (0 where rounding makes the root negative).
//
// η = 0 is deterministic DDIM, η = 1 DDPM's posterior variance.
func (s *Schedule) DDIMCoefs(i int, eta float64) (cx0, ceps, sigma float64) {
	ab, abPrev := s.alphaBars[i], s.alphaBarsPrev[i]
	sigma = eta * math.Sqrt((1-abPrev)/(1-ab)*(1-ab/abPrev))
	return math.Sqrt(abPrev), math.Sqrt(math.Max(1-abPrev-sigma*sigma, 0)), sigma
}

// Respace returns the schedule that keeps only the given indices of s (in
// any order, without duplicates, each in 0..s.Len()−1; for a schedule from
// NewSchedule these are original timesteps).
//
// The result's ᾱ at each kept index equals s's ᾱ there, its β are
// 1 − ᾱ_k/ᾱ_{previous kept} (guided-diffusion's SpacedDiffusion), and its
// Timestep map goes to the original timesteps of s.
func Respace(s *Schedule, useTimesteps []int) (*Schedule, error) {
	if s == nil {
		return nil, fmt.Errorf("diffusion: respace of a nil schedule")
	}
	if len(useTimesteps) == 0 {
		return nil, fmt.Errorf("diffusion: respace with no timesteps, want at least one of 0..%d", s.Len()-1)
	}
	keep := append([]int(nil), useTimesteps...)
	sort.Ints(keep)
	for j, t := range keep {
		if t < 0 || t >= s.Len() {
			return nil, fmt.Errorf("diffusion: respace timestep %d out of range, want 0..%d", t, s.Len()-1)
		}
		if j > 0 && keep[j-1] == t {
			return nil, fmt.Errorf("diffusion: respace timestep %d given twice, want distinct timesteps", t)
		}
	}
	betas := make([]float64, len(keep))
	abs := make([]float64, len(keep))
	ts := make([]int, len(keep))
	last := 1.0
	for j, t := range keep {
		ab := s.alphaBars[t]
		betas[j] = 1 - ab/last
		last = ab
		abs[j] = ab
		ts[j] = s.timesteps[t]
	}
	return build(betas, ts, s.origAlphaBars, abs)
}
