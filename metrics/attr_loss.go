package metrics

import (
	"fmt"
	"hash"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// sigmoidBCE returns the scalar mean over all N×K entries of the binary
// cross-entropy of logits z against targets y ∈ {0, 1}, in the stable form
// softplus(z) − y·z. Its gradient w.r.t. z is (σ(z) − y)/(N·K); y gets none.
func sigmoidBCE(logits, targets *G.Node) (*G.Node, error) {
	ls, ts := logits.Shape(), targets.Shape()
	if len(ls) != 2 || !ls.Eq(ts) {
		return nil, fmt.Errorf("binary cross-entropy: logits %v and targets %v, want equal N×K shapes", ls, ts)
	}
	if logits.Dtype() != targets.Dtype() {
		return nil, fmt.Errorf("binary cross-entropy: logits %v and targets %v, want one dtype", logits.Dtype(), targets.Dtype())
	}
	return G.ApplyOp(&bceOp{n: ls[0], k: ls[1]}, logits, targets)
}

// bceOp is (logits, targets) → mean BCE; bceBwdOp (logits, targets,
// dloss) → N×K gradient.
type bceOp struct{ n, k int }

type bceBwdOp struct{ n, k int }

func (o *bceOp) Arity() int { return 2 }
func (o *bceOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	t := G.TensorType{Dims: 2, Of: a}
	return hm.NewFnType(t, t, a)
}
func (o *bceOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return tensor.ScalarShape(), nil }
func (o *bceOp) ReturnsPtr() bool                               { return false }
func (o *bceOp) CallsExtern() bool                              { return false }
func (o *bceOp) OverwritesInput() int                           { return -1 }
func (o *bceOp) String() string                                 { return fmt.Sprintf("SigmoidBCE(%d×%d)", o.n, o.k) }
func (o *bceOp) WriteHash(h hash.Hash)                          { fmt.Fprint(h, o.String()) }
func (o *bceOp) Hashcode() uint32                               { return hashOf(o) }

func (o *bceOp) Do(vs ...G.Value) (G.Value, error) {
	if len(vs) != 2 {
		return nil, fmt.Errorf("%v: %d inputs, want 2", o, len(vs))
	}
	z, y, err := float64s(o, vs[0], vs[1])
	if err != nil {
		return nil, err
	}
	total := 0.0
	for i, v := range z {
		total += math.Max(v, 0) + math.Log1p(math.Exp(-math.Abs(v))) - y[i]*v
	}
	total /= float64(len(z))
	if vs[0].Dtype() == tensor.Float32 {
		return tensor.New(tensor.FromScalar(float32(total))), nil
	}
	return tensor.New(tensor.FromScalar(total)), nil
}

func (o *bceOp) DiffWRT(int) []bool { return []bool{true, false} }

func (o *bceOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	d, err := G.ApplyOp(&bceBwdOp{n: o.n, k: o.k}, inputs[0], inputs[1], grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{d, nil}, nil
}

func (o *bceBwdOp) Arity() int { return 3 }
func (o *bceBwdOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	t := G.TensorType{Dims: 2, Of: a}
	return hm.NewFnType(t, t, a, t)
}
func (o *bceBwdOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{o.n, o.k}, nil
}
func (o *bceBwdOp) ReturnsPtr() bool      { return false }
func (o *bceBwdOp) CallsExtern() bool     { return false }
func (o *bceBwdOp) OverwritesInput() int  { return -1 }
func (o *bceBwdOp) String() string        { return fmt.Sprintf("SigmoidBCEGrad(%d×%d)", o.n, o.k) }
func (o *bceBwdOp) WriteHash(h hash.Hash) { fmt.Fprint(h, o.String()) }
func (o *bceBwdOp) Hashcode() uint32      { return hashOf(o) }

func (o *bceBwdOp) Do(vs ...G.Value) (G.Value, error) {
	if len(vs) != 3 {
		return nil, fmt.Errorf("%v: %d inputs, want 3", o, len(vs))
	}
	g, err := scalarOf(vs[2])
	if err != nil {
		return nil, fmt.Errorf("%v: %w", o, err)
	}
	z, y, err := float64s(o, vs[0], vs[1])
	if err != nil {
		return nil, err
	}
	scale := g / float64(len(z))
	if vs[0].Dtype() == tensor.Float32 {
		out := make([]float32, len(z))
		for i, v := range z {
			out[i] = float32((sigmoid(v) - y[i]) * scale)
		}
		return tensor.New(tensor.WithShape(o.n, o.k), tensor.WithBacking(out)), nil
	}
	out := make([]float64, len(z))
	for i, v := range z {
		out[i] = (sigmoid(v) - y[i]) * scale
	}
	return tensor.New(tensor.WithShape(o.n, o.k), tensor.WithBacking(out)), nil
}

// float64s returns the data of two values of one float dtype as float64.
func float64s(op fmt.Stringer, a, b G.Value) ([]float64, []float64, error) {
	conv := func(v G.Value) ([]float64, error) {
		switch d := v.Data().(type) {
		case []float32:
			out := make([]float64, len(d))
			for i, x := range d {
				out[i] = float64(x)
			}
			return out, nil
		case []float64:
			return d, nil
		}
		return nil, fmt.Errorf("%v: input is %T, want float32 or float64 data", op, v.Data())
	}
	x, err := conv(a)
	if err != nil {
		return nil, nil, err
	}
	y, err := conv(b)
	if err != nil {
		return nil, nil, err
	}
	if a.Dtype() != b.Dtype() || len(x) != len(y) {
		return nil, nil, fmt.Errorf("%v: inputs %v×%d and %v×%d, want one dtype and size", op, a.Dtype(), len(x), b.Dtype(), len(y))
	}
	return x, y, nil
}
