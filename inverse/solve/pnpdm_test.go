package solve

import (
	"errors"
	"math"
	"math/rand"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/diffusion"

	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/inverse/op"
	"gonum.org/v1/gonum/mat"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// pnpProblem returns the checked problem of pnp-dm on s with a batch of n
// copies of its measurement.
func pnpProblem(t *testing.T, s *setup, A op.Operator, n int) *problem {
	t.Helper()
	e, err := lookupEntry("pnp-dm")
	if err != nil {
		t.Fatal(err)
	}
	p, err := newProblem(e, Prior{Den: s.den, Sched: s.sched}, Measurement{A: A, Noise: s.noise, Y: s.batchY(n)}, diffusion.ImageRNGs(11, 0, n), nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPnPDMLikelihoodStep: the exact likelihood step draws z ~ N(m, Q⁻¹),
// Q = AᵀA/σ_y² + I/ρ², m = Q⁻¹(Aᵀy/σ_y² + x/ρ²): by the SVD and, with the
// SVD hidden, by perturb-and-solve with CG. The sample mean of 20000 draws
// must be within 5 standard errors of m and every covariance entry within
// 5 standard errors (√((C_ii C_jj + C_ij²)/n), the Gaussian one) of Q⁻¹.
func TestPnPDMLikelihoodStep(t *testing.T) {
	const n = 20000
	const rho = 0.7
	for _, on := range []string{"sr2", "box"} {
		for _, hide := range []bool{false, true} {
			name := on + "/svd"
			if hide {
				name = on + "/cg"
			}
			t.Run(name, func(t *testing.T) {
				var A op.SVD = srOp(t)
				if on == "box" {
					A = boxInpaint(t)
				}
				s := newSetup(t, A, 0.1, true, 5)
				var Aop op.Operator = A
				if hide {
					Aop = linearOnly{A, A.(op.Shaped)}
				}
				p := pnpProblem(t, s, Aop, n)
				x := make([]float64, n*dim)
				for k := 0; k < n; k++ {
					for j := 0; j < dim; j++ {
						x[k*dim+j] = 0.5 * math.Cos(float64(3*j))
					}
				}
				var z []float64
				var err error
				if hide {
					z, err = p.pnpExactCG(x, rho)
				} else {
					sp, e := p.spectral()
					if e != nil {
						t.Fatal(e)
					}
					z, err = p.pnpExactSVD(sp, x, rho)
				}
				if err != nil {
					t.Fatal(err)
				}
				// Closed form.
				Am := denseMatrix(t, A)
				sy2 := 0.01
				var Q mat.Dense
				Q.Mul(Am.T(), Am)
				Q.Scale(1/sy2, &Q)
				for j := 0; j < dim; j++ {
					Q.Set(j, j, Q.At(j, j)+1/(rho*rho))
				}
				var C mat.Dense
				if err := C.Inverse(&Q); err != nil {
					t.Fatal(err)
				}
				b := mat.NewVecDense(dim, nil)
				aty := mat.NewVecDense(dim, nil)
				aty.MulVec(Am.T(), mat.NewVecDense(len(s.y), append([]float64(nil), s.y...)))
				for j := 0; j < dim; j++ {
					b.SetVec(j, aty.AtVec(j)/sy2+x[j]/(rho*rho))
				}
				m := mat.NewVecDense(dim, nil)
				m.MulVec(&C, b)
				zt := f32(z, n, 1, 4, 4)
				mean, sd := meanOf(zt)
				worstM, worstC := 0.0, 0.0
				for j := 0; j < dim; j++ {
					e := math.Abs(mean[j]-m.AtVec(j)) / (sd[j] / math.Sqrt(n))
					worstM = math.Max(worstM, e)
				}
				zv := tensors.F32(zt)
				for i := 0; i < dim; i++ {
					for j := i; j < dim; j++ {
						c := 0.0
						for k := 0; k < n; k++ {
							c += (float64(zv[k*dim+i]) - mean[i]) * (float64(zv[k*dim+j]) - mean[j])
						}
						c /= n - 1
						want := C.At(i, j)
						se := math.Sqrt((C.At(i, i)*C.At(j, j) + want*want) / n)
						worstC = math.Max(worstC, math.Abs(c-want)/se)
					}
				}
				if worstM > 5 {
					t.Errorf("sample mean %.1f standard errors from the closed form, want ≤ 5", worstM)
				}
				if worstC > 5 {
					t.Errorf("sample covariance %.1f standard errors from the closed form, want ≤ 5", worstC)
				}
				t.Logf("max %.1f SE (mean), %.1f SE (covariance) over %d draws", worstM, worstC, n)
			})
		}
	}
}

// stationaryMean is the mean of PnP-DM's x-marginal at a fixed ρ for the
// Gaussian prior of s: the posterior mean for y = A x + n, n ~ N(0, σ_y²I
// + ρ²AAᵀ), μ + ΣAᵀ(AΣAᵀ + σ_y²I + ρ²AAᵀ)⁻¹(y − Aμ), on A's nonzero rows.
func stationaryMean(t *testing.T, s *setup, A op.Operator, corr bool, sigmaY, rho float64) []float64 {
	t.Helper()
	mu, cov := prior(corr)
	Am, y := nonzeroRows(denseMatrix(t, A), s.y)
	r, _ := Am.Dims()
	var asa, aat, sat mat.Dense
	sat.Mul(cov, Am.T())
	asa.Mul(Am, &sat)
	aat.Mul(Am, Am.T())
	aat.Scale(rho*rho, &aat)
	asa.Add(&asa, &aat)
	for i := 0; i < r; i++ {
		asa.Set(i, i, asa.At(i, i)+sigmaY*sigmaY)
	}
	res := mat.NewVecDense(r, nil)
	res.MulVec(Am, mat.NewVecDense(dim, append([]float64(nil), mu...)))
	for i := 0; i < r; i++ {
		res.SetVec(i, y[i]-res.AtVec(i))
	}
	var u mat.VecDense
	if err := u.SolveVec(&asa, res); err != nil {
		t.Fatal(err)
	}
	var out mat.VecDense
	out.MulVec(&sat, &u)
	m := make([]float64, dim)
	for j := range m {
		m[j] = mu[j] + out.AtVec(j)
	}
	return m
}

// TestPnPDMStationaryMean: with the exact denoiser of a Gaussian prior the
// prior step's conditional mean is exact at every reverse step (DDPM's
// posterior mean is linear in x̂0 = E[x0 | x_t], and E[x0 | x_s] is linear
// in x_s), and the likelihood step is exact, so the chain's mean converges
// to the stationary mean at ρ_min (stationaryMean), not the posterior mean;
// the only bias is σ_t ≠ ρ (the nearest of 1000 schedule indices: under 1%
// of ρ). Run at the default ρ_min = 0.3, where the two means differ by up
// to 0.26 (box) and 0.06 (SR), with the exact SVD step, the CG step (SVD
// hidden) and the Langevin step on the box (150 steps of γ = 6e-4: the
// unadjusted Langevin chain of a Gaussian has the exact mean, and the
// measured pixels, precision ≥ 1/σ_y², relax e^−10 of the way in 150
// steps; the unmeasured ones have conditional mean x whatever the number
// of steps); each pixel within 5 standard errors + bias.
func TestPnPDMStationaryMean(t *testing.T) {
	const n = 1000
	// The exact rows average 20 iterates per chain after 40 (ρ reaches
	// ρ_min at iteration 33), which shrinks the standard error ~3-fold.
	avg := map[string]any{"mean": true}
	cases := []struct {
		name string
		op   string
		hide bool
		set  map[string]any
		bias float64
	}{
		{"svd", "sr2", false, avg, 3e-3},
		{"svd", "box", false, avg, 3e-3},
		{"cg", "sr2", true, avg, 3e-3},
		{"langevin", "box", false, map[string]any{"langevin": true, "langevin_steps": 150, "langevin_step": 6e-4, "iters": 60}, 3e-3},
		// DDIM (the paper's ODE mode) maps z deterministically to x: not a
		// draw from p(x | z), so the Gibbs argument fails (0.110 reached).
		{"ddim", "box", false, map[string]any{"sampler": "ddim"}, 0.15},
	}
	for _, c := range cases {
		t.Run(c.op+"/"+c.name, func(t *testing.T) {
			var A op.SVD = srOp(t)
			if c.op == "box" {
				A = boxInpaint(t)
			}
			s := newSetup(t, A, 0.1, true, 3)
			var Aop op.Operator = A
			if c.hide {
				Aop = linearOnly{A, A.(op.Shaped)}
			}
			set := map[string]any{"steps": 30}
			for k, v := range c.set {
				set[k] = v
			}
			o := mustOptions(t, "pnp-dm", set)
			x, err := Solve("pnp-dm", Prior{Den: s.den, Sched: s.sched}, Measurement{A: Aop, Noise: s.noise, Y: s.batchY(n)}, o, diffusion.ImageRNGs(7, 0, n), nil)
			if err != nil {
				t.Fatal(err)
			}
			want := stationaryMean(t, s, A, true, 0.1, o.(PnPDMOptions).RhoMin)
			mean, sd := meanOf(x)
			worst, worstZ, gap := 0.0, 0.0, 0.0
			for j := range mean {
				e := math.Abs(mean[j] - want[j])
				se := sd[j] / math.Sqrt(n)
				worst = math.Max(worst, e)
				worstZ = math.Max(worstZ, e/se)
				gap = math.Max(gap, math.Abs(want[j]-s.muPost[j]))
				if e > 5*se+c.bias {
					t.Errorf("pixel %d: mean %.4f, stationary mean %.4f: error %.4f > %.4f", j, mean[j], want[j], e, 5*se+c.bias)
				}
			}
			t.Logf("max |mean − stationary mean| = %.4f (%.1f SE); stationary vs posterior mean up to %.3f", worst, worstZ, gap)
		})
	}
}

// TestPnPDMKarrasGrid: the prior step's grid and start indices.
func TestPnPDMKarrasGrid(t *testing.T) {
	sched := linearSchedule(t)
	g := karrasIndices(sched, 100)
	if g[0] != 0 || len(g) < 60 {
		t.Fatalf("grid %v: want it to start at 0 and keep most of 100 levels", g)
	}
	for k := 1; k < len(g); k++ {
		if g[k] <= g[k-1] {
			t.Fatalf("grid %v not ascending", g)
		}
	}
	for _, rho := range []float64{10, 1, 0.3, 0.1} {
		st := pnpStart(sched, g, rho, false)
		if r := sched.Sigma(st) / rho; r < 0.98 || r > 1.02 {
			t.Errorf("ρ = %g: start σ %g, want within 2%%", rho, sched.Sigma(st))
		}
		gs := pnpStart(sched, g, rho, true)
		if sched.Sigma(gs) >= rho {
			t.Errorf("ρ = %g: grid start σ %g, want below ρ", rho, sched.Sigma(gs))
		}
		n := 1
		for _, i := range g {
			if i < st {
				n++
			}
		}
		t.Logf("ρ = %g: start index %d (σ %.4f), %d steps; grid start σ %.4f", rho, st, sched.Sigma(st), n, sched.Sigma(gs))
	}
	if got := pnpSampleIters(40, 100, 20); got[0] != 42 || got[19] != 99 || len(got) != 20 {
		t.Errorf("sample iterations %v, want np.linspace(40, 99, 21, dtype=int)[1:] = 42 … 99", got)
	}
}

// TestNLLGrad: the likelihood gradient the Langevin steps take
// (problem.nllGrad, J_Aᵀ of op.Noise.Grad) is the gradient of the noise
// model's NegLogLik of A(x), by central differences, for Gaussian and
// Poisson noise on a nonlinear operator.
func TestNLLGrad(t *testing.T) {
	nonlinear, err := op.NewAutodiff("tanh", imgShape, func(g *G.ExprGraph, x *G.Node) (*G.Node, error) { return G.Tanh(x) })
	if err != nil {
		t.Fatal(err)
	}
	gauss, err := op.NewNoise("gaussian", 0.2, 0)
	if err != nil {
		t.Fatal(err)
	}
	pois, err := op.NewPoisson(3)
	if err != nil {
		t.Fatal(err)
	}
	s := newSetup(t, boxInpaint(t), 0.2, false, 1)
	x := make([]float64, 2*16)
	for j := range x {
		x[j] = 0.6 * math.Sin(float64(3*j+1))
	}
	for _, noise := range []op.Noise{gauss, pois} {
		y, err := noise.Sample(mustForward(t, nonlinear, f32(x, 2, 1, 4, 4)), rand.New(rand.NewSource(2)))
		if err != nil {
			t.Fatal(err)
		}
		e, _ := lookupEntry("pnp-dm")
		p, err := newProblem(e, Prior{Den: s.den, Sched: s.sched}, Measurement{A: nonlinear, Noise: noise, Y: y}, diffusion.ImageRNGs(1, 0, 2), nil)
		if err != nil {
			t.Fatal(err)
		}
		g, err := p.nllGrad(x)
		if err != nil {
			t.Fatal(err)
		}
		nll := func(v []float64) float64 {
			l, err := noise.NegLogLik(mustForward(t, nonlinear, f32(v, 2, 1, 4, 4)), y)
			if err != nil {
				t.Fatal(err)
			}
			return l[0] + l[1]
		}
		const h = 1e-2
		for _, j := range []int{0, 5, 17, 30} {
			xp, xm := append([]float64(nil), x...), append([]float64(nil), x...)
			xp[j] += h
			xm[j] -= h
			fd := (nll(xp) - nll(xm)) / (2 * h)
			if math.Abs(fd-g[j]) > 0.02*math.Max(1, math.Abs(fd)) {
				t.Errorf("%s: ∂/∂x[%d] = %g by differences, nllGrad %g", noise.Name(), j, fd, g[j])
			}
		}
	}
}

func mustForward(t *testing.T, A op.Operator, x *tensor.Dense) *tensor.Dense {
	t.Helper()
	ax, err := A.Forward(x)
	if err != nil {
		t.Fatal(err)
	}
	return ax
}

// TestPnPDMLangevinStep: langevin_sigma scales the Langevin step by
// (σ_y/σ_ref)² (the run with step γ·(σ_ref/σ_y)² and σ_ref matches the
// run with γ bit for bit), is refused for non-Gaussian noise, and an
// unstable step is an error wrapping ErrDiverged: γ/ρ² ≥ 2 before any
// step, and a data step γ/σ_y² far past stability after the chain left
// the finite range; a bad langevin_sigma is a plain option error.
func TestPnPDMLangevinStep(t *testing.T) {
	for _, c := range []struct {
		step, sigma, sigmaY float64
		gaussian            bool
		want                float64
		err                 string
	}{
		{1e-4, 0, 0.05, true, 1e-4, ""},
		{1e-4, 0.01, 0.05, true, 2.5e-3, ""},
		{1e-4, 0.01, 0.01, true, 1e-4, ""},
		{1e-4, 0.02, 0.01, true, 2.5e-5, ""},
		{1e-4, 0, 0, false, 1e-4, ""},
		{1e-4, 0.01, 0, false, 0, "not Gaussian"},
	} {
		o := PnPDMOptions{LangevinStep: c.step, LangevinSigma: c.sigma}
		g, err := pnpLangevinStep(o, c.gaussian, c.sigmaY, "pnp-dm")
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%+v: %v, want an error with %q", c, err, c.err)
			}
			continue
		}
		if err != nil || math.Abs(g-c.want) > 1e-12*c.want {
			t.Errorf("%+v: γ = %g (%v), want %g", c, g, err, c.want)
		}
	}

	A := boxInpaint(t)
	s := newSetup(t, A, 0.1, true, 3)
	solveWith := func(set map[string]any) ([]float32, error) {
		base := map[string]any{"steps": 10, "iters": 4, "langevin": true, "langevin_steps": 20}
		for k, v := range set {
			base[k] = v
		}
		x, err := Solve("pnp-dm", Prior{Den: s.den, Sched: s.sched}, Measurement{A: A, Noise: s.noise, Y: s.batchY(3)}, mustOptions(t, "pnp-dm", base), diffusion.ImageRNGs(5, 0, 3), nil)
		if err != nil {
			return nil, err
		}
		return tensors.F32(x), nil
	}
	plain, err := solveWith(map[string]any{"langevin_step": 6e-4})
	if err != nil {
		t.Fatal(err)
	}
	scaled, err := solveWith(map[string]any{"langevin_step": 6e-4 * (0.01 / 0.1) * (0.01 / 0.1), "langevin_sigma": 0.01})
	if err != nil {
		t.Fatal(err)
	}
	for j := range plain {
		if plain[j] != scaled[j] {
			t.Fatalf("element %d: %g with langevin_sigma, %g without; want the same chain", j, scaled[j], plain[j])
		}
	}
	for _, c := range []struct {
		name string
		set  map[string]any
		want string
	}{
		// ρ = 0.1 throughout: γ/ρ² = 5 (refused before any step).
		{"coupling", map[string]any{"rho0": 0.1, "rho_min": 0.1, "langevin_step": 0.05}, "γ/ρ² = 5"},
		// γ/σ_y² = 1e4 on the measured pixels; γ/ρ² = 0.01 at ρ = 10.
		{"data", map[string]any{"rho0": 10, "rho_min": 10, "langevin_step": 100}, "likelihood step of image"},
		// The same through langevin_sigma: 1e-4 · (0.1/1e-4)².
		{"data scaled", map[string]any{"rho0": 10, "rho_min": 10, "langevin_step": 1e-4, "langevin_sigma": 1e-4}, "likelihood step of image"},
	} {
		_, err := solveWith(c.set)
		if !errors.Is(err, ErrDiverged) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %v: %v, want an error wrapping ErrDiverged with %q", c.name, c.set, err, c.want)
		}
	}
	if _, err := DecodeOptions("pnp-dm", map[string]any{"langevin_sigma": -0.01}); err == nil || errors.Is(err, ErrDiverged) || !strings.Contains(err.Error(), "langevin_sigma = -0.01") {
		t.Errorf("langevin_sigma -0.01: %v, want an option error naming it", err)
	}
}
