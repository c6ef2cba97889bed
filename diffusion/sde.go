package diffusion

import (
	"fmt"
	"math"
	"math/rand"

	"github.com/diffinv/diffinv/internal/tensors"
	"gorgonia.org/tensor"
)

// SDE is a forward diffusion dx = f(x, t) dt + g(t) dw on continuous time
// t ∈ (0, 1], in the style of score_sde_pytorch's sde_lib. For the three
// SDEs here the drift is linear in x, f(x, t) = DriftCoef(t)·x, and the
// marginal is p_t(x | x0) = N(Mean(t)·x0, Std(t)²·I).
type SDE interface {
	// Name is the config name: "vp", "subvp" or "ve".
	Name() string
	// DriftCoef returns the scalar c(t) with f(x, t) = c(t)·x.
	DriftCoef(t float64) float64
	// Drift returns f(x, t) with one time per batch element.
	Drift(x *tensor.Dense, t []float64) (*tensor.Dense, error)
	// Diffusion returns g(t).
	Diffusion(t float64) float64
	// Marginal returns the mean coefficient and standard deviation of
	// p_t(x | x0) = N(mean·x0, std²·I).
	Marginal(t float64) (mean, std float64)
	// PriorStd is the standard deviation of the prior p_1 (1 for VP and sub-VP).
	PriorStd() float64
	// PriorSample draws from the prior N(0, PriorStd()²·I).
	PriorSample(rng *rand.Rand, shape ...int) *tensor.Dense
}

// ContinuousTime maps discrete timestep i ∈ 0..T−1 to continuous time
// t = (i+1)/T ∈ (0, 1]: step i covers (i/T, (i+1)/T], so ᾱ_i (a product over
// steps 0..i) corresponds to the SDE marginal at the right end, (i+1)/T.
func ContinuousTime(i, T int) float64 { return float64(i+1) / float64(T) }

// DiscreteTimestep is the inverse of ContinuousTime, rounding to the
// nearest step and clamping to 0..T−1: i = round(t·T) − 1.
func DiscreteTimestep(t float64, T int) int {
	i := int(math.Round(t*float64(T))) - 1
	if i < 0 {
		i = 0
	}
	if i > T-1 {
		i = T - 1
	}
	return i
}

func scaleDrift(name string, x *tensor.Dense, t []float64, c func(float64) float64) (*tensor.Dense, error) {
	n, _, _, _, err := tensors.NCHW("x", x)
	if err != nil {
		return nil, fmt.Errorf("diffusion: %s drift: %w", name, err)
	}
	if len(t) != n {
		return nil, fmt.Errorf("diffusion: %s drift: %d times for a batch of %d, want one per sample", name, len(t), n)
	}
	out := tensors.Like(x)
	xs, o := tensors.F32(x), tensors.F32(out)
	d := len(xs) / n
	for k := 0; k < n; k++ {
		ck := c(t[k])
		for j := k * d; j < (k+1)*d; j++ {
			o[j] = float32(ck * float64(xs[j]))
		}
	}
	return out, nil
}

func priorSample(rng *rand.Rand, std float64, shape []int) *tensor.Dense {
	x := tensors.Randn(rng, shape...)
	if std != 1 {
		d := tensors.F32(x)
		for i := range d {
			d[i] *= float32(std)
		}
	}
	return x
}

// VPSDE is the variance-preserving SDE dx = −½β(t)x dt + √β(t) dw with
// β(t) = BetaMin + t(BetaMax − BetaMin), the continuous limit of DDPM.
//
// With BetaMin = 0.1 and BetaMax = 20 (the defaults) it is the limit of the
// guided-diffusion linear schedule for any T, because that schedule's β_i =
// β(i/(T−1))/T: ᾱ_i ≈ exp(−∫_0^{(i+1)/T} β(s) ds).
type VPSDE struct{ BetaMin, BetaMax float64 }

// NewVPSDE returns a VP SDE, checking 0 ≤ betaMin < betaMax.
func NewVPSDE(betaMin, betaMax float64) (VPSDE, error) {
	if !(betaMin >= 0) || !(betaMax > betaMin) || math.IsInf(betaMax, 0) {
		return VPSDE{}, fmt.Errorf("diffusion: VP SDE beta_min = %g, beta_max = %g, want 0 ≤ beta_min < beta_max < ∞", betaMin, betaMax)
	}
	return VPSDE{betaMin, betaMax}, nil
}

// Name returns "vp".
func (VPSDE) Name() string { return "vp" }

// Beta returns β(t).
func (s VPSDE) Beta(t float64) float64 { return s.BetaMin + t*(s.BetaMax-s.BetaMin) }

// IntBeta returns ∫_0^t β(s) ds.
func (s VPSDE) IntBeta(t float64) float64 { return s.BetaMin*t + 0.5*t*t*(s.BetaMax-s.BetaMin) }

// AlphaBar returns exp(−∫_0^t β), the continuous counterpart of ᾱ.
func (s VPSDE) AlphaBar(t float64) float64 { return math.Exp(-s.IntBeta(t)) }

// DiscreteBetas returns score_sde's discretisation with T steps, β_i =
// β(i/(T−1))/T (for T = 1, β(0)); with the default BetaMin, BetaMax it
// equals the linear schedule of NewSchedule(Linear, T, 0, 0).
func (s VPSDE) DiscreteBetas(T int) []float64 {
	out := make([]float64, T)
	for i := range out {
		u := 0.0
		if T > 1 {
			u = float64(i) / float64(T-1)
		}
		out[i] = s.Beta(u) / float64(T)
	}
	return out
}

// DriftCoef returns −½β(t).
func (s VPSDE) DriftCoef(t float64) float64 { return -0.5 * s.Beta(t) }

// Drift returns −½β(t)·x.
func (s VPSDE) Drift(x *tensor.Dense, t []float64) (*tensor.Dense, error) {
	return scaleDrift("VP", x, t, s.DriftCoef)
}

// Diffusion returns √β(t).
func (s VPSDE) Diffusion(t float64) float64 { return math.Sqrt(s.Beta(t)) }

// Marginal returns exp(−½∫β) and √(1 − exp(−∫β)).
func (s VPSDE) Marginal(t float64) (mean, std float64) {
	ib := s.IntBeta(t)
	return math.Exp(-0.5 * ib), math.Sqrt(-math.Expm1(-ib))
}

// PriorStd returns 1.
func (VPSDE) PriorStd() float64 { return 1 }

// PriorSample draws N(0, I).
func (VPSDE) PriorSample(rng *rand.Rand, shape ...int) *tensor.Dense {
	return priorSample(rng, 1, shape)
}

// SubVPSDE is score_sde's sub-VP SDE: the VP drift with diffusion
// g(t) = √(β(t)(1 − exp(−2∫_0^t β))), whose marginal variance stays below
// the VP one: std = 1 − exp(−∫β).
type SubVPSDE struct{ BetaMin, BetaMax float64 }

// NewSubVPSDE returns a sub-VP SDE, checking 0 ≤ betaMin < betaMax.
func NewSubVPSDE(betaMin, betaMax float64) (SubVPSDE, error) {
	if _, err := NewVPSDE(betaMin, betaMax); err != nil {
		return SubVPSDE{}, fmt.Errorf("diffusion: sub-VP SDE: %w", err)
	}
	return SubVPSDE{betaMin, betaMax}, nil
}

func (s SubVPSDE) vp() VPSDE { return VPSDE(s) }

// Name returns "subvp".
func (SubVPSDE) Name() string { return "subvp" }

// DriftCoef returns −½β(t).
func (s SubVPSDE) DriftCoef(t float64) float64 { return s.vp().DriftCoef(t) }

// Drift returns −½β(t)·x.
func (s SubVPSDE) Drift(x *tensor.Dense, t []float64) (*tensor.Dense, error) {
	return scaleDrift("sub-VP", x, t, s.DriftCoef)
}

// Diffusion returns √(β(t)(1 − exp(−2∫β))).
func (s SubVPSDE) Diffusion(t float64) float64 {
	v := s.vp()
	return math.Sqrt(v.Beta(t) * -math.Expm1(-2*v.IntBeta(t)))
}

// Marginal returns exp(−½∫β) and 1 − exp(−∫β).
func (s SubVPSDE) Marginal(t float64) (mean, std float64) {
	ib := s.vp().IntBeta(t)
	return math.Exp(-0.5 * ib), -math.Expm1(-ib)
}

// PriorStd returns 1.
func (SubVPSDE) PriorStd() float64 { return 1 }

// PriorSample draws N(0, I).
func (SubVPSDE) PriorSample(rng *rand.Rand, shape ...int) *tensor.Dense {
	return priorSample(rng, 1, shape)
}

// VESDE is the variance-exploding SDE dx = σ(t)√(2 log(σ_max/σ_min)) dw
// with σ(t) = σ_min(σ_max/σ_min)^t (SMLD / NCSN), so that the marginal std
// is σ(t).
type VESDE struct{ SigmaMin, SigmaMax float64 }

// NewVESDE returns a VE SDE, checking 0 < sigmaMin < sigmaMax.
func NewVESDE(sigmaMin, sigmaMax float64) (VESDE, error) {
	if !(sigmaMin > 0) || !(sigmaMax > sigmaMin) || math.IsInf(sigmaMax, 0) {
		return VESDE{}, fmt.Errorf("diffusion: VE SDE sigma_min = %g, sigma_max = %g, want 0 < sigma_min < sigma_max < ∞", sigmaMin, sigmaMax)
	}
	return VESDE{sigmaMin, sigmaMax}, nil
}

// Name returns "ve".
func (VESDE) Name() string { return "ve" }

// Sigma returns σ(t) = σ_min(σ_max/σ_min)^t.
func (s VESDE) Sigma(t float64) float64 { return s.SigmaMin * math.Pow(s.SigmaMax/s.SigmaMin, t) }

// DriftCoef returns 0.
func (VESDE) DriftCoef(float64) float64 { return 0 }

// Drift returns zeros shaped like x.
func (s VESDE) Drift(x *tensor.Dense, t []float64) (*tensor.Dense, error) {
	return scaleDrift("VE", x, t, s.DriftCoef)
}

// Diffusion returns σ(t)√(2 log(σ_max/σ_min)).
func (s VESDE) Diffusion(t float64) float64 {
	return s.Sigma(t) * math.Sqrt(2*math.Log(s.SigmaMax/s.SigmaMin))
}

// Marginal returns 1 and σ(t).
func (s VESDE) Marginal(t float64) (mean, std float64) { return 1, s.Sigma(t) }

// PriorStd returns σ_max.
func (s VESDE) PriorStd() float64 { return s.SigmaMax }

// PriorSample draws N(0, σ_max²·I).
func (s VESDE) PriorSample(rng *rand.Rand, shape ...int) *tensor.Dense {
	return priorSample(rng, s.SigmaMax, shape)
}

// NewSDE builds an SDE from its config name ("vp", "subvp", "ve") and its
// two parameters (β_min, β_max for VP and sub-VP; σ_min, σ_max for VE).
func NewSDE(name string, p0, p1 float64) (SDE, error) {
	var (
		sde SDE
		err error
	)
	switch name {
	case "vp":
		sde, err = NewVPSDE(p0, p1)
	case "subvp":
		sde, err = NewSubVPSDE(p0, p1)
	case "ve":
		sde, err = NewVESDE(p0, p1)
	default:
		return nil, fmt.Errorf("diffusion: unknown SDE %q, want one of [vp subvp ve]", name)
	}
	if err != nil {
		return nil, err
	}
	return sde, nil
}
