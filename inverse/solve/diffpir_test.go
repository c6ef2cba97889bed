package solve

import (
	"math"
	"math/rand"
	"testing"

	"github.com/diffinv/diffinv/diffusion"

	"github.com/diffinv/diffinv/inverse/op"
)

// operatorOnly hides everything of an operator but op.Operator's and
// op.Shaped's methods: DiffPIR then takes gradient steps.
type operatorOnly struct {
	op.Operator
	op.Shaped
}

// diffpirProblem returns the checked problem DiffPIR would get for A, a
// noisy measurement of two different images, and two x̂0 to correct.
func diffpirProblem(t *testing.T, A op.Operator, sigmaY float64) (*problem, []float64) {
	t.Helper()
	s1 := newSetup(t, A, sigmaY, true, 21)
	s2 := newSetup(t, A, sigmaY, true, 22)
	m := len(s1.y)
	yb := make([]float64, 2*m)
	copy(yb, s1.y)
	copy(yb[m:], s2.y)
	Y := f32(yb, append([]int{2}, s1.yshape...)...)
	e, err := lookupEntry("diffpir")
	if err != nil {
		t.Fatal(err)
	}
	p, err := newProblem(e, Prior{Den: s1.den, Sched: s1.sched}, Measurement{A: A, Noise: s1.noise, Y: Y}, diffusion.ImageRNGs(1, 0, 2), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewSource(5))
	x0 := make([]float64, 2*dim)
	for j := range x0 {
		x0[j] = r.NormFloat64()
	}
	return p, x0
}

func maxDiff(a, b []float64) float64 {
	w := 0.0
	for j := range a {
		w = math.Max(w, math.Abs(a[j]-b[j]))
	}
	return w
}

// TestDiffPIRDataStep: the closed form per singular value, conjugate
// gradients (the SVD hidden) and gradient steps (only Forward and VJP
// left) reach the same minimiser of ‖y − A x‖² + ρ‖x − x̂0‖², which also
// satisfies the normal equations (AᵀA + ρI) x = Aᵀy + ρ x̂0; and at ρ = 0
// (noise-free y without the σ_n floor) the data step returns A x = y (A A†y
// for y outside the range).
func TestDiffPIRDataStep(t *testing.T) {
	o := mustOptions(t, "diffpir", map[string]any{"grad_steps": 4}).(DiffPIROptions)
	for _, on := range []string{"sr2", "box"} {
		var A op.SVD = srOp(t)
		if on == "box" {
			A = boxInpaint(t)
		}
		for _, rho := range []float64{0.3, 1e-3, 0} {
			p, x0 := diffpirProblem(t, A, 0.1)
			sp, err := p.spectral()
			if err != nil {
				t.Fatal(err)
			}
			svd, err := p.proxSVD(sp, x0, rho)
			if err != nil {
				t.Fatal(err)
			}
			// Normal equations (for ρ > 0; at ρ = 0 check A x = y below).
			if rho > 0 {
				ax, _ := p.forward(svd)
				atax, _ := p.adjoint(ax)
				aty, _ := p.adjoint(p.yv)
				worst := 0.0
				for j := range atax {
					worst = math.Max(worst, math.Abs(atax[j]+rho*svd[j]-aty[j]-rho*x0[j]))
				}
				if worst > 1e-6 {
					t.Errorf("%s ρ=%g: closed form misses the normal equations by %g", on, rho, worst)
				}
			}
			pl, _ := diffpirProblem(t, linearOnly{A, A}, 0.1)
			cg, err := pl.proxCG(x0, rho, o.CGIters)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(svd, cg); d > 1e-6 {
				t.Errorf("%s ρ=%g: CG differs from the closed form by %g", on, rho, d)
			}
			pg, _ := diffpirProblem(t, operatorOnly{A, A}, 0.1)
			if pg.lin != nil || pg.svd != nil {
				t.Fatal("operatorOnly still linear")
			}
			gr, err := pg.diffpirData(nil, x0, rho, o)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(svd, gr); d > 1e-4 {
				t.Errorf("%s ρ=%g: gradient steps differ from the closed form by %g", on, rho, d)
			}
			t.Logf("%s ρ=%g: |CG − closed form| %.2g, |gradient − closed form| %.2g", on, rho, maxDiff(svd, cg), maxDiff(svd, gr))
			if rho == 0 {
				// y's noise in the hole of the box is outside A's range: the
				// target is A A†y, which is y for y in the range.
				py, _ := p.pinv(p.yv)
				target, _ := p.forward(py)
				for name, x := range map[string][]float64{"closed form": svd, "CG": cg} {
					ax, _ := p.forward(x)
					if d := maxDiff(ax, target); d > 1e-5 {
						t.Errorf("%s ρ=0, %s: max |A x − A A†y| = %g, want ≤ 1e-5", on, name, d)
					}
				}
			}
		}
	}
}

// TestDiffPIRNoiseFreeConsistent: with noise-free y and sigma_min = 0
// (ρ_t = 0) the last data step is the projection, so A x̂ = y.
func TestDiffPIRNoiseFreeConsistent(t *testing.T) {
	for _, on := range []string{"sr2", "box"} {
		var A op.Operator = srOp(t)
		if on == "box" {
			A = boxInpaint(t)
		}
		s := newSetup(t, A, 0, true, 5)
		o := mustOptions(t, "diffpir", map[string]any{"steps": 20, "sigma_min": 0.0})
		x, err := Solve("diffpir", Prior{Den: s.den, Sched: s.sched}, Measurement{A: A, Noise: s.noise, Y: s.batchY(4)}, o, diffusion.ImageRNGs(1, 0, 4), nil)
		if err != nil {
			t.Fatal(err)
		}
		ax, err := A.Forward(x)
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for j, v := range f64(ax) {
			worst = math.Max(worst, math.Abs(v-s.y[j%len(s.y)]))
		}
		if worst > 1e-4 {
			t.Errorf("%s: max |A x̂ − y| = %g, want ≤ 1e-4", on, worst)
		}
	}
}

// TestDiffPIRQuadSchedule: the official code's quad spacing over T = 1000
// with 100 steps: 999, 899, 857, …, 0, all distinct.
func TestDiffPIRQuadSchedule(t *testing.T) {
	s := newSetup(t, srOp(t), 0.05, false, 1)
	p := &problem{method: "diffpir", sched: s.sched}
	sched, err := diffpirSchedule(p, DiffPIROptions{Steps: 100, SkipType: SkipQuad})
	if err != nil {
		t.Fatal(err)
	}
	K := sched.Len()
	if K != 100 || p.steps != 100 {
		t.Fatalf("%d steps (p.steps %d), want 100", K, p.steps)
	}
	// seq_j = ⌊√(j·10⁶/99)⌋: seq_1 = 100, seq_2 = 142 (numpy gives the same).
	want := map[int]int{K - 1: 999, K - 2: 899, K - 3: 857, 0: 0}
	for i, ts := range want {
		if got := sched.Timestep(i); got != ts {
			t.Errorf("index %d: timestep %d, want %d", i, got, ts)
		}
	}
	// start_sigma picks the step nearest the VE level.
	i := sched.NearestSigma(0.39)
	if d := math.Abs(sched.Sigma(i) - 0.39); d > 0.05 {
		t.Errorf("NearestSigma(0.39) = index %d with σ̄ %g", i, sched.Sigma(i))
	}
}

// TestDiffPIRStartSigma: skipping the first steps counts only the steps
// taken and still ends at timestep 0.
func TestDiffPIRStartSigma(t *testing.T) {
	A := boxInpaint(t)
	s := newSetup(t, A, 0.05, false, 1)
	o := mustOptions(t, "diffpir", map[string]any{"steps": 20, "start_sigma": 0.39})
	var total, calls, last int
	_, err := Solve("diffpir", Prior{Den: s.den, Sched: s.sched}, Measurement{A: A, Noise: s.noise, Y: s.batchY(1)}, o, diffusion.ImageRNGs(1, 0, 1), func(st diffusion.Step) {
		total, calls, last = st.Total, calls+1, st.Timestep
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != total || calls >= 20 || calls < 2 || last != 0 {
		t.Errorf("%d steps of total %d, last timestep %d: want fewer than 20, all counted, ending at 0", calls, total, last)
	}
}
