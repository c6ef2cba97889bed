package solve_test

import (
	"fmt"
	"math"

	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/internal/analytic"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/inverse/op"
	"github.com/diffinv/diffinv/inverse/solve"
	"gonum.org/v1/gonum/mat"
)

// Noise-free ×2 super-resolution of 4×4 images under a standard Gaussian
// prior with DDNM: every reconstruction reproduces the measurement.
func ExampleSolve() {
	sched, _ := diffusion.NewSchedule(diffusion.Linear, 1000, 0, 0)
	shape := [3]int{1, 4, 4}
	mu := make([]float64, 16)
	cov := mat.NewSymDense(16, nil)
	for i := 0; i < 16; i++ {
		cov.SetSym(i, i, 1)
	}
	den, _ := analytic.NewGaussian(mu, cov, shape, sched)
	A, _ := op.NewSRAvgPool(shape, 2)
	noise, _ := op.NewNoise("clean", 0, 0)

	// Three low-resolution 2×2 measurements.
	y := tensors.FromSlice([]float32{
		0.5, -0.5, 0.25, 0,
		1, 1, 1, 1,
		-0.3, 0.2, 0.1, 0.9,
	}, 3, 1, 2, 2)
	opts, err := solve.DecodeOptions("ddnm", map[string]any{"steps": 50})
	if err != nil {
		fmt.Println(err)
		return
	}
	// Image k draws from diffusion.ImageRNGs(seed, k, 1)[0] whatever the batch.
	x, err := solve.Solve("ddnm", solve.Prior{Den: den, Sched: sched}, solve.Measurement{A: A, Noise: noise, Y: y}, opts, diffusion.ImageRNGs(1, 0, 3), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	ax, _ := A.Forward(x)
	worst := 0.0
	for i, v := range tensors.F32(ax) {
		worst = math.Max(worst, math.Abs(float64(v-tensors.F32(y)[i])))
	}
	fmt.Println(x.Shape(), worst < 1e-4)
	// Output: (3, 1, 4, 4) true
}
