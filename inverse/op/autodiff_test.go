package op_test

import (
	"math"
	"math/rand"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/inverse/op"
	"github.com/diffinv/diffinv/inverse/solve"
)

// maskExpr is box inpainting as an expression: x ⊙ mask.
func maskExpr(shape [3]int, mask []float64) op.ExprFunc {
	return func(g *G.ExprGraph, x *G.Node) (*G.Node, error) {
		full := make([]float64, shape[0]*shape[1]*shape[2])
		for i := range full {
			full[i] = mask[i%(shape[1]*shape[2])]
		}
		m := G.NewTensor(g, tensor.Float64, 3, G.WithShape(shape[:]...), G.WithName("mask"),
			G.WithValue(tensor.New(tensor.WithShape(shape[:]...), tensor.WithBacking(full))))
		return G.HadamardProd(x, m)
	}
}

// TestAutodiffMatchesHandWritten: box inpainting written as an expression
// gives the hand-written operator's Forward and VJP exactly.
func TestAutodiffMatchesHandWritten(t *testing.T) {
	shape := [3]int{2, 6, 5}
	hand, err := op.NewInpaintBox(shape, 3, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	mask := hand.Mask()
	m64 := make([]float64, len(mask))
	for i, v := range mask {
		m64[i] = float64(v)
	}
	auto, err := op.NewAutodiff("mask", shape, maskExpr(shape, m64))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	x := tensors.Randn(rng, 3, shape[0], shape[1], shape[2])
	g := tensors.Randn(rng, 3, shape[0], shape[1], shape[2])
	for _, c := range []struct {
		what       string
		got, wantF func() (*tensor.Dense, error)
	}{
		{"Forward", func() (*tensor.Dense, error) { return auto.Forward(x) }, func() (*tensor.Dense, error) { return hand.Forward(x) }},
		{"VJP", func() (*tensor.Dense, error) { return auto.VJP(x, g) }, func() (*tensor.Dense, error) { return hand.VJP(x, g) }},
	} {
		a, err := c.got()
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.wantF()
		if err != nil {
			t.Fatal(err)
		}
		if !a.Shape().Eq(b.Shape()) {
			t.Fatalf("%s: shape %v, want %v", c.what, a.Shape(), b.Shape())
		}
		for i, v := range tensors.F32(a) {
			if v != tensors.F32(b)[i] {
				t.Fatalf("%s[%d] = %v, hand-written %v", c.what, i, v, tensors.F32(b)[i])
			}
		}
	}
}

// saturate is the docs' example: a sensor that blurs with a 3×3 box and
// saturates, y = tanh(2·(k ⋆ x)), written in a few lines and differentiated
// by reverse mode.
func saturate(g *G.ExprGraph, x *G.Node) (*G.Node, error) {
	k := G.NewTensor(g, tensor.Float64, 4, G.WithShape(1, 1, 3, 3), G.WithName("k"),
		G.WithValue(tensor.New(tensor.WithShape(1, 1, 3, 3), tensor.WithBacking([]float64{1, 1, 1, 1, 1, 1, 1, 1, 1}))))
	x4, err := G.Reshape(x, tensor.Shape{1, 1, 8, 8})
	if err != nil {
		return nil, err
	}
	b, err := G.Conv2d(x4, k, tensor.Shape{3, 3}, []int{1, 1}, []int{1, 1}, []int{1, 1})
	if err != nil {
		return nil, err
	}
	s, err := G.Mul(b, G.NewConstant(2.0/9))
	if err != nil {
		return nil, err
	}
	t, err := G.Tanh(s)
	if err != nil {
		return nil, err
	}
	return G.Reshape(t, tensor.Shape{1, 8, 8})
}

// TestAutodiffVJPFiniteDifferences: the reverse-mode VJP of a nonlinear
// expression agrees with central differences of ⟨g, A(x)⟩ along random
// directions.
func TestAutodiffVJPFiniteDifferences(t *testing.T) {
	A, err := op.NewAutodiff("saturate", [3]int{1, 8, 8}, saturate)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(2))
	x := tensors.Randn(rng, 2, 1, 8, 8)
	g := tensors.Randn(rng, 2, 1, 8, 8)
	vjp, err := A.VJP(x, g)
	if err != nil {
		t.Fatal(err)
	}
	inner := func(x *tensor.Dense) float64 {
		y, err := A.Forward(x)
		if err != nil {
			t.Fatal(err)
		}
		s := 0.0
		for i, v := range tensors.F32(y) {
			s += float64(v) * float64(tensors.F32(g)[i])
		}
		return s
	}
	for trial := 0; trial < 5; trial++ {
		d := tensors.Randn(rng, 2, 1, 8, 8)
		const h = 1e-2
		xp, xm := tensors.Clone(x), tensors.Clone(x)
		for i, v := range tensors.F32(d) {
			tensors.F32(xp)[i] += h * v
			tensors.F32(xm)[i] -= h * v
		}
		fd := (inner(xp) - inner(xm)) / (2 * h)
		an := 0.0
		for i, v := range tensors.F32(vjp) {
			an += float64(v) * float64(tensors.F32(d)[i])
		}
		if math.Abs(fd-an) > 2e-3*(1+math.Abs(fd)) {
			t.Errorf("direction %d: ⟨VJP, d⟩ %.6g, finite difference %.6g", trial, an, fd)
		}
	}
	if _, err := op.NewAutodiff("bad", [3]int{1, 8, 8}, func(g *G.ExprGraph, x *G.Node) (*G.Node, error) {
		return G.Sum(x)
	}); err == nil || !strings.Contains(err.Error(), "want 1 to 3 dimensions") {
		t.Errorf("scalar output: %v", err)
	}
	if _, err := A.Forward(tensors.New(1, 3, 8, 8)); err == nil || !strings.Contains(err.Error(), "want N×[1 8 8]") {
		t.Errorf("wrong shape: %v", err)
	}
}

// linearDenoiser is ε(x, t) = 0.5·x: enough for DPS to run end to end.
type linearDenoiser struct{}

func (linearDenoiser) Eps(xt *tensor.Dense, t []int) (*tensor.Dense, error) {
	out := tensors.Clone(xt)
	for i := range tensors.F32(out) {
		tensors.F32(out)[i] *= 0.5
	}
	return out, nil
}

func (d linearDenoiser) EpsVJP(xt *tensor.Dense, t []int, v *tensor.Dense) (*tensor.Dense, *tensor.Dense, error) {
	eps, _ := d.Eps(xt, t)
	vjp := tensors.Clone(v)
	for i := range tensors.F32(vjp) {
		tensors.F32(vjp)[i] *= 0.5
	}
	return eps, vjp, nil
}

// TestAutodiffDPS: DPS on the expression operator gives what it gives on
// the hand-written one, from the same noise, and runs on a nonlinear one.
func TestAutodiffDPS(t *testing.T) {
	shape := [3]int{1, 8, 8}
	hand, err := op.NewInpaintBox(shape, 4, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	m := make([]float64, 64)
	for i, v := range hand.Mask() {
		m[i] = float64(v)
	}
	auto, err := op.NewAutodiff("mask", shape, maskExpr(shape, m))
	if err != nil {
		t.Fatal(err)
	}
	sched, err := diffusion.NewSchedule(diffusion.Linear, 50, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	noise, err := op.NewNoise("gaussian", 0.05, 0)
	if err != nil {
		t.Fatal(err)
	}
	x := tensors.Randn(rand.New(rand.NewSource(3)), 2, 1, 8, 8)
	y, err := hand.Forward(x)
	if err != nil {
		t.Fatal(err)
	}
	o, err := solve.DecodeOptions("dps", map[string]any{"scale": 0.5, "steps": 10})
	if err != nil {
		t.Fatal(err)
	}
	a, err := solve.Solve("dps", solve.Prior{Den: linearDenoiser{}, Sched: sched}, solve.Measurement{A: hand, Noise: noise, Y: y}, o, diffusion.ImageRNGs(7, 0, 2), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := solve.Solve("dps", solve.Prior{Den: linearDenoiser{}, Sched: sched}, solve.Measurement{A: auto, Noise: noise, Y: y}, o, diffusion.ImageRNGs(7, 0, 2), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range tensors.F32(a) {
		if math.Abs(float64(v-tensors.F32(b)[i])) > 1e-5 {
			t.Fatalf("DPS on the expression operator differs at %d: %v vs %v", i, tensors.F32(b)[i], v)
		}
	}
	sat, err := op.NewAutodiff("saturate", shape, saturate)
	if err != nil {
		t.Fatal(err)
	}
	ys, err := sat.Forward(x)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := solve.Solve("dps", solve.Prior{Den: linearDenoiser{}, Sched: sched}, solve.Measurement{A: sat, Noise: noise, Y: ys}, o, diffusion.ImageRNGs(7, 0, 2), nil); err != nil {
		t.Errorf("DPS on the saturating operator: %v", err)
	}
}
