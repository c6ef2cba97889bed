package sample

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/internal/analytic"
	"github.com/diffinv/diffinv/internal/tensors"
	"gonum.org/v1/gonum/mat"
	"gorgonia.org/tensor"
)

// The data distribution of the closed-form tests: a 4-dimensional Gaussian
// (images of 1×2×2) with correlated entries, eigenvalues about 0.12..0.7.
var (
	testMu  = []float64{0.5, -0.3, 0.2, 0.0}
	testCov = []float64{
		0.5, 0.2, 0, 0.1,
		0.2, 0.3, 0.05, 0,
		0, 0.05, 0.2, -0.05,
		0.1, 0, -0.05, 0.4,
	}
	testShape = [3]int{1, 2, 2}
)

// rngsFor returns the random streams of samples 0..n−1 of a run seeded by
// seed, one per sample (diffusion.ImageRNGs).
func rngsFor(seed int64, n int) []*rand.Rand { return diffusion.ImageRNGs(seed, 0, n) }

// priorFrom draws x_T ~ N(0, I) of shape len(rngs)×shape, sample k from
// rngs[k], as diffinv sample does before the sampler draws its noise from
// the same streams.
func priorFrom(rngs []*rand.Rand, shape ...int) *tensor.Dense {
	x := tensors.New(append([]int{len(rngs)}, shape...)...)
	xs := tensors.F32(x)
	d := len(xs) / len(rngs)
	for k, r := range rngs {
		copy(xs[k*d:], tensors.F32(tensors.Randn(r, shape...)))
	}
	return x
}

func baseSchedule(t testing.TB) *diffusion.Schedule {
	t.Helper()
	s, err := diffusion.NewSchedule(diffusion.Linear, 1000, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func respaced(t testing.TB, base *diffusion.Schedule, k int) *diffusion.Schedule {
	t.Helper()
	if k == base.Len() {
		return base
	}
	ts, err := diffusion.SpacedTimesteps(base.Len(), k, diffusion.SpacingUniform)
	if err != nil {
		t.Fatal(err)
	}
	s, err := diffusion.Respace(base, ts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func gaussian(t testing.TB, sched *diffusion.Schedule) *analytic.Mixture {
	t.Helper()
	g, err := analytic.NewGaussian(testMu, mat.NewSymDense(4, testCov), testShape, sched)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// moments returns the sample mean and covariance (divisor n−1) of the rows.
func moments(x *tensor.Dense) (mu []float64, cov *mat.SymDense) {
	n := x.Shape()[0]
	xs := tensors.F32(x)
	d := len(xs) / n
	mu = make([]float64, d)
	for k := 0; k < n; k++ {
		for i := 0; i < d; i++ {
			mu[i] += float64(xs[k*d+i])
		}
	}
	for i := range mu {
		mu[i] /= float64(n)
	}
	cov = mat.NewSymDense(d, nil)
	for i := 0; i < d; i++ {
		for j := i; j < d; j++ {
			var c float64
			for k := 0; k < n; k++ {
				c += (float64(xs[k*d+i]) - mu[i]) * (float64(xs[k*d+j]) - mu[j])
			}
			cov.SetSym(i, j, c/float64(n-1))
		}
	}
	return mu, cov
}

// zScores compares sample moments with N(mu, cov): for each mean entry
// (x̄_i − μ_i)/√(Σ_ii/n), for each covariance entry (S_ij − Σ_ij)/SE_ij with
// the Gaussian standard error SE_ij = √((Σ_ii Σ_jj + Σ_ij²)/n). It returns
// the largest |z| and a description of where.
func zScores(x *tensor.Dense, mu []float64, cov *mat.SymDense) (float64, string) {
	n := float64(x.Shape()[0])
	m, s := moments(x)
	worst, where := 0.0, ""
	for i := range mu {
		z := (m[i] - mu[i]) / math.Sqrt(cov.At(i, i)/n)
		if math.Abs(z) > worst {
			worst, where = math.Abs(z), fmt.Sprintf("mean[%d] = %.4f, want %.4f", i, m[i], mu[i])
		}
		for j := i; j < len(mu); j++ {
			se := math.Sqrt((cov.At(i, i)*cov.At(j, j) + cov.At(i, j)*cov.At(i, j)) / n)
			z := (s.At(i, j) - cov.At(i, j)) / se
			if math.Abs(z) > worst {
				worst, where = math.Abs(z), fmt.Sprintf("cov[%d,%d] = %.4f, want %.4f", i, j, s.At(i, j), cov.At(i, j))
			}
		}
	}
	return worst, where
}

// samplerCase is one sampler configuration of the closed-form tests.
type samplerCase struct {
	name    string // registry name
	label   string
	steps   int    // schedule length, respaced from T = 1000
	spacing string // diffusion.SpacingUniform unless set
	opts    func(o *Options)
	cosine  bool // respace the cosine schedule instead of the linear one
}

func (c samplerCase) schedule(t testing.TB, base *diffusion.Schedule) *diffusion.Schedule {
	t.Helper()
	if c.steps == base.Len() {
		return base
	}
	sp := c.spacing
	if sp == "" {
		sp = diffusion.SpacingUniform
	}
	ts, err := diffusion.SpacedTimesteps(base.Len(), c.steps, sp)
	if err != nil {
		t.Fatal(err)
	}
	s, err := diffusion.Respace(base, ts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// aldOpts are the annealed-Langevin settings of the tests. NCSN's defaults
// (ε = 2e-5, uniform levels) anneal too fast near the data scale for a
// 20-level test budget: the chain freezes at σ² ≈ 2Vσ_min²/(nε) and keeps
// that much extra variance. Quadratic level spacing (dense at small σ) and
// ε = 2e-4 move that below the Monte Carlo tolerance.
func aldOpts(o *Options) { o.ALD.StepSize = 2e-4; o.ALD.StepsPerLevel = 30 }

// gaussianCases are the configurations of TestGaussianMoments. Step counts
// are chosen so that each method's discretisation bias on this Σ is at most
// about one standard error of the variance estimate (2.2% at n = 4000): the
// first-order methods (DDPM, DDIM, Euler–Maruyama) are biased low by
// O(1/K) — e.g. DDPM fixed-small at K = 100 gives −16% on the 0.12
// eigenvalue, exactly as the linear recursion of its update predicts — so
// they run with 500–1000 steps; Heun and RK4 need 50 and 20.
func gaussianCases() []samplerCase {
	return []samplerCase{
		{name: "ddpm", label: "ddpm fixed-small 1000", steps: 1000, opts: func(o *Options) {}},
		{name: "ddpm", label: "ddpm fixed-large 1000", steps: 1000, opts: func(o *Options) { o.DDPM.Variance = diffusion.VarianceFixedLarge }},
		{name: "ddim", label: "ddim eta=0 500", steps: 500, opts: func(o *Options) {}},
		{name: "vp-em", label: "vp-em 1000", steps: 1000, opts: func(o *Options) {}},
		{name: "pc", label: "pc reverse-diffusion only 1000", steps: 1000, opts: func(o *Options) { o.PC.Corrector = None }},
		{name: "pc", label: "pc ancestral only 1000", steps: 1000, opts: func(o *Options) { o.PC.Predictor = AncestralPredictor; o.PC.Corrector = None }},
		{name: "ald", label: "ald 20 quad levels x 30", steps: 20, spacing: diffusion.SpacingQuad, opts: aldOpts},
		{name: "ode", label: "ode heun 50", steps: 50, opts: func(o *Options) {}},
		{name: "ode", label: "ode rk4 20", steps: 20, opts: func(o *Options) { o.ODE.Method = RK4 }},
		{name: "ode", label: "ode euler 200", steps: 200, opts: func(o *Options) { o.ODE.Method = Euler }},
		{name: "ddpm", label: "ddpm fixed-small 1000 cosine", steps: 1000, cosine: true, opts: func(o *Options) {}},
		{name: "ode", label: "ode heun 50 cosine", steps: 50, cosine: true, opts: func(o *Options) {}},
	}
}

// maxZ is the test threshold on |z|: with 14 moment checks per sampler and
// Gaussian z-scores, 4.5 gives a per-sampler false-alarm rate below 1e-4
// (the seeds are fixed, so a pass is reproducible); a bias of 4.5 standard
// errors (10% of a variance at n = 4000) fails.
const maxZ = 4.5

func checkMoments(t *testing.T, x *tensor.Dense, mu []float64, cov *mat.SymDense) {
	t.Helper()
	z, where := zScores(x, mu, cov)
	t.Logf("max |z| = %.2f (%s)", z, where)
	if z > maxZ {
		t.Errorf("max |z| = %.2f > %g: %s", z, maxZ, where)
	}
}

// TestGaussianMoments: with the exact denoiser of N(μ, Σ), each sampler's
// sample mean and covariance must match μ and Σ (see zScores for the
// standard errors).
func TestGaussianMoments(t *testing.T) {
	linear := baseSchedule(t)
	cosine, err := diffusion.NewSchedule(diffusion.Cosine, 1000, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	cov := mat.NewSymDense(4, testCov)
	const n = 4000
	for ci, c := range gaussianCases() {
		t.Run(c.label, func(t *testing.T) {
			base := linear
			if c.cosine {
				base = cosine
			}
			den := gaussian(t, base)
			sched := c.schedule(t, base)
			rngs := rngsFor(int64(100+ci), n)
			xT := priorFrom(rngs, testShape[0], testShape[1], testShape[2])
			o := DefaultOptions()
			c.opts(&o)
			x, err := Run(c.name, den, xT, sched, o, rngs, nil)
			if err != nil {
				t.Fatal(err)
			}
			checkMoments(t, x, testMu, cov)
		})
	}
}

// diagGaussian is the exact denoiser of N(μ, diag(λ)), written out per
// coordinate: ε̂_i = s(x_i − aμ_i)/(a²λ_i + s²). Cheap at any dimension.
type diagGaussian struct {
	mu, lam []float64
	sched   *diffusion.Schedule
}

func (g diagGaussian) Eps(xt *tensor.Dense, t []int) (*tensor.Dense, error) {
	out := tensors.Like(xt)
	xs, o := tensors.F32(xt), tensors.F32(out)
	d := len(g.mu)
	for k := range t {
		ab, err := g.sched.AlphaBarAtTimestep(t[k])
		if err != nil {
			return nil, err
		}
		a, s := math.Sqrt(ab), math.Sqrt(1-ab)
		for i := 0; i < d; i++ {
			o[k*d+i] = float32(s * (float64(xs[k*d+i]) - a*g.mu[i]) / (ab*g.lam[i] + 1 - ab))
		}
	}
	return out, nil
}

func (g diagGaussian) EpsVJP(xt *tensor.Dense, t []int, v *tensor.Dense) (*tensor.Dense, *tensor.Dense, error) {
	return nil, nil, fmt.Errorf("not needed")
}

// TestPCLangevinMoments runs predictor–corrector with the Langevin corrector
// on a 1024-dimensional diagonal Gaussian (1×32×32, variances 0.1, 0.3, 0.6
// in turn) and checks, per variance group λ, the pooled variance ratio and
// the mean.
//
// Why a high dimension: score_sde's SNR rule ε = 2α(r‖z‖/‖score‖)² makes
// the step depend on the state and on the same noise z it then adds, which
// biases the stationary variance by about (1 + 2/D)² (27% at D = 16, 0.4% at
// D = 1024); in score_sde the batch-mean norms hide this, here norms are per
// sample, as they must be.
//
// Tolerance on |ratio − 1| per group: the unadjusted-Langevin bias
// ε/(2λ) with ε ≈ 2r²·λ_h (λ_h the harmonic mean of the variances, since
// ‖score‖² ≈ Σ 1/λ_i), i.e. r²λ_h/λ; plus 0.4% for the rule; plus 4.5
// pooled standard errors √(2/((n−1)·m)) for m coordinates of n samples.
// A wrong step or noise scale moves the ratio by far more.
func TestPCLangevinMoments(t *testing.T) {
	const d, n = 1024, 200
	base := baseSchedule(t)
	g := diagGaussian{mu: make([]float64, d), lam: make([]float64, d), sched: base}
	lams := []float64{0.1, 0.3, 0.6}
	for i := 0; i < d; i++ {
		g.lam[i] = lams[i%3]
		g.mu[i] = 0.5 * math.Sin(float64(i))
	}
	lamH := 3 / (1/lams[0] + 1/lams[1] + 1/lams[2])
	for ci, c := range []samplerCase{
		{name: "pc", label: "pc reverse-diffusion + langevin 500", steps: 500, opts: func(o *Options) {}},
		{name: "pc", label: "pc euler-maruyama + 2 langevin 200", steps: 200, opts: func(o *Options) {
			o.PC.Predictor = EulerMaruyamaPredictor
			o.PC.CorrectorSteps = 2
			o.PC.SNR = 0.1
		}},
	} {
		t.Run(c.label, func(t *testing.T) {
			rngs := rngsFor(int64(200+ci), n)
			xT := priorFrom(rngs, 1, 32, 32)
			o := DefaultOptions()
			c.opts(&o)
			x, err := Run(c.name, g, xT, c.schedule(t, base), o, rngs, nil)
			if err != nil {
				t.Fatal(err)
			}
			xs := tensors.F32(x)
			for gi, lam := range lams {
				var ratio, meanDev float64
				cnt := 0
				for i := gi; i < d; i += 3 {
					var m, v float64
					for k := 0; k < n; k++ {
						m += float64(xs[k*d+i])
					}
					m /= n
					for k := 0; k < n; k++ {
						dv := float64(xs[k*d+i]) - m
						v += dv * dv
					}
					v /= n - 1
					ratio += v / lam
					meanDev += (m - g.mu[i]) / math.Sqrt(lam)
					cnt++
				}
				ratio /= float64(cnt)
				meanDev /= float64(cnt)
				se := math.Sqrt(2 / float64((n-1)*cnt))
				tol := o.PC.SNR*o.PC.SNR*lamH/lam + 0.004 + 4.5*se
				// The mean of cnt standardised means has SE 1/√(n·cnt).
				tolM := 4.5 / math.Sqrt(float64(n*cnt))
				t.Logf("λ = %g: pooled var ratio %.4f (tol %.4f), mean deviation %.4f σ (tol %.4f)", lam, ratio, tol, meanDev, tolM)
				if math.Abs(ratio-1) > tol || math.Abs(meanDev) > tolM {
					t.Errorf("λ = %g: pooled variance ratio %.4f (want 1 ± %.4f), mean deviation %.4f σ (want ± %.4f)", lam, ratio, tol, meanDev, tolM)
				}
			}
		})
	}
}
