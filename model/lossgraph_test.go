package model

import (
	"errors"
	"math"
	"math/rand"
	"sort"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/internal/tensors"
)

// epsMSE is the LossFunc mean((out[:, :c] − target)²), target N×c×H×W,
// with its gradient (zero on the variance channels).
func epsMSE(target *tensor.Dense, c int) LossFunc {
	return func(out *tensor.Dense) (float64, *tensor.Dense, error) {
		s := out.Shape()
		n, k, hw := s[0], s[1], s[2]*s[3]
		y, tg := tensors.F32(out), tensors.F32(target)
		d := tensors.Like(out)
		dd := tensors.F32(d)
		count := float64(n * c * hw)
		var sum float64
		for i := 0; i < n; i++ {
			for j := 0; j < c*hw; j++ {
				r := float64(y[i*k*hw+j]) - float64(tg[i*c*hw+j])
				sum += r * r
				dd[i*k*hw+j] = float32(2 * r / count)
			}
		}
		return sum / count, d, nil
	}
}

// linearLoss is the LossFunc sum(out ⊙ r), whose dL/dout is r.
func linearLoss(r *tensor.Dense) LossFunc {
	return func(out *tensor.Dense) (float64, *tensor.Dense, error) {
		return dot(tensors.F32(out), tensors.F32(r)), tensors.Clone(r), nil
	}
}

// TestLossGraphEqualsTrainGraph: with the MSE over the ε channels as the
// external loss, LossGraph.Step gives TrainGraph.Step's loss and parameter
// gradients under the same dropout seed, with and without learn_sigma.
func TestLossGraphEqualsTrainGraph(t *testing.T) {
	for _, learnSigma := range []bool{false, true} {
		cfg := tinyConfig()
		cfg.LearnSigma = learnSigma
		rng := rand.New(rand.NewSource(21))
		u, err := New(cfg, rng)
		if err != nil {
			t.Fatal(err)
		}
		randomise(u, rng)
		x := tensors.Randn(rng, 2, 2, 8, 8)
		target := tensors.Randn(rng, 2, 2, 8, 8)
		ts := []int{3, 70}
		tgRng, lgRng := rand.New(rand.NewSource(0)), rand.New(rand.NewSource(0))
		tg, err := u.NewTrainGraph(2, tgRng)
		if err != nil {
			t.Fatal(err)
		}
		lg, err := u.NewLossGraph(2, lgRng)
		if err != nil {
			t.Fatal(err)
		}
		for _, seed := range []int64{5, 6} {
			tgRng.Seed(seed)
			want, err := tg.Step(x, ts, target)
			if err != nil {
				t.Fatal(err)
			}
			lgRng.Seed(seed)
			got, err := lg.Step(x, ts, epsMSE(target, 2))
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got-want) > 1e-5*want {
				t.Errorf("learn_sigma %v seed %d: loss %v, TrainGraph's %v", learnSigma, seed, got, want)
			}
			for name, wg := range tg.Grads() {
				w, g := tensors.F32(wg), tensors.F32(lg.Grads()[name])
				var scale, diff float64
				for i := range w {
					scale = math.Max(scale, math.Abs(float64(w[i])))
					diff = math.Max(diff, math.Abs(float64(w[i])-float64(g[i])))
				}
				if diff > 1e-4*scale+1e-7 {
					t.Errorf("learn_sigma %v seed %d: gradient of %s differs by %g (max |g| %g)", learnSigma, seed, name, diff, scale)
				}
			}
		}
	}
}

// TestLossGraphFiniteDifferences: with the linear loss sum(out ⊙ R), the
// parameter gradients of LossGraph.Step match central differences of the
// loss (dropout masks fixed by reseeding), along a random direction in
// parameter space and for the largest single entries of a few tensors.
func TestLossGraphFiniteDifferences(t *testing.T) {
	cfg := tinyConfig()
	cfg.LearnSigma = true
	rng := rand.New(rand.NewSource(31))
	u, err := New(cfg, rng)
	if err != nil {
		t.Fatal(err)
	}
	randomise(u, rng)
	x := tensors.Randn(rng, 2, 2, 8, 8)
	r := tensors.Randn(rng, 2, 4, 8, 8)
	ts := []int{10, 400}
	drop := rand.New(rand.NewSource(0))
	lg, err := u.NewLossGraph(2, drop)
	if err != nil {
		t.Fatal(err)
	}
	const seed = 77
	f := func() float64 {
		drop.Seed(seed)
		l, err := lg.Step(x, ts, linearLoss(r))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	f()
	grads := map[string][]float32{}
	for name, g := range lg.Grads() {
		grads[name] = append([]float32(nil), tensors.F32(g)...)
	}
	params := u.Params()
	names := make([]string, 0, len(params))
	for name := range params {
		names = append(names, name)
	}
	sort.Strings(names)

	// Directional derivative along a random unit-scale direction v.
	dirs := map[string][]float32{}
	var want float64
	for _, name := range names {
		v := make([]float32, len(grads[name]))
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		dirs[name] = v
		want += dot(v, grads[name])
	}
	const h = 1e-3
	shift := func(s float32) {
		for _, name := range names {
			p := tensors.F32(params[name])
			for i, v := range dirs[name] {
				p[i] += s * v
			}
		}
	}
	shift(h)
	fp := f()
	shift(-2 * h)
	fm := f()
	shift(h)
	if got := (fp - fm) / (2 * h); math.Abs(got-want) > 2e-2*math.Abs(want) {
		t.Errorf("directional derivative: finite difference %v, gradient %v", got, want)
	}

	// Single entries: the largest gradient entry of a few tensors.
	for _, name := range []string{"out.2.weight", "out.2.bias", "time_embed.0.weight", "input_blocks.0.0.weight"} {
		g, ok := grads[name]
		if !ok {
			t.Fatalf("no parameter %s", name)
		}
		best := 0
		for i := range g {
			if math.Abs(float64(g[i])) > math.Abs(float64(g[best])) {
				best = i
			}
		}
		p := tensors.F32(params[name])
		old := p[best]
		const eh = 1e-2
		p[best] = old + eh
		fp := f()
		p[best] = old - eh
		fm := f()
		p[best] = old
		fd := (fp - fm) / (2 * eh)
		if math.Abs(fd-float64(g[best])) > 2e-2*math.Abs(float64(g[best]))+1e-3 {
			t.Errorf("%s[%d]: finite difference %v, gradient %v", name, best, fd, g[best])
		}
	}
}

// TestLossGraphOverwritesAndErrors: a second Step overwrites the
// gradients; bad losses and inputs give errors naming the problem.
func TestLossGraphOverwritesAndErrors(t *testing.T) {
	cfg := tinyConfig()
	cfg.Dropout = 0
	rng := rand.New(rand.NewSource(41))
	u, err := New(cfg, rng)
	if err != nil {
		t.Fatal(err)
	}
	randomise(u, rng)
	x := tensors.Randn(rng, 2, 2, 8, 8)
	r := tensors.Randn(rng, 2, 2, 8, 8)
	ts := []int{1, 2}
	lg, err := u.NewLossGraph(2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lg.Step(x, ts, linearLoss(r)); err != nil {
		t.Fatal(err)
	}
	first := map[string][]float32{}
	for name, g := range lg.Grads() {
		first[name] = append([]float32(nil), tensors.F32(g)...)
	}
	if _, err := lg.Step(x, ts, linearLoss(r)); err != nil {
		t.Fatal(err)
	}
	for name, g := range lg.Grads() {
		for i, v := range tensors.F32(g) {
			if v != first[name][i] {
				t.Fatalf("second Step: gradient of %s[%d] is %v, the first Step's %v (accumulated?)", name, i, v, first[name][i])
			}
		}
	}
	// Eval mode equals Forward.
	var seen *tensor.Dense
	lg.SetTraining(false)
	if _, err := lg.Step(x, ts, func(out *tensor.Dense) (float64, *tensor.Dense, error) {
		seen = tensors.Clone(out)
		return 0, tensors.Like(out), nil
	}); err != nil {
		t.Fatal(err)
	}
	fw, err := u.Forward(x, ts)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range tensors.F32(fw) {
		if math.Abs(float64(v-tensors.F32(seen)[i])) > 1e-5*(1+math.Abs(float64(v))) {
			t.Fatalf("output[%d] %v, Forward's %v", i, tensors.F32(seen)[i], v)
		}
	}

	boom := errors.New("boom")
	cases := []struct {
		name string
		x    *tensor.Dense
		t    []int
		loss LossFunc
		want string
	}{
		{"loss error", x, ts, func(*tensor.Dense) (float64, *tensor.Dense, error) { return 0, nil, boom }, "boom"},
		{"nil dout", x, ts, func(*tensor.Dense) (float64, *tensor.Dense, error) { return 1, nil, nil }, "dL/dout"},
		{"bad dout shape", x, ts, func(*tensor.Dense) (float64, *tensor.Dense, error) { return 1, tensors.New(2, 4, 8, 8), nil }, "dL/dout"},
		{"nil loss", x, ts, nil, "nil loss"},
		{"batch", tensors.New(1, 2, 8, 8), []int{1}, linearLoss(r), "batch"},
	}
	for _, c := range cases {
		_, err := lg.Step(c.x, c.t, c.loss)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
		if c.name == "loss error" && !errors.Is(err, boom) {
			t.Errorf("loss error not wrapped: %v", err)
		}
	}
	// The graph still works after the errors.
	if _, err := lg.Step(x, ts, linearLoss(r)); err != nil {
		t.Fatalf("Step after errors: %v", err)
	}
}
