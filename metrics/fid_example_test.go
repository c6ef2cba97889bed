package metrics_test

import (
	"fmt"

	"gonum.org/v1/gonum/mat"

	"github.com/diffinv/diffinv/metrics"
)

// The Fréchet distance between N(μ1, Σ1) and N(μ2, Σ2) with diagonal
// covariances is ‖μ1−μ2‖² + Σ(√σ1ᵢ − √σ2ᵢ)²: here 1 + (2−3)² + (1−1)² = 2.
func ExampleFrechetDistance() {
	a := metrics.Gaussian{Mean: []float64{1, 0}, Cov: mat.NewSymDense(2, []float64{4, 0, 0, 1})}
	b := metrics.Gaussian{Mean: []float64{0, 0}, Cov: mat.NewSymDense(2, []float64{9, 0, 0, 1})}
	d, err := metrics.FrechetDistance(a, b)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%.6f\n", d)
	// Output: 2.000000
}

// FID of a feature set (rows are samples) with a translated copy of itself
// is the squared length of the translation: the covariances agree.
func ExampleFID() {
	a := mat.NewDense(4, 2, []float64{0, 0, 1, 0, 0, 2, 1, 2})
	b := mat.NewDense(4, 2, []float64{3, 4, 4, 4, 3, 6, 4, 6})
	fid, err := metrics.FID(a, b)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%.6f\n", fid)
	// Output: 25.000000
}
