package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// symDiffer is a forward op of this package: its SymDiff builds the backward
// ops on any graph.
type symDiffer interface {
	G.Op
	SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error)
}

// doDiff implements gorgonia's ADOp (used by the LispMachine) for every op
// here from its symbolic backward: it builds the backward ops on a scratch
// graph over the current values of the inputs and of the output's gradient,
// runs it, and adds the results into the inputs' gradients. It allocates a
// graph per call: the TapeMachine path (G.Grad / G.Backpropagate) is the
// fast one.
func doDiff(op symDiffer, inputs G.Nodes, output *G.Node) error {
	gv, err := output.Grad()
	if err != nil {
		return fmt.Errorf("nn: %v DoDiff: output gradient: %w", op, err)
	}
	g := G.NewGraph()
	ins := make(G.Nodes, len(inputs))
	for i, in := range inputs {
		v := in.Value()
		if v == nil {
			return fmt.Errorf("nn: %v DoDiff: input %d has no value", op, i)
		}
		ins[i] = G.NewTensor(g, v.Dtype(), v.Shape().Dims(), G.WithShape(v.Shape().Clone()...), G.WithName(fmt.Sprintf("in%d", i)), G.WithValue(v))
	}
	gn := G.NewTensor(g, gv.Dtype(), gv.Shape().Dims(), G.WithShape(gv.Shape().Clone()...), G.WithName("grad"), G.WithValue(gv))
	grads, err := op.SymDiff(ins, nil, gn)
	if err != nil {
		return fmt.Errorf("nn: %v DoDiff: %w", op, err)
	}
	vm, err := NewTapeMachine(g)
	if err != nil {
		return fmt.Errorf("nn: %v DoDiff: %w", op, err)
	}
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		return fmt.Errorf("nn: %v DoDiff: %w", op, err)
	}
	for i, in := range inputs {
		dst, err := in.Grad()
		if err != nil {
			continue // not differentiated (e.g. a constant)
		}
		if err := addInto(dst, grads[i].Value()); err != nil {
			return fmt.Errorf("nn: %v DoDiff: input %d: %w", op, i, err)
		}
	}
	return nil
}

// addInto adds src into dst elementwise (same dtype and size).
func addInto(dst, src G.Value) error {
	dd, ok1 := dst.(*tensor.Dense)
	sd, ok2 := src.(*tensor.Dense)
	if !ok1 || !ok2 {
		return fmt.Errorf("gradient is %T, update %T, want *tensor.Dense", dst, src)
	}
	switch d := dd.Data().(type) {
	case []float32:
		s, ok := sd.Data().([]float32)
		if !ok || len(s) != len(d) {
			return fmt.Errorf("gradient %v %v, update %v %v", dd.Dtype(), dd.Shape(), sd.Dtype(), sd.Shape())
		}
		for i, v := range s {
			d[i] += v
		}
	case []float64:
		s, ok := sd.Data().([]float64)
		if !ok || len(s) != len(d) {
			return fmt.Errorf("gradient %v %v, update %v %v", dd.Dtype(), dd.Shape(), sd.Dtype(), sd.Shape())
		}
		for i, v := range s {
			d[i] += v
		}
	default:
		return fmt.Errorf("gradient dtype %v, want float32 or float64", dd.Dtype())
	}
	return nil
}

// DoDiff implements gorgonia.ADOp.
func (o *convOp) DoDiff(_ G.ExecutionContext, in G.Nodes, out *G.Node) error {
	return doDiff(o, in, out)
}

// DoDiff implements gorgonia.ADOp.
func (o *gnOp) DoDiff(_ G.ExecutionContext, in G.Nodes, out *G.Node) error { return doDiff(o, in, out) }

// DoDiff implements gorgonia.ADOp.
func (o *siluOp) DoDiff(_ G.ExecutionContext, in G.Nodes, out *G.Node) error {
	return doDiff(o, in, out)
}

// DoDiff implements gorgonia.ADOp.
func (o *addOp) DoDiff(_ G.ExecutionContext, in G.Nodes, out *G.Node) error {
	return doDiff(o, in, out)
}

// DoDiff implements gorgonia.ADOp.
func (o *addChannelOp) DoDiff(_ G.ExecutionContext, in G.Nodes, out *G.Node) error {
	return doDiff(o, in, out)
}

// DoDiff implements gorgonia.ADOp.
func (o *scaleShiftOp) DoDiff(_ G.ExecutionContext, in G.Nodes, out *G.Node) error {
	return doDiff(o, in, out)
}

// DoDiff implements gorgonia.ADOp.
func (o *resampleOp) DoDiff(_ G.ExecutionContext, in G.Nodes, out *G.Node) error {
	return doDiff(o, in, out)
}

// DoDiff implements gorgonia.ADOp.
func (o *concatOp) DoDiff(_ G.ExecutionContext, in G.Nodes, out *G.Node) error {
	return doDiff(o, in, out)
}

// DoDiff implements gorgonia.ADOp.
func (o *linearOp) DoDiff(_ G.ExecutionContext, in G.Nodes, out *G.Node) error {
	return doDiff(o, in, out)
}

// DoDiff implements gorgonia.ADOp.
func (o *attnOp) DoDiff(_ G.ExecutionContext, in G.Nodes, out *G.Node) error {
	return doDiff(o, in, out)
}

// DoDiff implements gorgonia.ADOp.
func (o *dropoutOp) DoDiff(_ G.ExecutionContext, in G.Nodes, out *G.Node) error {
	return doDiff(o, in, out)
}
