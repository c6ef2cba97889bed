package metrics_test

import (
	"fmt"

	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/metrics"
)

// PSNR of a batch in [-1, 1]: an error of 0.2 there is 0.1 on [0, 1], 20 dB.
func ExamplePSNRBatch() {
	x := tensors.FromSlice([]float32{0, 0, 0, 0}, 1, 1, 2, 2)
	y := tensors.FromSlice([]float32{0.2, -0.2, 0.2, -0.2}, 1, 1, 2, 2)
	p, err := metrics.PSNRBatch(x, y)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%.2f dB\n", p[0])
	// Output: 20.00 dB
}
