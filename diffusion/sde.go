package diffusion

import "math"

// DiscreteVP is the variance-preserving SDE dx = −½β(t)x dt + √β(t) dw
// that a discrete schedule implies, in the style of score_sde_pytorch's
// sde_lib: the samplers' SDE predictors and the Langevin corrector (package
// sample) take their terms from it, as score_sde's take theirs from
// sde.sde and sde.discretize.
//
// Between consecutive kept indices i−1 < i the integrated rate ∫β dt is
// log(ᾱ_{i−1}/ᾱ_i) = −log(1−β_i) = Δ_i, so any schedule (linear, cosine,
// respaced) defines its own SDE and no continuous-time network is needed.
// DiscreteVP measures time in that integrated rate, τ = ∫β dt, where the
// SDE is the Ornstein–Uhlenbeck process dx = −½x dτ + dw_τ and step i is
// Δ_i long; solved exactly over step i it gives the schedule's own
// transition x_i = √(1−β_i) x_{i−1} + √β_i z, which Discretize returns.
// The marginal at index i is N(√ᾱ_i x0, (1−ᾱ_i) I) and the score
// ∇log p_i(x) = −ε̂(x, t_i)/√(1−ᾱ_i).
type DiscreteVP struct{ s *Schedule }

// ScheduleSDE returns the VP SDE of the schedule s (see DiscreteVP).
func ScheduleSDE(s *Schedule) DiscreteVP { return DiscreteVP{s} }

// Schedule returns the schedule the SDE was built from.
func (v DiscreteVP) Schedule() *Schedule { return v.s }

// Len returns the number of schedule indices.
func (v DiscreteVP) Len() int { return v.s.Len() }

// Delta returns Δ_i = −log(1−β_i), the length of step i (from index i to
// i−1) in the SDE's time τ = ∫β dt.
func (v DiscreteVP) Delta(i int) float64 { return -math.Log1p(-v.s.Beta(i)) }

// SDE returns the forward SDE's terms at index i in time τ, as score_sde's
// sde.sde(x, t): the drift coefficient c with f(x) = c·x, and the
// diffusion coefficient g. In τ they are −½ and 1 at every index; the
// schedule enters through the step lengths Delta.
func (v DiscreteVP) SDE(i int) (drift, diffusion float64) { return -0.5, 1 }

// Discretize returns score_sde's discretisation of step i (VPSDE.discretize,
// DDPM's own transition): x_i = a·x_{i−1} + G z, i.e. f = (a − 1)x, with
// a = √(1−β_i) and G² = β_i (returned squared, as the predictors use it).
func (v DiscreteVP) Discretize(i int) (a, g2 float64) {
	b := v.s.Beta(i)
	return math.Sqrt(1 - b), b
}

// Alpha returns α_i = 1 − β_i, the factor of score_sde's Langevin step rule
// for VP SDEs.
func (v DiscreteVP) Alpha(i int) float64 { return v.s.Alpha(i) }

// Marginal returns the mean coefficient and standard deviation of the
// marginal at index i, p_i(x | x0) = N(mean·x0, std²·I): √ᾱ_i and
// √(1−ᾱ_i), the scale that turns ε̂ into the score (−ε̂/std).
func (v DiscreteVP) Marginal(i int) (mean, std float64) {
	return v.s.SqrtAlphaBar(i), v.s.SqrtOneMinusAlphaBar(i)
}

// VESigma returns the noise level σ_i = √((1−ᾱ_i)/ᾱ_i) of the
// variance-exploding process x/√ᾱ_i = x0 + σ_i ε that the VP state at
// index i is, rescaled: the levels of annealed Langevin dynamics and of
// the probability-flow ODE in σ.
func (v DiscreteVP) VESigma(i int) float64 { return v.s.Sigma(i) }
