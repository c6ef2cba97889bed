package nn

import (
	"math"
	"math/rand"
	"reflect"
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
	tape, lisp := lispAndTapeGrads(t, shapes, 9, build)
	for i := range tape {
		for j := range tape[i] {
			if math.Abs(tape[i][j]-lisp[i][j]) > 1e-9*(1+math.Abs(tape[i][j])) {
				t.Fatalf("input %d [%d]: LispMachine %g, TapeMachine %g", i, j, lisp[i][j], tape[i][j])
			}
		}
	}
}

// TestFreshOpTypes checks that every op of this package, forward and
// backward, returns a new function type from each Type call: gorgonia hands
// the type back to hm's pool after inference, so a shared one gets
// corrupted (this broke Dropout's backward in G.Grad).
func TestFreshOpTypes(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	g := G.NewGraph()
	in := func(name string, shape ...int) *G.Node {
		return G.NewTensor(g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(name), G.WithValue(randF32(rng, shape...)))
	}
	x, w, b := in("x", 2, 4, 4, 4), in("w", 12, 4, 3, 3), in("b", 12)
	gm, bt, e := in("g", 12), in("bt", 12), in("e", 2, 12)
	lw := in("lw", 5, 128)
	dr, err := NewDropout(0.1, rng)
	if err != nil {
		t.Fatal(err)
	}
	dr.SetTraining(true)
	h := G.Must(Conv2d(x, w, b, 1, 1))
	h = G.Must(GroupNormSiLU(h, gm, bt, 4, 1e-5))
	h = G.Must(GroupNorm(h, gm, bt, 4, 1e-5))
	h = G.Must(ScaleShift(h, e, e))
	h = G.Must(AddChannel(h, e))
	h = G.Must(dr.Apply(G.Must(SiLU(h))))
	a := G.Must(QKVAttention(h, 2, false))
	c := G.Must(Concat(G.Must(Upsample2x(G.Must(AvgPool2x(a)))), a))
	s := G.Must(Add(c, c))
	s = G.Must(dr.Apply(s))
	flat := G.Must(G.Reshape(s, tensor.Shape{2, 128}))
	out := G.Must(Linear(flat, lw, nil))
	if _, err := G.Grad(G.Must(G.Sum(out)), x, w, b, gm, bt, e, lw); err != nil {
		t.Fatal(err)
	}
	count := 0
	for _, n := range g.AllNodes() {
		op := n.Op()
		if op == nil || reflect.TypeOf(op).Kind() != reflect.Pointer || reflect.TypeOf(op).Elem().PkgPath() != "github.com/diffinv/diffinv/nn" {
			continue
		}
		count++
		t1, t2 := op.Type(), op.Type()
		if t1 == t2 {
			t.Errorf("%v: Type returns the same object twice", op)
		}
	}
	if count < 20 {
		t.Errorf("found %d ops of this package in the graph, want at least 20", count)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
}

// lispAndTapeGrads builds build on float64 inputs of the given shapes
// (values from seed) with loss = Σ out⊙r and returns the gradients of every
// input by a TapeMachine (G.Grad) and by a LispMachine (the ops' DoDiff).
func lispAndTapeGrads(t *testing.T, shapes [][]int, seed int64, build builder) (tape, lisp [][]float64) {
	t.Helper()
	grads := func(useLisp bool) [][]float64 {
		rng := rand.New(rand.NewSource(seed))
		g := G.NewGraph()
		ns := make([]*G.Node, len(shapes))
		for i, s := range shapes {
			ns[i] = G.NewTensor(g, tensor.Float64, len(s), G.WithShape(s...), G.WithName(string(rune('a'+i))), G.WithValue(randDense(rng, 1, s...)))
		}
		out, err := build(ns)
		if err != nil {
			t.Fatal(err)
		}
		r := G.NewTensor(g, tensor.Float64, out.Dims(), G.WithShape(out.Shape()...), G.WithName("r"), G.WithValue(randDense(rng, 1, out.Shape()...)))
		loss := G.Must(G.Sum(G.Must(G.HadamardProd(out, r))))
		res := make([][]float64, len(ns))
		if useLisp {
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
	return grads(false), grads(true)
}
