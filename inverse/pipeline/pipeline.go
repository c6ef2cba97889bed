// Package pipeline runs one inverse-problem task end to end: it builds the
// measurement (operator and noise) from a config, measures a batch of
// ground-truth images, solves with a diffusion solver and a classical
// baseline, and scores both (PSNR, SSIM, measurement consistency).
//
// `diffinv solve`, `diffinv demo` and the experiment runner all go through
// Solve, so a number in a table means the same thing everywhere.
//
// Randomness: the operator's own draws (a random box position or mask, a
// motion kernel) come from OperatorSeed(seed), once per task, so every image
// of a run is measured by the same A; each image's measurement noise comes
// from its own stream (NoiseRNGs) and each image's solver noise from
// solve.ImageRNGs, both keyed by the image's index in the dataset, so a
// result does not depend on how images are batched.
package pipeline

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"sort"
	"strings"
	"time"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/inverse/baseline"
	"github.com/diffinv/diffinv/inverse/op"
	"github.com/diffinv/diffinv/inverse/solve"
	"github.com/diffinv/diffinv/metrics"
)

// Setup is a measurement and a solver ready to run on images of one shape.
type Setup struct {
	Method   string
	Baseline string // resolved: pinv, tikhonov, admm_tv, hio, er or none
	A        op.Operator
	Noise    op.Noise
	Opts     solve.Options
	// Variance is the model's diffusion.variance, the reverse variance of
	// the ancestral steps of DPS, MCG and projection (solve.Prior.Variance),
	// as diffinv sample's DDPM takes it.
	Variance  string
	Den       diffusion.Denoiser
	Sched     *diffusion.Schedule // the full training schedule
	Shape     [3]int              // C, H, W
	BatchSize int
	Seed      int64
	// Store, when set, keeps each solved batch so that an interrupted
	// Solve of the same images and settings resumes after the last stored
	// one (see BatchStore); nil solves every batch.
	Store BatchStore
	phase bool // phase retrieval: metrics after baseline.Align
}

// BatchStore persists the reconstructions of the batches of one Solve: the
// images [lo, hi) of the call (0-based within it) and the solver's wall
// seconds for them. Solve's results do not depend on how images are
// batched (each image draws from its own noise stream), so a batch read
// back is what solving it again would give. A Load that finds nothing
// usable returns ok false; the batch is then solved and saved.
type BatchStore interface {
	Load(lo, hi int) (recon *tensor.Dense, seconds float64, ok bool)
	Save(lo, hi int, recon *tensor.Dense, seconds float64) error
}

// OperatorSeed derives the seed of the operator's random draws.
func OperatorSeed(seed int64) int64 { return seed*7919 + 17 }

// NoiseRNGs returns one measurement-noise stream per image index first..first+n−1.
func NoiseRNGs(seed int64, first, n int) []*rand.Rand {
	return diffusion.ImageRNGs(seed^0x5bd1e995, first, n)
}

// New builds the setup for cfg's measurement and solver sections, with the
// method's options layered as solve defaults < taskDefaults < cfg.Solver.Options.
// den must already turn the network's prediction into ε (see
// train.PredictionDenoiser); sched is the full schedule.
func New(cfg *config.Config, den diffusion.Denoiser, sched *diffusion.Schedule, taskDefaults map[string]any, seed int64) (*Setup, error) {
	shape := [3]int{cfg.Model.InChannels, cfg.Model.ImageSize, cfg.Model.ImageSize}
	m := cfg.Measurement
	A, err := op.New(m.Operator.Name, m.Operator.Params, shape, rand.New(rand.NewSource(OperatorSeed(seed))))
	if err != nil {
		return nil, fmt.Errorf("measurement.operator: %w", err)
	}
	noise, err := op.NewNoise(m.Noise.Name, m.Noise.Sigma, m.Noise.Rate)
	if err != nil {
		return nil, fmt.Errorf("measurement.noise: %w", err)
	}
	method := cfg.Solver.Method
	_, phase := A.(*op.PhaseRetrieval)
	if baseline.IsMethod(method) {
		// A classical method as the "solver": its reconstruction is the result.
		if len(cfg.Solver.Options) > 0 {
			keys := make([]string, 0, len(cfg.Solver.Options))
			for k := range cfg.Solver.Options {
				keys = append(keys, "solver."+k)
			}
			sort.Strings(keys)
			return nil, fmt.Errorf("%s is a classical baseline and takes no solver options, got %s", method, strings.Join(keys, ", "))
		}
		b, err := resolveBaseline(method, A)
		if err != nil {
			return nil, err
		}
		return &Setup{Method: method, Baseline: b, A: A, Noise: noise, Sched: sched,
			Shape: shape, BatchSize: cfg.Solver.BatchSize, Seed: seed, phase: phase}, nil
	}
	// Task defaults under the user's solver.* keys, decoded as one layer.
	merged := make(map[string]any, len(taskDefaults)+len(cfg.Solver.Options))
	for k, v := range taskDefaults {
		merged[k] = v
	}
	for k, v := range cfg.Solver.Options {
		merged[k] = v
	}
	opts, err := solve.DecodeOptions(method, merged)
	if err != nil {
		if _, err2 := solve.DecodeOptions(method, taskDefaults); err2 != nil {
			return nil, fmt.Errorf("task defaults for %s: %w", method, err2)
		}
		return nil, fmt.Errorf("solver options: %w", err)
	}
	if err := solve.Check(method, A, noise); err != nil {
		return nil, fmt.Errorf("%w (task operator %s)", err, m.Operator.Name)
	}
	b, err := resolveBaseline(cfg.Solver.Baseline, A)
	if err != nil {
		return nil, err
	}
	return &Setup{Method: method, Baseline: b, A: A, Noise: noise, Opts: opts, Variance: cfg.Diffusion.Variance, Den: den, Sched: sched,
		Shape: shape, BatchSize: cfg.Solver.BatchSize, Seed: seed, phase: phase}, nil
}

func resolveBaseline(name string, A op.Operator) (string, error) {
	_, phase := A.(*op.PhaseRetrieval)
	_, svd := A.(op.SVD)
	_, circ := A.(*op.CircConv)
	_, isLin := A.(op.Linear)
	_, adj := A.(interface {
		Adjoint(*tensor.Dense) (*tensor.Dense, error)
	})
	switch name {
	case "auto":
		switch {
		case phase:
			return "hio", nil
		case isLin:
			return "pinv", nil
		case adj:
			return "admm_tv", nil
		}
		return "none", nil
	case "pinv":
		if !isLin {
			return "", fmt.Errorf("solver.baseline pinv needs a linear operator with a pseudo-inverse; %T has none", A)
		}
	case "tikhonov":
		if !svd && !circ {
			return "", fmt.Errorf("solver.baseline tikhonov needs an operator with an SVD or a circular convolution; %T is neither", A)
		}
	case "admm_tv":
		if !adj {
			return "", fmt.Errorf("solver.baseline admm_tv needs a linear operator with an adjoint; %T has none", A)
		}
	case "hio", "er":
		if !phase {
			return "", fmt.Errorf("solver.baseline %s is for phase retrieval; the operator is %T", name, A)
		}
	}
	return name, nil
}

// Result holds one batch's images and scores; per-image slices follow the
// batch order. Images are N×C×H×W in [−1, 1]; Y is the measurement as A
// shapes it.
type Result struct {
	Truth, Y, Recon, Baseline *tensor.Dense
	PSNR, SSIM, Consistency   []float64
	// NegLogLik is −log p(y | A(x̂)) per image under the measurement's noise
	// model (op.Noise.NegLogLik, up to its constant): the data fit in the
	// likelihood's own units (Poisson counts, Gaussian σ_y); +Inf for clean
	// measurements of an inexact x̂.
	NegLogLik               []float64
	BaselinePSNR, BaseSSIM  []float64
	BaselineConsistency     []float64
	SecondsPerImage         float64 // the diffusion solver's wall time per image
	BaselineSecondsPerImage float64
}

// Measure returns y = noise(A(x)) with per-image noise streams.
func (s *Setup) Measure(x *tensor.Dense, first int) (*tensor.Dense, error) {
	ax, err := s.A.Forward(x)
	if err != nil {
		return nil, fmt.Errorf("measure: %w", err)
	}
	n := x.Shape()[0]
	rngs := NoiseRNGs(s.Seed, first, n)
	per := len(tensors.F32(ax)) / n
	y := tensors.Like(ax)
	for i := 0; i < n; i++ {
		one := tensors.FromSlice(append([]float32(nil), tensors.F32(ax)[i*per:(i+1)*per]...), append([]int{1}, ax.Shape()[1:]...)...)
		yi, err := s.Noise.Sample(one, rngs[i])
		if err != nil {
			return nil, fmt.Errorf("measurement noise: %w", err)
		}
		copy(tensors.F32(y)[i*per:], tensors.F32(yi))
	}
	return y, nil
}

// Solve measures x (the images first..first+N−1 of a dataset), solves with
// the setup's method in batches of BatchSize, runs the baseline and scores
// both. progress receives (steps done, steps total) over the whole call.
func (s *Setup) Solve(ctx context.Context, x *tensor.Dense, first int, progress func(done, total int)) (*Result, error) {
	n, c, h, w, err := tensors.NCHW("images", x)
	if err != nil {
		return nil, err
	}
	if c != s.Shape[0] || h != s.Shape[1] || w != s.Shape[2] {
		return nil, fmt.Errorf("images are %d×%d×%d, the model wants %d×%d×%d", c, h, w, s.Shape[0], s.Shape[1], s.Shape[2])
	}
	y, err := s.Measure(x, first)
	if err != nil {
		return nil, err
	}
	res := &Result{Truth: x, Y: y, Recon: tensors.Like(x)}
	if baseline.IsMethod(s.Method) {
		t0 := time.Now()
		if res.Baseline, err = s.baseline(y); err != nil {
			return nil, fmt.Errorf("%s: %w", s.Method, err)
		}
		res.Recon = res.Baseline
		res.SecondsPerImage = time.Since(t0).Seconds() / float64(n)
		res.BaselineSecondsPerImage = res.SecondsPerImage
		if res.PSNR, res.SSIM, res.Consistency, err = s.score(x, y, res.Recon); err != nil {
			return nil, err
		}
		res.BaselinePSNR, res.BaseSSIM, res.BaselineConsistency = res.PSNR, res.SSIM, res.Consistency
		if progress != nil {
			progress(1, 1)
		}
		return res, nil
	}
	per := c * h * w
	ysz := len(tensors.F32(y)) / n
	bs := max(1, min(s.BatchSize, n))
	stepsPer := 0
	seconds := 0.0
	for lo := 0; lo < n; lo += bs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(n, lo+bs)
		if s.Store != nil {
			if xb, sec, ok := s.Store.Load(lo, hi); ok && xb.Shape().Eq(tensor.Shape{hi - lo, c, h, w}) {
				copy(tensors.F32(res.Recon)[lo*per:], tensors.F32(xb))
				seconds += sec
				continue
			}
		}
		t0 := time.Now()
		yb := tensors.FromSlice(append([]float32(nil), tensors.F32(y)[lo*ysz:hi*ysz]...), append([]int{hi - lo}, y.Shape()[1:]...)...)
		xb, err := solve.Solve(s.Method, solve.Prior{Den: s.Den, Sched: s.Sched, Variance: s.Variance},
			solve.Measurement{A: s.A, Noise: s.Noise, Y: yb}, s.Opts, diffusion.ImageRNGs(s.Seed, first+lo, hi-lo), func(st diffusion.Step) {
				stepsPer = st.Total
				if progress != nil {
					progress(lo*st.Total+st.Step*(hi-lo), n*st.Total)
				}
			})
		if err != nil {
			return nil, fmt.Errorf("%s on images %d..%d: %w", s.Method, first+lo, first+hi-1, err)
		}
		sec := time.Since(t0).Seconds()
		seconds += sec
		copy(tensors.F32(res.Recon)[lo*per:], tensors.F32(xb))
		if s.Store != nil {
			if err := s.Store.Save(lo, hi, xb, sec); err != nil {
				return nil, fmt.Errorf("storing images %d..%d: %w", first+lo, first+hi-1, err)
			}
		}
	}
	if progress != nil && stepsPer > 0 {
		progress(n*stepsPer, n*stepsPer)
	}
	res.SecondsPerImage = seconds / float64(n)

	t1 := time.Now()
	if res.Baseline, err = s.baseline(y); err != nil {
		return nil, fmt.Errorf("baseline %s: %w", s.Baseline, err)
	}
	res.BaselineSecondsPerImage = time.Since(t1).Seconds() / float64(n)

	if res.PSNR, res.SSIM, res.Consistency, err = s.score(x, y, res.Recon); err != nil {
		return nil, err
	}
	if res.NegLogLik, err = s.negLogLik(y, res.Recon); err != nil {
		return nil, fmt.Errorf("%s likelihood: %w", s.Noise.Name(), err)
	}
	if res.Baseline != nil {
		if res.BaselinePSNR, res.BaseSSIM, res.BaselineConsistency, err = s.score(x, y, res.Baseline); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// score computes PSNR and SSIM (NaN for images under 11×11, which SSIM's
// window does not fit) against the truth (after aligning the
// trivial ambiguities for phase retrieval) and ‖y − A(x̂)‖ per image.
func (s *Setup) score(truth, y, xhat *tensor.Dense) (psnr, ssim, cons []float64, err error) {
	cmp := xhat
	if s.phase {
		if cmp, err = baseline.Align(xhat, truth, s.Shape[1]/4); err != nil {
			return nil, nil, nil, err
		}
	}
	if psnr, err = metrics.PSNRBatch(truth, cmp); err != nil {
		return nil, nil, nil, err
	}
	if s.Shape[1] >= 11 && s.Shape[2] >= 11 {
		if ssim, err = metrics.SSIMBatch(truth, cmp); err != nil {
			return nil, nil, nil, err
		}
	} else { // SSIM's 11×11 window does not fit: undefined
		ssim = make([]float64, len(psnr))
		for i := range ssim {
			ssim[i] = math.NaN()
		}
	}
	ax, err := s.A.Forward(xhat)
	if err != nil {
		return nil, nil, nil, err
	}
	cons, err = metrics.Consistency(y, ax)
	return psnr, ssim, cons, err
}

// negLogLik returns −log p(y | A(x̂)) per image (op.Noise.NegLogLik).
func (s *Setup) negLogLik(y, xhat *tensor.Dense) ([]float64, error) {
	ax, err := s.A.Forward(xhat)
	if err != nil {
		return nil, err
	}
	return s.Noise.NegLogLik(ax, y)
}

func (s *Setup) baseline(y *tensor.Dense) (*tensor.Dense, error) {
	var x *tensor.Dense
	var err error
	switch s.Baseline {
	case "none":
		return nil, nil
	case "pinv":
		x, err = baseline.Pinv(s.A.(op.Linear), y)
	case "tikhonov":
		lambda := sigmaY(s.Noise)
		lambda *= lambda
		if a, ok := s.A.(op.SVD); ok {
			x, err = baseline.Tikhonov(a, y, lambda)
		} else {
			x, err = baseline.Wiener(s.A.(*op.CircConv), y, lambda)
		}
	case "admm_tv":
		x, err = baseline.ADMMTV(s.A, y, baseline.DefaultTV())
	case "hio", "er":
		o := baseline.DefaultPR()
		o.Method = s.Baseline
		x, _, err = baseline.PhaseRetrieve(s.A.(*op.PhaseRetrieval), y, o, rand.New(rand.NewSource(s.Seed)))
	default:
		return nil, fmt.Errorf("unknown baseline %q", s.Baseline)
	}
	if err != nil {
		return nil, err
	}
	return baseline.Clamp(x), nil
}

func sigmaY(n op.Noise) float64 {
	if g, ok := n.(*op.Gaussian); ok && g.Sigma > 0 {
		return g.Sigma
	}
	return 1e-3
}
