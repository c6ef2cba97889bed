package diffusion

import (
	"math"
	"math/rand"
	"reflect"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/internal/tensors"
)

func mustSchedule(t *testing.T, kind string, T int) *Schedule {
	t.Helper()
	s, err := NewSchedule(kind, T, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLinearScheduleEndpoints(t *testing.T) {
	for _, tc := range []struct {
		T          int
		start, end float64
	}{
		{1000, 1e-4, 0.02},
		{100, 1e-3, 0.2},
		{4000, 2.5e-5, 0.005},
	} {
		s := mustSchedule(t, Linear, tc.T)
		if s.Len() != tc.T || s.OriginalT() != tc.T {
			t.Fatalf("T=%d: Len %d OriginalT %d", tc.T, s.Len(), s.OriginalT())
		}
		if math.Abs(s.Beta(0)-tc.start) > 1e-15 || math.Abs(s.Beta(tc.T-1)-tc.end) > 1e-15 {
			t.Errorf("T=%d: β0=%g βT=%g, want %g, %g", tc.T, s.Beta(0), s.Beta(tc.T-1), tc.start, tc.end)
		}
		// Equal spacing.
		step := (tc.end - tc.start) / float64(tc.T-1)
		for i := 1; i < tc.T; i++ {
			if d := s.Beta(i) - s.Beta(i-1); math.Abs(d-step) > 1e-15 {
				t.Fatalf("T=%d: β[%d]−β[%d] = %g, want %g", tc.T, i, i-1, d, step)
			}
		}
	}
	// Explicit endpoints are used as given.
	s, err := NewSchedule(Linear, 10, 0.01, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	if s.Beta(0) != 0.01 || math.Abs(s.Beta(9)-0.1) > 1e-15 {
		t.Errorf("explicit endpoints: %g %g", s.Beta(0), s.Beta(9))
	}
}

func TestCosineScheduleClosedForm(t *testing.T) {
	const T = 1000
	s := mustSchedule(t, Cosine, T)
	f := func(u float64) float64 {
		c := math.Cos((u + 0.008) / 1.008 * math.Pi / 2)
		return c * c
	}
	for i := 0; i < T; i++ {
		if s.Beta(i) > 0.999+1e-15 {
			t.Fatalf("β[%d] = %g above the 0.999 clip", i, s.Beta(i))
		}
		if s.Beta(i) >= 0.999 {
			continue // clipped: the closed form no longer applies from here
		}
		want := f(float64(i+1)/T) / f(0)
		if math.Abs(s.AlphaBar(i)-want) > 1e-12 {
			t.Fatalf("ᾱ[%d] = %.15g, closed form %.15g", i, s.AlphaBar(i), want)
		}
	}
	if s.Beta(T-1) != 0.999 {
		t.Errorf("last cosine β = %g, want the clip 0.999", s.Beta(T-1))
	}
}

func TestScheduleInternalIdentities(t *testing.T) {
	for _, kind := range ScheduleKinds() {
		s := mustSchedule(t, kind, 200)
		prod := 1.0
		for i := 0; i < s.Len(); i++ {
			if s.AlphaBarPrev(i) != prod {
				t.Fatalf("%s: ᾱ_prev[%d] = %g, want %g", kind, i, s.AlphaBarPrev(i), prod)
			}
			prod *= 1 - s.Beta(i)
			if math.Abs(s.AlphaBar(i)-prod) > 1e-15 {
				t.Fatalf("%s: ᾱ[%d] = %g, want %g", kind, i, s.AlphaBar(i), prod)
			}
			a, sd := s.SqrtAlphaBar(i), s.SqrtOneMinusAlphaBar(i)
			if math.Abs(a*a+sd*sd-1) > 1e-14 {
				t.Fatalf("%s: a²+s² = %g at %d", kind, a*a+sd*sd, i)
			}
			if math.Abs(s.Sigma(i)-sd/a) > 1e-12*s.Sigma(i) {
				t.Fatalf("%s: σ[%d] = %g, want %g", kind, i, s.Sigma(i), sd/a)
			}
		}
	}
}

// TestPosteriorBayes checks the posterior coefficients and variance against
// a direct Bayes computation for scalar Gaussians: x_{t−1} | x0 ~
// N(√ᾱ_{t−1}x0, 1−ᾱ_{t−1}) as prior, x_t | x_{t−1} ~ N(√α_t x_{t−1}, β_t) as
// likelihood.
func TestPosteriorBayes(t *testing.T) {
	base := mustSchedule(t, Linear, 1000)
	ts, err := SpacedTimesteps(1000, 50, SpacingUniform)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := Respace(base, ts)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*Schedule{
		"linear": base, "cosine": mustSchedule(t, Cosine, 1000), "respaced": resp,
	} {
		for i := 1; i < s.Len(); i++ {
			abPrev, alpha, beta := s.AlphaBarPrev(i), s.Alpha(i), s.Beta(i)
			prec := 1/(1-abPrev) + alpha/beta
			v := 1 / prec
			c0 := v * math.Sqrt(abPrev) / (1 - abPrev)
			ct := v * math.Sqrt(alpha) / beta
			gotC0, gotCt := s.PosteriorMeanCoefs(i)
			if rel(s.PosteriorVariance(i), v) > 1e-10 || rel(gotC0, c0) > 1e-10 || rel(gotCt, ct) > 1e-10 {
				t.Fatalf("%s i=%d: var %g c0 %g ct %g, Bayes %g %g %g", name, i,
					s.PosteriorVariance(i), gotC0, gotCt, v, c0, ct)
			}
			if rel(s.PosteriorLogVarianceClipped(i), math.Log(v)) > 1e-10 {
				t.Fatalf("%s i=%d: clipped log var %g, want %g", name, i, s.PosteriorLogVarianceClipped(i), math.Log(v))
			}
		}
		// Index 0: x_{−1} = x0 exactly, so the posterior is a point mass at x0.
		c0, ct := s.PosteriorMeanCoefs(0)
		if s.PosteriorVariance(0) != 0 || math.Abs(c0-1) > 1e-12 || ct != 0 {
			t.Errorf("%s i=0: var %g c0 %g ct %g, want 0, 1, 0", name, s.PosteriorVariance(0), c0, ct)
		}
		if s.PosteriorLogVarianceClipped(0) != math.Log(s.PosteriorVariance(1)) {
			t.Errorf("%s: clipped log var at 0 = %g, want log β̃_1 = %g", name, s.PosteriorLogVarianceClipped(0), math.Log(s.PosteriorVariance(1)))
		}
	}
}

func rel(a, b float64) float64 { return math.Abs(a-b) / math.Max(math.Abs(b), 1e-300) }

func TestRespaceKeepsAlphaBar(t *testing.T) {
	base := mustSchedule(t, Cosine, 1000)
	for _, spec := range []string{"ddim50", "ddim10", "10,20,5", "250", ""} {
		keep, err := ParseSpacing(1000, spec)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Respace(base, keep)
		if err != nil {
			t.Fatal(err)
		}
		if s.Len() != len(keep) || s.OriginalT() != 1000 {
			t.Fatalf("%q: Len %d OriginalT %d", spec, s.Len(), s.OriginalT())
		}
		for i, orig := range keep {
			if s.Timestep(i) != orig {
				t.Fatalf("%q: Timestep(%d) = %d, want %d", spec, i, s.Timestep(i), orig)
			}
			if rel(s.AlphaBar(i), base.AlphaBar(orig)) > 1e-12 {
				t.Fatalf("%q: ᾱ[%d] = %g, original ᾱ[%d] = %g", spec, i, s.AlphaBar(i), orig, base.AlphaBar(orig))
			}
			ab, err := s.AlphaBarAtTimestep(orig)
			if err != nil || ab != base.AlphaBar(orig) {
				t.Fatalf("AlphaBarAtTimestep(%d) = %g, %v", orig, ab, err)
			}
		}
		// Respacing a respaced schedule maps straight to original timesteps.
		if s.Len() >= 3 {
			s2, err := Respace(s, []int{0, s.Len() - 1})
			if err != nil {
				t.Fatal(err)
			}
			if s2.Timestep(1) != keep[len(keep)-1] || rel(s2.AlphaBar(1), base.AlphaBar(keep[len(keep)-1])) > 1e-12 {
				t.Errorf("%q: nested respace Timestep %d ᾱ %g", spec, s2.Timestep(1), s2.AlphaBar(1))
			}
		}
	}
}

func TestSpacing(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  func() ([]int, error)
		want []int
	}{
		{"uniform 100/10", func() ([]int, error) { return SpacedTimesteps(100, 10, SpacingUniform) },
			[]int{0, 10, 20, 30, 40, 50, 60, 70, 80, 90}},
		{"uniform 10/3 has 4 as in DDIM", func() ([]int, error) { return SpacedTimesteps(10, 3, SpacingUniform) },
			[]int{0, 3, 6, 9}},
		// (linspace(0, √8, 5))² = 0, 0.5, 2, 4.5, 8.
		{"quad 10/5", func() ([]int, error) { return SpacedTimesteps(10, 5, SpacingQuad) }, []int{0, 2, 4, 8}},
		{"ddim4 of 10: stride 3", func() ([]int, error) { return ParseSpacing(10, "ddim4") }, []int{0, 3, 6, 9}},
		// Two sections of 50; stride 49/9 in each, Python rounding.
		{"sections 10,10 of 100", func() ([]int, error) { return ParseSpacing(100, "10,10") },
			[]int{0, 5, 11, 16, 22, 27, 33, 38, 44, 49, 50, 55, 61, 66, 72, 77, 83, 88, 94, 99}},
		// 0.5 and 2.5 round to even: sections of 6: stride 5/2 → 0, 2.5→2, 5.
		{"round half even", func() ([]int, error) { return ParseSpacing(6, "3") }, []int{0, 2, 5}},
		{"empty is all", func() ([]int, error) { return ParseSpacing(3, "") }, []int{0, 1, 2}},
	} {
		got, err := tc.got()
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	base := mustSchedule(t, Linear, 1000)
	sp, err := SpacedSchedule(base, 50, SpacingUniform)
	if err != nil || sp.Len() != 50 || sp.Timestep(49) != 980 || sp.AlphaBar(49) != base.AlphaBar(980) {
		t.Errorf("SpacedSchedule(50): %v", err)
	}
	if same, _ := SpacedSchedule(base, 1000, SpacingUniform); same != base {
		t.Errorf("SpacedSchedule(T) should return the base schedule")
	}
	u, err := ParseSpacing(1000, "ddim50")
	if err != nil || len(u) != 50 || u[1] != 20 {
		t.Errorf("ddim50: %d steps, %v", len(u), err)
	}
}

func TestRoundTrips(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, kind := range ScheduleKinds() {
		s := mustSchedule(t, kind, 1000)
		const n = 64
		ts := make([]int, n)
		for k := range ts {
			ts[k] = rng.Intn(999) // the clipped cosine β at T−1 leaves ᾱ ≈ 0
		}
		ts[0], ts[1] = 0, 998
		x0 := tensors.Randn(rng, n, 2, 3, 3)
		eps := tensors.Randn(rng, n, 2, 3, 3)
		xt, err := s.QSample(x0, ts, eps)
		if err != nil {
			t.Fatal(err)
		}
		v, err := s.VFromEps(x0, ts, eps)
		if err != nil {
			t.Fatal(err)
		}
		x0e, _ := s.X0FromEps(xt, ts, eps)
		epsx, _ := s.EpsFromX0(xt, ts, x0)
		x0v, _ := s.X0FromV(xt, ts, v)
		epsv, _ := s.EpsFromV(xt, ts, v)
		d := len(tensors.F32(x0)) / n
		for k := 0; k < n; k++ {
			a, sd := s.SqrtAlphaBar(ts[k]), s.SqrtOneMinusAlphaBar(ts[k])
			// float32 rounding of x_t (relative 6e-8, |x_t| ≲ 5) divided by a or s.
			tol := 5 * 6e-8 * 5 * (1 + 1/a + 1/sd)
			for j := k * d; j < (k+1)*d; j++ {
				for _, c := range []struct {
					name      string
					got, want float32
					tol       float64
				}{
					{"x0 from eps", tensors.F32(x0e)[j], tensors.F32(x0)[j], tol},
					{"eps from x0", tensors.F32(epsx)[j], tensors.F32(eps)[j], tol},
					{"x0 from v", tensors.F32(x0v)[j], tensors.F32(x0)[j], 1e-5},
					{"eps from v", tensors.F32(epsv)[j], tensors.F32(eps)[j], 1e-5},
				} {
					if math.Abs(float64(c.got-c.want)) > c.tol {
						t.Fatalf("%s t=%d: %s = %g, want %g (tol %g)", kind, ts[k], c.name, c.got, c.want, c.tol)
					}
				}
			}
		}
	}
}

// TestQSampleMoments draws many x_t for fixed x0 and checks mean √ᾱ·x0 and
// variance 1−ᾱ within 5 standard errors (mean: s/√N; variance: s²√(2/N)).
func TestQSampleMoments(t *testing.T) {
	s := mustSchedule(t, Linear, 1000)
	rng := rand.New(rand.NewSource(2))
	const n = 20000
	for _, step := range []int{0, 100, 500, 999} {
		x0 := tensors.New(n, 1, 1, 1)
		for i := range tensors.F32(x0) {
			tensors.F32(x0)[i] = 0.7
		}
		ts := make([]int, n)
		for i := range ts {
			ts[i] = step
		}
		xt, err := s.QSample(x0, ts, tensors.Randn(rng, n, 1, 1, 1))
		if err != nil {
			t.Fatal(err)
		}
		var m, m2 float64
		for _, x := range tensors.F32(xt) {
			m += float64(x)
		}
		m /= n
		for _, x := range tensors.F32(xt) {
			m2 += (float64(x) - m) * (float64(x) - m)
		}
		v := m2 / (n - 1)
		wantM, wantV := 0.7*s.SqrtAlphaBar(step), 1-s.AlphaBar(step)
		if se := math.Sqrt(wantV / n); math.Abs(m-wantM) > 5*se {
			t.Errorf("t=%d: mean %g, want %g ± %g", step, m, wantM, 5*se)
		}
		if se := wantV * math.Sqrt(2.0/n); math.Abs(v-wantV) > 5*se {
			t.Errorf("t=%d: var %g, want %g ± %g", step, v, wantV, 5*se)
		}
	}
}

func TestBadInputs(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		err        func() error
	}{
		{"T=0", "T = 0", func() error { _, err := NewSchedule(Linear, 0, 0, 0); return err }},
		{"T<0", "T = -3", func() error { _, err := NewSchedule(Cosine, -3, 0, 0); return err }},
		{"unknown kind", "[linear cosine]", func() error { _, err := NewSchedule("sigmoid", 10, 0, 0); return err }},
		{"beta start 0", "beta_start = 0", func() error { _, err := NewSchedule(Linear, 10, 0, 0.1); return err }},
		{"beta end 1", "beta_end = 1", func() error { _, err := NewSchedule(Linear, 10, 0.1, 1); return err }},
		{"beta start neg", "beta_start = -0.1", func() error { _, err := NewSchedule(Linear, 10, -0.1, 0.1); return err }},
		{"start > end", "beta_start = 0.2 > beta_end = 0.1", func() error { _, err := NewSchedule(Linear, 10, 0.2, 0.1); return err }},
		{"default too big", "T = 10", func() error { _, err := NewSchedule(Linear, 10, 0, 0); return err }},
		{"cosine betas", "cosine", func() error { _, err := NewSchedule(Cosine, 10, 0.1, 0.2); return err }},
		{"FromBetas 1", "β[1] = 1", func() error { _, err := FromBetas([]float64{0.1, 1}); return err }},
		{"FromBetas NaN", "β[0] = NaN", func() error { _, err := FromBetas([]float64{math.NaN()}); return err }},
		{"respace dup", "given twice", func() error { _, err := Respace(mustSchedule(t, Linear, 100), []int{3, 3}); return err }},
		{"respace range", "out of range", func() error { _, err := Respace(mustSchedule(t, Linear, 100), []int{100}); return err }},
		{"spacing K>T", "want 1..10", func() error { _, err := SpacedTimesteps(10, 11, SpacingUniform); return err }},
		{"spacing kind", "\"cubic\"", func() error { _, err := SpacedTimesteps(10, 5, "cubic"); return err }},
		{"ddim none", "no integer stride", func() error { _, err := ParseSpacing(1000, "ddim999"); return err }},
		{"ddimx", "ddimK", func() error { _, err := ParseSpacing(1000, "ddimx"); return err }},
		{"section too big", "cannot take", func() error { _, err := ParseSpacing(10, "6,6"); return err }},
		{"alphabar ts", "timestep 100", func() error { _, err := mustSchedule(t, Linear, 100).AlphaBarAtTimestep(100); return err }},
		{"ops t count", "2 timesteps for a batch of 1", func() error {
			_, err := mustSchedule(t, Linear, 100).QSample(tensors.New(1, 1, 2, 2), []int{1, 2}, tensors.New(1, 1, 2, 2))
			return err
		}},
		{"ops t range", "t[0] = 100", func() error {
			_, err := mustSchedule(t, Linear, 100).QSample(tensors.New(1, 1, 2, 2), []int{100}, tensors.New(1, 1, 2, 2))
			return err
		}},
		{"ops shape", "shape", func() error {
			_, err := mustSchedule(t, Linear, 100).X0FromEps(tensors.New(1, 1, 2, 2), []int{1}, tensors.New(1, 1, 2, 3))
			return err
		}},
		{"ops nil", "nil", func() error {
			_, err := mustSchedule(t, Linear, 100).EpsFromV(nil, []int{1}, tensors.New(1, 1, 2, 3))
			return err
		}},
	} {
		err := tc.err()
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not mention %q", tc.name, err, tc.want)
		}
	}
}

// TestDDIMCoefs checks DDIM's step coefficients against DDPM's posterior:
// at η = 1 the step is the posterior q(x_{i−1} | x_i, x̂0) with x_i =
// √ᾱ_i x̂0 + √(1−ᾱ_i) ε̂, so cx0 = c0 + ct√ᾱ_i, ceps = ct√(1−ᾱ_i) and
// sigma² = β̃_i; at η = 0 sigma is 0 and cx0² + ceps² = 1 (variance
// preserving), on full and respaced schedules.
func TestDDIMCoefs(t *testing.T) {
	full := mustSchedule(t, Linear, 1000)
	ts, err := SpacedTimesteps(1000, 20, SpacingUniform)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := Respace(full, ts)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*Schedule{"full": full, "respaced": sub} {
		for i := 1; i < s.Len(); i += 1 + s.Len()/7 {
			c0, ct := s.PosteriorMeanCoefs(i)
			cx0, ceps, sigma := s.DDIMCoefs(i, 1)
			if math.Abs(cx0-(c0+ct*s.SqrtAlphaBar(i))) > 1e-12 || math.Abs(ceps-ct*s.SqrtOneMinusAlphaBar(i)) > 1e-9 ||
				math.Abs(sigma*sigma-s.PosteriorVariance(i)) > 1e-12 {
				t.Errorf("%s i=%d η=1: (%v, %v, %v), want (%v, %v, √%v)", name, i, cx0, ceps, sigma,
					c0+ct*s.SqrtAlphaBar(i), ct*s.SqrtOneMinusAlphaBar(i), s.PosteriorVariance(i))
			}
			cx0, ceps, sigma = s.DDIMCoefs(i, 0)
			if sigma != 0 || math.Abs(cx0*cx0+ceps*ceps-1) > 1e-12 {
				t.Errorf("%s i=%d η=0: (%v, %v, %v), want σ = 0 and cx0² + ceps² = 1", name, i, cx0, ceps, sigma)
			}
		}
	}
}
