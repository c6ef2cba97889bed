// Package solve holds diffinv's diffusion solvers for inverse problems:
// posterior sampling of x given y = A(x) + n with a diffusion prior.
//
// Solve runs the method registered under a name (see Names) on a
// Measurement (A, noise model, y) with a Prior (denoiser, schedule, reverse
// variance); each method has its own options type (DPSOptions, DDNMOptions,
// …), which DecodeOptions makes from a config's solver.* keys, and one
// diffusion.Callback sees every step's x and x̂0. Inside, a solver is a small
// function of the checked problem and its options, registered with its
// options decoder in registry(): adding one is a file and one line. The
// registered methods:
//
//   - "dps": diffusion posterior sampling (Chung et al. 2023), gradient
//     through the network and the operator's VJP; Gaussian or Poisson noise.
//   - "mcg": manifold-constrained gradient (Chung et al. 2022): the DPS step
//     followed by a projection onto the noised measurement.
//   - "projection": Score-SDE / ILVR-style replacement of the measured part
//     by the noised measurement after every unconditional step.
//   - "ddnm": range–null-space decomposition, noise-free (Wang et al. 2023).
//   - "ddnm+": DDNM for noisy y, per singular value, with optional time travel.
//   - "ddrm": denoising diffusion restoration models (Kawar et al. 2022).
//   - "pigdm": pseudo-inverse guided diffusion (Song et al. 2023).
//   - "diffpir": plug-and-play half-quadratic splitting with the network
//     as denoiser and a proximal data step (Zhu et al. 2023).
//   - "moment-matching": Gaussian approximation of p(x0 | x_t) with the
//     covariance from the denoiser's Jacobian, conditional mean by conjugate
//     gradients (Boys et al. 2023 "TMPD", Rozet et al. 2024 "MMPS").
//   - "red-diff": regularisation by denoising diffusion (Mardani et al.
//     2024): Adam on x0 with the data term and λ w_t (ε̂ − ε), any operator.
//   - "pnp-dm": split Gibbs sampling with the diffusion model as the prior
//     step's denoiser at an annealed coupling ρ (Wu et al. 2024).
//   - "daps": decoupled annealing posterior sampling (Zhang et al. 2025):
//     per annealing level x̂0 by a short ODE solve, Langevin MCMC on
//     p(x0 | x̂0, y) through the operator's VJP, re-noising; any operator.
//
// A method that needs structure the operator lacks (linearity, an SVD) or a
// noise model it cannot use returns an error naming what is missing.
//
// Conventions. Images are N×C×H×W float32 in [−1, 1]; y is what the
// operator's Forward produces for the batch, plus noise. Solvers walk the
// schedule they are given from its last index down to 0 (or a uniform
// respacing of it to the method's Steps option) and call the denoiser
// with the original timesteps sched.Timestep(i). All arithmetic between
// denoiser and operator calls is float64.
//
// Per-image independence. Every image of a batch has its own random stream
// (Solve takes one *rand.Rand per image),
// and every step-size rule, norm and stopping test is per image: solving a
// batch gives, image by image, what solving each image alone with the same
// stream gives. diffusion.ImageRNGs derives the stream of image k from (seed, k), so
// results do not depend on how a data set is cut into batches.
package solve

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"sort"
	"strings"

	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/internal/params"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/inverse/op"
	"gorgonia.org/tensor"
)

// ErrDiverged is wrapped by a solver's error when its iteration left the
// finite numbers (a step size too large for the task): callers such as a
// tuning search tell it from other failures with errors.Is.
var ErrDiverged = errors.New("diverged")

// Measurement is what a solver conditions on: y = A(x) + n, the operator
// A, the noise model of n and the measured batch y (N × A's output shape).
type Measurement struct {
	A     op.Operator
	Noise op.Noise
	Y     *tensor.Dense
}

// Prior is the diffusion prior: the denoiser, the schedule it was trained
// on, and the reverse-process variance of its ancestral step (a model's
// diffusion.variance: diffusion.VarianceFixedSmall, "" meaning it too,
// VarianceFixedLarge or VarianceLearnedRange, which needs a
// diffusion.VarianceDenoiser). DPS, MCG and projection take ancestral steps; the
// other methods ignore Variance.
type Prior struct {
	Den      diffusion.Denoiser
	Sched    *diffusion.Schedule
	Variance string
}

// Pullbacker is an optional extension of diffusion.Denoiser: one forward
// pass gives ε and a function that returns vᵀ∂ε/∂x_t for any v. DPS, MCG
// and ΠGDM need ε before they know v; with a plain Denoiser they call Eps
// and then EpsVJP (two forward passes per step), with a Pullbacker one.
// The native UNet (model.UNet) is one; moment matching calls one step's
// function once per CG iteration.
type Pullbacker interface {
	// EpsPullback returns ε(x_t, t) and v ↦ vᵀ∂ε/∂x_t at that same point;
	// the function may be called several times (moment matching's CG).
	EpsPullback(xt *tensor.Dense, t []int) (eps *tensor.Dense, vjp func(v *tensor.Dense) (*tensor.Dense, error), err error)
}

// Requirements says what a method needs from the measurement model.
type Requirements struct {
	// Linear: the operator must be an op.Linear (adjoint, pseudo-inverse).
	Linear bool
	// SVD: the operator must be an op.SVD.
	SVD bool
	// GaussianNoise: the noise model must be *op.Gaussian (σ_y ≥ 0; "clean"
	// is σ_y = 0); Poisson is refused.
	GaussianNoise bool
}

func (r Requirements) need() int {
	switch {
	case r.SVD:
		return needSVD
	case r.Linear:
		return needLinear
	}
	return needOperator
}

// entry is one registered method: its options decoder and its run
// function, which gets the checked problem (p.sched the prior's schedule,
// not yet respaced) and validated options.
type entry struct {
	name    string
	summary string
	req     Requirements
	decode  func(r *params.Reader) Options
	run     func(p *problem, o Options) (*tensor.Dense, error)
	typ     reflect.Type // the method's options type
}

// method makes a registry entry from a typed decoder and run function.
func method[O Options](name, summary string, req Requirements, decode func(*params.Reader) O, run func(*problem, O) (*tensor.Dense, error)) entry {
	var zero O
	return entry{
		name: name, summary: summary, req: req,
		decode: func(r *params.Reader) Options { return decode(r) },
		run:    func(p *problem, o Options) (*tensor.Dense, error) { return run(p, o.(O)) },
		typ:    reflect.TypeOf(zero),
	}
}

// registry lists the methods. Adding a solver is a file with its options,
// decoder and run function, and one line here.
func registry() []entry {
	return []entry{
		method("dps", "diffusion posterior sampling: ancestral step + ζ∇‖y − A(x̂0)‖ (any operator, Gaussian or Poisson noise)", Requirements{}, decodeDPS, dps),
		method("mcg", "manifold-constrained gradient: the DPS step, then projection onto the noised measurement", Requirements{Linear: true}, decodeDPS, mcg),
		method("projection", "Score-SDE / ILVR projection: unconditional step, then replace the measured part by the noised y", Requirements{Linear: true}, decodeProjection, projection),
		method("ddnm", "range–null-space decomposition, noise-free: x̂0 ← x̂0 − A†(A x̂0 − y), then a DDIM-style step", Requirements{Linear: true}, decodeDDNM, ddnm),
		method("ddnm+", "DDNM for noisy y: λ_t per singular value, optional time travel", Requirements{SVD: true, GaussianNoise: true}, decodeDDNM, ddnmPlus),
		method("ddrm", "denoising diffusion restoration models: SVD-space variational steps (η, η_B, 20 steps)", Requirements{SVD: true, GaussianNoise: true}, decodeDDRM, ddrm),
		method("pigdm", "pseudo-inverse guided diffusion: guidance (∂x̂0/∂x_t)ᵀAᵀ(r²AAᵀ + σ_y²I)⁻¹(y − A x̂0)", Requirements{Linear: true, GaussianNoise: true}, decodePiGDM, piGDM),
		method("diffpir", "DiffPIR: half-quadratic splitting, x̂0_y = argmin ‖y − A x‖² + ρ_t‖x − x̂0‖² (closed form with an SVD, CG or gradient steps otherwise), then the ζ-mixed step", Requirements{GaussianNoise: true}, decodeDiffPIR, diffPIR),
		method("daps", "decoupled annealing posterior sampling: x̂0 by a few-step ODE, Langevin on p(x0 | x̂0, y) via the VJP, re-noise (any operator)", Requirements{}, decodeDAPS, daps),
		method("moment-matching", "Gaussian p(x0 | x_t) with Tweedie's covariance, conditional mean by conjugate gradients", Requirements{Linear: true, GaussianNoise: true}, decodeMomentMatching, momentMatching),
		method("red-diff", "RED-diff: Adam on x0 with ‖y − A(x0)‖² + λ w_t sg(ε̂(x_t) − ε)ᵀx0, t descending (any operator, no network Jacobian)", Requirements{GaussianNoise: true}, decodeRedDiff, redDiff),
		method("pnp-dm", "split Gibbs: exact Gaussian (linear operator, Gaussian noise) or Langevin likelihood step (any operator and noise), then the diffusion model as denoiser at annealed ρ", Requirements{}, decodePnPDM, pnpDM),
	}
}

func lookupEntry(name string) (entry, error) {
	for _, e := range registry() {
		if e.name == name {
			return e, nil
		}
	}
	return entry{}, fmt.Errorf("solve: unknown method %q, want one of %s", name, strings.Join(Names(), ", "))
}

// Summary returns a one-line description of the method and what it needs
// (Requirements), as `diffinv solve --help` lists them.
func Summary(name string) (summary string, req Requirements, err error) {
	e, err := lookupEntry(name)
	if err != nil {
		return "", Requirements{}, err
	}
	return e.summary, e.req, nil
}

// DecodeOptions returns method's options from a config's solver.* keys
// (without the prefix; m may be nil), the published defaults standing for
// absent keys. Numbers may be any Go number type (an integer option refuses
// fractions), switches bool, named choices string. An unknown key is an
// error listing the valid ones, a wrong type names the key and the type
// wanted; the result is validated.
func DecodeOptions(method string, m map[string]any) (Options, error) {
	e, err := lookupEntry(method)
	if err != nil {
		return nil, err
	}
	r := params.New("solve: "+method, "option", m)
	o := e.decode(r)
	if err := r.Done(); err != nil {
		return nil, err
	}
	if err := o.Validate(method); err != nil {
		return nil, err
	}
	return o, nil
}

// OptionKeys returns the config keys method accepts, sorted.
func OptionKeys(method string) ([]string, error) {
	e, err := lookupEntry(method)
	if err != nil {
		return nil, err
	}
	r := params.New("solve: "+method, "option", nil)
	e.decode(r)
	return r.Keys(), nil
}

// Check returns the error the method would return for an operator or noise
// model lacking the structure it needs, without running anything: what an
// experiment grid can test before it schedules a (task, method) cell.
func Check(name string, A op.Operator, noise op.Noise) error {
	e, err := lookupEntry(name)
	if err != nil {
		return err
	}
	_, err = checkStructure(name, A, noise, e.req)
	return err
}

// structure is what checkStructure finds out about A and the noise.
type structure struct {
	lin      op.Linear
	svd      op.SVD
	gaussian bool
	sigmaY   float64
}

func checkStructure(method string, A op.Operator, noise op.Noise, req Requirements) (structure, error) {
	var st structure
	if A == nil {
		return st, fmt.Errorf("solve: %s: nil operator", method)
	}
	if noise == nil {
		return st, fmt.Errorf("solve: %s: nil noise model, want one from op.NewNoise (\"clean\" for none)", method)
	}
	if lin, ok := A.(op.Linear); ok {
		st.lin = lin
	}
	if s, ok := A.(op.SVD); ok {
		st.svd = s
	}
	switch req.need() {
	case needLinear:
		if st.lin == nil {
			return st, fmt.Errorf("solve: %s needs a linear operator (op.Linear, with adjoint and pseudo-inverse); %s has none", method, operatorName(A))
		}
	case needSVD:
		if st.svd == nil {
			return st, fmt.Errorf("solve: %s needs an operator with an SVD (op.SVD); %s has none", method, operatorName(A))
		}
	}
	if g, ok := noise.(*op.Gaussian); ok {
		st.gaussian, st.sigmaY = true, g.Sigma
	} else if req.GaussianNoise {
		return st, fmt.Errorf("solve: %s needs Gaussian (or clean) measurement noise; got %q", method, noise.Name())
	}
	return st, nil
}

// Names returns the registered solver names, sorted.
func Names() []string {
	var out []string
	for _, e := range registry() {
		out = append(out, e.name)
	}
	sort.Strings(out)
	return out
}

// Solve runs method on the measurement with the prior. opts are the
// method's options (DecodeOptions, or the method's options struct; nil
// takes the defaults); rngs holds one random stream per image of meas.Y
// (diffusion.ImageRNGs), image k drawing only from rngs[k]; cb, if not nil, is
// called after every denoiser step. It returns the reconstructions,
// N×C×H×W in A's input shape.
func Solve(method string, prior Prior, meas Measurement, opts Options, rngs []*rand.Rand, cb diffusion.Callback) (*tensor.Dense, error) {
	e, err := lookupEntry(method)
	if err != nil {
		return nil, err
	}
	if opts == nil {
		if opts, err = DecodeOptions(method, nil); err != nil {
			return nil, err
		}
	}
	if t := reflect.TypeOf(opts); t != e.typ {
		return nil, fmt.Errorf("solve: %s: options of type %v, want %v", method, t, e.typ)
	}
	if err := opts.Validate(method); err != nil {
		return nil, err
	}
	p, err := newProblem(e, prior, meas, rngs, cb)
	if err != nil {
		return nil, err
	}
	return e.run(p, opts)
}

// operatorName names an operator in error messages: its Name method when it
// has one, its Go type otherwise.
func operatorName(A op.Operator) string {
	if nm, ok := A.(interface{ Name() string }); ok {
		return nm.Name()
	}
	return fmt.Sprintf("%T", A)
}

// problem gathers what every solver needs, checked once.
type problem struct {
	method   string
	den      diffusion.Denoiser
	A        op.Operator
	lin      op.Linear // nil unless A is linear
	svd      op.SVD    // nil unless A has an SVD
	noise    op.Noise
	sigmaY   float64 // Gaussian noise σ_y (0 when clean or not Gaussian)
	gaussian bool    // noise is Gaussian (σ_y may be 0)
	y        *tensor.Dense
	yv       []float64 // y, float64
	xshape   []int     // N, C, H, W
	n, d, m  int       // batch, per-image dims of x and y
	sched    *diffusion.Schedule
	rngs     []*rand.Rand
	cb       diffusion.Callback
	steps    int // denoiser steps reported to cb (Step.Total)
	done     int
	prior    Prior
	variance string                     // set by useVariance: Prior.Variance, "" read as fixed_small
	vden     diffusion.VarianceDenoiser // set when variance is learned_range
}

// need values for Requirements.need.
const (
	needOperator = iota
	needLinear
	needSVD
)

// newProblem validates the common inputs and the structure the method's
// registry entry requires.
func newProblem(e entry, prior Prior, meas Measurement, rngs []*rand.Rand, cb diffusion.Callback) (*problem, error) {
	method, den, A, noise, y, sched := e.name, prior.Den, meas.A, meas.Noise, meas.Y, prior.Sched
	p := &problem{method: method, den: den, A: A, noise: noise, y: y, sched: sched, rngs: rngs, cb: cb, prior: prior}
	if den == nil {
		return nil, fmt.Errorf("solve: %s: nil denoiser", method)
	}
	if sched == nil {
		return nil, fmt.Errorf("solve: %s: nil schedule", method)
	}
	if y == nil {
		return nil, fmt.Errorf("solve: %s: nil measurement y", method)
	}
	st, err := checkStructure(method, A, noise, e.req)
	if err != nil {
		return nil, err
	}
	p.lin, p.svd, p.gaussian, p.sigmaY = st.lin, st.svd, st.gaussian, st.sigmaY
	sh, ok := A.(op.Shaped)
	if !ok {
		return nil, fmt.Errorf("solve: %s: operator %s does not report its image shape (op.Shaped)", method, operatorName(A))
	}
	in, out := sh.InShape(), sh.OutShape()
	if len(in) != 3 || len(out) != 3 {
		return nil, fmt.Errorf("solve: %s: operator %s has shapes %v → %v, want C×H×W → 3 dimensions", method, operatorName(A), in, out)
	}
	n, c, h, w, err := tensors.NCHW("y", y)
	if err != nil {
		return nil, fmt.Errorf("solve: %s: %w", method, err)
	}
	if n < 1 {
		return nil, fmt.Errorf("solve: %s: empty batch y of shape %v", method, []int(y.Shape()))
	}
	if c != out[0] || h != out[1] || w != out[2] {
		return nil, fmt.Errorf("solve: %s: y has shape %v, want N×%v (operator %s)", method, []int(y.Shape()), out, operatorName(A))
	}
	if len(rngs) != n {
		return nil, fmt.Errorf("solve: %s: %d random streams for a batch of %d, want one per image", method, len(rngs), n)
	}
	for k, r := range rngs {
		if r == nil {
			return nil, fmt.Errorf("solve: %s: random stream %d is nil, want a seeded *rand.Rand", method, k)
		}
	}
	p.n, p.d, p.m = n, in[0]*in[1]*in[2], c*h*w
	p.xshape = []int{n, in[0], in[1], in[2]}
	p.yv = f64(y)
	for k, v := range p.yv {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("solve: %s: y[%d] = %g, want finite values", method, k, v)
		}
	}
	return p, nil
}

// useVariance validates the prior's reverse-step variance for a method
// that takes ancestral steps and, for learned_range, that the denoiser
// outputs one.
func (p *problem) useVariance() error {
	v := p.prior.Variance
	if err := diffusion.ValidVariance(v); err != nil {
		return fmt.Errorf("solve: %s: %w", p.method, err)
	}
	p.variance = v
	if v != diffusion.VarianceLearnedRange {
		return nil
	}
	vd, ok := p.den.(diffusion.VarianceDenoiser)
	if !ok {
		return fmt.Errorf("solve: %s: variance %q needs a denoiser with a learned variance output (diffusion.VarianceDenoiser, a model with learn_sigma), got %T", p.method, v, p.den)
	}
	p.vden = vd
	return nil
}

// varOut returns the model's variance output v at (x, index i) when the
// variance is learned_range, else nil. It costs one more forward pass
// (EpsVar; the ε it also returns is not used, so a solver's ε and its
// pullback keep coming from one call), and none at index 0, where the
// step adds no noise.
func (p *problem) varOut(sched *diffusion.Schedule, x []float64, i int) ([]float64, error) {
	if p.vden == nil || i == 0 {
		return nil, nil
	}
	xt := p.image(x)
	_, v, err := p.vden.EpsVar(xt, p.ts(sched, i))
	if err != nil {
		return nil, fmt.Errorf("solve: %s: denoiser variance at timestep %d: %w", p.method, sched.Timestep(i), err)
	}
	if err := tensors.SameShape("v", v, "x_t", xt); err != nil {
		return nil, fmt.Errorf("solve: %s: denoiser variance at timestep %d: %w", p.method, sched.Timestep(i), err)
	}
	return f64(v), nil
}

// respace returns the schedule the solver walks, p.sched respaced to steps
// (see respaced), and sets the Total its callback reports to its length;
// time travel adds to it.
func (p *problem) respace(steps int) (*diffusion.Schedule, error) {
	s, err := respaced(p.method, p.sched, steps)
	if err != nil {
		return nil, err
	}
	p.steps = s.Len()
	return s, nil
}

// respaced returns the schedule a solver walks: sched itself when steps is
// 0, else a uniform respacing of sched to steps steps
// (diffusion.SpacedTimesteps "uniform": stride ⌊K/steps⌋, which gives a few
// more steps than asked when steps does not divide K, as the DDIM code).
func respaced(method string, sched *diffusion.Schedule, steps int) (*diffusion.Schedule, error) {
	if steps == 0 || steps == sched.Len() {
		return sched, nil
	}
	if steps < 0 || steps > sched.Len() {
		return nil, fmt.Errorf("solve: %s: steps = %d, want 0 (the schedule's %d) or 1..%d", method, steps, sched.Len(), sched.Len())
	}
	idx, err := diffusion.SpacedTimesteps(sched.Len(), steps, diffusion.SpacingUniform)
	if err != nil {
		return nil, fmt.Errorf("solve: %s: %w", method, err)
	}
	s, err := diffusion.Respace(sched, idx)
	if err != nil {
		return nil, fmt.Errorf("solve: %s: %w", method, err)
	}
	return s, nil
}

func f64(t *tensor.Dense) []float64 {
	src := tensors.F32(t)
	out := make([]float64, len(src))
	for i, v := range src {
		out[i] = float64(v)
	}
	return out
}

func f32(v []float64, shape ...int) *tensor.Dense {
	t := tensors.New(shape...)
	d := tensors.F32(t)
	for i, x := range v {
		d[i] = float32(x)
	}
	return t
}

func (p *problem) image(v []float64) *tensor.Dense { return f32(v, p.xshape...) }
func (p *problem) meas(v []float64) *tensor.Dense {
	return f32(v, append([]int{p.n}, p.y.Shape()[1:]...)...)
}

func (p *problem) ts(sched *diffusion.Schedule, i int) []int {
	t := make([]int, p.n)
	for k := range t {
		t[k] = sched.Timestep(i)
	}
	return t
}

// eps returns ε̂(x, index i).
func (p *problem) eps(sched *diffusion.Schedule, x []float64, i int) ([]float64, error) {
	e, err := p.den.Eps(p.image(x), p.ts(sched, i))
	if err != nil {
		return nil, fmt.Errorf("solve: %s: denoiser at timestep %d: %w", p.method, sched.Timestep(i), err)
	}
	if err := tensors.SameShape("eps", e, "x_t", p.image(x)); err != nil {
		return nil, fmt.Errorf("solve: %s: denoiser at timestep %d: %w", p.method, sched.Timestep(i), err)
	}
	return f64(e), nil
}

// epsPullback returns ε̂(x, i) and a function computing vᵀ∂ε/∂x_t.
func (p *problem) epsPullback(sched *diffusion.Schedule, x []float64, i int) ([]float64, func(v []float64) ([]float64, error), error) {
	xt := p.image(x)
	ts := p.ts(sched, i)
	wrap := func(err error) error {
		return fmt.Errorf("solve: %s: denoiser at timestep %d: %w", p.method, sched.Timestep(i), err)
	}
	if pb, ok := p.den.(Pullbacker); ok {
		e, f, err := pb.EpsPullback(xt, ts)
		if err != nil {
			return nil, nil, wrap(err)
		}
		if err := tensors.SameShape("eps", e, "x_t", xt); err != nil {
			return nil, nil, wrap(err)
		}
		return f64(e), func(v []float64) ([]float64, error) {
			g, err := f(p.image(v))
			if err != nil {
				return nil, wrap(err)
			}
			if err := tensors.SameShape("vjp", g, "x_t", xt); err != nil {
				return nil, wrap(err)
			}
			return f64(g), nil
		}, nil
	}
	e, err := p.eps(sched, x, i)
	if err != nil {
		return nil, nil, err
	}
	return e, func(v []float64) ([]float64, error) {
		_, g, err := p.den.EpsVJP(xt, ts, p.image(v))
		if err != nil {
			return nil, wrap(err)
		}
		if err := tensors.SameShape("vjp", g, "x_t", xt); err != nil {
			return nil, wrap(err)
		}
		return f64(g), nil
	}, nil
}

// forward returns A(x) as float64.
func (p *problem) forward(x []float64) ([]float64, error) {
	ax, err := p.A.Forward(p.image(x))
	if err != nil {
		return nil, fmt.Errorf("solve: %s: operator %s: %w", p.method, operatorName(p.A), err)
	}
	if err := tensors.SameShape("A(x)", ax, "y", p.y); err != nil {
		return nil, fmt.Errorf("solve: %s: operator %s: %w", p.method, operatorName(p.A), err)
	}
	return f64(ax), nil
}

// vjpA returns (∂A/∂x at x)ᵀ g.
func (p *problem) vjpA(x, g []float64) ([]float64, error) {
	v, err := p.A.VJP(p.image(x), p.meas(g))
	if err != nil {
		return nil, fmt.Errorf("solve: %s: operator %s VJP: %w", p.method, operatorName(p.A), err)
	}
	return f64(v), nil
}

// nllGrad returns ∇_x(−log p(y | A(x))), J_Aᵀ of the noise model's
// gradient at A(x) (op.Noise.Grad: (A(x) − y)/σ² for Gaussian noise, the
// Poisson likelihood's for Poisson): the data term of the Langevin steps
// that sample p(x | y), whatever the noise model.
func (p *problem) nllGrad(x []float64) ([]float64, error) {
	ax, err := p.A.Forward(p.image(x))
	if err != nil {
		return nil, fmt.Errorf("solve: %s: operator %s: %w", p.method, operatorName(p.A), err)
	}
	g, err := p.noise.Grad(ax, p.y)
	if err != nil {
		return nil, fmt.Errorf("solve: %s: %s noise gradient: %w", p.method, p.noise.Name(), err)
	}
	return p.vjpA(x, f64(g))
}

func (p *problem) adjoint(g []float64) ([]float64, error) {
	v, err := p.lin.Adjoint(p.meas(g))
	if err != nil {
		return nil, fmt.Errorf("solve: %s: operator %s adjoint: %w", p.method, operatorName(p.A), err)
	}
	return f64(v), nil
}

func (p *problem) pinv(g []float64) ([]float64, error) {
	v, err := p.lin.Pinv(p.meas(g))
	if err != nil {
		return nil, fmt.Errorf("solve: %s: operator %s pseudo-inverse: %w", p.method, operatorName(p.A), err)
	}
	return f64(v), nil
}

// replayNoise, when set, replaces every draw of randn: it fills the whole
// z (all images) with the next stored noise. Only the golden test
// (solver_goldens_test.go) sets it, to replay the per-step noise its
// PyTorch script drew, which no seed of math/rand can reproduce; tests that
// set it must not run in parallel with other solver tests.
var replayNoise func(z []float64)

// randn fills z (n blocks of len(z)/n) with standard normal draws, block k
// from image k's stream.
func (p *problem) randn(z []float64) {
	if replayNoise != nil {
		replayNoise(z)
		return
	}
	diffusion.FillNormal(p.rngs, z)
}

// tick reports a denoiser step that left index i of sched, with the state
// x after it and its x̂0 (nil when the step has none), to the callback.
func (p *problem) tick(sched *diffusion.Schedule, i int, x, x0 []float64) {
	p.done++
	if p.cb == nil {
		return
	}
	st := diffusion.Step{Step: p.done, Total: p.steps, Index: i, Timestep: sched.Timestep(i), X: p.image(x)}
	if x0 != nil {
		st.X0 = p.image(x0)
	}
	p.cb(st)
}

// x0FromEps returns x̂0 = (x − √(1−ᾱ_i) ε)/√ᾱ_i.
func x0FromEps(sched *diffusion.Schedule, i int, x, eps []float64) []float64 {
	a, s := sched.SqrtAlphaBar(i), sched.SqrtOneMinusAlphaBar(i)
	out := make([]float64, len(x))
	for j := range x {
		out[j] = (x[j] - s*eps[j]) / a
	}
	return out
}

// x0Grad maps g = ∇_{x̂0}L to ∇_{x_t}L = (g − √(1−ᾱ)·vjp_ε(g))/√ᾱ.
func x0Grad(sched *diffusion.Schedule, i int, g, vjp []float64) []float64 {
	a, s := sched.SqrtAlphaBar(i), sched.SqrtOneMinusAlphaBar(i)
	out := make([]float64, len(g))
	for j := range g {
		out[j] = (g[j] - s*vjp[j]) / a
	}
	return out
}

func clip1(v float64) float64 { return math.Max(-1, math.Min(1, v)) }

// ancestral returns the DDPM step from index i
// (diffusion.Schedule.AncestralStep, the step sample.DDPM takes) with x̂0
// clamped to [−1, 1] first when clip, σ² from the prior's variance (v the
// model's variance output for learned_range, nil otherwise), z drawn per
// image (none at i = 0).
func (p *problem) ancestral(sched *diffusion.Schedule, i int, x, x0, v []float64, clip bool) []float64 {
	if clip {
		c := make([]float64, len(x0))
		for j, u := range x0 {
			c[j] = clip1(u)
		}
		x0 = c
	}
	var z []float64
	if i > 0 {
		z = make([]float64, len(x))
		p.randn(z)
	}
	out := make([]float64, len(x))
	sched.AncestralStep(i, p.variance, x, x0, v, z, out)
	return out
}

// ddim returns the DDIM step from index i with x̂0 and ε̂ given
// (diffusion.Schedule.DDIMStep), z per image, none at i = 0.
func (p *problem) ddim(sched *diffusion.Schedule, i int, x0, eps []float64, eta float64) []float64 {
	_, _, sigma := sched.DDIMCoefs(i, eta)
	var z []float64
	if sigma > 0 && i > 0 {
		z = make([]float64, len(x0))
		p.randn(z)
	}
	out := make([]float64, len(x0))
	sched.DDIMStep(i, eta, x0, eps, z, out)
	return out
}

// mix returns DDRM's and DDNM's step from index i
// (diffusion.Schedule.MixStep), z per image (none at i = 0, where
// ᾱ_{i−1} = 1 anyway).
func (p *problem) mix(sched *diffusion.Schedule, i int, x0, eps []float64, eta float64) []float64 {
	var z []float64
	if eta > 0 && i > 0 {
		z = make([]float64, len(x0))
		p.randn(z)
	}
	out := make([]float64, len(x0))
	sched.MixStep(i, eta, x0, eps, z, out)
	return out
}

// finish converts the final state to a tensor.
func (p *problem) finish(x []float64) (*tensor.Dense, error) {
	for j, v := range x {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("solve: %s: reconstruction of image %d is not finite (%w; try a smaller step size or more steps)", p.method, j/p.d, ErrDiverged)
		}
	}
	return p.image(x), nil
}

// revisions numbers the changes of a solver's results for the same
// settings (a default that now follows the official code, say), so that
// stored results of the older behaviour are not taken for the new one:
// experiment cells include it in their identity. A solver absent here is
// at revision 1.
var revisions = map[string]int{
	// 2: with clip_x0, x̂0 is clamped inside ‖y − A(x̂0)‖ too, as the DPS
	// code's clip_denoised (clip_mean_only gives revision 1's results).
	"dps": 2,
	"mcg": 2,
}

// Revision returns the revision of the solver registered under name (1
// for every solver whose results never changed).
func Revision(name string) int {
	if r, ok := revisions[name]; ok {
		return r
	}
	return 1
}
