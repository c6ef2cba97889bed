package solve

import (
	"math"
	"math/rand"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/diffusion"

	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/inverse/op"
	"gonum.org/v1/gonum/mat"
	"gorgonia.org/tensor"
)

// redDiffOp returns the ×2 average-pool SR or the 2×2-hole inpainting
// operator of the Gaussian tests.
func redDiffOp(t *testing.T, name string) op.SVD {
	if name == "box" {
		return boxInpaint(t)
	}
	return srOp(t)
}

// pinvTarget returns A†y and A†y + (I − A†A) m0 for the setup's y: the
// least-squares solution and RED-diff's mean for an isotropic prior (the
// σ_y → 0 posterior mean of the measured y).
func pinvTarget(t *testing.T, A op.SVD, s *setup) (lsq, iso []float64) {
	t.Helper()
	py, err := A.Pinv(f32(s.y, append([]int{1}, s.yshape...)...))
	if err != nil {
		t.Fatal(err)
	}
	lsq = f64(py)
	m0 := f32(s.muPri, 1, imgShape[0], imgShape[1], imgShape[2])
	am, err := A.Forward(m0)
	if err != nil {
		t.Fatal(err)
	}
	pam, err := A.Pinv(am)
	if err != nil {
		t.Fatal(err)
	}
	iso = make([]float64, dim)
	for j, v := range f64(pam) {
		iso[j] = lsq[j] + s.muPri[j] - v
	}
	return lsq, iso
}

// TestRedDiffLeastSquares: with λ = 0 RED-diff is Adam on the data term
// alone. From A†y (the default start) the gradient is 0 and μ stays there;
// from zeros Adam converges to the least-squares solution, and to the
// minimum-norm one A†y: for these operators Aᵀr is constant on each pooled
// block (SR) or zero in the hole (inpainting), which Adam's per-element
// scaling keeps. Noisy y (σ_y = 0.1), default lr and steps. Once the
// gradient is down to float32 rounding (step ~300), Adam's second moment
// decays and rounding-sized gradients take steps of up to lr again (Adam's
// known restarts; torch's float32 Adam does the same): the best iterate is
// within 1e-4 of A†y, the last within 0.02 (0.012 measured on box).
func TestRedDiffLeastSquares(t *testing.T) {
	for _, on := range []string{"sr2", "box"} {
		for _, init := range []string{"auto", "zeros"} {
			t.Run(on+"/"+init, func(t *testing.T) {
				A := redDiffOp(t, on)
				s := newSetup(t, A, 0.1, true, 5)
				lsq, _ := pinvTarget(t, A, s)
				o := mustOptions(t, "red-diff", map[string]any{"lambda": 0, "init": init})
				const n = 3
				errOf := func(x *tensor.Dense) float64 {
					worst := 0.0
					for j, v := range tensors.F32(x) {
						worst = math.Max(worst, math.Abs(float64(v)-lsq[j%dim]))
					}
					return worst
				}
				best := math.Inf(1)
				x, err := Solve("red-diff", Prior{Den: s.den, Sched: s.sched}, Measurement{A: A, Noise: s.noise, Y: s.batchY(n)}, o, diffusion.ImageRNGs(2, 0, n), func(st diffusion.Step) {
					best = math.Min(best, errOf(st.X))
				})
				if err != nil {
					t.Fatal(err)
				}
				bestTol, tol := 1e-6, 1e-6 // float32 rounding: μ never moves from A†y
				if init == "zeros" {
					bestTol, tol = 1e-4, 0.02
				}
				last := errOf(x)
				t.Logf("max |μ − A†y|: last %.2g (tolerance %.0g), best iterate %.2g (tolerance %.0g)", last, tol, best, bestTol)
				if last > tol || best > bestTol {
					t.Errorf("max |μ − A†y|: last %g, want ≤ %g; best %g, want ≤ %g", last, tol, best, bestTol)
				}
			})
		}
	}
}

// TestRedDiffFixedT checks the gradient RED-diff follows against its
// closed form. For a Gaussian prior N(m0, Σ) the exact ε̂ gives the
// expected regulariser gradient λ w_t E[ε̂ − ε]/d = λ(1−ᾱ)/d · C⁻¹(μ − m0),
// C = ᾱΣ + (1−ᾱ)I (w_t = √((1−ᾱ)/ᾱ)), linear in μ, so Adam held at one
// timestep t has its stationary mean at the solution of
//
//	(AᵀA/m + λ(1−ᾱ)C⁻¹/d) μ = Aᵀy/m + λ(1−ᾱ)C⁻¹m0/d.
//
// (Adam's per-element scale is nearly constant once the noise dominates,
// so the iteration is preconditioned SGD on a linear mean gradient, whose
// stationary mean is that solution.) Correlated prior, σ_y = 0.1, t = 200,
// λ = 1 so that the prior visibly moves the measured part too; the target
// differs from the posterior mean and from A†y by much more than the
// tolerance.
func TestRedDiffFixedT(t *testing.T) {
	for _, on := range []string{"sr2", "box"} {
		t.Run(on, func(t *testing.T) {
			A := redDiffOp(t, on)
			s := newSetup(t, A, 0.1, true, 3)
			const n, steps, ti, lambda = 1000, 1500, 200, 1.0
			o := mustOptions(t, "red-diff", map[string]any{"lambda": lambda, "lr": 0.01})
			e, err := lookupEntry("red-diff")
			if err != nil {
				t.Fatal(err)
			}
			p, err := newProblem(e, Prior{Den: s.den, Sched: s.sched}, Measurement{A: A, Noise: s.noise, Y: s.batchY(n)}, diffusion.ImageRNGs(9, 0, n), nil)
			if err != nil {
				t.Fatal(err)
			}
			order := make([]int, steps)
			for k := range order {
				order[k] = ti
			}
			x, err := redDiffWalk(p, o.(RedDiffOptions), s.sched, order)
			if err != nil {
				t.Fatal(err)
			}
			mean, sd := meanOf(x)

			// The closed-form stationary point.
			Am := denseMatrix(t, A)
			m, _ := Am.Dims()
			m0, cov := prior(true)
			ab := s.sched.AlphaBar(ti)
			var C mat.Dense
			C.Scale(ab, cov)
			for j := 0; j < dim; j++ {
				C.Set(j, j, C.At(j, j)+1-ab)
			}
			var Ci mat.Dense
			if err := Ci.Inverse(&C); err != nil {
				t.Fatal(err)
			}
			c := lambda * (1 - ab) / dim
			var M, R mat.Dense
			M.Mul(Am.T(), Am)
			M.Scale(1/float64(m), &M)
			R.Scale(c, &Ci)
			M.Add(&M, &R)
			var b, rm mat.VecDense
			b.MulVec(Am.T(), mat.NewVecDense(len(s.y), append([]float64(nil), s.y...)))
			b.ScaleVec(1/float64(m), &b)
			rm.MulVec(&R, mat.NewVecDense(dim, m0))
			b.AddVec(&b, &rm)
			var want mat.VecDense
			if err := want.SolveVec(&M, &b); err != nil {
				t.Fatal(err)
			}
			lsq, _ := pinvTarget(t, A, s)
			worst, worstZ, fromPost, fromLsq := 0.0, 0.0, 0.0, 0.0
			for j := range mean {
				e := math.Abs(mean[j] - want.AtVec(j))
				se := sd[j] / math.Sqrt(n)
				worst = math.Max(worst, e)
				worstZ = math.Max(worstZ, e/se)
				fromPost = math.Max(fromPost, math.Abs(want.AtVec(j)-s.muPost[j]))
				fromLsq = math.Max(fromLsq, math.Abs(want.AtVec(j)-lsq[j]))
				if tol := 5*se + 3e-3; e > tol {
					t.Errorf("pixel %d: mean %.4f, fixed-t stationary point %.4f: error %.4f > %.4f", j, mean[j], want.AtVec(j), e, tol)
				}
			}
			t.Logf("max |mean − μ_t| = %.4f (%.1f standard errors) over %d samples; μ_t is %.3f from the posterior mean, %.3f from A†y", worst, worstZ, n, fromPost, fromLsq)
		})
	}
}

// TestRedDiffIsotropic: with an isotropic prior (Σ = I, so C_t = I at every
// t) every timestep pulls the null space of A to m0's and the measured part
// ends at A†y (the regulariser vanishes as t → 0), so the mean of RED-diff's
// results is A†y + (I − A†A) m0: for σ_y = 0 the posterior mean, for σ_y >
// 0 the posterior mean's σ_y → 0 limit on the noisy y, since σ_y is not in
// RED-diff's loss (no shrinkage of the measured part toward the prior;
// the posterior mean lies 0.03–0.06 away here). Each result fits the
// measurement: |A μ − A A†y| stays within the Adam noise of the last steps
// (0.022 on SR, 0.038 on the box reached, over 1000 samples; 0.05 allowed).
// Default options (1000 steps, lr 0.1, λ 0.25).
func TestRedDiffIsotropic(t *testing.T) {
	for _, on := range []string{"sr2", "box"} {
		for _, sy := range []float64{0, 0.1} {
			t.Run(on+"/sigma="+ftoa(sy), func(t *testing.T) {
				A := redDiffOp(t, on)
				s := newSetup(t, A, sy, false, 3)
				_, want := pinvTarget(t, A, s)
				const n = 1000
				x, err := Solve("red-diff", Prior{Den: s.den, Sched: s.sched}, Measurement{A: A, Noise: s.noise, Y: s.batchY(n)}, nil, diffusion.ImageRNGs(4, 0, n), nil)
				if err != nil {
					t.Fatal(err)
				}
				mean, sd := meanOf(x)
				worst, worstZ, fromPost := 0.0, 0.0, 0.0
				for j := range mean {
					e := math.Abs(mean[j] - want[j])
					se := sd[j] / math.Sqrt(n)
					worst = math.Max(worst, e)
					worstZ = math.Max(worstZ, e/se)
					fromPost = math.Max(fromPost, math.Abs(want[j]-s.muPost[j]))
					if tol := 5*se + 3e-3; e > tol {
						t.Errorf("pixel %d: mean %.4f, A†y + (I − A†A)m0 = %.4f: error %.4f > %.4f", j, mean[j], want[j], e, tol)
					}
				}
				ax, err := A.Forward(x)
				if err != nil {
					t.Fatal(err)
				}
				aw, err := A.Forward(f32(want, 1, imgShape[0], imgShape[1], imgShape[2]))
				if err != nil {
					t.Fatal(err)
				}
				awv := f64(aw)
				fit := 0.0
				for j, v := range tensors.F32(ax) {
					fit = math.Max(fit, math.Abs(float64(v)-awv[j%len(awv)]))
				}
				if fit > 0.05 {
					t.Errorf("max |A μ − A A†y| = %.4f over the samples, want ≤ 0.05", fit)
				}
				t.Logf("max |mean − target| = %.4f (%.1f standard errors), target %.3f from the posterior mean; max |A μ − A A†y| = %.4f; max sd %.3f", worst, worstZ, fromPost, fit, maxOf(sd))
			})
		}
	}
}

func maxOf(v []float64) float64 {
	m := math.Inf(-1)
	for _, x := range v {
		m = math.Max(m, x)
	}
	return m
}

// TestRedDiffOptions: decoding, validation, and init on an operator
// without a pseudo-inverse (phase retrieval, nonlinear): "auto" starts at
// zeros and runs, "pinv" is refused.
func TestRedDiffOptions(t *testing.T) {
	o := mustOptions(t, "red-diff", nil).(RedDiffOptions)
	want := RedDiffOptions{Steps: 1000, LR: 0.1, Lambda: 0.25, ObsWeight: 1, Weight: "linear", Init: "auto"}
	if o != want {
		t.Errorf("defaults %+v, want %+v", o, want)
	}
	for _, c := range []struct {
		set  map[string]any
		want string
	}{
		{map[string]any{"lr": 0}, "lr = 0"},
		{map[string]any{"lambda": -1}, "lambda = -1"},
		{map[string]any{"obs_weight": math.NaN()}, "obs_weight = NaN"},
		{map[string]any{"weight": "cubic"}, `weight = "cubic"`},
		{map[string]any{"init": "noise"}, `init = "noise"`},
		{map[string]any{"steps": -2}, "steps = -2"},
	} {
		if _, err := DecodeOptions("red-diff", c.set); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one naming %q", c.set, err, c.want)
		}
	}
	for _, w := range []string{"linear", "sqrt", "square", "log", "trunc_linear", "power2over3", "const"} {
		if got := redDiffWeight(w, 0.25); !(got > 0) || (w == "linear" && got != 0.25) || (w == "const" && got != 1) {
			t.Errorf("weight %s at r = 0.25: %g", w, got)
		}
	}

	pr, err := op.NewPhaseRetrieval(imgShape, 2)
	if err != nil {
		t.Fatal(err)
	}
	s := newSetup(t, srOp(t), 0.05, true, 1)
	x0, err := s.den.Sample(rand.New(rand.NewSource(1)), 1)
	if err != nil {
		t.Fatal(err)
	}
	y, err := pr.Forward(x0)
	if err != nil {
		t.Fatal(err)
	}
	run := func(init string) (*tensor.Dense, error) {
		o := mustOptions(t, "red-diff", map[string]any{"steps": 50, "init": init})
		return Solve("red-diff", Prior{Den: s.den, Sched: s.sched}, Measurement{A: pr, Noise: s.noise, Y: y}, o, diffusion.ImageRNGs(1, 0, 1), nil)
	}
	if _, err := run("pinv"); err == nil || !strings.Contains(err.Error(), "needs a linear operator") {
		t.Errorf("init pinv on phase retrieval: error %v", err)
	}
	if _, err := run("auto"); err != nil {
		t.Errorf("init auto on phase retrieval: %v", err)
	}
}
