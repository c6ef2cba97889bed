package nn

import (
	"fmt"
	"math/rand"
	"testing"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/internal/blas"
)

// randF32 returns a float32 tensor of normal draws.
func randF32(rng *rand.Rand, shape ...int) *tensor.Dense {
	t := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(shape...))
	for i, d := 0, t.Data().([]float32); i < len(d); i++ {
		d[i] = float32(rng.NormFloat64())
	}
	return t
}

// benchGraph is a graph of one op on random float32 inputs, optionally with
// its backward pass for a random output gradient, run by a TapeMachine.
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
		// the output gradient is an input: only our backward ops run
		dy := G.NewTensor(g, tensor.Float32, out.Dims(), G.WithShape(out.Shape().Clone()...), G.WithName("dy"), G.WithValue(randF32(rng, out.Shape()...)))
		if bg.grad, err = G.Backpropagate(G.Nodes{out}, G.Nodes{dy}, ns); err != nil {
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

// benchOp times build on random inputs of the given shapes, forward only and
// forward+backward.
func benchOp(b *testing.B, name string, shapes [][]int, build builder) {
	for _, bwd := range []bool{false, true} {
		sub := name + "/fwd"
		if bwd {
			sub = name + "/fwdbwd"
		}
		b.Run(sub, func(b *testing.B) {
			bg := newBenchGraph(b, rand.New(rand.NewSource(1)), shapes, build, bwd)
			bg.run(b)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				bg.run(b)
			}
		})
	}
}

// BenchmarkOps times the other ops at the sizes of the MNIST UNet (batch 64).
func BenchmarkOps(b *testing.B) {
	x := []int{64, 64, 28, 28}
	c := []int{64}
	benchOp(b, "GroupNorm", [][]int{x, c, c}, func(ns []*G.Node) (*G.Node, error) { return GroupNorm(ns[0], ns[1], ns[2], 32, 1e-5) })
	benchOp(b, "GroupNormSiLU", [][]int{x, c, c}, func(ns []*G.Node) (*G.Node, error) { return GroupNormSiLU(ns[0], ns[1], ns[2], 32, 1e-5) })
	benchOp(b, "SiLU", [][]int{x}, func(ns []*G.Node) (*G.Node, error) { return SiLU(ns[0]) })
	benchOp(b, "Add", [][]int{x, x}, func(ns []*G.Node) (*G.Node, error) { return Add(ns[0], ns[1]) })
	benchOp(b, "Upsample2x", [][]int{{64, 64, 14, 14}}, func(ns []*G.Node) (*G.Node, error) { return Upsample2x(ns[0]) })
	benchOp(b, "AvgPool2x", [][]int{x}, func(ns []*G.Node) (*G.Node, error) { return AvgPool2x(ns[0]) })
	benchOp(b, "Concat", [][]int{x, x}, func(ns []*G.Node) (*G.Node, error) { return Concat(ns[0], ns[1]) })
	benchOp(b, "Linear", [][]int{{64, 256}, {256, 256}, {256}}, func(ns []*G.Node) (*G.Node, error) { return Linear(ns[0], ns[1], ns[2]) })
	benchOp(b, "QKVAttention", [][]int{{64, 384, 14, 14}}, func(ns []*G.Node) (*G.Node, error) { return QKVAttention(ns[0], 4, true) })
}
