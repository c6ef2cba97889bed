// Package sample holds diffinv's unconditional samplers: DDPM ancestral
// sampling (fixed small, fixed large and learned-range variances), DDIM with
// η, reverse VP SDE Euler–Maruyama, predictor–corrector combinations
// (reverse-diffusion / Euler–Maruyama / ancestral predictors, Langevin
// corrector with the signal-to-noise step rule), annealed Langevin dynamics
// over VE noise levels, and the probability-flow ODE with Euler, Heun or RK4
// steps.
//
// Every sampler is a plain function of (denoiser, x_T, schedule, options,
// rngs, cb), in the spirit of k-diffusion, and Run picks one by its
// config name. Samplers walk the schedule they are given, index K−1 down to
// 0 (respace it with diffusion.Respace for fewer steps) and call the
// denoiser with the original timesteps sched.Timestep(i). x_T is in VP
// coordinates, x_T ~ N(0, I), and is not modified; the result has its shape.
// The reverse steps are the schedule's (diffusion.Schedule.AncestralStep,
// DDIMStep) and the SDE samplers' terms come from the schedule's SDE
// (diffusion.ScheduleSDE), as the inverse-problem solvers' do.
//
// Random streams: rngs holds one stream per sample of the batch (sample k's
// noise is drawn from rngs[k] with diffusion.FillNormal, as the solvers
// draw theirs), and every step-size rule is per sample, so a sample depends
// only on its x_T and its stream, never on the batch it is in: drawing
// samples one by one or in batches of any size gives the same bits.
// diffusion.ImageRNGs(seed, first, n) gives the streams of samples
// first..first+n−1 of a seeded run. DDIM with η = 0 and the ODE draw no
// noise and accept nil.
package sample

import (
	"fmt"
	"math"
	"math/rand"
	"sort"

	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/internal/tensors"
	"gorgonia.org/tensor"
)

// Func is the common signature of the registered samplers: opts holds the
// options of every sampler and each takes its own section; rngs holds one
// random stream per sample of x_T (see the package comment).
type Func func(den diffusion.Denoiser, xT *tensor.Dense, sched *diffusion.Schedule, opts Options, rngs []*rand.Rand, cb diffusion.Callback) (*tensor.Dense, error)

// Options gathers every sampler's options, one section per sampler, as a
// config's sample section would hold them.
type Options struct {
	DDPM DDPMOptions
	DDIM DDIMOptions
	EM   EMOptions
	PC   PCOptions
	ALD  ALDOptions
	ODE  ODEOptions
}

// DefaultOptions returns the defaults of every sampler.
func DefaultOptions() Options {
	return Options{
		DDPM: DefaultDDPMOptions(),
		DDIM: DefaultDDIMOptions(),
		EM:   DefaultEMOptions(),
		PC:   DefaultPCOptions(),
		ALD:  DefaultALDOptions(),
		ODE:  DefaultODEOptions(),
	}
}

type entry struct {
	name string
	doc  string
	fn   Func
}

func registry() []entry {
	return []entry{
		{"ddpm", "DDPM ancestral sampling (options DDPM)", func(d diffusion.Denoiser, x *tensor.Dense, s *diffusion.Schedule, o Options, r []*rand.Rand, p diffusion.Callback) (*tensor.Dense, error) {
			return DDPM(d, x, s, o.DDPM, r, p)
		}},
		{"ddim", "DDIM with η (options DDIM)", func(d diffusion.Denoiser, x *tensor.Dense, s *diffusion.Schedule, o Options, r []*rand.Rand, p diffusion.Callback) (*tensor.Dense, error) {
			return DDIM(d, x, s, o.DDIM, r, p)
		}},
		{"vp-em", "reverse VP SDE, Euler–Maruyama (options EM)", func(d diffusion.Denoiser, x *tensor.Dense, s *diffusion.Schedule, o Options, r []*rand.Rand, p diffusion.Callback) (*tensor.Dense, error) {
			return EulerMaruyama(d, x, s, o.EM, r, p)
		}},
		{"pc", "predictor–corrector (options PC)", func(d diffusion.Denoiser, x *tensor.Dense, s *diffusion.Schedule, o Options, r []*rand.Rand, p diffusion.Callback) (*tensor.Dense, error) {
			return PredictorCorrector(d, x, s, o.PC, r, p)
		}},
		{"ald", "annealed Langevin dynamics over VE levels (options ALD)", func(d diffusion.Denoiser, x *tensor.Dense, s *diffusion.Schedule, o Options, r []*rand.Rand, p diffusion.Callback) (*tensor.Dense, error) {
			return AnnealedLangevin(d, x, s, o.ALD, r, p)
		}},
		{"ode", "probability-flow ODE (options ODE)", func(d diffusion.Denoiser, x *tensor.Dense, s *diffusion.Schedule, o Options, _ []*rand.Rand, p diffusion.Callback) (*tensor.Dense, error) {
			return ProbabilityFlow(d, x, s, o.ODE, p)
		}},
	}
}

// Names returns the registered sampler names, sorted.
func Names() []string {
	var out []string
	for _, e := range registry() {
		out = append(out, e.name)
	}
	sort.Strings(out)
	return out
}

// Lookup returns the sampler registered under name.
func Lookup(name string) (Func, error) {
	for _, e := range registry() {
		if e.name == name {
			return e.fn, nil
		}
	}
	return nil, fmt.Errorf("sample: unknown sampler %q, want one of %v", name, Names())
}

// Run runs the sampler registered under name; see the package comment.
func Run(name string, den diffusion.Denoiser, xT *tensor.Dense, sched *diffusion.Schedule, opts Options, rngs []*rand.Rand, cb diffusion.Callback) (*tensor.Dense, error) {
	fn, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	return fn(den, xT, sched, opts, rngs, cb)
}

// checkInputs validates what every sampler needs and returns the batch size
// and the per-sample dimension. rngs must hold one stream per sample, none
// nil, when needRNG; otherwise it may be nil, and is checked the same way
// when it is not.
func checkInputs(name string, den diffusion.Denoiser, xT *tensor.Dense, sched *diffusion.Schedule, rngs []*rand.Rand, needRNG bool) (n, d int, err error) {
	if den == nil {
		return 0, 0, fmt.Errorf("sample: %s: nil denoiser", name)
	}
	if sched == nil {
		return 0, 0, fmt.Errorf("sample: %s: nil schedule", name)
	}
	n, c, h, w, err := tensors.NCHW("x_T", xT)
	if err != nil {
		return 0, 0, fmt.Errorf("sample: %s: %w", name, err)
	}
	if n == 0 || c*h*w == 0 {
		return 0, 0, fmt.Errorf("sample: %s: empty x_T of shape %v", name, []int(xT.Shape()))
	}
	if needRNG || rngs != nil {
		if len(rngs) != n {
			return 0, 0, fmt.Errorf("sample: %s: %d random streams for a batch of %d samples, want one per sample (diffusion.ImageRNGs)", name, len(rngs), n)
		}
		for k, r := range rngs {
			if r == nil {
				return 0, 0, fmt.Errorf("sample: %s: random stream %d of %d is nil, want a seeded *rand.Rand per sample", name, k, n)
			}
		}
	}
	return n, c * h * w, nil
}

// epsAt calls the denoiser at schedule index i for the whole batch and
// checks the shape of what comes back.
func epsAt(den diffusion.Denoiser, x *tensor.Dense, sched *diffusion.Schedule, i int) ([]float32, error) {
	eps, err := den.Eps(x, repeat(sched.Timestep(i), x.Shape()[0]))
	if err != nil {
		return nil, fmt.Errorf("denoiser at timestep %d: %w", sched.Timestep(i), err)
	}
	if err := tensors.SameShape("eps", eps, "x_t", x); err != nil {
		return nil, fmt.Errorf("denoiser at timestep %d: %w", sched.Timestep(i), err)
	}
	return tensors.F32(eps), nil
}

func repeat(t, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = t
	}
	return out
}

func clip1(v float64) float64 { return math.Max(-1, math.Min(1, v)) }

// report calls cb (if not nil) after a step that left index i of sched:
// x is the state in VP coordinates (copied), x0 the step's x̂0 or nil.
func report(cb diffusion.Callback, step, total int, sched *diffusion.Schedule, i int, x []float32, x0 []float64, shape []int) {
	if cb == nil {
		return
	}
	st := diffusion.Step{Step: step, Total: total, Index: i, Timestep: sched.Timestep(i),
		X: tensors.FromSlice(append([]float32(nil), x...), shape...)}
	if x0 != nil {
		t := tensors.New(shape...)
		for j, v := range x0 {
			tensors.F32(t)[j] = float32(v)
		}
		st.X0 = t
	}
	cb(st)
}
