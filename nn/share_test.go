package nn

import (
	"math"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// shareGraph builds a small residual network with a skip connection, a
// squared-error loss in gorgonia's own ops (which may overwrite their inputs
// and reuse registers) and the gradients of every input: the situations in
// which a shared buffer could be overwritten while still needed. nhwc builds
// it from the channels-last ops of the bf16 engine.
func shareGraph(t *testing.T, nhwc bool) (g *G.ExprGraph, loss *G.Node, grads G.Nodes) {
	t.Helper()
	rng := rand.New(rand.NewSource(5))
	g = G.NewGraph()
	in := func(name string, shape ...int) *G.Node {
		return G.NewTensor(g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(name), G.WithValue(randF32(rng, shape...)))
	}
	x := in("x", 4, 8, 8, 8)
	w1, b1 := in("w1", 8, 8, 3, 3), in("b1", 8)
	w2, b2 := in("w2", 8, 8, 3, 3), in("b2", 8)
	gm, bt := in("gamma", 8), in("beta", 8)
	emb := in("emb", 4, 8)
	conv, norm, addc, up, pool, cat := Conv2d, GroupNormSiLU, AddChannel, Upsample2x, AvgPool2x, Concat
	h := x
	if nhwc {
		conv, norm, addc, up, pool, cat = Conv2dNHWC, GroupNormSiLUNHWC, AddChannelNHWC, Upsample2xNHWC, AvgPool2xNHWC, ConcatNHWC
		h = G.Must(ToNHWC(x))
	}
	skip := h
	h = G.Must(conv(h, w1, b1, 1, 1))
	h = G.Must(norm(h, gm, bt, 4, 1e-5))
	h = G.Must(addc(h, emb))
	h = G.Must(conv(h, w2, b2, 1, 1))
	h = G.Must(Add(h, skip))
	h = G.Must(up(G.Must(pool(h))))
	h = G.Must(cat(h, skip))
	if nhwc {
		h = G.Must(ToNCHW(h))
	}
	target := in("target", h.Shape()...)
	loss = G.Must(G.Mean(G.Must(G.Square(G.Must(G.Sub(h, target))))))
	grads, err := G.Grad(loss, x, w1, b1, w2, b2, gm, bt, emb)
	if err != nil {
		t.Fatal(err)
	}
	return g, loss, grads
}

// TestSharedTapeMachine runs the same graph on gorgonia's tape with and
// without shared buffers: the loss and every gradient must be identical
// (bit for bit: the same kernels run on the same numbers), twice in a row,
// while the shared plan needs less memory than one buffer per output.
func TestSharedTapeMachine(t *testing.T) {
	for _, tc := range []struct {
		name string
		nhwc bool
	}{{"nchw-fp32", false}, {"nhwc-bf16", true}} {
		t.Run(tc.name, func(t *testing.T) {
			if ok, why := BF16Available(); tc.nhwc && !ok {
				t.Skip(why)
			}
			run := func(shared bool) []float32 {
				g, loss, grads := shareGraph(t, tc.nhwc)
				var vm G.VM
				var err error
				if shared {
					var plan *SharePlan
					vm, plan, err = NewSharedTapeMachine(g, nil)
					if err != nil {
						t.Fatal(err)
					}
					t.Log(plan)
					if plan.Outputs == 0 || plan.After >= plan.Before {
						t.Errorf("plan %v: want fewer bytes than one buffer per output", plan)
					}
					defer func() {
						if err := plan.Verify(); err != nil {
							t.Error(err)
						}
					}()
				} else if vm, err = NewTapeMachine(g); err != nil {
					t.Fatal(err)
				}
				defer vm.Close()
				var out []float32
				for rep := 0; rep < 2; rep++ {
					vm.Reset()
					if err := vm.RunAll(); err != nil {
						t.Fatal(err)
					}
					out = append(out[:0], loss.Value().Data().(float32))
					for _, gn := range grads {
						out = append(out, gn.Value().Data().([]float32)...)
					}
				}
				return out
			}
			want, got := run(false), run(true)
			if len(got) != len(want) {
				t.Fatalf("%d values, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("value %d (0 = loss, then the gradients): shared %g, unshared %g", i, got[i], want[i])
				}
			}
		})
	}
}

// TestSharePlanIntervals checks the planner on a chain: a → b → c → d, each
// of the same size, where only neighbours are live together: two slabs
// suffice, and a kept node keeps its slab to itself.
func TestSharePlanIntervals(t *testing.T) {
	build := func() (*G.ExprGraph, []*G.Node) {
		g := G.NewGraph()
		x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 2, 4, 4), G.WithName("x"), G.WithValue(randF32(rand.New(rand.NewSource(1)), 1, 2, 4, 4)))
		a := G.Must(SiLU(x))
		b := G.Must(SiLU(a))
		c := G.Must(SiLU(b))
		d := G.Must(SiLU(c))
		return g, []*G.Node{a, b, c, d}
	}
	for _, tc := range []struct {
		name  string
		keep  func(ns []*G.Node) G.Nodes
		slabs int
	}{
		{"chain", func([]*G.Node) G.Nodes { return nil }, 2},
		{"keep-a", func(ns []*G.Node) G.Nodes { return G.Nodes{ns[0]} }, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, ns := build()
			vm, plan, err := NewSharedTapeMachine(g, tc.keep(ns))
			if err != nil {
				t.Fatal(err)
			}
			defer vm.Close()
			if plan.Outputs != 4 || plan.Slabs != tc.slabs {
				t.Fatalf("plan %v: want 4 outputs in %d slabs", plan, tc.slabs)
			}
			if err := vm.RunAll(); err != nil {
				t.Fatal(err)
			}
			if err := plan.Verify(); err != nil {
				t.Fatal(err)
			}
			// d = silu⁴(x): the root's value is intact after the run.
			x := g.ByName("x")[0].Value().Data().([]float32)
			d := ns[3].Value().Data().([]float32)
			for i, v := range x {
				want := float64(v)
				for k := 0; k < 4; k++ {
					want = want / (1 + math.Exp(-want))
				}
				if diff := float64(d[i]) - want; diff > 1e-5 || diff < -1e-5 {
					t.Fatalf("d[%d] = %g, want %g", i, d[i], want)
				}
			}
			if len(tc.keep(ns)) > 0 {
				a := ns[0].Value().Data().([]float32)
				for i, v := range x {
					want := float64(v) / (1 + math.Exp(-float64(v)))
					if diff := float64(a[i]) - want; diff > 1e-5 || diff < -1e-5 {
						t.Fatalf("kept a[%d] = %g, want %g", i, a[i], want)
					}
				}
			}
		})
	}
}
