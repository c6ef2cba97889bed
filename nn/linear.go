package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/internal/dnnl"
)

// Linear returns x·wᵀ + b for x N×In, w Out×In (PyTorch's nn.Linear layout)
// and b Out (or nil): N×Out, one GEMM on the blas package.
func Linear(x, w, b *G.Node) (*G.Node, error) { return LinearPrec(x, w, b, FP32) }

// LinearPrec is Linear in the given precision: with BF16, float32 values
// multiply on oneDNN's bf16 matmul (x and w rounded to bfloat16, products
// accumulated in float32, the bias added in float32), forward and backward;
// float64 values (the gradient checks) as with FP32. BF16 where it cannot
// run is an error.
func LinearPrec(x, w, b *G.Node, prec Precision) (*G.Node, error) {
	const op = "nn.Linear"
	if err := canRun(op, prec); err != nil {
		return nil, err
	}
	xs, err := shapeOf(op, "input", x, 2)
	if err != nil {
		return nil, err
	}
	ws, err := shapeOf(op, "weight", w, 2)
	if err != nil {
		return nil, err
	}
	if xs[1] != ws[1] {
		return nil, fmt.Errorf("%s: input %s has %d features, weight %s expects %d", op, x.Name(), xs[1], w.Name(), ws[1])
	}
	ins := []*G.Node{x, w}
	if b != nil {
		bs, err := shapeOf(op, "bias", b, 1)
		if err != nil {
			return nil, err
		}
		if bs[0] != ws[0] {
			return nil, fmt.Errorf("%s: bias %s has %d elements, want %d", op, b.Name(), bs[0], ws[0])
		}
		ins = append(ins, b)
	}
	if _, err := sameDtype(op, ins...); err != nil {
		return nil, err
	}
	o := &linearOp{n: xs[0], in: xs[1], out: ws[0], mode: linFwd, bf16: prec == BF16}
	types := []int{2, 2}
	if b != nil {
		types = append(types, 1)
	}
	name := fmt.Sprintf("Linear(%v %v bias=%v)", xs, ws, b != nil)
	if o.bf16 {
		name = fmt.Sprintf("Linear(%v %v bias=%v bf16)", xs, ws, b != nil)
	}
	o.baseOp = baseOp{name: name, arity: len(ins), typ: fnType(2, types...), shape: tensor.Shape{xs[0], ws[0]}}
	return G.ApplyOp(o, ins...)
}

const (
	linFwd  = iota // (x, w[, b]) → x·wᵀ + b
	linBwdX        // (w, dy) → dy·w
	linBwdW        // (x, dy) → dyᵀ·x
)

type linearOp struct {
	baseOp
	n, in, out int
	mode       int
	outBuffer
	bf16 bool
	mm   *dnnl.Matmul // the bf16 product (built on first use)
}

// matmul returns the op's bf16 product: y = x·wᵀ (forward), dx = dy·w,
// or dw = dyᵀ·x, one batch, dense operands.
func (o *linearOp) matmul() (*dnnl.Matmul, error) {
	if o.mm != nil {
		return o.mm, nil
	}
	n, in, out := o.n, o.in, o.out
	var s dnnl.MatmulShape
	switch o.mode {
	case linFwd: // x (n×in) · wᵀ (in×out, w out×in)
		s = dnnl.MatmulShape{Batch: 1, M: n, K: in, N: out, A: [3]int{n * in, in, 1}, B: [3]int{in * out, 1, in}, C: [3]int{n * out, out, 1}}
	case linBwdX: // dy (n×out) · w (out×in)
		s = dnnl.MatmulShape{Batch: 1, M: n, K: out, N: in, A: [3]int{n * out, out, 1}, B: [3]int{out * in, in, 1}, C: [3]int{n * in, in, 1}}
	case linBwdW: // dyᵀ (out×n) · x (n×in)
		s = dnnl.MatmulShape{Batch: 1, M: out, K: n, N: in, A: [3]int{n * out, 1, out}, B: [3]int{n * in, in, 1}, C: [3]int{out * in, in, 1}}
	}
	s.Alpha = 1
	mm, err := dnnl.NewMatmul(s)
	if err != nil {
		return nil, err
	}
	o.mm = mm
	return mm, nil
}

// linearBF16 is linearRun on float32 values in bf16.
func linearBF16(o *linearOp, ds []*tensor.Dense, y []float32) error {
	mm, err := o.matmul()
	if err != nil {
		return err
	}
	a, b := data[float32](ds[0]), data[float32](ds[1])
	switch o.mode {
	case linFwd:
		if err := mm.Run(a, b, y); err != nil {
			return err
		}
		if len(ds) == 3 {
			bias := data[float32](ds[2])
			for i := 0; i < o.n; i++ {
				row := y[i*o.out : (i+1)*o.out]
				for j, v := range bias {
					row[j] += v
				}
			}
		}
		return nil
	case linBwdX: // a = w, b = dy
		return mm.Run(b, a, y)
	default: // linBwdW: a = x, b = dy
		return mm.Run(b, a, y)
	}
}

func (o *linearOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	y := o.outBuffer.out.get(dt, o.shape)
	switch {
	case dt == tensor.Float32 && o.bf16:
		if err := linearBF16(o, ds, data[float32](y)); err != nil {
			return nil, fmt.Errorf("%s: %w", o.name, err)
		}
	case dt == tensor.Float32:
		linearRun[float32](o, ds, data[float32](y))
	default:
		linearRun[float64](o, ds, data[float64](y))
	}
	return y, nil
}

func linearRun[T float](o *linearOp, ds []*tensor.Dense, y []T) {
	a, b := data[T](ds[0]), data[T](ds[1])
	switch o.mode {
	case linFwd:
		var beta T
		if len(ds) == 3 {
			bias := data[T](ds[2])
			for i := 0; i < o.n; i++ {
				copy(y[i*o.out:(i+1)*o.out], bias)
			}
			beta = 1
		}
		gemm(false, true, o.n, o.out, o.in, 1, a, o.in, b, o.in, beta, y, o.out)
	case linBwdX: // a = w (out×in), b = dy (n×out)
		gemm(false, false, o.n, o.in, o.out, 1, b, o.out, a, o.in, 0, y, o.in)
	case linBwdW: // a = x (n×in), b = dy (n×out)
		gemm(true, false, o.out, o.in, o.n, 1, b, o.out, a, o.in, 0, y, o.in)
	}
}

func (o *linearOp) DiffWRT(n int) []bool {
	r := make([]bool, n)
	for i := range r {
		r[i] = true
	}
	return r
}

func (o *linearOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dxo := &linearOp{n: o.n, in: o.in, out: o.out, mode: linBwdX, bf16: o.bf16}
	dxo.baseOp = baseOp{name: "LinearBwdX" + o.name[6:], arity: 2, typ: fnType(2, 2, 2), shape: tensor.Shape{o.n, o.in}}
	dx, err := G.ApplyOp(dxo, inputs[1], grad)
	if err != nil {
		return nil, fmt.Errorf("nn.Linear backward (input): %w", err)
	}
	dwo := &linearOp{n: o.n, in: o.in, out: o.out, mode: linBwdW, bf16: o.bf16}
	dwo.baseOp = baseOp{name: "LinearBwdW" + o.name[6:], arity: 2, typ: fnType(2, 2, 2), shape: tensor.Shape{o.out, o.in}}
	dw, err := G.ApplyOp(dwo, inputs[0], grad)
	if err != nil {
		return nil, fmt.Errorf("nn.Linear backward (weight): %w", err)
	}
	res := G.Nodes{dx, dw}
	if len(inputs) == 3 {
		db, err := channelSum(grad)
		if err != nil {
			return nil, fmt.Errorf("nn.Linear backward (bias): %w", err)
		}
		res = append(res, db)
	}
	return res, nil
}
