package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Reshape returns a copy of x with the given shape (same number of
// elements). Unlike G.Reshape its result does not share memory with x, so an
// in-place op after it cannot corrupt values x's other consumers (or their
// backward passes) read.
func Reshape(x *G.Node, shape ...int) (*G.Node, error) {
	if x == nil {
		return nil, fmt.Errorf("nn.Reshape: input is nil")
	}
	if _, err := dtypeOf("nn.Reshape", x); err != nil {
		return nil, err
	}
	to := tensor.Shape(append([]int(nil), shape...))
	if len(to) == 0 || to.TotalSize() != x.Shape().TotalSize() {
		return nil, fmt.Errorf("nn.Reshape: %s has shape %v (%d elements), cannot become %v", x.Name(), x.Shape(), x.Shape().TotalSize(), to)
	}
	for _, d := range to {
		if d < 1 {
			return nil, fmt.Errorf("nn.Reshape: shape %v has a dimension < 1", to)
		}
	}
	o := &reshapeOp{from: x.Shape().Clone()}
	o.baseOp = baseOp{name: fmt.Sprintf("Reshape(%v→%v)", x.Shape(), to), arity: 1, typ: fnType(len(to), x.Dims()), shape: to}
	return G.ApplyOp(o, x)
}

type reshapeOp struct {
	baseOp
	from tensor.Shape
	outBuffer
}

func (o *reshapeOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	y := o.out.get(dt, o.shape)
	if dt == tensor.Float32 {
		copy(data[float32](y), data[float32](ds[0]))
	} else {
		copy(data[float64](y), data[float64](ds[0]))
	}
	return y, nil
}

func (o *reshapeOp) DiffWRT(int) []bool { return []bool{true} }

func (o *reshapeOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	d, err := Reshape(grad, o.from...)
	if err != nil {
		return nil, fmt.Errorf("nn.Reshape backward: %w", err)
	}
	return G.Nodes{d}, nil
}

// DoDiff implements gorgonia.ADOp.
func (o *reshapeOp) DoDiff(_ G.ExecutionContext, in G.Nodes, out *G.Node) error {
	return doDiff(o, in, out)
}
