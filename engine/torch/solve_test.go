//go:build torch

package torch

import (
	"math"
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/inverse/op"
	"github.com/diffinv/diffinv/inverse/solve"
	"github.com/diffinv/diffinv/model"
)

// TestSolveMatchesNative runs DPS (SR ×2 by average pooling, σ_y = 0.05,
// ζ = 0.3, 20 respaced steps, x̂0 clipped) and DDNM (same task, 20 steps,
// η = 0.85) with the same seeds on both engines and checks that the
// reconstructions agree within 5e-5 of their largest value (measured: DPS
// 7.7e-6 on values of about 1; DDNM 3.1e-7 on values of a few hundred, since
// the random-weight golden network is no image prior). The margin covers
// libtorch's thread-count-dependent summation order.
func TestSolveMatchesNative(t *testing.T) {
	ckpt := filepath.Join(goldenDir, "tiny_a.weights.safetensors")
	te, err := FromCheckpoint(ckpt, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer te.Close()
	ne, _, err := model.Load(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	A, err := op.NewSRAvgPool([3]int{1, 16, 16}, 2)
	if err != nil {
		t.Fatal(err)
	}
	noise, err := op.NewGaussian(0.05)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(3))
	x := tensors.Randn(rng, 2, 1, 16, 16)
	for i, v := range tensors.F32(x) {
		tensors.F32(x)[i] = float32(math.Tanh(float64(v)))
	}
	ax, err := A.Forward(x)
	if err != nil {
		t.Fatal(err)
	}
	y, err := noise.Sample(ax, rng)
	if err != nil {
		t.Fatal(err)
	}
	sched, err := diffusion.NewSchedule("linear", 1000, 1e-4, 0.02)
	if err != nil {
		t.Fatal(err)
	}
	opts := map[string]solve.Options{
		"dps":  solve.DPSOptions{Scale: 0.3, Steps: 20, ClipX0: true},
		"ddnm": solve.DDNMOptions{Steps: 20, Eta: 0.85, TravelRepeat: 1},
	}
	for _, method := range []string{"dps", "ddnm"} {
		t.Run(method, func(t *testing.T) {
			var outs [2][]float32
			for k, den := range []diffusion.Denoiser{te, ne} {
				r, err := solve.Solve(method, solve.Prior{Den: den, Sched: sched}, solve.Measurement{A: A, Noise: noise, Y: y}, opts[method], diffusion.ImageRNGs(9, 0, y.Shape()[0]), nil)
				if err != nil {
					t.Fatal(err)
				}
				outs[k] = tensors.F32(r)
			}
			worst, scale := 0.0, 0.0
			for i := range outs[0] {
				worst = math.Max(worst, math.Abs(float64(outs[0][i])-float64(outs[1][i])))
				scale = math.Max(scale, math.Abs(float64(outs[1][i])))
			}
			if worst > 5e-5*scale {
				t.Errorf("%s: torch and native reconstructions differ by %.3g (max |x| %.3g), want ≤ 5e-5 relative", method, worst, scale)
			}
			t.Logf("%s: torch vs native reconstruction max difference %.3g, %.3g relative", method, worst, worst/scale)
		})
	}
}
