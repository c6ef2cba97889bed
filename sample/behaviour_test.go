package sample

import (
	"math"
	"math/rand"
	"reflect"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/internal/analytic"
	"github.com/diffinv/diffinv/internal/tensors"
	"gonum.org/v1/gonum/mat"
	"gorgonia.org/tensor"
)

// TestMixtureWeights: two well-separated components in 2-D with weights
// 0.25 / 0.75; every sampler's fraction of samples nearest the first
// component must be 0.25 within 4.5 binomial standard errors
// (√(p(1−p)/n) ≈ 0.0097 at n = 2000, so ± 0.044).
func TestMixtureWeights(t *testing.T) {
	base := baseSchedule(t)
	cov := mat.NewSymDense(2, []float64{0.04, 0, 0, 0.04})
	means := [][]float64{{-0.6, 0.2}, {0.6, -0.2}}
	den, err := analytic.NewMixture([]analytic.Component{
		{Weight: 1, Mean: means[0], Cov: cov},
		{Weight: 3, Mean: means[1], Cov: cov},
	}, [3]int{1, 1, 2}, base)
	if err != nil {
		t.Fatal(err)
	}
	const n, p = 2000, 0.25
	tol := 4.5 * math.Sqrt(p*(1-p)/n)
	cases := []samplerCase{
		{name: "ddpm", label: "ddpm 1000", steps: 1000, opts: func(o *Options) {}},
		{name: "ddim", label: "ddim eta=0 100", steps: 100, opts: func(o *Options) {}},
		{name: "ddim", label: "ddim eta=0.5 100", steps: 100, opts: func(o *Options) { o.DDIM.Eta = 0.5 }},
		{name: "vp-em", label: "vp-em 500", steps: 500, opts: func(o *Options) {}},
		{name: "pc", label: "pc reverse-diffusion only 500", steps: 500, opts: func(o *Options) { o.PC.Corrector = None }},
		{name: "ald", label: "ald 20 quad", steps: 20, spacing: diffusion.SpacingQuad, opts: aldOpts},
		{name: "ode", label: "ode heun 50", steps: 50, opts: func(o *Options) {}},
		{name: "ode", label: "ode rk4 20", steps: 20, opts: func(o *Options) { o.ODE.Method = RK4 }},
	}
	for ci, c := range cases {
		t.Run(c.label, func(t *testing.T) {
			rngs := rngsFor(int64(300+ci), n)
			xT := priorFrom(rngs, 1, 1, 2)
			o := DefaultOptions()
			c.opts(&o)
			x, err := Run(c.name, den, xT, c.schedule(t, base), o, rngs, nil)
			if err != nil {
				t.Fatal(err)
			}
			xs := tensors.F32(x)
			first := 0
			for k := 0; k < n; k++ {
				var d0, d1 float64
				for i := 0; i < 2; i++ {
					d0 += math.Pow(float64(xs[2*k+i])-means[0][i], 2)
					d1 += math.Pow(float64(xs[2*k+i])-means[1][i], 2)
				}
				if d0 < d1 {
					first++
				}
			}
			frac := float64(first) / n
			t.Logf("weight of the first component %.4f", frac)
			if math.Abs(frac-p) > tol {
				t.Errorf("weight of the first component %.4f, want %g ± %.4f", frac, p, tol)
			}
		})
	}
}

// TestODEDeterministicInvertible: the probability-flow ODE gives the same
// bits twice, takes no random streams, and decoding an encoding (the same
// ODE integrated forwards, from index 0 to K−1, by flow) returns the
// input: the round-trip error of a p-th order method with K steps is
// O(K^−p); the tolerances (2e-4 for Heun at 100 steps, 2e-5 for RK4 at 50)
// are about 5× the errors measured when the test was written, far below the
// data scale (σ ≈ 0.35..0.8), and a sign or scale slip in the ODE gives
// errors of order 1.
func TestODEDeterministicInvertible(t *testing.T) {
	base := baseSchedule(t)
	den := gaussian(t, base)
	rng := rand.New(rand.NewSource(5))
	x0, err := den.Sample(rng, 200)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method string
		steps  int
		tol    float64
	}{
		{Heun, 100, 2e-4},
		{RK4, 50, 2e-5},
	} {
		sched := respaced(t, base, c.steps)
		o := ODEOptions{Method: c.method}
		up := make([]int, sched.Len())
		for k := range up {
			up[k] = k
		}
		xT, err := flow("ode encode", den, x0, sched, up, o, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		// The encoding is distributed as x_T: about N(0, I).
		m, cv := moments(xT)
		for i := range m {
			if math.Abs(m[i]) > 0.3 || math.Abs(cv.At(i, i)-1) > 0.3 {
				t.Errorf("%s: encoded mean[%d] %g var %g, want about 0 and 1", c.method, i, m[i], cv.At(i, i))
			}
		}
		back, err := ProbabilityFlow(den, xT, sched, o, nil)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ProbabilityFlow(den, xT, sched, o, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(tensors.F32(back), tensors.F32(again)) {
			t.Errorf("%s: two decodings of the same x_T differ", c.method)
		}
		worst := 0.0
		for j, v := range tensors.F32(back) {
			worst = math.Max(worst, math.Abs(float64(v-tensors.F32(x0)[j])))
		}
		t.Logf("%s %d steps: max |decode(encode(x0)) − x0| = %.2e", c.method, c.steps, worst)
		if worst > c.tol {
			t.Errorf("%s %d steps: round-trip error %.2e > %.0e", c.method, c.steps, worst, c.tol)
		}
	}
}

// TestDDIMEta0Deterministic: with η = 0 the same x_T gives the same bits
// whatever the random streams (even nil).
func TestDDIMEta0Deterministic(t *testing.T) {
	base := baseSchedule(t)
	den := gaussian(t, base)
	sched := respaced(t, base, 50)
	xT := tensors.Randn(rand.New(rand.NewSource(6)), 64, 1, 2, 2)
	var outs [][]float32
	for _, rngs := range [][]*rand.Rand{rngsFor(1, 64), rngsFor(2, 64), nil} {
		x, err := DDIM(den, xT, sched, DDIMOptions{}, rngs, nil)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, tensors.F32(x))
	}
	for i := 1; i < len(outs); i++ {
		if !reflect.DeepEqual(outs[0], outs[i]) {
			t.Errorf("DDIM η=0 run %d differs from run 0", i)
		}
	}
	// And a stochastic η > 0 does depend on the seed.
	a, _ := DDIM(den, xT, sched, DDIMOptions{Eta: 1}, rngsFor(1, 64), nil)
	b, _ := DDIM(den, xT, sched, DDIMOptions{Eta: 1}, rngsFor(2, 64), nil)
	if reflect.DeepEqual(tensors.F32(a), tensors.F32(b)) {
		t.Errorf("DDIM η=1 ignores the seed")
	}
}

// TestDDIMEta1IsDDPM: on the full schedule, DDIM with η = 1 has σ_t² = β̃_t
// and √(1−ᾱ_{t−1}−β̃_t) ε̂ + √ᾱ_{t−1} x̂0 equal to DDPM's posterior mean, so
// with the same seed it must give DDPM fixed-small's samples (to float32
// rounding) and hence its statistics. Both are compared on the full 1000
// steps and on a respaced 100.
func TestDDIMEta1IsDDPM(t *testing.T) {
	base := baseSchedule(t)
	den := gaussian(t, base)
	for _, k := range []int{1000, 100} {
		sched := respaced(t, base, k)
		xT := tensors.Randn(rand.New(rand.NewSource(8)), 300, 1, 2, 2)
		a, err := DDIM(den, xT, sched, DDIMOptions{Eta: 1}, rngsFor(9, 300), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := DDPM(den, xT, sched, DDPMOptions{Variance: diffusion.VarianceFixedSmall}, rngsFor(9, 300), nil)
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for j := range tensors.F32(a) {
			worst = math.Max(worst, math.Abs(float64(tensors.F32(a)[j]-tensors.F32(b)[j])))
		}
		if worst > 1e-4 {
			t.Errorf("K=%d: DDIM η=1 and DDPM differ by up to %g", k, worst)
		}
	}
}

// fakeVar wraps a denoiser and reports a constant learned-variance output v.
type fakeVar struct {
	diffusion.Denoiser
	v float32
}

func (f fakeVar) EpsVar(xt *tensor.Dense, t []int) (*tensor.Dense, *tensor.Dense, error) {
	eps, err := f.Eps(xt, t)
	if err != nil {
		return nil, nil, err
	}
	v := tensors.Like(xt)
	for i := range tensors.F32(v) {
		tensors.F32(v)[i] = f.v
	}
	return eps, v, nil
}

// TestLearnedRange: v = −1 must reproduce fixed-small and v = +1 fixed-large
// bit for bit (same seed); v = 0 (the geometric mean of the two variances)
// must give an output variance between theirs; a denoiser without a
// variance output is an error.
func TestLearnedRange(t *testing.T) {
	base := baseSchedule(t)
	g := gaussian(t, base)
	sched := respaced(t, base, 50) // few steps: the two variances differ visibly
	xT := tensors.Randn(rand.New(rand.NewSource(10)), 2000, 1, 2, 2)
	run := func(den diffusion.Denoiser, variance string) *tensor.Dense {
		t.Helper()
		x, err := DDPM(den, xT, sched, DDPMOptions{Variance: variance}, rngsFor(11, 2000), nil)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	small, large := run(g, diffusion.VarianceFixedSmall), run(g, diffusion.VarianceFixedLarge)
	if !reflect.DeepEqual(tensors.F32(run(fakeVar{g, -1}, diffusion.VarianceLearnedRange)), tensors.F32(small)) {
		t.Errorf("learned-range with v = −1 differs from fixed-small")
	}
	if !reflect.DeepEqual(tensors.F32(run(fakeVar{g, 1}, diffusion.VarianceLearnedRange)), tensors.F32(large)) {
		t.Errorf("learned-range with v = +1 differs from fixed-large")
	}
	tr := func(x *tensor.Dense) float64 {
		_, c := moments(x)
		return mat.Trace(c)
	}
	ts, tl, tm := tr(small), tr(large), tr(run(fakeVar{g, 0}, diffusion.VarianceLearnedRange))
	if !(ts < tm && tm < tl) {
		t.Errorf("total variance: fixed-small %g, learned v=0 %g, fixed-large %g; want increasing", ts, tm, tl)
	}
	if _, err := DDPM(g, xT, sched, DDPMOptions{Variance: diffusion.VarianceLearnedRange}, rngsFor(1, 2000), nil); err == nil ||
		!strings.Contains(err.Error(), "VarianceDenoiser") {
		t.Errorf("learned-range without a variance output: error %v", err)
	}
}

// TestEquivalences: registry entries that are the same algorithm give the
// same bits: vp-em = pc(euler-maruyama, none); Run = the direct function.
func TestEquivalences(t *testing.T) {
	base := baseSchedule(t)
	den := gaussian(t, base)
	sched := respaced(t, base, 50)
	xT := tensors.Randn(rand.New(rand.NewSource(12)), 32, 1, 2, 2)
	em, err := EulerMaruyama(den, xT, sched, DefaultEMOptions(), rngsFor(1, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	o := DefaultOptions()
	o.PC.Predictor, o.PC.Corrector = EulerMaruyamaPredictor, None
	pcx, err := Run("pc", den, xT, sched, o, rngsFor(1, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tensors.F32(em), tensors.F32(pcx)) {
		t.Errorf("vp-em and pc(euler-maruyama, none) differ")
	}
	direct, _ := DDPM(den, xT, sched, DefaultDDPMOptions(), rngsFor(2, 32), nil)
	viaRun, err := Run("ddpm", den, xT, sched, DefaultOptions(), rngsFor(2, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tensors.F32(direct), tensors.F32(viaRun)) {
		t.Errorf("Run(ddpm) differs from DDPM")
	}
	// x_T is not modified.
	before := append([]float32(nil), tensors.F32(xT)...)
	for _, name := range Names() {
		if _, err := Run(name, den, xT, sched, fastOptions(), rngsFor(3, 32), nil); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(before, tensors.F32(xT)) {
		t.Errorf("a sampler modified x_T")
	}
}

func fastOptions() Options {
	o := DefaultOptions()
	o.ALD.StepsPerLevel = 2
	return o
}

// TestBatchIndependence: changing one sample's x_T must leave the other
// samples' outputs unchanged (same seed): no batch statistics couple them.
func TestBatchIndependence(t *testing.T) {
	base := baseSchedule(t)
	den := gaussian(t, base)
	sched := respaced(t, base, 20)
	xT := tensors.Randn(rand.New(rand.NewSource(13)), 8, 1, 2, 2)
	xT2 := tensors.Clone(xT)
	for i := 0; i < 4; i++ {
		tensors.F32(xT2)[i] *= 3 // sample 0 only
	}
	for _, name := range Names() {
		a, err := Run(name, den, xT, sched, fastOptions(), rngsFor(4, 8), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Run(name, den, xT2, sched, fastOptions(), rngsFor(4, 8), nil)
		if err != nil {
			t.Fatal(err)
		}
		if reflect.DeepEqual(tensors.F32(a)[:4], tensors.F32(b)[:4]) {
			t.Errorf("%s: sample 0 ignores its own x_T", name)
		}
		if !reflect.DeepEqual(tensors.F32(a)[4:], tensors.F32(b)[4:]) {
			t.Errorf("%s: changing sample 0 changed other samples", name)
		}
	}
}

// TestBatchSizeInvariance: every registered sampler gives sample k the same
// bits in a batch of 4 as alone, given the same per-sample stream: its
// noise is drawn from its own stream and every step rule is per sample.
func TestBatchSizeInvariance(t *testing.T) {
	base := baseSchedule(t)
	den := gaussian(t, base)
	sched := respaced(t, base, 20)
	o := fastOptions()
	o.DDIM.Eta = 0.5 // draw noise
	o.ODE.Method = RK4
	const seed, n = 16, 4
	xT := priorFrom(rngsFor(seed, n), 1, 2, 2)
	for _, name := range Names() {
		batch, err := Run(name, den, xT, sched, o, rngsFor(seed, n), nil)
		if err != nil {
			t.Fatal(err)
		}
		for k := 0; k < n; k++ {
			one := tensors.New(1, 1, 2, 2)
			copy(tensors.F32(one), tensors.F32(xT)[4*k:4*k+4])
			x, err := Run(name, den, one, sched, o, diffusion.ImageRNGs(seed, k, 1), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := tensors.F32(x), tensors.F32(batch)[4*k:4*k+4]; !reflect.DeepEqual(got, want) {
				t.Errorf("%s: sample %d alone %v, in a batch of %d %v", name, k, got, n, want)
			}
		}
	}
}

// TestCallback: the callback sees steps 1..total in order, total fixed,
// the state shaped like x_T, the last step's state equal to the result, and
// x̂0 from the samplers that form one (DDPM, DDIM).
func TestCallback(t *testing.T) {
	base := baseSchedule(t)
	den := gaussian(t, base)
	sched := respaced(t, base, 10)
	xT := tensors.Randn(rand.New(rand.NewSource(14)), 4, 1, 2, 2)
	for _, name := range Names() {
		var steps []int
		total := -1
		var last diffusion.Step
		x, err := Run(name, den, xT, sched, fastOptions(), rngsFor(1, 4), func(st diffusion.Step) {
			step, tot := st.Step, st.Total
			if total >= 0 && tot != total {
				t.Errorf("%s: total changed from %d to %d", name, total, tot)
			}
			if st.X == nil || !reflect.DeepEqual(st.X.Shape(), xT.Shape()) {
				t.Fatalf("%s: step %d: x %v, want x_T's shape", name, step, st.X)
			}
			if (st.X0 != nil) != (name == "ddpm" || name == "ddim") {
				t.Errorf("%s: step %d: x̂0 present %v", name, step, st.X0 != nil)
			}
			total = tot
			steps = append(steps, step)
			last = st
		})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(tensors.F32(last.X), tensors.F32(x)) {
			t.Errorf("%s: the last step's x is not the result", name)
		}
		if total < 9 || len(steps) != total {
			t.Errorf("%s: %d progress calls for total %d", name, len(steps), total)
		}
		for i, s := range steps {
			if s != i+1 {
				t.Errorf("%s: progress call %d reported step %d", name, i, s)
				break
			}
		}
	}
}

func TestRegistryAndValidation(t *testing.T) {
	want := []string{"ald", "ddim", "ddpm", "ode", "pc", "vp-em"}
	if got := Names(); !reflect.DeepEqual(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
	base := baseSchedule(t)
	den := gaussian(t, base)
	xT := tensors.Randn(rand.New(rand.NewSource(15)), 2, 1, 2, 2)
	rngs := rngsFor(1, 2)
	with := func(f func(o *Options)) Options { o := DefaultOptions(); f(&o); return o }
	for _, tc := range []struct {
		name, sampler, want string
		den                 diffusion.Denoiser
		xT                  *tensor.Dense
		sched               *diffusion.Schedule
		opts                Options
		rngs                []*rand.Rand
	}{
		{"unknown sampler", "euler", "[ald ddim ddpm ode pc vp-em]", den, xT, base, DefaultOptions(), rngs},
		{"ddpm variance", "ddpm", `variance "small"`, den, xT, base, with(func(o *Options) { o.DDPM.Variance = "small" }), rngs},
		{"ddim eta", "ddim", "eta = -0.5", den, xT, base, with(func(o *Options) { o.DDIM.Eta = -0.5 }), rngs},
		{"ddim eta NaN", "ddim", "eta = NaN", den, xT, base, with(func(o *Options) { o.DDIM.Eta = math.NaN() }), rngs},
		{"pc predictor", "pc", `predictor "heun"`, den, xT, base, with(func(o *Options) { o.PC.Predictor = "heun" }), rngs},
		{"pc corrector", "pc", `corrector "ald"`, den, xT, base, with(func(o *Options) { o.PC.Corrector = "ald" }), rngs},
		{"pc snr", "pc", "snr = 0", den, xT, base, with(func(o *Options) { o.PC.SNR = 0 }), rngs},
		{"pc steps", "pc", "corrector_steps = 0", den, xT, base, with(func(o *Options) { o.PC.CorrectorSteps = 0 }), rngs},
		{"pc nothing", "pc", "does nothing", den, xT, base, with(func(o *Options) { o.PC.Predictor, o.PC.Corrector = None, None }), rngs},
		{"ald step", "ald", "step_size = -1", den, xT, base, with(func(o *Options) { o.ALD.StepSize = -1 }), rngs},
		{"ald steps", "ald", "steps_per_level = 0", den, xT, base, with(func(o *Options) { o.ALD.StepsPerLevel = 0 }), rngs},
		{"ode method", "ode", `method "rk2"`, den, xT, base, with(func(o *Options) { o.ODE.Method = "rk2" }), rngs},
		{"nil denoiser", "ddpm", "nil denoiser", nil, xT, base, DefaultOptions(), rngs},
		{"nil schedule", "ddim", "nil schedule", den, xT, nil, DefaultOptions(), rngs},
		{"nil rngs", "ddpm", "0 random streams for a batch of 2", den, xT, base, DefaultOptions(), nil},
		{"nil rngs pc", "pc", "0 random streams for a batch of 2", den, xT, base, DefaultOptions(), nil},
		{"nil rngs ald", "ald", "0 random streams for a batch of 2", den, xT, base, DefaultOptions(), nil},
		{"nil rngs ddim eta", "ddim", "0 random streams for a batch of 2", den, xT, base, with(func(o *Options) { o.DDIM.Eta = 0.5 }), nil},
		{"rngs count", "vp-em", "3 random streams for a batch of 2", den, xT, base, DefaultOptions(), rngsFor(1, 3)},
		{"rngs count ddim eta 0", "ddim", "1 random streams for a batch of 2", den, xT, base, DefaultOptions(), rngsFor(1, 1)},
		{"nil stream", "ddpm", "random stream 1 of 2 is nil", den, xT, base, DefaultOptions(), []*rand.Rand{rngs[0], nil}},
		{"3-D x_T", "ode", "4 dimensions", den, tensors.New(2, 2, 2), base, DefaultOptions(), rngs},
		{"wrong image shape", "ode", "want 1×2×2", den, tensors.New(2, 1, 3, 3), base, DefaultOptions(), rngs},
	} {
		_, err := Run(tc.sampler, tc.den, tc.xT, tc.sched, tc.opts, tc.rngs, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}
