package analytic

import (
	"math"
	"math/rand"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/internal/tensors"
	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"
)

func schedule(t *testing.T) *diffusion.Schedule {
	t.Helper()
	s, err := diffusion.NewSchedule(diffusion.Linear, 1000, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// randomCov returns B Bᵀ/d + 0.1 I for a random d×d B.
func randomCov(rng *rand.Rand, d int) *mat.SymDense {
	b := mat.NewDense(d, d, nil)
	for i := 0; i < d; i++ {
		for j := 0; j < d; j++ {
			b.Set(i, j, rng.NormFloat64())
		}
	}
	c := mat.NewSymDense(d, nil)
	c.SymOuterK(1/float64(d), b)
	for i := 0; i < d; i++ {
		c.SetSym(i, i, c.At(i, i)+0.1)
	}
	return c
}

func randVec(rng *rand.Rand, d int, scale float64) []float64 {
	v := make([]float64, d)
	for i := range v {
		v[i] = scale * rng.NormFloat64()
	}
	return v
}

func testMixture(t *testing.T, rng *rand.Rand, K int) *Mixture {
	t.Helper()
	const d = 6
	var comps []Component
	for k := 0; k < K; k++ {
		comps = append(comps, Component{Weight: float64(k + 1), Mean: randVec(rng, d, 1), Cov: randomCov(rng, d)})
	}
	m, err := NewMixture(comps, [3]int{1, 2, 3}, schedule(t))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// logPt is log p_t(x) computed independently of the package (Cholesky solve):
// log Σ_k π_k N(x; a μ_k, a²Σ_k + s²I).
func logPt(t *testing.T, m *Mixture, ab float64, x []float64) float64 {
	t.Helper()
	var terms []float64
	for _, c := range m.Components() {
		d := len(c.Mean)
		cm := mat.NewSymDense(d, nil)
		cm.ScaleSym(ab, c.Cov)
		for i := 0; i < d; i++ {
			cm.SetSym(i, i, cm.At(i, i)+1-ab)
		}
		mu := make([]float64, d)
		floats.ScaleTo(mu, math.Sqrt(ab), c.Mean)
		var ch mat.Cholesky
		if !ch.Factorize(cm) {
			t.Fatal("covariance not PD")
		}
		diff := make([]float64, d)
		floats.SubTo(diff, x, mu)
		var sol mat.VecDense
		if err := ch.SolveVecTo(&sol, mat.NewVecDense(d, diff)); err != nil {
			t.Fatal(err)
		}
		logN := -0.5*float64(d)*math.Log(2*math.Pi) - 0.5*ch.LogDet() - 0.5*mat.Dot(&sol, mat.NewVecDense(d, diff))
		terms = append(terms, math.Log(c.Weight)+logN)
	}
	return floats.LogSumExp(terms)
}

// TestEpsIsScaledScore checks E[ε | x_t] = −s ∇log p_t(x_t) with the score
// from central differences of an independently computed log density.
func TestEpsIsScaledScore(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, K := range []int{1, 2, 3} {
		m := testMixture(t, rng, K)
		for _, step := range []int{0, 50, 300, 999} {
			L, err := m.level(step)
			if err != nil {
				t.Fatal(err)
			}
			ab := L.a * L.a
			x := randVec(rng, m.Dim(), 1.5)
			eps := make([]float64, m.Dim())
			m.eval(L, x, nil, eps, nil)
			const h = 1e-5
			for i := range x {
				xp := append([]float64(nil), x...)
				xm := append([]float64(nil), x...)
				xp[i] += h
				xm[i] -= h
				score := (logPt(t, m, ab, xp) - logPt(t, m, ab, xm)) / (2 * h)
				want := -L.s * score
				if math.Abs(eps[i]-want) > 1e-5*(1+math.Abs(want)) {
					t.Fatalf("K=%d t=%d: ε[%d] = %g, −s·score = %g", K, step, i, eps[i], want)
				}
			}
		}
	}
}

// TestScalarGaussianClosedForm: D = 1, ε̂ = s(x − aμ)/(a²σ² + s²).
func TestScalarGaussianClosedForm(t *testing.T) {
	s := schedule(t)
	m, err := NewGaussian([]float64{0.3}, mat.NewSymDense(1, []float64{0.25}), [3]int{1, 1, 1}, s)
	if err != nil {
		t.Fatal(err)
	}
	xs := []float32{-1, 0, 0.5, 2}
	ts := []int{0, 10, 500, 999}
	eps, err := m.Eps(tensors.FromSlice(append([]float32(nil), xs...), 4, 1, 1, 1), ts)
	if err != nil {
		t.Fatal(err)
	}
	for k, x := range xs {
		a, sd := s.SqrtAlphaBar(ts[k]), s.SqrtOneMinusAlphaBar(ts[k])
		want := sd * (float64(x) - a*0.3) / (a*a*0.25 + sd*sd)
		if got := float64(tensors.F32(eps)[k]); math.Abs(got-want) > 1e-6*(1+math.Abs(want)) {
			t.Errorf("t=%d x=%g: ε̂ = %g, want %g", ts[k], x, got, want)
		}
	}
}

// TestEpsVJPFiniteDifferences checks ⟨u, VJP(v)⟩ = ⟨J u, v⟩ with J u from
// central differences of Eps, for random u, v: this tests the transpose, not
// only the symmetric case. Done both on the float64 core (tight) and through
// the float32 tensor API (loose: rounding 1e-7/h with h = 1e-2).
func TestEpsVJPFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for _, K := range []int{1, 3} {
		m := testMixture(t, rng, K)
		d := m.Dim()
		for _, step := range []int{5, 200, 800} {
			L, _ := m.level(step)
			x := randVec(rng, d, 1.2)
			u, v := randVec(rng, d, 1), randVec(rng, d, 1)
			e, jv := make([]float64, d), make([]float64, d)
			m.eval(L, x, v, e, jv)
			const h = 1e-5
			ep, em := make([]float64, d), make([]float64, d)
			xp, xm := make([]float64, d), make([]float64, d)
			for i := range x {
				xp[i], xm[i] = x[i]+h*u[i], x[i]-h*u[i]
			}
			m.eval(L, xp, nil, ep, nil)
			m.eval(L, xm, nil, em, nil)
			ju := make([]float64, d)
			for i := range ju {
				ju[i] = (ep[i] - em[i]) / (2 * h)
			}
			lhs, rhs := floats.Dot(u, jv), floats.Dot(ju, v)
			if math.Abs(lhs-rhs) > 1e-6*(1+math.Abs(rhs)) {
				t.Errorf("K=%d t=%d float64: ⟨u, Jᵀv⟩ = %g, ⟨Ju, v⟩ = %g", K, step, lhs, rhs)
			}
		}
		// Tensor API, batch of 3 at different timesteps.
		ts := []int{5, 200, 800}
		x := tensors.Randn(rng, 3, 1, 2, 3)
		v := tensors.Randn(rng, 3, 1, 2, 3)
		u := tensors.Randn(rng, 3, 1, 2, 3)
		eps, vjp, err := m.EpsVJP(x, ts, v)
		if err != nil {
			t.Fatal(err)
		}
		eps2, err := m.Eps(x, ts)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range tensors.F32(eps) {
			if e != tensors.F32(eps2)[i] {
				t.Fatalf("EpsVJP's ε differs from Eps at %d", i)
			}
		}
		const h = 1e-2
		xp, xm := tensors.Clone(x), tensors.Clone(x)
		for i := range tensors.F32(x) {
			tensors.F32(xp)[i] += h * tensors.F32(u)[i]
			tensors.F32(xm)[i] -= h * tensors.F32(u)[i]
		}
		ep, _ := m.Eps(xp, ts)
		em, _ := m.Eps(xm, ts)
		for k := 0; k < 3; k++ {
			var lhs, rhs float64
			for i := k * d; i < (k+1)*d; i++ {
				lhs += float64(tensors.F32(u)[i] * tensors.F32(vjp)[i])
				rhs += float64((tensors.F32(ep)[i]-tensors.F32(em)[i])/(2*h)) * float64(tensors.F32(v)[i])
			}
			if math.Abs(lhs-rhs) > 2e-3*(1+math.Abs(rhs)) {
				t.Errorf("K=%d sample %d float32: ⟨u, Jᵀv⟩ = %g, ⟨Ju, v⟩ = %g", K, k, lhs, rhs)
			}
		}
	}
}

// TestGaussianPosterior compares the gain form with the information form
// Σ_post = (Σ⁻¹ + AᵀA/σ²)⁻¹, μ_post = Σ_post(Σ⁻¹μ + Aᵀy/σ²).
func TestGaussianPosterior(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	const d, mrows = 5, 3
	mu := randVec(rng, d, 1)
	cov := randomCov(rng, d)
	A := mat.NewDense(mrows, d, randVec(rng, mrows*d, 1))
	y := randVec(rng, mrows, 1)
	const sy = 0.3
	gotMu, gotCov, err := GaussianPosterior(mu, cov, A, y, sy)
	if err != nil {
		t.Fatal(err)
	}
	var prec mat.SymDense
	var ch mat.Cholesky
	ch.Factorize(cov)
	if err := ch.InverseTo(&prec); err != nil {
		t.Fatal(err)
	}
	info := mat.NewSymDense(d, nil)
	var ata mat.Dense
	ata.Mul(A.T(), A)
	for i := 0; i < d; i++ {
		for j := i; j < d; j++ {
			info.SetSym(i, j, prec.At(i, j)+ata.At(i, j)/(sy*sy))
		}
	}
	var ich mat.Cholesky
	if !ich.Factorize(info) {
		t.Fatal("information matrix not PD")
	}
	var wantCov mat.SymDense
	if err := ich.InverseTo(&wantCov); err != nil {
		t.Fatal(err)
	}
	h := mat.NewVecDense(d, nil)
	h.MulVec(&prec, mat.NewVecDense(d, mu))
	var aty mat.VecDense
	aty.MulVec(A.T(), mat.NewVecDense(mrows, y))
	h.AddScaledVec(h, 1/(sy*sy), &aty)
	var wantMu mat.VecDense
	wantMu.MulVec(&wantCov, h)
	for i := 0; i < d; i++ {
		if math.Abs(gotMu[i]-wantMu.AtVec(i)) > 1e-10 {
			t.Errorf("μ_post[%d] = %g, want %g", i, gotMu[i], wantMu.AtVec(i))
		}
		for j := 0; j < d; j++ {
			if math.Abs(gotCov.At(i, j)-wantCov.At(i, j)) > 1e-10 {
				t.Errorf("Σ_post[%d,%d] = %g, want %g", i, j, gotCov.At(i, j), wantCov.At(i, j))
			}
		}
	}
	// Noise-free identity measurement pins x0 = y.
	id := mat.NewDense(d, d, nil)
	for i := 0; i < d; i++ {
		id.Set(i, i, 1)
	}
	yy := randVec(rng, d, 1)
	pm, pc, err := GaussianPosterior(mu, cov, id, yy, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < d; i++ {
		if math.Abs(pm[i]-yy[i]) > 1e-9 || math.Abs(pc.At(i, i)) > 1e-9 {
			t.Errorf("identity, σ=0: μ_post[%d] = %g (want %g), var %g", i, pm[i], yy[i], pc.At(i, i))
		}
	}
}

// TestMixtureMoments checks Mean and Cov against the empirical moments of
// Sample within 5 standard errors.
func TestMixtureMoments(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	m := testMixture(t, rng, 2)
	const n = 40000
	x, err := m.Sample(rng, n)
	if err != nil {
		t.Fatal(err)
	}
	d := m.Dim()
	mu, cov := m.Mean(), m.Cov()
	xs := tensors.F32(x)
	for i := 0; i < d; i++ {
		var s float64
		for k := 0; k < n; k++ {
			s += float64(xs[k*d+i])
		}
		s /= n
		if se := math.Sqrt(cov.At(i, i) / n); math.Abs(s-mu[i]) > 5*se {
			t.Errorf("mean[%d] = %g, want %g ± %g", i, s, mu[i], 5*se)
		}
		for j := 0; j <= i; j++ {
			var c float64
			for k := 0; k < n; k++ {
				c += (float64(xs[k*d+i]) - mu[i]) * (float64(xs[k*d+j]) - mu[j])
			}
			c /= n
			// Non-Gaussian data: use a generous 8 Gaussian-case standard errors.
			se := math.Sqrt((cov.At(i, i)*cov.At(j, j) + cov.At(i, j)*cov.At(i, j)) / n)
			if math.Abs(c-cov.At(i, j)) > 8*se {
				t.Errorf("cov[%d,%d] = %g, want %g ± %g", i, j, c, cov.At(i, j), 8*se)
			}
		}
	}
}

func TestErrors(t *testing.T) {
	s := schedule(t)
	good := mat.NewSymDense(2, []float64{1, 0, 0, 1})
	m, err := NewGaussian([]float64{0, 0}, good, [3]int{1, 1, 2}, s)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, want string
		err        func() error
	}{
		{"mean size", "want C·H·W = 2", func() error {
			_, err := NewGaussian([]float64{0}, good, [3]int{1, 1, 2}, s)
			return err
		}},
		{"cov size", "want 2×2", func() error {
			_, err := NewGaussian([]float64{0, 0}, mat.NewSymDense(3, nil), [3]int{1, 1, 2}, s)
			return err
		}},
		{"not PSD", "eigenvalue -1", func() error {
			_, err := NewGaussian([]float64{0, 0}, mat.NewSymDense(2, []float64{1, 0, 0, -1}), [3]int{1, 1, 2}, s)
			return err
		}},
		{"weight", "weight -1", func() error {
			_, err := NewMixture([]Component{{Weight: -1, Mean: []float64{0, 0}, Cov: good}}, [3]int{1, 1, 2}, s)
			return err
		}},
		{"shape", "want 1×1×2", func() error { _, err := m.Eps(tensors.New(1, 2, 1, 1), []int{0}); return err }},
		{"t count", "2 timesteps", func() error { _, err := m.Eps(tensors.New(1, 1, 1, 2), []int{0, 1}); return err }},
		{"t range", "timestep 1000", func() error { _, err := m.Eps(tensors.New(1, 1, 1, 2), []int{1000}); return err }},
		{"vjp shape", "shape", func() error {
			_, _, err := m.EpsVJP(tensors.New(1, 1, 1, 2), []int{0}, tensors.New(2, 1, 1, 2))
			return err
		}},
		{"posterior cols", "want 2 columns", func() error {
			_, _, err := GaussianPosterior([]float64{0, 0}, good, mat.NewDense(1, 3, nil), []float64{0}, 0.1)
			return err
		}},
		{"posterior singular", "not positive definite", func() error {
			_, _, err := GaussianPosterior([]float64{0, 0}, good, mat.NewDense(1, 2, nil), []float64{0}, 0)
			return err
		}},
	} {
		err := tc.err()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}
