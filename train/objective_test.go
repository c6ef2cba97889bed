package train

import (
	"math"
	"math/rand"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/internal/tensors"
	"gorgonia.org/tensor"
)

func testSchedule(t *testing.T, T int) *diffusion.Schedule {
	t.Helper()
	s, err := diffusion.NewSchedule("linear", T, 1e-3, 0.05)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// levels returns an N×C×H×W batch of pixel levels p/127.5 − 1, including −1 and 1.
func levels(rng *rand.Rand, shape ...int) *tensor.Dense {
	x := tensors.New(shape...)
	v := tensors.F32(x)
	for i := range v {
		v[i] = float32(rng.Intn(256))/127.5 - 1
	}
	v[0], v[1] = -1, 1
	return x
}

// dyadic returns normal draws rounded to multiples of 2^-12, so that adding
// a finite-difference step of 2^-10 is exact in float32.
func dyadic(rng *rand.Rand, shape ...int) *tensor.Dense {
	x := tensors.Randn(rng, shape...)
	for i, v := range tensors.F32(x) {
		tensors.F32(x)[i] = float32(math.Round(float64(v)*4096) / 4096)
	}
	return x
}

func TestTargets(t *testing.T) {
	s := testSchedule(t, 100)
	rng := rand.New(rand.NewSource(3))
	x0, noise := levels(rng, 2, 1, 3, 3), tensors.Randn(rng, 2, 1, 3, 3)
	ts := []int{5, 97}
	xt, err := s.QSample(x0, ts, noise)
	if err != nil {
		t.Fatal(err)
	}
	for _, pred := range []string{"eps", "x0", "v"} {
		o, err := NewObjective(s, pred, false)
		if err != nil {
			t.Fatal(err)
		}
		tg, err := o.Target(x0, noise, ts)
		if err != nil {
			t.Fatal(err)
		}
		for i, got := range tensors.F32(tg) {
			k := i / 9
			a, sd := math.Sqrt(s.AlphaBar(ts[k])), math.Sqrt(1-s.AlphaBar(ts[k]))
			e, x := float64(tensors.F32(noise)[i]), float64(tensors.F32(x0)[i])
			want := map[string]float64{"eps": e, "x0": x, "v": a*e - sd*x}[pred]
			if math.Abs(float64(got)-want) > 1e-6 {
				t.Fatalf("%s target[%d] = %g, want %g", pred, i, got, want)
			}
		}
		// A perfect prediction converts back to x0 exactly (up to float32).
		x0hat, err := o.predX0(xt, tg, ts)
		if err != nil {
			t.Fatal(err)
		}
		for i, got := range tensors.F32(x0hat) {
			if math.Abs(float64(got-tensors.F32(x0)[i])) > 2e-5 {
				t.Fatalf("%s: x̂0[%d] from the target = %g, want x0 = %g", pred, i, got, tensors.F32(x0)[i])
			}
		}
	}
	if _, err := NewObjective(s, "score", false); err == nil {
		t.Error("NewObjective accepted prediction \"score\"")
	}
}

// TestLossGradient checks dL/dout against central finite differences for
// every prediction, with and without the learned variance (t = 0 included,
// so the decoder term is covered).
func TestLossGradient(t *testing.T) {
	s := testSchedule(t, 100)
	for _, tc := range []struct {
		pred   string
		sigma  bool
		weight string
	}{{"eps", false, ""}, {"x0", false, ""}, {"v", false, ""}, {"eps", true, ""}, {"x0", true, ""}, {"v", true, ""},
		{"eps", false, config.WeightP2}, {"v", false, config.WeightMinSNR}, {"x0", true, config.WeightMinSNR}} {
		rng := rand.New(rand.NewSource(7))
		n, c, h, w := 4, 2, 3, 3
		x0, noise := levels(rng, n, c, h, w), tensors.Randn(rng, n, c, h, w)
		ts := []int{0, 1, 50, 99}
		xt, _ := s.QSample(x0, ts, noise)
		o, _ := NewObjective(s, tc.pred, tc.sigma)
		var err error
		if o.Weights, err = LossWeights(s, tc.pred, tc.weight, 0, 1); err != nil {
			t.Fatal(err)
		}
		oc := c
		if tc.sigma {
			oc = 2 * c
			o.Lambda = 0.3 // large enough that the VB gradient is well above rounding
		}
		out := dyadic(rng, n, oc, h, w)
		vals := tensors.F32(out)
		if tc.sigma {
			// Mean channels near the target, so that the decoder term at
			// t = 0 is not a cancelling difference of two CDFs ≈ 1, and
			// variance channels in [−1, 1].
			tg, _ := o.Target(x0, noise, ts)
			for k := 0; k < n; k++ {
				for j := 0; j < c*h*w; j++ {
					v := float64(tensors.F32(tg)[k*c*h*w+j]) + 0.05*float64(vals[k*oc*h*w+j])
					vals[k*oc*h*w+j] = float32(math.Round(v*4096) / 4096)
				}
			}
			for k := 0; k < n; k++ {
				for j := c * h * w; j < oc*h*w; j++ {
					vals[k*oc*h*w+j] = float32(math.Round(math.Tanh(float64(vals[k*oc*h*w+j]))*4096) / 4096)
				}
			}
		}
		terms, dout, err := o.Loss(x0, xt, noise, ts, out)
		if err != nil {
			t.Fatal(err)
		}
		if tc.sigma != (terms.VB != 0) || math.Abs(terms.Loss-terms.Weighted-terms.VB) > 1e-12 ||
			(tc.weight == "") != (terms.Weighted == terms.MSE) {
			t.Fatalf("%+v: terms %+v", tc, terms)
		}
		g := tensors.F32(dout)
		const step = 1.0 / 16384 // exact in float32 for the dyadic values of out
		for i := range vals {
			v := vals[i]
			vals[i] = v + step
			lp, _, _ := o.Loss(x0, xt, noise, ts, out)
			vals[i] = v - step
			lm, _, _ := o.Loss(x0, xt, noise, ts, out)
			vals[i] = v
			fd := (lp.Loss - lm.Loss) / (2 * step)
			if tc.sigma && i%(oc*h*w) < c*h*w {
				// Mean channel: the VB term's dependence is stopped.
				fd = (lp.Weighted - lm.Weighted) / (2 * step)
			}
			if math.Abs(float64(g[i])-fd) > 1e-3*math.Abs(fd)+1e-6 {
				t.Fatalf("%+v: dL/dout[%d] = %g, finite difference %g", tc, i, g[i], fd)
			}
		}
		if tc.sigma { // stop-gradient: the mean channels see only the MSE
			plain, _ := NewObjective(s, tc.pred, false)
			plain.Weights = o.Weights
			mean := tensors.New(n, c, h, w)
			for k := 0; k < n; k++ {
				copy(tensors.F32(mean)[k*c*h*w:(k+1)*c*h*w], vals[k*oc*h*w:k*oc*h*w+c*h*w])
			}
			pt, pg, _ := plain.Loss(x0, xt, noise, ts, mean)
			if pt.MSE != terms.MSE || pt.Weighted != terms.Weighted {
				t.Fatalf("%+v: hybrid MSE %g (weighted %g), plain MSE %g (weighted %g)", tc, terms.MSE, terms.Weighted, pt.MSE, pt.Weighted)
			}
			for k := 0; k < n; k++ {
				for j := 0; j < c*h*w; j++ {
					if a, b := g[k*oc*h*w+j], tensors.F32(pg)[k*c*h*w+j]; a != b {
						t.Fatalf("%+v: mean-channel gradient %g, plain MSE gradient %g", tc, a, b)
					}
				}
			}
		}
	}
}

// TestLossWeights: each scheme's weights in closed form at a few timesteps,
// and the same weighted loss whichever quantity the network predicts: an
// x̂0, written as the ε̂, x̂0 or v̂ it implies, is charged alike, because
// both schemes are defined on one reference error and converted.
func TestLossWeights(t *testing.T) {
	s := testSchedule(t, 100)
	snr := func(i int) float64 { ab := s.AlphaBar(i); return ab / (1 - ab) }
	for _, tc := range []struct {
		scheme   string
		gamma, k float64
		epsW     func(snr float64) float64 // the weight on the ε error
	}{
		{config.WeightMinSNR, 0, 1, func(r float64) float64 { return math.Min(r, 5) / r }},
		{config.WeightMinSNR, 2, 1, func(r float64) float64 { return math.Min(r, 2) / r }},
		{config.WeightP2, 0, 1, func(r float64) float64 { return 1 / (1 + r) }},
		{config.WeightP2, 0.5, 3, func(r float64) float64 { return math.Pow(3+r, -0.5) }},
	} {
		w, err := LossWeights(s, "eps", tc.scheme, tc.gamma, tc.k)
		if err != nil {
			t.Fatal(err)
		}
		var below, above bool // the schedule spans SNRs on both sides of min_snr's γ
		for _, i := range []int{0, 10, 40, 99} {
			if want := tc.epsW(snr(i)); math.Abs(w[i]-want) > 1e-12*want {
				t.Errorf("%s γ=%g k=%g: weight at t=%d (SNR %.4g) %g, want %g", tc.scheme, tc.gamma, tc.k, i, snr(i), w[i], want)
			}
			below, above = below || w[i] == 1, above || w[i] < 1
		}
		if tc.scheme == config.WeightMinSNR && !(below && above) {
			t.Errorf("%s γ=%g: weights do not span both regimes", tc.scheme, tc.gamma)
		}

		// One x̂0 prediction, three parameterisations, one weighted loss.
		rng := rand.New(rand.NewSource(11))
		x0, noise := levels(rng, 4, 1, 3, 3), tensors.Randn(rng, 4, 1, 3, 3)
		ts := []int{0, 10, 40, 99}
		xt, _ := s.QSample(x0, ts, noise)
		x0hat := tensors.Randn(rng, 4, 1, 3, 3)
		epsHat, _ := s.EpsFromX0(xt, ts, x0hat)
		vHat, _ := s.VFromEps(x0hat, ts, epsHat)
		var losses []float64
		for pred, out := range map[string]*tensor.Dense{"eps": epsHat, "x0": x0hat, "v": vHat} {
			o, _ := NewObjective(s, pred, false)
			if o.Weights, err = LossWeights(s, pred, tc.scheme, tc.gamma, tc.k); err != nil {
				t.Fatal(err)
			}
			terms, _, err := o.Loss(x0, xt, noise, ts, out)
			if err != nil {
				t.Fatal(err)
			}
			losses = append(losses, terms.Weighted)
		}
		for _, l := range losses[1:] {
			if math.Abs(l-losses[0]) > 1e-4*losses[0] {
				t.Errorf("%s γ=%g: weighted losses of one x̂0 under eps, x0 and v differ: %v", tc.scheme, tc.gamma, losses)
			}
		}
	}
	// The cosine schedule's last step has an SNR near 0 (ᾱ_T ≈ 1e-8):
	// every scheme must still give finite weights there.
	cos, err := diffusion.NewSchedule("cosine", 1000, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, scheme := range []string{config.WeightMinSNR, config.WeightP2} {
		for _, pred := range []string{"eps", "x0", "v"} {
			if _, err := LossWeights(cos, pred, scheme, 0, 0); err != nil {
				t.Errorf("cosine schedule, %s, %s: %v", scheme, pred, err)
			}
		}
	}
	// min_snr ignores k, so a k that p2 would refuse must not stop it
	// (config validation checks k only under p2 too).
	if w, err := LossWeights(s, "eps", config.WeightMinSNR, 0, -2); err != nil || len(w) != s.Len() {
		t.Errorf("min_snr with k = -2: %d weights, %v; want %d weights and no error", len(w), err, s.Len())
	}
	if w, err := LossWeights(s, "eps", config.WeightUniform, 0, 1); w != nil || err != nil {
		t.Errorf("uniform: %v, %v; want nil weights", w, err)
	}
	for _, bad := range []struct {
		pred, scheme string
		gamma, k     float64
		want         string
	}{
		{"eps", "snr", 0, 1, `"snr"`},
		{"eps", config.WeightP2, -1, 1, "loss_weight_gamma -1"},
		{"eps", config.WeightP2, 1, -2, "loss_weight_k -2"},
		{"score", config.WeightMinSNR, 0, 1, `"score"`},
	} {
		if _, err := LossWeights(s, bad.pred, bad.scheme, bad.gamma, bad.k); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("LossWeights(%q, %q, %g, %g): error %v, want one mentioning %s", bad.pred, bad.scheme, bad.gamma, bad.k, err, bad.want)
		}
	}
	o, _ := NewObjective(s, "eps", false)
	o.Weights = make([]float64, 7)
	x := tensors.New(1, 1, 2, 2)
	if _, _, err := o.Loss(x, x, x, []int{3}, x); err == nil || !strings.Contains(err.Error(), "7 timestep weights") {
		t.Errorf("weights of the wrong length: error %v", err)
	}
}

// TestVBClosedForm: with the true ε as the mean prediction, the KL term is
// 0 at the posterior variance (v = −1) and ½(−1 + log β − log β̃ + β̃/β) per
// dimension at v = +1.
func TestVBClosedForm(t *testing.T) {
	s := testSchedule(t, 100)
	rng := rand.New(rand.NewSource(11))
	n, c, h, w := 3, 1, 4, 4
	x0, noise := levels(rng, n, c, h, w), tensors.Randn(rng, n, c, h, w)
	ts := []int{1, 40, 99}
	xt, _ := s.QSample(x0, ts, noise)
	o, _ := NewObjective(s, "eps", true)
	for _, v := range []float32{-1, 1} {
		out := tensors.New(n, 2*c, h, w)
		d := c * h * w
		for k := 0; k < n; k++ {
			copy(tensors.F32(out)[2*k*d:], tensors.F32(noise)[k*d:(k+1)*d])
			for j := 0; j < d; j++ {
				tensors.F32(out)[2*k*d+d+j] = v
			}
		}
		terms, _, err := o.Loss(x0, xt, noise, ts, out)
		if err != nil {
			t.Fatal(err)
		}
		var want float64
		if v == 1 {
			for _, ti := range ts {
				lb, lbt := math.Log(s.Beta(ti)), math.Log(s.PosteriorVariance(ti))
				want += HybridLambda * 100 * 0.5 * (-1 + lb - lbt + math.Exp(lbt-lb)) / math.Ln2
			}
			want /= float64(n)
		}
		if math.Abs(terms.VB-want) > 1e-6*want+1e-9 || terms.MSE != 0 {
			t.Errorf("v = %g: VB = %.9g, MSE = %g; want VB %.9g, MSE 0", v, terms.VB, terms.MSE, want)
		}
	}
}

func TestLossShapeErrors(t *testing.T) {
	s := testSchedule(t, 10)
	x := tensors.New(2, 1, 2, 2)
	o, _ := NewObjective(s, "eps", true)
	if _, _, err := o.Loss(x, x, x, []int{0, 1}, tensors.New(2, 1, 2, 2)); err == nil {
		t.Error("a 1-channel output was accepted for learn_sigma (want 2 channels)")
	}
	o.LearnSigma = false
	if _, _, err := o.Loss(x, x, x, []int{0, 10}, x); err == nil {
		t.Error("timestep 10 accepted for T = 10")
	}
}
