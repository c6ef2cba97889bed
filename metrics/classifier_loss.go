package metrics

import (
	"fmt"
	"hash"
	"hash/fnv"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// softmaxCrossEntropy returns the scalar mean over the batch of
// −Σ_k onehot_k · log softmax(logits)_k, computed stably (log-sum-exp with
// the row maximum subtracted). logits and onehot are N×K of one dtype. Its
// gradient w.r.t. logits is (softmax(logits) − onehot)/N; onehot gets none.
func softmaxCrossEntropy(logits, onehot *G.Node) (*G.Node, error) {
	ls, os := logits.Shape(), onehot.Shape()
	if len(ls) != 2 || !ls.Eq(os) {
		return nil, fmt.Errorf("cross-entropy: logits %v and targets %v, want equal N×K shapes", ls, os)
	}
	if logits.Dtype() != onehot.Dtype() {
		return nil, fmt.Errorf("cross-entropy: logits %v and targets %v, want one dtype", logits.Dtype(), onehot.Dtype())
	}
	return G.ApplyOp(&xentOp{n: ls[0], k: ls[1]}, logits, onehot)
}

// xentOp is the forward loss (logits, onehot) → scalar; xentBwdOp is its
// gradient (logits, onehot, dloss) → N×K.
type xentOp struct{ n, k int }

type xentBwdOp struct{ n, k int }

func (o *xentOp) Arity() int { return 2 }
func (o *xentOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	t := G.TensorType{Dims: 2, Of: a}
	return hm.NewFnType(t, t, a)
}
func (o *xentOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return tensor.ScalarShape(), nil }
func (o *xentOp) ReturnsPtr() bool                               { return false }
func (o *xentOp) CallsExtern() bool                              { return false }
func (o *xentOp) OverwritesInput() int                           { return -1 }
func (o *xentOp) String() string                                 { return fmt.Sprintf("SoftmaxXent(%d×%d)", o.n, o.k) }
func (o *xentOp) WriteHash(h hash.Hash)                          { fmt.Fprint(h, o.String()) }
func (o *xentOp) Hashcode() uint32                               { return hashOf(o) }

func (o *xentOp) Do(vs ...G.Value) (G.Value, error) {
	if len(vs) != 2 {
		return nil, fmt.Errorf("%v: %d inputs, want 2", o, len(vs))
	}
	switch l := vs[0].Data().(type) {
	case []float32:
		y, ok := vs[1].Data().([]float32)
		if !ok {
			return nil, fmt.Errorf("%v: targets are %T, want []float32", o, vs[1].Data())
		}
		v := xentForward(l, y, o.n, o.k)
		return tensor.New(tensor.FromScalar(float32(v))), nil
	case []float64:
		y, ok := vs[1].Data().([]float64)
		if !ok {
			return nil, fmt.Errorf("%v: targets are %T, want []float64", o, vs[1].Data())
		}
		return tensor.New(tensor.FromScalar(xentForward(l, y, o.n, o.k))), nil
	default:
		return nil, fmt.Errorf("%v: logits are %T, want float32 or float64 data", o, l)
	}
}

func (o *xentOp) DiffWRT(int) []bool { return []bool{true, false} }

func (o *xentOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	d, err := G.ApplyOp(&xentBwdOp{n: o.n, k: o.k}, inputs[0], inputs[1], grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{d, nil}, nil
}

func (o *xentBwdOp) Arity() int { return 3 }
func (o *xentBwdOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	t := G.TensorType{Dims: 2, Of: a}
	return hm.NewFnType(t, t, a, t)
}
func (o *xentBwdOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{o.n, o.k}, nil
}
func (o *xentBwdOp) ReturnsPtr() bool      { return false }
func (o *xentBwdOp) CallsExtern() bool     { return false }
func (o *xentBwdOp) OverwritesInput() int  { return -1 }
func (o *xentBwdOp) String() string        { return fmt.Sprintf("SoftmaxXentGrad(%d×%d)", o.n, o.k) }
func (o *xentBwdOp) WriteHash(h hash.Hash) { fmt.Fprint(h, o.String()) }
func (o *xentBwdOp) Hashcode() uint32      { return hashOf(o) }

func (o *xentBwdOp) Do(vs ...G.Value) (G.Value, error) {
	if len(vs) != 3 {
		return nil, fmt.Errorf("%v: %d inputs, want 3", o, len(vs))
	}
	g, err := scalarOf(vs[2])
	if err != nil {
		return nil, fmt.Errorf("%v: %w", o, err)
	}
	switch l := vs[0].Data().(type) {
	case []float32:
		y, ok := vs[1].Data().([]float32)
		if !ok {
			return nil, fmt.Errorf("%v: targets are %T, want []float32", o, vs[1].Data())
		}
		out := make([]float32, len(l))
		xentBackward(l, y, out, o.n, o.k, g)
		return tensor.New(tensor.WithShape(o.n, o.k), tensor.WithBacking(out)), nil
	case []float64:
		y, ok := vs[1].Data().([]float64)
		if !ok {
			return nil, fmt.Errorf("%v: targets are %T, want []float64", o, vs[1].Data())
		}
		out := make([]float64, len(l))
		xentBackward(l, y, out, o.n, o.k, g)
		return tensor.New(tensor.WithShape(o.n, o.k), tensor.WithBacking(out)), nil
	default:
		return nil, fmt.Errorf("%v: logits are %T, want float32 or float64 data", o, l)
	}
}

func hashOf(s fmt.Stringer) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s.String()))
	return h.Sum32()
}

// scalarOf reads a scalar value (a scalar tensor or a gorgonia scalar).
func scalarOf(v G.Value) (float64, error) {
	switch d := v.Data().(type) {
	case float32:
		return float64(d), nil
	case float64:
		return d, nil
	case []float32:
		if len(d) == 1 {
			return float64(d[0]), nil
		}
	case []float64:
		if len(d) == 1 {
			return d[0], nil
		}
	}
	return 0, fmt.Errorf("upstream gradient is %T, want a scalar", v.Data())
}

type floatT interface{ float32 | float64 }

// xentForward is the mean cross-entropy in float64 arithmetic.
func xentForward[T floatT](l, y []T, n, k int) float64 {
	var total float64
	for i := 0; i < n; i++ {
		row, yr := l[i*k:(i+1)*k], y[i*k:(i+1)*k]
		m := math.Inf(-1)
		for _, v := range row {
			m = math.Max(m, float64(v))
		}
		var s float64
		for _, v := range row {
			s += math.Exp(float64(v) - m)
		}
		lse := m + math.Log(s)
		for j, v := range row {
			if yr[j] != 0 {
				total -= float64(yr[j]) * (float64(v) - lse)
			}
		}
	}
	return total / float64(n)
}

// xentBackward writes g·(softmax(l) − y)/n into out.
func xentBackward[T floatT](l, y, out []T, n, k int, g float64) {
	for i := 0; i < n; i++ {
		row, yr, or := l[i*k:(i+1)*k], y[i*k:(i+1)*k], out[i*k:(i+1)*k]
		m := math.Inf(-1)
		for _, v := range row {
			m = math.Max(m, float64(v))
		}
		var s float64
		for _, v := range row {
			s += math.Exp(float64(v) - m)
		}
		for j, v := range row {
			p := math.Exp(float64(v)-m) / s
			or[j] = T(g * (p - float64(yr[j])) / float64(n))
		}
	}
}

// maxPool2 returns the 2×2, stride-2 max pooling of x (N×C×H×W, H and W
// even). Stock Gorgonia's MaxPool2D panics in its backward pass when the
// forward saw NaNs (its arg-max mask holds −1), which a diverging training
// run produces; this op picks the first element of a window when no
// comparison succeeds, so NaNs propagate as values and the run reports a
// non-finite loss instead.
func maxPool2(x *G.Node) (*G.Node, error) {
	s := x.Shape()
	if len(s) != 4 || s[2]%2 != 0 || s[3]%2 != 0 {
		return nil, fmt.Errorf("max pool: input shape %v, want N×C×H×W with even H and W", s)
	}
	return G.ApplyOp(&poolOp{in: s.Clone()}, x)
}

// poolOp is the forward pool (x → y); poolBwdOp its gradient (x, dy → dx),
// which recomputes each window's arg-max from x.
type poolOp struct{ in tensor.Shape }

type poolBwdOp struct{ in tensor.Shape }

func (o *poolOp) out() tensor.Shape { return tensor.Shape{o.in[0], o.in[1], o.in[2] / 2, o.in[3] / 2} }

func (o *poolOp) Arity() int { return 1 }
func (o *poolOp) Type() hm.Type {
	t := G.TensorType{Dims: 4, Of: hm.TypeVariable('a')}
	return hm.NewFnType(t, t)
}
func (o *poolOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return o.out(), nil }
func (o *poolOp) ReturnsPtr() bool                               { return false }
func (o *poolOp) CallsExtern() bool                              { return false }
func (o *poolOp) OverwritesInput() int                           { return -1 }
func (o *poolOp) String() string                                 { return fmt.Sprintf("MaxPool2(%v)", o.in) }
func (o *poolOp) WriteHash(h hash.Hash)                          { fmt.Fprint(h, o.String()) }
func (o *poolOp) Hashcode() uint32                               { return hashOf(o) }
func (o *poolOp) DiffWRT(int) []bool                             { return []bool{true} }

func (o *poolOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	d, err := G.ApplyOp(&poolBwdOp{in: o.in}, inputs[0], grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{d}, nil
}

func (o *poolOp) Do(vs ...G.Value) (G.Value, error) {
	if len(vs) != 1 {
		return nil, fmt.Errorf("%v: %d inputs, want 1", o, len(vs))
	}
	n, c, h, w := o.in[0], o.in[1], o.in[2], o.in[3]
	switch x := vs[0].Data().(type) {
	case []float32:
		y := make([]float32, len(x)/4)
		poolRun(x, y, nil, n*c, h, w)
		return tensor.New(tensor.WithShape(o.out()...), tensor.WithBacking(y)), nil
	case []float64:
		y := make([]float64, len(x)/4)
		poolRun(x, y, nil, n*c, h, w)
		return tensor.New(tensor.WithShape(o.out()...), tensor.WithBacking(y)), nil
	default:
		return nil, fmt.Errorf("%v: input is %T, want float32 or float64 data", o, x)
	}
}

func (o *poolBwdOp) Arity() int { return 2 }
func (o *poolBwdOp) Type() hm.Type {
	t := G.TensorType{Dims: 4, Of: hm.TypeVariable('a')}
	return hm.NewFnType(t, t, t)
}
func (o *poolBwdOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return o.in.Clone(), nil }
func (o *poolBwdOp) ReturnsPtr() bool                               { return false }
func (o *poolBwdOp) CallsExtern() bool                              { return false }
func (o *poolBwdOp) OverwritesInput() int                           { return -1 }
func (o *poolBwdOp) String() string                                 { return fmt.Sprintf("MaxPool2Grad(%v)", o.in) }
func (o *poolBwdOp) WriteHash(h hash.Hash)                          { fmt.Fprint(h, o.String()) }
func (o *poolBwdOp) Hashcode() uint32                               { return hashOf(o) }

func (o *poolBwdOp) Do(vs ...G.Value) (G.Value, error) {
	if len(vs) != 2 {
		return nil, fmt.Errorf("%v: %d inputs, want 2", o, len(vs))
	}
	n, c, h, w := o.in[0], o.in[1], o.in[2], o.in[3]
	switch x := vs[0].Data().(type) {
	case []float32:
		dy, ok := vs[1].Data().([]float32)
		if !ok {
			return nil, fmt.Errorf("%v: gradient is %T, want []float32", o, vs[1].Data())
		}
		dx := make([]float32, len(x))
		poolRun(x, dy, dx, n*c, h, w)
		return tensor.New(tensor.WithShape(o.in.Clone()...), tensor.WithBacking(dx)), nil
	case []float64:
		dy, ok := vs[1].Data().([]float64)
		if !ok {
			return nil, fmt.Errorf("%v: gradient is %T, want []float64", o, vs[1].Data())
		}
		dx := make([]float64, len(x))
		poolRun(x, dy, dx, n*c, h, w)
		return tensor.New(tensor.WithShape(o.in.Clone()...), tensor.WithBacking(dx)), nil
	default:
		return nil, fmt.Errorf("%v: input is %T, want float32 or float64 data", o, x)
	}
}

// poolRun walks every 2×2 window of planes h×w planes of x. With dx nil it
// writes each window's maximum into y; otherwise y is the pooled gradient
// and it adds y into dx at each window's arg-max (the first maximal
// element in row-major order, or the first element if none compares).
func poolRun[T floatT](x, y, dx []T, planes, h, w int) {
	oh, ow := h/2, w/2
	for p := 0; p < planes; p++ {
		xp := x[p*h*w : (p+1)*h*w]
		yp := y[p*oh*ow : (p+1)*oh*ow]
		for i := 0; i < oh; i++ {
			for j := 0; j < ow; j++ {
				best := 2*i*w + 2*j
				for _, k := range [3]int{best + 1, best + w, best + w + 1} {
					if xp[k] > xp[best] {
						best = k
					}
				}
				if dx == nil {
					yp[i*ow+j] = xp[best]
				} else {
					dx[p*h*w+best] += yp[i*ow+j]
				}
			}
		}
	}
}
