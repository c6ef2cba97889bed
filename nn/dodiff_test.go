package nn

import (
	"math"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestLispMachineMatchesTape checks the ADOp path: gradients from a
// LispMachine (DoDiff) equal the TapeMachine's (SymDiff) for a graph using
// every differentiable op, the input image included.
func TestLispMachineMatchesTape(t *testing.T) {
	shapes := [][]int{{2, 4, 4, 4}, {4, 4, 3, 3}, {4}, {4}, {4}, {2, 4}, {2, 4}, {12, 4, 1, 1}, {3, 128}}
	build := func(ns []*G.Node) (*G.Node, error) {
		h := G.Must(Conv2d(ns[0], ns[1], ns[2], 1, 1))
		h = G.Must(GroupNormSiLU(h, ns[3], ns[4], 2, 1e-5))
		h = G.Must(ScaleShift(h, ns[5], ns[6]))
		h = G.Must(AddChannel(h, ns[5]))
		h = G.Must(SiLU(h))
		d := G.Must(AvgPool2x(h))
		a := G.Must(QKVAttention(G.Must(Conv2d(d, ns[7], nil, 1, 0)), 2, true))
		u := G.Must(Upsample2x(a))
		c := G.Must(Concat(u, h))
		s := G.Must(Add(c, c))
		flat := G.Must(G.Reshape(s, tensor.Shape{2, 8 * 16}))
		return Linear(flat, ns[8], nil)
	}
	grads := func(lisp bool) [][]float64 {
		rng := rand.New(rand.NewSource(9))
		g := G.NewGraph()
		ns := make([]*G.Node, len(shapes))
		for i, s := range shapes {
			ns[i] = G.NewTensor(g, tensor.Float64, len(s), G.WithShape(s...), G.WithName(string(rune('a'+i))), G.WithValue(randDense(rng, 1, s...)))
		}
		out, err := build(ns)
		if err != nil {
			t.Fatal(err)
		}
		r := G.NewTensor(g, tensor.Float64, 2, G.WithShape(out.Shape()...), G.WithName("r"), G.WithValue(randDense(rng, 1, out.Shape()...)))
		loss := G.Must(G.Sum(G.Must(G.HadamardProd(out, r))))
		res := make([][]float64, len(ns))
		if lisp {
			vm := G.NewLispMachine(g)
			defer vm.Close()
			if err := vm.RunAll(); err != nil {
				t.Fatal(err)
			}
			for i, n := range ns {
				gv, err := n.Grad()
				if err != nil {
					t.Fatalf("lisp grad %d: %v", i, err)
				}
				res[i] = asF64(gv)
			}
			return res
		}
		gs, err := G.Grad(loss, ns...)
		if err != nil {
			t.Fatal(err)
		}
		vm := G.NewTapeMachine(g)
		defer vm.Close()
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		for i, gn := range gs {
			res[i] = asF64(gn.Value())
		}
		return res
	}
	tape, lisp := grads(false), grads(true)
	for i := range tape {
		for j := range tape[i] {
			if math.Abs(tape[i][j]-lisp[i][j]) > 1e-9*(1+math.Abs(tape[i][j])) {
				t.Fatalf("input %d [%d]: LispMachine %g, TapeMachine %g", i, j, lisp[i][j], tape[i][j])
			}
		}
	}
}
