package nn

import (
	"fmt"
	"math/rand"
	"testing"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/blas"
)

// randF32 returns a float32 tensor of normal draws.
func randF32(rng *rand.Rand, shape ...int) *tensor.Dense {
	t := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(shape...))
	for i, d := 0, t.Data().([]float32); i < len(d); i++ {
		d[i] = float32(rng.NormFloat64())
	}
	return t
}

// opsOf builds op on float32 nodes of the given shapes and returns the
// forward op and the backward ops found by G.Grad of Σ out, with values for
// the inputs, so benchmarks can call Do directly.
type benchGraph struct {
	vm   G.VM
	out  *G.Node
	grad G.Nodes
}

func newBenchGraph(b *testing.B, rng *rand.Rand, shapes [][]int, build builder, withGrad bool) *benchGraph {
	g := G.NewGraph()
	ns := make([]*G.Node, len(shapes))
	for i, s := range shapes {
		ns[i] = G.NewTensor(g, tensor.Float32, len(s), G.WithShape(s...), G.WithName(fmt.Sprintf("in%d", i)), G.WithValue(randF32(rng, s...)))
	}
	out, err := build(ns)
	if err != nil {
		b.Fatal(err)
	}
	bg := &benchGraph{out: out}
	if withGrad {
		loss := G.Must(G.Sum(out))
		if bg.grad, err = G.Grad(loss, ns...); err != nil {
			b.Fatal(err)
		}
	}
	bg.vm = G.NewTapeMachine(g)
	b.Cleanup(func() { bg.vm.Close() })
	return bg
}

func (bg *benchGraph) run(b *testing.B) {
	bg.vm.Reset()
	if err := bg.vm.RunAll(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkConv2d times the conv forward, and forward+backward (input,
// weight, bias) through a TapeMachine, for UNet-sized layers, reporting the
// effective GFLOP/s (2·N·O·C·KH·KW·OH·OW per GEMM pass, three passes for
// forward+backward).
func BenchmarkConv2d(b *testing.B) {
	b.Log(blas.Info())
	cases := []struct{ n, c, hw, o, k, s, p int }{
		{64, 64, 28, 64, 3, 1, 1},
		{64, 128, 14, 128, 3, 1, 1},
		{64, 128, 14, 128, 1, 1, 0},
		{64, 64, 28, 64, 3, 2, 1},
	}
	for _, tc := range cases {
		for _, bwd := range []bool{false, true} {
			name := fmt.Sprintf("N%d_C%d_%dx%d_O%d_k%d_s%d/fwd", tc.n, tc.c, tc.hw, tc.hw, tc.o, tc.k, tc.s)
			if bwd {
				name = name[:len(name)-3] + "fwdbwd"
			}
			b.Run(name, func(b *testing.B) {
				rng := rand.New(rand.NewSource(1))
				bg := newBenchGraph(b, rng, [][]int{{tc.n, tc.c, tc.hw, tc.hw}, {tc.o, tc.c, tc.k, tc.k}, {tc.o}},
					func(ns []*G.Node) (*G.Node, error) { return Conv2d(ns[0], ns[1], ns[2], tc.s, tc.p) }, bwd)
				bg.run(b)
				oh := (tc.hw+2*tc.p-tc.k)/tc.s + 1
				flop := 2 * float64(tc.n*tc.o*tc.c*tc.k*tc.k*oh*oh)
				if bwd {
					flop *= 3
				}
				b.ResetTimer()
				start := time.Now()
				for i := 0; i < b.N; i++ {
					bg.run(b)
				}
				b.ReportMetric(flop*float64(b.N)/time.Since(start).Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
