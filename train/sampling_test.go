package train

import (
	"context"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/diffinv/diffinv/internal/tensors"
	"gorgonia.org/tensor"
)

// linearNet outputs c_t·x_t + d (a stand-in network with a known Jacobian).
type linearNet struct{ d float64 }

func (l linearNet) c(t int) float64 { return 0.3 + 0.001*float64(t) }

func (l linearNet) Eps(xt *tensor.Dense, t []int) (*tensor.Dense, error) {
	out := tensors.Like(xt)
	per := len(tensors.F32(xt)) / len(t)
	for i, v := range tensors.F32(xt) {
		tensors.F32(out)[i] = float32(l.c(t[i/per])*float64(v) + l.d)
	}
	return out, nil
}

func (l linearNet) EpsVJP(xt *tensor.Dense, t []int, v *tensor.Dense) (*tensor.Dense, *tensor.Dense, error) {
	out, _ := l.Eps(xt, t)
	g := tensors.Like(v)
	per := len(tensors.F32(v)) / len(t)
	for i, x := range tensors.F32(v) {
		tensors.F32(g)[i] = float32(l.c(t[i/per]) * float64(x))
	}
	return out, g, nil
}

func TestPredictionDenoiser(t *testing.T) {
	s := testSchedule(t, 100)
	rng := rand.New(rand.NewSource(2))
	xt, v := tensors.Randn(rng, 2, 1, 2, 2), tensors.Randn(rng, 2, 1, 2, 2)
	ts := []int{3, 80}
	net := linearNet{d: 0.1}
	for _, pred := range []string{"eps", "x0", "v"} {
		den, err := PredictionDenoiser(net, s, pred)
		if err != nil {
			t.Fatal(err)
		}
		eps, vjp, err := den.EpsVJP(xt, ts, v)
		if err != nil {
			t.Fatal(err)
		}
		for i := range tensors.F32(xt) {
			k := i / 4
			a, sd, c := math.Sqrt(s.AlphaBar(ts[k])), math.Sqrt(1-s.AlphaBar(ts[k])), net.c(ts[k])
			x, vi := float64(tensors.F32(xt)[i]), float64(tensors.F32(v)[i])
			out := c*x + net.d
			var wantEps, wantVJP float64
			switch pred {
			case "eps":
				wantEps, wantVJP = out, c*vi
			case "x0": // ε = (x − a·out)/s
				wantEps, wantVJP = (x-a*out)/sd, (1-a*c)/sd*vi
			case "v": // ε = s·x + a·out
				wantEps, wantVJP = sd*x+a*out, (sd+a*c)*vi
			}
			tol := 1e-4 * (1 + math.Abs(wantEps))
			if math.Abs(float64(tensors.F32(eps)[i])-wantEps) > tol || math.Abs(float64(tensors.F32(vjp)[i])-wantVJP) > 1e-4*(1+math.Abs(wantVJP)) {
				t.Fatalf("%s[%d]: ε %g vjp %g, want %g and %g", pred, i, tensors.F32(eps)[i], tensors.F32(vjp)[i], wantEps, wantVJP)
			}
		}
	}
	if _, err := PredictionDenoiser(net, s, "score"); err == nil {
		t.Error("prediction \"score\" accepted")
	}
}

// TestUNetSampler writes EMA sample grids of a tiny UNet run.
func TestUNetSampler(t *testing.T) {
	dir := t.TempDir()
	cfg := tinyUNetConfig(dir)
	cfg.Diffusion.Prediction = "v"
	cfg.Train.Steps, cfg.Train.SampleEvery = 2, 2
	sampler, err := UNetSampler(cfg, 4, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	var last *tensor.Dense
	keep := func(step int, ema map[string]*tensor.Dense) (*tensor.Dense, error) {
		x, err := sampler(step, ema)
		last = x
		return x, err
	}
	if err := Run(context.Background(), cfg, quiet(RunOptions{NewModel: NewUNet, Dataset: testData(t, 10), Sample: keep})); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, SampleDir, "step-00000002.png")); err != nil {
		t.Fatal(err)
	}
	if !last.Shape().Eq(tensor.Shape{4, 1, 8, 8}) {
		t.Fatalf("samples of shape %v, want [4 1 8 8]", last.Shape())
	}
	for _, v := range tensors.F32(last) {
		if !(v >= -1 && v <= 1) {
			t.Fatalf("sample value %g outside [-1, 1] (DDIM's last step returns the clipped x̂0)", v)
		}
	}
	c := readCkpt(t, dir, 2)
	again, err := sampler(2, c.EMA)
	if err != nil {
		t.Fatal(err)
	}
	if !equalF32(tensors.F32(again), tensors.F32(last)) {
		t.Error("the sampler gave other samples for the same EMA weights")
	}
	if _, err := UNetSampler(cfg, 4, 101, 3); err == nil {
		t.Error("101 sampling steps accepted for T = 100")
	}
}
