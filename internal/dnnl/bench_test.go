package dnnl

import (
	"math/rand"
	"os"
	"testing"
)

// BenchmarkConv times each pass of the MNIST UNet's heaviest convolution
// (32 images of 32×28×28, 3×3 → 32: one worker's half of batch 64) on one
// thread, reorders included.
func BenchmarkConv(b *testing.B) {
	if ok, why := Available(); !ok {
		b.Skip(why)
	}
	s := Shape{N: 32, C: 32, H: 28, W: 28, O: 32, KH: 3, KW: 3, Stride: 1, Pad: 1, Bias: true, NHWC: os.Getenv("DNNL_BENCH_NHWC") == "1"}
	rng := rand.New(rand.NewSource(1))
	oh, ow := s.Out()
	x, w, bias := randn(rng, s.N*s.C*s.H*s.W), randn(rng, s.O*s.C*9), randn(rng, s.O)
	y, dy := make([]float32, s.N*s.O*oh*ow), randn(rng, s.N*s.O*oh*ow)
	dx, dw := make([]float32, len(x)), make([]float32, len(w))
	c, err := NewConv(s, 1)
	if err != nil {
		b.Fatal(err)
	}
	flop := 2.0 * float64(s.N*s.O*oh*ow*s.C*9)
	for _, p := range []Pass{Forward, BackwardData, BackwardWeights} {
		b.Run(p.String(), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				var err error
				switch p {
				case Forward:
					err = c.Forward(0, x, w, bias, y)
				case BackwardData:
					err = c.BackwardData(0, w, dy, dx)
				default:
					err = c.BackwardWeights(0, nil, dy, dw)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(flop*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
