package sample_test

import (
	"fmt"

	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/internal/analytic"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/sample"
	"gonum.org/v1/gonum/mat"
)

// Sampling 500 points of a 1-D Gaussian N(0.5, 0.04) with 50 DDIM steps,
// using its exact denoiser in place of a network.
func ExampleRun() {
	base, err := diffusion.NewSchedule(diffusion.Linear, 1000, 0, 0)
	if err != nil {
		panic(err)
	}
	sched, err := diffusion.SpacedSchedule(base, 50, diffusion.SpacingUniform)
	if err != nil {
		panic(err)
	}
	den, err := analytic.NewGaussian([]float64{0.5}, mat.NewSymDense(1, []float64{0.04}), [3]int{1, 1, 1}, base)
	if err != nil {
		panic(err)
	}
	// One random stream per sample: x_T here; the sampler's noise, for a
	// stochastic sampler, from the same streams.
	rngs := diffusion.ImageRNGs(1, 0, 500)
	xT := tensors.New(500, 1, 1, 1)
	for k, r := range rngs {
		tensors.F32(xT)[k] = float32(r.NormFloat64())
	}
	steps := 0
	x, err := sample.Run("ddim", den, xT, sched, sample.DefaultOptions(), rngs, func(st diffusion.Step) { steps = st.Total })
	if err != nil {
		panic(err)
	}
	var mean float64
	for _, v := range tensors.F32(x) {
		mean += float64(v) / 500
	}
	fmt.Printf("shape %v, %d steps, mean %.1f\n", x.Shape(), steps, mean)
	// Output: shape (500, 1, 1, 1), 50 steps, mean 0.5
}
