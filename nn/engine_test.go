package nn

import (
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestEngineAdd runs tensor.Add on operands carrying the package's engine
// in each way gorgonia calls it (a new result, into a reuse tensor, unsafe
// into a, as an increment) and on cases the fast path leaves to StdEng
// (float64, a view, other shapes, a scalar), and checks the values against
// StdEng's and which tensor comes back.
func TestEngineAdd(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	mk := func(dt tensor.Dtype, eng tensor.Engine, shape ...int) *tensor.Dense {
		d := tensor.New(tensor.Of(dt), tensor.WithShape(shape...), tensor.WithEngine(eng))
		switch v := d.Data().(type) {
		case []float32:
			for i := range v {
				v[i] = float32(rng.NormFloat64())
			}
		case []float64:
			for i := range v {
				v[i] = rng.NormFloat64()
			}
		}
		return d
	}
	std := tensor.StdEng{}
	cases := []struct {
		name  string
		dt    tensor.Dtype
		shape []int
		mode  string // new, reuse, unsafe, incr
		view  bool
	}{
		{"new", tensor.Float32, []int{4, 5, 6, 7}, "new", false},
		{"reuse", tensor.Float32, []int{3, 1000}, "reuse", false},
		{"unsafe", tensor.Float32, []int{70000}, "unsafe", false},
		{"incr (StdEng)", tensor.Float32, []int{8, 9}, "incr", false},
		{"float64 (StdEng)", tensor.Float64, []int{8, 9}, "new", false},
		{"view (StdEng)", tensor.Float32, []int{6, 8}, "new", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := mk(tc.dt, fastEngine, tc.shape...), mk(tc.dt, fastEngine, tc.shape...)
			var at, bt tensor.Tensor = a, b
			if tc.view {
				va, err := a.Slice(tensor.S(1, 4))
				if err != nil {
					t.Fatal(err)
				}
				vb, err := b.Slice(tensor.S(2, 5))
				if err != nil {
					t.Fatal(err)
				}
				at, bt = va, vb
			}
			want, err := std.Add(tensor.Materialize(at), tensor.Materialize(bt))
			if err != nil {
				t.Fatal(err)
			}
			var opts []tensor.FuncOpt
			var into *tensor.Dense
			switch tc.mode {
			case "reuse":
				into = mk(tc.dt, tensor.StdEng{}, tc.shape...)
				opts = append(opts, tensor.WithReuse(into))
			case "unsafe":
				into = a
				opts = append(opts, tensor.UseUnsafe())
			case "incr":
				into = mk(tc.dt, tensor.StdEng{}, tc.shape...)
				base := into.Clone().(*tensor.Dense)
				if want, err = std.Add(want, base); err != nil {
					t.Fatal(err)
				}
				opts = append(opts, tensor.WithIncr(into))
			}
			got, err := tensor.Add(at, bt, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if into != nil && got != tensor.Tensor(into) {
				t.Fatalf("result is not the %s tensor", tc.mode)
			}
			if !got.Shape().Eq(want.Shape()) {
				t.Fatalf("shape %v, want %v", got.Shape(), want.Shape())
			}
			switch w := want.Data().(type) {
			case []float32:
				g := got.Data().([]float32)
				for i := range w {
					if g[i] != w[i] {
						t.Fatalf("element %d: %g, want %g", i, g[i], w[i])
					}
				}
			case []float64:
				g := got.Data().([]float64)
				for i := range w {
					if g[i] != w[i] {
						t.Fatalf("element %d: %g, want %g", i, g[i], w[i])
					}
				}
			}
		})
	}
}

// BenchmarkEngineAdd times tensor.Add into a reuse tensor (a gradient sum
// on the tape) with the package's engine and with StdEng, at the size of a
// CelebA 64 activation at batch 8.
func BenchmarkEngineAdd(b *testing.B) {
	for _, e := range []struct {
		name string
		eng  tensor.Engine
	}{{"nn", fastEngine}, {"StdEng", tensor.StdEng{}}} {
		b.Run(e.name, func(b *testing.B) {
			shape := []int{8, 64, 64, 128}
			x := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(shape...), tensor.WithEngine(e.eng))
			y := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(shape...), tensor.WithEngine(e.eng))
			r := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(shape...), tensor.WithEngine(e.eng))
			b.SetBytes(int64(3 * 4 * x.Size()))
			for i := 0; i < b.N; i++ {
				if _, err := tensor.Add(x, y, tensor.WithReuse(r)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestGradientSumsTakeFastAdd: in a graph where one node feeds two ops (so
// its gradient is gorgonia's sum of two contributions), run by this
// package's tape machines, the sum goes through the engine's fast add and
// the gradient is right (d/dx Σ (x + x) = 2). It fails when the tape
// machines lose the engine (G.WithEngine) or gorgonia routes Add elsewhere.
func TestGradientSumsTakeFastAdd(t *testing.T) {
	for _, shared := range []bool{false, true} {
		g := G.NewGraph()
		xv := tensor.New(tensor.WithShape(2, 3, 4, 5), tensor.WithBacking(make([]float32, 120)))
		x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(2, 3, 4, 5), G.WithName("x"), G.WithValue(xv))
		a, err := Add(x, x)
		if err != nil {
			t.Fatal(err)
		}
		loss := G.Must(G.Sum(a))
		grads, err := G.Grad(loss, x)
		if err != nil {
			t.Fatal(err)
		}
		var vm G.VM
		if shared {
			vm, _, err = NewSharedTapeMachine(g, grads)
		} else {
			vm, err = NewTapeMachine(g)
		}
		if err != nil {
			t.Fatal(err)
		}
		before := fastAdds.Load()
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		vm.Close()
		if fastAdds.Load() == before {
			t.Errorf("shared %v: the gradient sum did not take the fast add", shared)
		}
		for i, v := range grads[0].Value().Data().([]float32) {
			if v != 2 {
				t.Fatalf("shared %v: dx[%d] = %g, want 2", shared, i, v)
			}
		}
	}
}
