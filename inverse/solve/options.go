package solve

import (
	"fmt"
	"math"

	"github.com/diffinv/diffinv/internal/params"
)

// Options is one method's settings: DPSOptions (dps, mcg),
// ProjectionOptions, DDNMOptions (ddnm, ddnm+), DDRMOptions, PiGDMOptions
// or MomentMatchingOptions. DecodeOptions makes one from a config's
// solver.* keys; a struct literal works too (Solve validates it). A
// field's config key is its name in snake case (ClipX0: clip_x0, EtaB:
// eta_b, CGIters: cg_iters); the decoders at the end of this file hold the
// published defaults.
type Options interface {
	// Validate returns an error naming a bad setting of the method.
	Validate(method string) error
}

// DPSOptions configures DPS and MCG.
type DPSOptions struct {
	// Scale is ζ in x_{t−1} −= ζ ∇_{x_t}‖y − A(x̂0)‖ (the DPS code uses 0.3
	// for SR and blurs, 0.5 for inpainting, 1.0 for phase retrieval).
	Scale float64
	// Steps respaces the schedule uniformly; 0 keeps it (DPS: 1000).
	Steps int
	// ClipX0 clamps x̂0 to [−1, 1], as the DPS code's clip_denoised: in the
	// ancestral mean and inside ρ = ‖y − A(clamp(x̂0))‖, so the gradient
	// goes through the clamp and is zero where x̂0 is outside [−1, 1].
	ClipX0 bool
	// ClipMeanOnly (with ClipX0) clamps x̂0 only in the ancestral mean and
	// takes ρ and its gradient on the unclamped x̂0: the DPS paper's
	// Algorithm 1 for the guidance, and diffinv's form before issue 18.
	// One may prefer it because the clamp zeroes the guidance on every
	// pixel whose x̂0 is out of range, which at high noise (x̂0 far outside
	// [−1, 1]) is most of them, so the measurement steers the early steps
	// less; with it every pixel is guided at every step (false).
	ClipMeanOnly bool
	// BatchNorm differentiates the norm of the whole batch's residual,
	// ‖y − A(x̂0)‖ over all images, as the DPS code does: each image's step
	// then depends on how well the other images fit, and solving a batch no
	// longer gives what solving each image alone gives. false (the
	// default) takes ρ per image.
	BatchNorm bool
	// PoissonWeight is how ρ weights the residual when the noise model is
	// Poisson (ignored otherwise): PoissonShot ("" means it too), diffinv's
	// shot-noise weighting ρ = ‖y − A(x̂0)‖_W, W = diag(1/max(u_j, 0.01)),
	// u_j = (y_j+1)/2, which approximates the Poisson likelihood per
	// pixel (the paper's Λ); or PoissonScalar, the DPS code's
	// (condition_methods.py grad_and_value with the poisson noiser):
	// ρ = mean_j(‖y − A(x̂0)‖/|y_j|) = ‖y − A(x̂0)‖·mean_j 1/|y_j|, the
	// Gaussian norm times one number per image (per batch with
	// BatchNorm, the code's form), so no pixel is weighted more than
	// another; it needs every y_j ≠ 0.
	PoissonWeight string
	// NoiseLevel (MCG only) is the level the projection noises y to after
	// the step from index i to i−1: NoiseLevelPrev ("" means it too),
	// y_{i−1} = √ᾱ_{i−1} y + √(1−ᾱ_{i−1}) A z, the level of x_{i−1} it
	// replaces (y itself at the last step); or NoiseLevelCurrent, the
	// official MCG code's (HJ-harry/MCG_diffusion, q_sample(y, t) in
	// p_sample_loop_progressive): y_i = √ᾱ_i y + √(1−ᾱ_i) A z, one level
	// noisier than x_{i−1}, noised at the last step too. With scale 1,
	// batch_norm and clip_x0, NoiseLevelCurrent is that code's inpainting
	// step.
	NoiseLevel string
}

// The values of DPSOptions.PoissonWeight (solver.poisson_weight).
const (
	PoissonShot   = "shot"
	PoissonScalar = "scalar"
)

// The values of DPSOptions.NoiseLevel (solver.noise_level, MCG).
const (
	NoiseLevelPrev    = "prev"
	NoiseLevelCurrent = "current"
)

// ProjectionOptions configures the Score-SDE / ILVR projection solver.
type ProjectionOptions struct {
	// Steps respaces the schedule uniformly; 0 keeps it.
	Steps int
	// ClipX0 clamps x̂0 to [−1, 1] in the ancestral step.
	ClipX0 bool
}

// DDNMOptions configures DDNM and DDNM+.
type DDNMOptions struct {
	// Steps respaces the schedule uniformly; 0 keeps it (DDNM: 100).
	Steps int
	// Eta mixes fresh noise into each step, DDNM's and DDRM's convention:
	// x_{t−1} = √ᾱ_{t−1} x̂0 + √(1−ᾱ_{t−1}) (√(1−η²) ε̂ + η z) (0.85).
	Eta float64
	// TravelLength is the time-travel jump L in steps; 0 turns time travel
	// off. DDNM+ only.
	TravelLength int
	// TravelRepeat r: each jump point is revisited r−1 times (r ≥ 1).
	// DDNM+ only.
	TravelRepeat int
	// FreshNoise selects the official code's noise on the measured
	// coordinates where σ_t ≥ a n_j (svd_operators' Lambda_noise): fresh
	// noise √(σ_t² − a² n_j²) z, with no ε̂ term. false keeps diffinv's
	// form γ (η z + √(1−η²) (Vᵀε̂)_j), γ = √(σ_t² − a² n_j²): the same
	// variance, with the DDIM-style ε̂ share that the unmeasured coordinates
	// and DDNM's own step have (the official "simplified" DDNM+ uses it
	// too). Both are exact in distribution for the Gaussian-noise model; they
	// differ in how much of the network's ε̂ carries over. At σ_y = 0 both
	// are DDNM (the official code then runs DDNM). DDNM+ only.
	FreshNoise bool
	// TravelX0 selects the official code's time travel (svd_ddnm.py
	// ddnm_plus_diffusion): going back up to index j it re-noises the
	// last step's uncorrected x̂0, x_j = √ᾱ_j x̂0 + √(1−ᾱ_j) z, discarding
	// the current x (and the range–null-space correction of that step).
	// false keeps diffinv's forward-process jump x_j = √(ᾱ_j/ᾱ_i) x_i +
	// √(1−ᾱ_j/ᾱ_i) z (RePaint's), which keeps the corrected x_i. DDNM+
	// only, with time travel.
	TravelX0 bool
}

// DDRMOptions configures DDRM.
type DDRMOptions struct {
	// Steps respaces the schedule uniformly; 0 keeps it (DDRM: 20).
	Steps int
	// Eta is DDRM's η (= η_A = η_C) for unmeasured and low-noise
	// coordinates (0.85).
	Eta float64
	// EtaB is DDRM's η_B for coordinates noisier than y (1.0).
	EtaB float64
	// InitOverSigma draws x_T as the official code does, V(x̄_T)/σ_T with
	// x̄_T the VE draw from p(x̄_T | y), instead of diffinv's √ᾱ_T V(x̄_T),
	// which gives x_T the forward marginal's scale (√ᾱ_T x0 + √(1−ᾱ_T) ε)
	// exactly. The two differ by the factor √(1−ᾱ_T) (4e-5 relative at
	// the last timestep of the linear 1000-step schedule) (false).
	InitOverSigma bool
	// StrictCases selects the three cases per spectral coordinate as the
	// official efficient_generalized_steps does, by the strict inequalities
	// s_j σ' > σ_y (noisier than y) and s_j σ' < σ_y (less noisy), anything
	// else taking the unmeasured case. That differs from diffinv's default
	// in two places: with σ_y = 0 the last step (σ' = 0) returns x̂0 on the
	// measured coordinates (diffinv: η_B ȳ + (1−η_B) x̂0, which is ȳ, exact
	// data consistency, at η_B = 1); and with σ_y > 0 a zero singular
	// value (e.g. a missing pixel of inpainting with y on the whole image,
	// a frequency a blur removes) falls in the less-noisy case,
	// x̂0 + √(1−η²) σ' (Uᵀy)_j/σ_y + η σ' z, which replaces the ε̂ term by
	// the measurement's component there (diffinv: the unmeasured case,
	// x̂0 + √(1−η²) σ' ε̂ + η σ' z) (false).
	StrictCases bool
}

// PiGDMOptions configures ΠGDM.
type PiGDMOptions struct {
	// Steps respaces the schedule uniformly; 0 keeps it (ΠGDM: 100).
	Steps int
	// Eta is DDIM's η (1.0, as in the paper).
	Eta float64
	// DataVar is the per-pixel data variance v behind r_t² =
	// v σ_t²/(v + σ_t²) (σ_t the VE level); the paper's choice is v = 1.
	DataVar float64
	// Weight scales the guidance (1: Algorithm 1 with the weight r_t², or
	// with Tweedie the score of the approximate likelihood, unweighted).
	Weight float64
	// Tweedie adds the guidance through Tweedie's formula (the exact
	// conditional score of ΠGDM's approximation) instead of Algorithm 1;
	// exact for Gaussian priors, unstable on trained networks (false).
	Tweedie bool
}

// MomentMatchingOptions configures the moment-matching solver.
type MomentMatchingOptions struct {
	// Steps respaces the schedule uniformly; 0 keeps it (100).
	Steps int
	// Eta is DDIM's η (1.0: DDPM-like).
	Eta float64
	// CGIters is the number of conjugate-gradient iterations per step, each
	// one VJP through the denoiser (5).
	CGIters int
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Validate returns an error naming a bad option.
func (o DPSOptions) Validate(method string) error {
	if !(o.Scale >= 0) || !finite(o.Scale) {
		return fmt.Errorf("solve: %s: scale = %g, want a finite value ≥ 0", method, o.Scale)
	}
	if o.ClipMeanOnly && !o.ClipX0 {
		return fmt.Errorf("solve: %s: clip_mean_only = true needs clip_x0 = true (it says where the clamp applies)", method)
	}
	switch o.PoissonWeight {
	case "", PoissonShot, PoissonScalar:
	default:
		return fmt.Errorf("solve: %s: poisson_weight = %q, want %q (diffinv's per-pixel shot-noise weights) or %q (the DPS code's mean 1/|y|)", method, o.PoissonWeight, PoissonShot, PoissonScalar)
	}
	switch o.NoiseLevel {
	case "", NoiseLevelPrev:
	case NoiseLevelCurrent:
		if method != "mcg" {
			return fmt.Errorf("solve: %s: noise_level = %q is an mcg option (the projection's noise level), want it unset or method mcg", method, o.NoiseLevel)
		}
	default:
		return fmt.Errorf("solve: %s: noise_level = %q, want %q (y noised to the level of x_{i−1}) or %q (the MCG code's level i)", method, o.NoiseLevel, NoiseLevelPrev, NoiseLevelCurrent)
	}
	return validSteps(method, o.Steps)
}

// Validate returns an error naming a bad option.
func (o ProjectionOptions) Validate(method string) error { return validSteps(method, o.Steps) }

// Validate returns an error naming a bad option.
func (o DDNMOptions) Validate(method string) error {
	if !(o.Eta >= 0 && o.Eta <= 1) {
		return fmt.Errorf("solve: %s: eta = %g, want in [0, 1]", method, o.Eta)
	}
	if o.TravelLength < 0 {
		return fmt.Errorf("solve: %s: travel_length = %d, want ≥ 0 (0: no time travel)", method, o.TravelLength)
	}
	if o.TravelRepeat < 1 {
		return fmt.Errorf("solve: %s: travel_repeat = %d, want ≥ 1", method, o.TravelRepeat)
	}
	if method == "ddnm" && (o.TravelLength > 0 || o.TravelRepeat > 1) {
		return fmt.Errorf("solve: ddnm: time travel (travel_length = %d, travel_repeat = %d) is a ddnm+ option, want 0 and 1 or method ddnm+", o.TravelLength, o.TravelRepeat)
	}
	if method == "ddnm" && o.FreshNoise {
		return fmt.Errorf("solve: ddnm: fresh_noise is a ddnm+ option (noisy measurements), want false or method ddnm+")
	}
	if method == "ddnm" && o.TravelX0 {
		return fmt.Errorf("solve: ddnm: travel_x0 is a ddnm+ time-travel option, want false or method ddnm+")
	}
	return validSteps(method, o.Steps)
}

// Validate returns an error naming a bad option.
func (o DDRMOptions) Validate(method string) error {
	if !(o.Eta >= 0 && o.Eta <= 1) {
		return fmt.Errorf("solve: %s: eta = %g, want in [0, 1]", method, o.Eta)
	}
	if !(o.EtaB >= 0 && o.EtaB <= 1) {
		return fmt.Errorf("solve: %s: eta_b = %g, want in [0, 1]", method, o.EtaB)
	}
	return validSteps(method, o.Steps)
}

// Validate returns an error naming a bad option.
func (o PiGDMOptions) Validate(method string) error {
	if !(o.Eta >= 0) || !finite(o.Eta) {
		return fmt.Errorf("solve: %s: eta = %g, want a finite value ≥ 0", method, o.Eta)
	}
	if !(o.DataVar > 0) || !finite(o.DataVar) {
		return fmt.Errorf("solve: %s: data_var = %g, want a finite value > 0", method, o.DataVar)
	}
	if !(o.Weight >= 0) || !finite(o.Weight) {
		return fmt.Errorf("solve: %s: weight = %g, want a finite value ≥ 0", method, o.Weight)
	}
	return validSteps(method, o.Steps)
}

// Validate returns an error naming a bad option.
func (o MomentMatchingOptions) Validate(method string) error {
	if !(o.Eta >= 0) || !finite(o.Eta) {
		return fmt.Errorf("solve: %s: eta = %g, want a finite value ≥ 0", method, o.Eta)
	}
	if o.CGIters < 1 {
		return fmt.Errorf("solve: %s: cg_iters = %d, want ≥ 1", method, o.CGIters)
	}
	return validSteps(method, o.Steps)
}

func validSteps(method string, steps int) error {
	if steps < 0 {
		return fmt.Errorf("solve: %s: steps = %d, want ≥ 0 (0 keeps the schedule)", method, steps)
	}
	return nil
}

// The decoders below read one method's solver.* keys with internal/params,
// the published defaults standing where a key is absent. Each key is the
// one named in the field's doc comment.

func decodeDPS(r *params.Reader) DPSOptions {
	return DPSOptions{
		Scale:         r.Float("scale", 0.5),
		Steps:         r.Int("steps", 0),
		ClipX0:        r.Bool("clip_x0", false),
		ClipMeanOnly:  r.Bool("clip_mean_only", false),
		BatchNorm:     r.Bool("batch_norm", false),
		PoissonWeight: r.Str("poisson_weight", ""),
		NoiseLevel:    r.Str("noise_level", ""),
	}
}

func decodeProjection(r *params.Reader) ProjectionOptions {
	return ProjectionOptions{Steps: r.Int("steps", 0), ClipX0: r.Bool("clip_x0", false)}
}

func decodeDDNM(r *params.Reader) DDNMOptions {
	return DDNMOptions{
		Steps:        r.Int("steps", 100),
		Eta:          r.Float("eta", 0.85),
		TravelLength: r.Int("travel_length", 0),
		TravelRepeat: r.Int("travel_repeat", 1),
		FreshNoise:   r.Bool("fresh_noise", false),
		TravelX0:     r.Bool("travel_x0", false),
	}
}

func decodeDDRM(r *params.Reader) DDRMOptions {
	return DDRMOptions{
		Steps:         r.Int("steps", 20),
		Eta:           r.Float("eta", 0.85),
		EtaB:          r.Float("eta_b", 1),
		InitOverSigma: r.Bool("init_over_sigma", false),
		StrictCases:   r.Bool("strict_cases", false),
	}
}

func decodePiGDM(r *params.Reader) PiGDMOptions {
	return PiGDMOptions{
		Steps:   r.Int("steps", 100),
		Eta:     r.Float("eta", 1),
		DataVar: r.Float("data_var", 1),
		Weight:  r.Float("weight", 1),
		Tweedie: r.Bool("tweedie", false),
	}
}

func decodeMomentMatching(r *params.Reader) MomentMatchingOptions {
	return MomentMatchingOptions{
		Steps:   r.Int("steps", 100),
		Eta:     r.Float("eta", 1),
		CGIters: r.Int("cg_iters", 5),
	}
}
