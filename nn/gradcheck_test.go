package nn

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// randDense returns a float64 tensor of normal draws (scaled by scale).
func randDense(rng *rand.Rand, scale float64, shape ...int) *tensor.Dense {
	t := tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(shape...))
	for i, d := 0, t.Data().([]float64); i < len(d); i++ {
		d[i] = scale * rng.NormFloat64()
	}
	return t
}

// toF32 converts a float64 tensor to a new float32 one.
func toF32(t *tensor.Dense) *tensor.Dense {
	src := t.Data().([]float64)
	d := make([]float32, len(src))
	for i, v := range src {
		d[i] = float32(v)
	}
	return tensor.New(tensor.WithShape(t.Shape().Clone()...), tensor.WithBacking(d))
}

// asF64 returns the values of a float32 or float64 tensor as a new []float64.
func asF64(v G.Value) []float64 {
	switch d := v.Data().(type) {
	case []float64:
		return append([]float64(nil), d...)
	case []float32:
		o := make([]float64, len(d))
		for i, x := range d {
			o[i] = float64(x)
		}
		return o
	case float64:
		return []float64{d}
	case float32:
		return []float64{float64(d)}
	}
	panic(fmt.Sprintf("asF64: %T", v.Data()))
}

type builder func(ns []*G.Node) (*G.Node, error)

// graphRun builds build on fresh input nodes holding ins (values not copied),
// adds loss = Σ out⊙r and the gradients of the loss w.r.t. every input, and
// returns a function that runs the graph once (Reset + RunAll) returning the
// output, the loss and the gradients.
func graphRun(t *testing.T, ins []*tensor.Dense, r *tensor.Dense, build builder) (run func() (out []float64, loss float64, grads [][]float64), outShape tensor.Shape) {
	t.Helper()
	g := G.NewGraph()
	ns := make([]*G.Node, len(ins))
	for i, in := range ins {
		ns[i] = G.NewTensor(g, in.Dtype(), in.Dims(), G.WithShape(in.Shape().Clone()...), G.WithName(fmt.Sprintf("in%d", i)), G.WithValue(in))
	}
	out, err := build(ns)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	if r == nil {
		return nil, out.Shape()
	}
	rn := G.NewTensor(g, r.Dtype(), r.Dims(), G.WithShape(r.Shape().Clone()...), G.WithName("r"), G.WithValue(r))
	loss := G.Must(G.Sum(G.Must(G.HadamardProd(out, rn))))
	grads, err := G.Grad(loss, ns...)
	if err != nil {
		t.Fatalf("grad: %v", err)
	}
	vm := G.NewTapeMachine(g)
	t.Cleanup(func() { vm.Close() })
	return func() ([]float64, float64, [][]float64) {
		vm.Reset()
		if err := vm.RunAll(); err != nil {
			t.Fatalf("run: %v", err)
		}
		gs := make([][]float64, len(grads))
		for i, gn := range grads {
			gs[i] = asF64(gn.Value())
		}
		return asF64(out.Value()), asF64(loss.Value())[0], gs
	}, out.Shape()
}

// outShapeOf builds the graph once to learn the output shape.
func outShapeOf(t *testing.T, ins []*tensor.Dense, build builder) tensor.Shape {
	_, s := graphRun(t, ins, nil, build)
	return s
}

// gradCheck compares the reverse-mode gradients of Σ build(ins)⊙r w.r.t.
// every input with central finite differences, all in float64, on up to
// maxProbe elements per input. It also checks that a second run of the same
// machine gives the same values (buffers reused across runs).
func gradCheck(t *testing.T, rng *rand.Rand, ins []*tensor.Dense, build builder) {
	t.Helper()
	r := randDense(rng, 1, outShapeOf(t, ins, build)...)
	run, _ := graphRun(t, ins, r, build)
	out1, loss0, grads := run()
	out2, _, grads2 := run()
	for i := range out1 {
		if out1[i] != out2[i] {
			t.Fatalf("second run: out[%d] = %g, first run %g", i, out2[i], out1[i])
		}
	}
	for k := range grads {
		for i := range grads[k] {
			if grads[k][i] != grads2[k][i] {
				t.Fatalf("second run: grad of input %d [%d] = %g, first run %g", k, i, grads2[k][i], grads[k][i])
			}
		}
	}
	_ = loss0
	const h, maxProbe = 1e-5, 48
	for k, in := range ins {
		d := in.Data().([]float64)
		idx := rng.Perm(len(d))
		if len(idx) > maxProbe {
			idx = idx[:maxProbe]
		}
		for _, j := range idx {
			orig := d[j]
			d[j] = orig + h
			_, lp, _ := run()
			d[j] = orig - h
			_, lm, _ := run()
			d[j] = orig
			num := (lp - lm) / (2 * h)
			ana := grads[k][j]
			if math.Abs(num-ana) > 1e-6+1e-5*math.Abs(num) {
				t.Errorf("input %d %v element %d: reverse-mode %.10g, finite differences %.10g", k, in.Shape(), j, ana, num)
			}
		}
	}
}

// forwardCheck32 runs build on float64 inputs and on their float32 copies
// and checks that the outputs agree to float32 precision (relative to the
// output's scale), and that the float64 output matches want if given.
func forwardCheck32(t *testing.T, ins []*tensor.Dense, build builder, want []float64) {
	t.Helper()
	ins32 := make([]*tensor.Dense, len(ins))
	for i, in := range ins {
		ins32[i] = toF32(in)
	}
	out64 := runForward(t, ins, build)
	out32 := runForward(t, ins32, build)
	scale := 0.0
	for _, v := range out64 {
		scale = math.Max(scale, math.Abs(v))
	}
	for i := range out64 {
		if math.Abs(out64[i]-out32[i]) > 1e-5*(1+scale) {
			t.Fatalf("float32 output[%d] = %g, float64 %g", i, out32[i], out64[i])
		}
	}
	if want != nil {
		if len(want) != len(out64) {
			t.Fatalf("output has %d elements, reference %d", len(out64), len(want))
		}
		for i := range want {
			if math.Abs(out64[i]-want[i]) > 1e-10*(1+math.Abs(want[i])) {
				t.Fatalf("output[%d] = %.12g, reference %.12g", i, out64[i], want[i])
			}
		}
	}
}

func runForward(t *testing.T, ins []*tensor.Dense, build builder) []float64 {
	t.Helper()
	g := G.NewGraph()
	ns := make([]*G.Node, len(ins))
	for i, in := range ins {
		ns[i] = G.NewTensor(g, in.Dtype(), in.Dims(), G.WithShape(in.Shape().Clone()...), G.WithName(fmt.Sprintf("in%d", i)), G.WithValue(in))
	}
	out, err := build(ns)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatalf("run: %v", err)
	}
	return asF64(out.Value())
}
