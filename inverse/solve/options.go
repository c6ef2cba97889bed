package solve

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
)

// Options gathers every solver's options, one section per method, as a
// config's solver section holds them. Each field carries the config key it
// is set from (tag opt); Decode fills one method's section from a map.
type Options struct {
	// Variance is the reverse-process variance of the ancestral DDPM step
	// that DPS, MCG and projection take, as the model's diffusion.variance
	// says: VarianceFixedSmall ("" means it too), VarianceFixedLarge or
	// VarianceLearnedRange (the denoiser must then be a VarianceDenoiser).
	// It is not a solver.* key: the pipeline sets it from the model's
	// config, the way diffinv sample sets the DDPM sampler's variance.
	Variance string

	DPS            DPSOptions            `method:"dps"`
	MCG            DPSOptions            `method:"mcg"`
	Projection     ProjectionOptions     `method:"projection"`
	DDNM           DDNMOptions           `method:"ddnm"`
	DDNMPlus       DDNMOptions           `method:"ddnm+"`
	DDRM           DDRMOptions           `method:"ddrm"`
	PiGDM          PiGDMOptions          `method:"pigdm"`
	MomentMatching MomentMatchingOptions `method:"moment-matching"`
}

// DPSOptions configures DPS and MCG.
type DPSOptions struct {
	// Scale is ζ in x_{t−1} −= ζ ∇_{x_t}‖y − A(x̂0)‖ (the DPS code uses 0.3
	// for SR and blurs, 0.5 for inpainting, 1.0 for phase retrieval).
	Scale float64 `opt:"scale"`
	// Steps respaces the schedule uniformly; 0 keeps it (DPS: 1000).
	Steps int `opt:"steps"`
	// ClipX0 clamps x̂0 to [−1, 1], as the DPS code's clip_denoised: in the
	// ancestral mean and inside ρ = ‖y − A(clamp(x̂0))‖, so the gradient
	// goes through the clamp and is zero where x̂0 is outside [−1, 1].
	ClipX0 bool `opt:"clip_x0"`
	// ClipMeanOnly (with ClipX0) clamps x̂0 only in the ancestral mean and
	// takes ρ and its gradient on the unclamped x̂0: the DPS paper's
	// Algorithm 1 for the guidance, and diffinv's form before issue 18.
	// One may prefer it because the clamp zeroes the guidance on every
	// pixel whose x̂0 is out of range, which at high noise (x̂0 far outside
	// [−1, 1]) is most of them, so the measurement steers the early steps
	// less; with it every pixel is guided at every step (false).
	ClipMeanOnly bool `opt:"clip_mean_only"`
	// BatchNorm differentiates the norm of the whole batch's residual,
	// ‖y − A(x̂0)‖ over all images, as the DPS code does: each image's step
	// then depends on how well the other images fit, and solving a batch no
	// longer gives what solving each image alone gives. false (the
	// default) takes ρ per image.
	BatchNorm bool `opt:"batch_norm"`
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
	PoissonWeight string `opt:"poisson_weight"`
	// NoiseLevel (MCG only) is the level the projection noises y to after
	// the step from index i to i−1: NoiseLevelPrev ("" means it too),
	// y_{i−1} = √ᾱ_{i−1} y + √(1−ᾱ_{i−1}) A z, the level of x_{i−1} it
	// replaces (y itself at the last step); or NoiseLevelCurrent, the
	// official MCG code's (HJ-harry/MCG_diffusion, q_sample(y, t) in
	// p_sample_loop_progressive): y_i = √ᾱ_i y + √(1−ᾱ_i) A z, one level
	// noisier than x_{i−1}, noised at the last step too. With scale 1,
	// batch_norm and clip_x0, NoiseLevelCurrent is that code's inpainting
	// step.
	NoiseLevel string `opt:"noise_level"`
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
	Steps int `opt:"steps"`
	// ClipX0 clamps x̂0 to [−1, 1] in the ancestral step.
	ClipX0 bool `opt:"clip_x0"`
}

// DDNMOptions configures DDNM and DDNM+.
type DDNMOptions struct {
	// Steps respaces the schedule uniformly; 0 keeps it (DDNM: 100).
	Steps int `opt:"steps"`
	// Eta mixes fresh noise into each step, DDNM's and DDRM's convention:
	// x_{t−1} = √ᾱ_{t−1} x̂0 + √(1−ᾱ_{t−1}) (√(1−η²) ε̂ + η z) (0.85).
	Eta float64 `opt:"eta"`
	// TravelLength is the time-travel jump L in steps; 0 turns time travel
	// off. DDNM+ only.
	TravelLength int `opt:"travel_length"`
	// TravelRepeat r: each jump point is revisited r−1 times (r ≥ 1).
	// DDNM+ only.
	TravelRepeat int `opt:"travel_repeat"`
	// FreshNoise selects the official code's noise on the measured
	// coordinates where σ_t ≥ a n_j (svd_operators' Lambda_noise): fresh
	// noise √(σ_t² − a² n_j²) z, with no ε̂ term. false keeps diffinv's
	// form γ (η z + √(1−η²) (Vᵀε̂)_j), γ = √(σ_t² − a² n_j²): the same
	// variance, with the DDIM-style ε̂ share that the unmeasured coordinates
	// and DDNM's own step have (the official "simplified" DDNM+ uses it
	// too). Both are exact in distribution for the Gaussian-noise model; they
	// differ in how much of the network's ε̂ carries over. At σ_y = 0 both
	// are DDNM (the official code then runs DDNM). DDNM+ only.
	FreshNoise bool `opt:"fresh_noise"`
	// TravelX0 selects the official code's time travel (svd_ddnm.py
	// ddnm_plus_diffusion): going back up to index j it re-noises the
	// last step's uncorrected x̂0, x_j = √ᾱ_j x̂0 + √(1−ᾱ_j) z, discarding
	// the current x (and the range–null-space correction of that step).
	// false keeps diffinv's forward-process jump x_j = √(ᾱ_j/ᾱ_i) x_i +
	// √(1−ᾱ_j/ᾱ_i) z (RePaint's), which keeps the corrected x_i. DDNM+
	// only, with time travel.
	TravelX0 bool `opt:"travel_x0"`
}

// DDRMOptions configures DDRM.
type DDRMOptions struct {
	// Steps respaces the schedule uniformly; 0 keeps it (DDRM: 20).
	Steps int `opt:"steps"`
	// Eta is DDRM's η (= η_A = η_C) for unmeasured and low-noise
	// coordinates (0.85).
	Eta float64 `opt:"eta"`
	// EtaB is DDRM's η_B for coordinates noisier than y (1.0).
	EtaB float64 `opt:"eta_b"`
	// InitOverSigma draws x_T as the official code does, V(x̄_T)/σ_T with
	// x̄_T the VE draw from p(x̄_T | y), instead of diffinv's √ᾱ_T V(x̄_T),
	// which gives x_T the forward marginal's scale (√ᾱ_T x0 + √(1−ᾱ_T) ε)
	// exactly. The two differ by the factor √(1−ᾱ_T) (4e-5 relative at
	// the last timestep of the linear 1000-step schedule) (false).
	InitOverSigma bool `opt:"init_over_sigma"`
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
	StrictCases bool `opt:"strict_cases"`
}

// PiGDMOptions configures ΠGDM.
type PiGDMOptions struct {
	// Steps respaces the schedule uniformly; 0 keeps it (ΠGDM: 100).
	Steps int `opt:"steps"`
	// Eta is DDIM's η (1.0, as in the paper).
	Eta float64 `opt:"eta"`
	// DataVar is the per-pixel data variance v behind r_t² =
	// v σ_t²/(v + σ_t²) (σ_t the VE level); the paper's choice is v = 1.
	DataVar float64 `opt:"data_var"`
	// Weight scales the guidance (1: Algorithm 1 with the weight r_t², or
	// with Tweedie the score of the approximate likelihood, unweighted).
	Weight float64 `opt:"weight"`
	// Tweedie adds the guidance through Tweedie's formula (the exact
	// conditional score of ΠGDM's approximation) instead of Algorithm 1;
	// exact for Gaussian priors, unstable on trained networks (false).
	Tweedie bool `opt:"tweedie"`
}

// MomentMatchingOptions configures the moment-matching solver.
type MomentMatchingOptions struct {
	// Steps respaces the schedule uniformly; 0 keeps it (100).
	Steps int `opt:"steps"`
	// Eta is DDIM's η (1.0: DDPM-like).
	Eta float64 `opt:"eta"`
	// CGIters is the number of conjugate-gradient iterations per step, each
	// one VJP through the denoiser (5).
	CGIters int `opt:"cg_iters"`
}

// DefaultOptions returns the published defaults of every method.
func DefaultOptions() Options {
	return Options{
		DPS:            DPSOptions{Scale: 0.5},
		MCG:            DPSOptions{Scale: 0.5},
		Projection:     ProjectionOptions{},
		DDNM:           DDNMOptions{Steps: 100, Eta: 0.85, TravelRepeat: 1},
		DDNMPlus:       DDNMOptions{Steps: 100, Eta: 0.85, TravelRepeat: 1},
		DDRM:           DDRMOptions{Steps: 20, Eta: 0.85, EtaB: 1},
		PiGDM:          PiGDMOptions{Steps: 100, Eta: 1, DataVar: 1, Weight: 1},
		MomentMatching: MomentMatchingOptions{Steps: 100, Eta: 1, CGIters: 5},
	}
}

// Reverse-process variances of the ancestral step (Options.Variance), the
// values of a config's diffusion.variance.
const (
	// VarianceFixedSmall is the posterior variance β̃_i (log clipped at
	// index 0, as guided-diffusion).
	VarianceFixedSmall = "fixed_small"
	// VarianceFixedLarge is β_i (β̃_1 at index 0, where no noise is added).
	VarianceFixedLarge = "fixed_large"
	// VarianceLearnedRange interpolates log β̃_i and log β_i with the
	// model's variance output v ∈ [−1, 1] (improved DDPM, guided-diffusion
	// learned_range; DPS's FFHQ checkpoint).
	VarianceLearnedRange = "learned_range"
)

// validVariance returns an error naming a bad Options.Variance.
func validVariance(method, v string) error {
	switch v {
	case "", VarianceFixedSmall, VarianceFixedLarge, VarianceLearnedRange:
		return nil
	}
	return fmt.Errorf("solve: %s: variance %q, want %q, %q or %q (the model's diffusion.variance)", method, v, VarianceFixedSmall, VarianceFixedLarge, VarianceLearnedRange)
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
func (o ProjectionOptions) Validate() error { return validSteps("projection", o.Steps) }

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
func (o DDRMOptions) Validate() error {
	if !(o.Eta >= 0 && o.Eta <= 1) {
		return fmt.Errorf("solve: ddrm: eta = %g, want in [0, 1]", o.Eta)
	}
	if !(o.EtaB >= 0 && o.EtaB <= 1) {
		return fmt.Errorf("solve: ddrm: eta_b = %g, want in [0, 1]", o.EtaB)
	}
	return validSteps("ddrm", o.Steps)
}

// Validate returns an error naming a bad option.
func (o PiGDMOptions) Validate() error {
	if !(o.Eta >= 0) || !finite(o.Eta) {
		return fmt.Errorf("solve: pigdm: eta = %g, want a finite value ≥ 0", o.Eta)
	}
	if !(o.DataVar > 0) || !finite(o.DataVar) {
		return fmt.Errorf("solve: pigdm: data_var = %g, want a finite value > 0", o.DataVar)
	}
	if !(o.Weight >= 0) || !finite(o.Weight) {
		return fmt.Errorf("solve: pigdm: weight = %g, want a finite value ≥ 0", o.Weight)
	}
	return validSteps("pigdm", o.Steps)
}

// Validate returns an error naming a bad option.
func (o MomentMatchingOptions) Validate() error {
	if !(o.Eta >= 0) || !finite(o.Eta) {
		return fmt.Errorf("solve: moment-matching: eta = %g, want a finite value ≥ 0", o.Eta)
	}
	if o.CGIters < 1 {
		return fmt.Errorf("solve: moment-matching: cg_iters = %d, want ≥ 1", o.CGIters)
	}
	return validSteps("moment-matching", o.Steps)
}

func validSteps(method string, steps int) error {
	if steps < 0 {
		return fmt.Errorf("solve: %s: steps = %d, want ≥ 0 (0 keeps the schedule)", method, steps)
	}
	return nil
}

// section returns the addressable options section of method.
func (o *Options) section(method string) (reflect.Value, error) {
	v := reflect.ValueOf(o).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).Tag.Get("method") == method {
			return v.Field(i), nil
		}
	}
	return reflect.Value{}, fmt.Errorf("solve: unknown method %q, want one of %s", method, strings.Join(Names(), ", "))
}

// OptionKeys returns the config keys method accepts, sorted.
func OptionKeys(method string) ([]string, error) {
	var o Options
	sec, err := o.section(method)
	if err != nil {
		return nil, err
	}
	var keys []string
	t := sec.Type()
	for i := 0; i < t.NumField(); i++ {
		keys = append(keys, t.Field(i).Tag.Get("opt"))
	}
	sort.Strings(keys)
	return keys, nil
}

// Decode returns o with method's section overridden by the config keys in
// m (solver.<key> without the prefix; the method name itself is not a key
// here). Values may be any Go number type for numbers (an integer option
// rejects fractions), bool for switches, string for named choices. An unknown key is an error listing
// the valid ones; a wrong type names the key and the type wanted. The
// section is validated.
func (o Options) Decode(method string, m map[string]any) (Options, error) {
	sec, err := o.section(method)
	if err != nil {
		return o, err
	}
	t := sec.Type()
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		idx := -1
		for i := 0; i < t.NumField(); i++ {
			if t.Field(i).Tag.Get("opt") == k {
				idx = i
			}
		}
		if idx < 0 {
			valid, _ := OptionKeys(method)
			return o, fmt.Errorf("solve: %s: unknown option %q, want one of %s", method, k, strings.Join(valid, ", "))
		}
		if err := setField(sec.Field(idx), m[k]); err != nil {
			return o, fmt.Errorf("solve: %s: option %q: %w", method, k, err)
		}
	}
	return o, o.Validate(method)
}

// Validate checks method's section.
func (o Options) Validate(method string) error {
	switch method {
	case "dps":
		return o.DPS.Validate(method)
	case "mcg":
		return o.MCG.Validate(method)
	case "projection":
		return o.Projection.Validate()
	case "ddnm":
		return o.DDNM.Validate(method)
	case "ddnm+":
		return o.DDNMPlus.Validate(method)
	case "ddrm":
		return o.DDRM.Validate()
	case "pigdm":
		return o.PiGDM.Validate()
	case "moment-matching":
		return o.MomentMatching.Validate()
	}
	return fmt.Errorf("solve: unknown method %q, want one of %s", method, strings.Join(Names(), ", "))
}

// DecodeOptions returns DefaultOptions with method's section set from m;
// see Options.Decode.
func DecodeOptions(method string, m map[string]any) (Options, error) {
	return DefaultOptions().Decode(method, m)
}

func setField(f reflect.Value, v any) error {
	switch f.Kind() {
	case reflect.Float64:
		x, ok := number(v)
		if !ok {
			return fmt.Errorf("got %T %v, want a number", v, v)
		}
		f.SetFloat(x)
	case reflect.Int:
		x, ok := number(v)
		if !ok || x != math.Trunc(x) || math.Abs(x) > 1<<31 {
			return fmt.Errorf("got %T %v, want an integer", v, v)
		}
		f.SetInt(int64(x))
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			return fmt.Errorf("got %T %v, want true or false", v, v)
		}
		f.SetBool(b)
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("got %T %v, want a string", v, v)
		}
		f.SetString(s)
	default:
		return fmt.Errorf("internal: option of kind %v", f.Kind())
	}
	return nil
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint64:
		return float64(x), true
	case uint32:
		return float64(x), true
	}
	return 0, false
}
