package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Linear returns x·wᵀ + b for x N×In, w Out×In (PyTorch's nn.Linear layout)
// and b Out (or nil): N×Out, one GEMM on the blas package.
func Linear(x, w, b *G.Node) (*G.Node, error) {
	const op = "nn.Linear"
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
	o := &linearOp{n: xs[0], in: xs[1], out: ws[0], mode: linFwd}
	types := []int{2, 2}
	if b != nil {
		types = append(types, 1)
	}
	o.baseOp = baseOp{name: fmt.Sprintf("Linear(%v %v bias=%v)", xs, ws, b != nil), arity: len(ins), typ: fnType(2, types...), shape: tensor.Shape{xs[0], ws[0]}}
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
}

func (o *linearOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	y := o.outBuffer.out.get(dt, o.shape)
	if dt == tensor.Float32 {
		linearRun[float32](o, ds, data[float32](y))
	} else {
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
	dxo := &linearOp{n: o.n, in: o.in, out: o.out, mode: linBwdX}
	dxo.baseOp = baseOp{name: "LinearBwdX" + o.name[6:], arity: 2, typ: fnType(2, 2, 2), shape: tensor.Shape{o.n, o.in}}
	dx, err := G.ApplyOp(dxo, inputs[1], grad)
	if err != nil {
		return nil, fmt.Errorf("nn.Linear backward (input): %w", err)
	}
	dwo := &linearOp{n: o.n, in: o.in, out: o.out, mode: linBwdW}
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
