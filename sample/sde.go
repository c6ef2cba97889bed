package sample

import (
	"fmt"
	"math"
	"math/rand"

	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/internal/tensors"
	"gorgonia.org/tensor"
)

// The SDE samplers work on the VP SDE dx = −½β(t)x dt + √β(t) dw implied by
// the discrete schedule, diffusion.ScheduleSDE(sched) (diffusion.DiscreteVP):
// step i spans the integrated rate Δ_i = −log(1−β_i), so any schedule
// (linear, cosine, respaced) defines its own VP SDE and no continuous-time
// network is needed. The predictors and the corrector are score_sde's,
// with their terms taken from that SDE as score_sde takes them from
// sde.sde and sde.discretize; the score at index i is
// ∇log p_i(x) = −ε̂(x, t_i)/std_i, std_i the marginal's.

// Predictor and corrector names for PCOptions.
const (
	// ReverseDiffusion is score_sde's reverse-diffusion predictor on the
	// discretised VP SDE (Discretize: x_i = a·x + G z, f = (a − 1)x):
	// x ← x − f + G²·score + G z = (2 − √(1−β_i))x + β_i·score + √β_i z.
	ReverseDiffusion = "reverse-diffusion"
	// EulerMaruyamaPredictor is one Euler–Maruyama step of the reverse SDE
	// (drift c·x − g²·score, diffusion g: the SDE's terms) over
	// Δ_i = −log(1−β_i): x ← x + Δ_i(½x + score) + √Δ_i z.
	EulerMaruyamaPredictor = "euler-maruyama"
	// AncestralPredictor is score_sde's ancestral sampling predictor for VP
	// (a and G² of Discretize): x ← (x + β_i·score)/√(1−β_i) + √β_i z.
	AncestralPredictor = "ancestral"
	// Langevin is the Langevin corrector with the signal-to-noise step rule.
	Langevin = "langevin"
	// None disables the predictor or the corrector.
	None = "none"
)

// EMOptions configures EulerMaruyama.
type EMOptions struct {
	// Denoise makes the last step (index 0) return its mean without noise,
	// as score_sde's denoise option.
	Denoise bool
}

// DefaultEMOptions returns Denoise = true.
func DefaultEMOptions() EMOptions { return EMOptions{Denoise: true} }

// EulerMaruyama integrates the reverse VP SDE with Euler–Maruyama steps, one
// per schedule index (the "vp-em" sampler; PC with the Euler–Maruyama
// predictor and no corrector).
func EulerMaruyama(den diffusion.Denoiser, xT *tensor.Dense, sched *diffusion.Schedule, o EMOptions, rngs []*rand.Rand, cb diffusion.Callback) (*tensor.Dense, error) {
	return pc("vp-em", den, xT, sched, PCOptions{Predictor: EulerMaruyamaPredictor, Corrector: None, Denoise: o.Denoise}, rngs, cb)
}

// PCOptions configures PredictorCorrector.
type PCOptions struct {
	// Predictor is ReverseDiffusion, EulerMaruyamaPredictor, AncestralPredictor or None.
	Predictor string
	// Corrector is Langevin or None.
	Corrector string
	// SNR is the Langevin signal-to-noise ratio r: step ε = 2α_i (r‖z‖/‖score‖)²,
	// norms per sample, α_i = 1 − β_i (the SDE's Alpha; score_sde's rule
	// for VP).
	SNR float64
	// CorrectorSteps is the number of Langevin steps at each noise level.
	CorrectorSteps int
	// Denoise makes the last predictor step return its mean without noise.
	Denoise bool
}

// DefaultPCOptions returns reverse-diffusion + Langevin, SNR 0.16, one
// corrector step, Denoise (score_sde's VP settings).
func DefaultPCOptions() PCOptions {
	return PCOptions{Predictor: ReverseDiffusion, Corrector: Langevin, SNR: 0.16, CorrectorSteps: 1, Denoise: true}
}

// Validate returns an error naming a bad option.
func (o PCOptions) Validate() error {
	switch o.Predictor {
	case ReverseDiffusion, EulerMaruyamaPredictor, AncestralPredictor, None:
	default:
		return fmt.Errorf("sample: pc predictor %q, want one of [%s %s %s %s]", o.Predictor, ReverseDiffusion, EulerMaruyamaPredictor, AncestralPredictor, None)
	}
	switch o.Corrector {
	case Langevin:
		if !(o.SNR > 0) || math.IsInf(o.SNR, 0) {
			return fmt.Errorf("sample: pc snr = %g, want a finite value > 0", o.SNR)
		}
		if o.CorrectorSteps < 1 {
			return fmt.Errorf("sample: pc corrector_steps = %d, want ≥ 1 with the langevin corrector", o.CorrectorSteps)
		}
	case None:
		if o.Predictor == None {
			return fmt.Errorf("sample: pc with predictor %q and corrector %q does nothing, want at least one", None, None)
		}
	default:
		return fmt.Errorf("sample: pc corrector %q, want one of [%s %s]", o.Corrector, Langevin, None)
	}
	return nil
}

// PredictorCorrector runs score_sde's PC loop on the schedule's VP SDE: at
// each index i = K−1..0, CorrectorSteps Langevin steps at level i, then one
// predictor step from i to i−1.
func PredictorCorrector(den diffusion.Denoiser, xT *tensor.Dense, sched *diffusion.Schedule, o PCOptions, rngs []*rand.Rand, cb diffusion.Callback) (*tensor.Dense, error) {
	return pc("pc", den, xT, sched, o, rngs, cb)
}

func pc(name string, den diffusion.Denoiser, xT *tensor.Dense, sched *diffusion.Schedule, o PCOptions, rngs []*rand.Rand, cb diffusion.Callback) (*tensor.Dense, error) {
	n, d, err := checkInputs(name, den, xT, sched, rngs, true)
	if err != nil {
		return nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	sde := diffusion.ScheduleSDE(sched)
	x := tensors.Clone(xT)
	xs := tensors.F32(x)
	z := make([]float64, n*d)
	K := sde.Len()
	for i := K - 1; i >= 0; i-- {
		_, s := sde.Marginal(i) // score = −ε̂/s
		if o.Corrector == Langevin {
			alpha := sde.Alpha(i)
			for c := 0; c < o.CorrectorSteps; c++ {
				eps, err := epsAt(den, x, sched, i)
				if err != nil {
					return nil, fmt.Errorf("sample: %s corrector: %w", name, err)
				}
				diffusion.FillNormal(rngs, z)
				for k := 0; k < n; k++ {
					var g2, z2 float64
					for j := k * d; j < (k+1)*d; j++ {
						g := float64(eps[j]) / s
						g2 += g * g
						z2 += z[j] * z[j]
					}
					if g2 == 0 {
						continue // at a mode: no signal to scale the step by
					}
					r := o.SNR * math.Sqrt(z2/g2)
					step := 2 * alpha * r * r
					sq := math.Sqrt(2 * step)
					for j := k * d; j < (k+1)*d; j++ {
						xs[j] = float32(float64(xs[j]) - step*float64(eps[j])/s + sq*z[j])
					}
				}
			}
		}
		if o.Predictor != None {
			eps, err := epsAt(den, x, sched, i)
			if err != nil {
				return nil, fmt.Errorf("sample: %s predictor: %w", name, err)
			}
			cx, cs, sd := predictorCoefs(sde, o.Predictor, i)
			addNoise := !(o.Denoise && i == 0)
			if addNoise {
				diffusion.FillNormal(rngs, z)
			}
			for j := range xs {
				v := cx*float64(xs[j]) - cs*float64(eps[j])/s
				if addNoise {
					v += sd * z[j]
				}
				xs[j] = float32(v)
			}
		}
		report(cb, K-i, K, sched, i, xs, nil, x.Shape())
	}
	return x, nil
}

// predictorCoefs returns the predictor's step from index i as
// x ← cx·x + cs·score + sd·z, score_sde's predictors written with the
// terms of the schedule's SDE.
func predictorCoefs(sde diffusion.DiscreteVP, predictor string, i int) (cx, cs, sd float64) {
	switch predictor {
	case ReverseDiffusion:
		// x_mean = x − f + G²·score with f = (a − 1)x.
		a, g2 := sde.Discretize(i)
		return 2 - a, g2, math.Sqrt(g2)
	case EulerMaruyamaPredictor:
		// x_mean = x − (c·x − g²·score)·dτ with dτ = −Δ_i; noise g√Δ_i.
		c, g := sde.SDE(i)
		dt := sde.Delta(i)
		return 1 - c*dt, g * g * dt, g * math.Sqrt(dt)
	case AncestralPredictor:
		// x_mean = (x + G²·score)/a.
		a, g2 := sde.Discretize(i)
		r := 1 / a
		return r, g2 * r, math.Sqrt(g2)
	}
	panic("sample: unknown predictor " + predictor) // Validate rejects it first
}

// ALDOptions configures AnnealedLangevin.
type ALDOptions struct {
	// StepSize is NCSN's ε: at VE level σ_i the Langevin step is
	// α_i = ε·σ_i²/σ_min², σ_min the smallest level (index 0).
	StepSize float64
	// StepsPerLevel is the number of Langevin steps at each level.
	StepsPerLevel int
	// Denoise ends with Tweedie's x̂0 = x − σ_min ε̂ at the smallest level
	// (NCSNv2's final denoising step).
	Denoise bool
}

// DefaultALDOptions returns NCSN's ε = 2e-5 (tuned there for σ_min = 0.01,
// which is also σ_0 of the linear T = 1000 schedule), 100 steps per level,
// Denoise.
func DefaultALDOptions() ALDOptions {
	return ALDOptions{StepSize: 2e-5, StepsPerLevel: 100, Denoise: true}
}

// Validate returns an error naming a bad option.
func (o ALDOptions) Validate() error {
	if !(o.StepSize > 0) || math.IsInf(o.StepSize, 0) {
		return fmt.Errorf("sample: ald step_size = %g, want a finite value > 0", o.StepSize)
	}
	if o.StepsPerLevel < 1 {
		return fmt.Errorf("sample: ald steps_per_level = %d, want ≥ 1", o.StepsPerLevel)
	}
	return nil
}

// AnnealedLangevin runs annealed Langevin dynamics (Song & Ermon 2019) over
// the VE noise levels of the schedule, using the VP ε-network as a VE score
// model. A VP state x_i = √ᾱ_i x0 + √(1−ᾱ_i) ε is, divided by √ᾱ_i, a VE
// state
//
//	x_ve = x_i/√ᾱ_i = x0 + σ_i ε,  σ_i = √(1−ᾱ_i)/√ᾱ_i,
//
// so the VE score is ∇log p_{σ_i}(x_ve) = −ε̂(√ᾱ_i·x_ve, t_i)/σ_i. The chain
// starts at x_ve = x_T/√ᾱ_{K−1} and at each level i = K−1..0 takes
// StepsPerLevel steps x_ve ← x_ve + (α_i/2)·score + √α_i z with
// α_i = ε σ_i²/σ_0². The result is in data (x0) coordinates.
func AnnealedLangevin(den diffusion.Denoiser, xT *tensor.Dense, sched *diffusion.Schedule, o ALDOptions, rngs []*rand.Rand, cb diffusion.Callback) (*tensor.Dense, error) {
	n, d, err := checkInputs("ald", den, xT, sched, rngs, true)
	if err != nil {
		return nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	sde := diffusion.ScheduleSDE(sched)
	K := sde.Len()
	meanT, _ := sde.Marginal(K - 1)
	xve := make([]float64, n*d)
	for j, v := range tensors.F32(xT) {
		xve[j] = float64(v) / meanT
	}
	sigmaMin := sde.VESigma(0)
	z := make([]float64, n*d)
	xvp := tensors.Like(xT)
	eval := func(i int) ([]float32, error) {
		a, _ := sde.Marginal(i)
		p := tensors.F32(xvp)
		for j := range p {
			p[j] = float32(a * xve[j])
		}
		eps, err := epsAt(den, xvp, sched, i)
		if err != nil {
			return nil, fmt.Errorf("sample: ald: %w", err)
		}
		return eps, nil
	}
	total := K
	if o.Denoise {
		total++
	}
	for i := K - 1; i >= 0; i-- {
		sigma := sde.VESigma(i)
		alpha := o.StepSize * (sigma / sigmaMin) * (sigma / sigmaMin)
		sq := math.Sqrt(alpha)
		for it := 0; it < o.StepsPerLevel; it++ {
			eps, err := eval(i)
			if err != nil {
				return nil, err
			}
			diffusion.FillNormal(rngs, z)
			for j := range xve {
				xve[j] += -alpha/2*float64(eps[j])/sigma + sq*z[j]
			}
		}
		report(cb, K-i, total, sched, i, vpState(xve, sched.SqrtAlphaBar(i)), nil, xT.Shape())
	}
	if o.Denoise {
		eps, err := eval(0)
		if err != nil {
			return nil, err
		}
		for j := range xve {
			xve[j] -= sigmaMin * float64(eps[j])
		}
		report(cb, total, total, sched, 0, vpState(xve, 1), nil, xT.Shape())
	}
	out := tensors.Like(xT)
	for j, v := range xve {
		tensors.F32(out)[j] = float32(v)
	}
	return out, nil
}

// vpState returns a·x as float32: the VP state of a VE state x at a level
// whose √ᾱ is a (a = 1 gives x itself, data coordinates).
func vpState(x []float64, a float64) []float32 {
	out := make([]float32, len(x))
	for j, v := range x {
		out[j] = float32(a * v)
	}
	return out
}
