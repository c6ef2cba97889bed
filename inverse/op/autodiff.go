package op

import (
	"fmt"
	"sync"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/nn"
)

// ExprFunc builds a forward model as a Gorgonia expression: given the
// node x of one image (float64, C×H×W) in graph g it returns the node A(x),
// of 1 to 3 dimensions (a 1-D or 2-D result is measured as 1×1×M or 1×H×W).
// Any differentiable Gorgonia op may be used (G.Tanh, G.Mul, G.Exp, the nn
// package's Conv2d with a float64 kernel node, …); constants come from
// G.NewConstant or G.NewTensor with a value.
type ExprFunc func(g *G.ExprGraph, x *G.Node) (*G.Node, error)

// Autodiff is an Operator defined by an ExprFunc: Forward evaluates the
// expression and VJP comes from Gorgonia's reverse mode, (∂A/∂x)ᵀ g =
// ∇ₓ ⟨g, A(x)⟩, so a researcher adds a nonlinear operator without deriving
// its adjoint, and every method that needs only Forward and a VJP (DPS,
// MCG's gradient step, the classical gradient baselines) can use it. It
// works image by image in float64, like every operator of this package, and
// serialises its calls on one graph.
type Autodiff struct {
	name     string
	in, out  []int
	mu       sync.Mutex
	x        *tensor.Dense // value bound to the forward graph's x
	bx, cot  *tensor.Dense // values bound to the VJP graph's x and cotangent
	y, grad  *G.Node
	fwd, bwd G.VM
}

// NewAutodiff builds the operator named name on images of shape inShape
// (C, H, W) from f, checking that the expression builds, has a
// differentiable path to x and an output of at most 3 dimensions.
func NewAutodiff(name string, inShape [3]int, f ExprFunc) (*Autodiff, error) {
	if err := checkImageShape("op.NewAutodiff("+name+")", inShape); err != nil {
		return nil, err
	}
	if f == nil {
		return nil, fmt.Errorf("op.NewAutodiff(%s): nil expression", name)
	}
	o := &Autodiff{name: name, in: inShape[:]}
	build := func(withGrad bool) (*G.ExprGraph, *G.Node, error) {
		g := G.NewGraph()
		xv := tensor.New(tensor.WithShape(inShape[:]...), tensor.Of(tensor.Float64))
		x := G.NewTensor(g, tensor.Float64, 3, G.WithShape(inShape[:]...), G.WithName("x"), G.WithValue(xv))
		y, err := f(g, x)
		if err != nil {
			return nil, nil, fmt.Errorf("op.NewAutodiff(%s): building the expression: %w", name, err)
		}
		if y == nil || y.Dtype() != tensor.Float64 {
			return nil, nil, fmt.Errorf("op.NewAutodiff(%s): the expression returned %v, want a float64 node", name, y)
		}
		s := []int(y.Shape())
		switch len(s) {
		case 1:
			s = []int{1, 1, s[0]}
		case 2:
			s = []int{1, s[0], s[1]}
		case 3:
		default:
			return nil, nil, fmt.Errorf("op.NewAutodiff(%s): output shape %v, want 1 to 3 dimensions", name, y.Shape())
		}
		o.out = append([]int(nil), s...)
		if !withGrad {
			o.x, o.y = xv, y
			return g, y, nil
		}
		cv := tensor.New(tensor.WithShape(y.Shape().Clone()...), tensor.Of(tensor.Float64))
		cot := G.NewTensor(g, tensor.Float64, y.Dims(), G.WithShape(y.Shape().Clone()...), G.WithName("cotangent"), G.WithValue(cv))
		prod, err := G.HadamardProd(y, cot)
		if err != nil {
			return nil, nil, fmt.Errorf("op.NewAutodiff(%s): ⟨g, A(x)⟩: %w", name, err)
		}
		inner, err := G.Sum(prod)
		if err != nil {
			return nil, nil, fmt.Errorf("op.NewAutodiff(%s): ⟨g, A(x)⟩: %w", name, err)
		}
		grads, err := G.Grad(inner, x)
		if err != nil {
			return nil, nil, fmt.Errorf("op.NewAutodiff(%s): reverse mode (is A differentiable in x?): %w", name, err)
		}
		o.bx, o.cot, o.grad = xv, cv, grads[0]
		return g, grads[0], nil
	}
	// Two graphs: the forward alone (cheap), and the forward with the
	// gradient of ⟨g, A(x)⟩.
	gf, _, err := build(false)
	if err != nil {
		return nil, err
	}
	if o.fwd, err = nn.NewTapeMachine(gf); err != nil {
		return nil, fmt.Errorf("op.NewAutodiff(%s): %w", name, err)
	}
	gb, _, err := build(true)
	if err != nil {
		return nil, err
	}
	if o.bwd, err = nn.NewTapeMachine(gb); err != nil {
		return nil, fmt.Errorf("op.NewAutodiff(%s): %w", name, err)
	}
	return o, nil
}

// Name returns the operator's name.
func (o *Autodiff) Name() string { return o.name }

// InShape is the per-image shape of x.
func (o *Autodiff) InShape() []int { return append([]int(nil), o.in...) }

// OutShape is the per-image shape of y (3 dimensions).
func (o *Autodiff) OutShape() []int { return append([]int(nil), o.out...) }

// Forward returns A(x) for a batch x (N×C×H×W).
func (o *Autodiff) Forward(x *tensor.Dense) (*tensor.Dense, error) {
	n, err := checkBatch("op "+o.name+": x", x, o.in)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	d, m := prod(o.in), prod(o.out)
	src := tensors.F32(x)
	dst := make([]float32, n*m)
	xd := o.x.Data().([]float64)
	for i := 0; i < n; i++ {
		for j, v := range src[i*d : (i+1)*d] {
			xd[j] = float64(v)
		}
		o.fwd.Reset()
		if err := o.fwd.RunAll(); err != nil {
			return nil, fmt.Errorf("op %s: forward: %w", o.name, err)
		}
		if err := copyOut(o.y.Value(), dst[i*m:(i+1)*m]); err != nil {
			return nil, fmt.Errorf("op %s: forward: %w", o.name, err)
		}
	}
	return tensor.New(tensor.WithShape(append([]int{n}, o.out...)...), tensor.WithBacking(dst)), nil
}

// VJP returns (∂A/∂x)ᵀ g at x by reverse mode.
func (o *Autodiff) VJP(x, g *tensor.Dense) (*tensor.Dense, error) {
	n, err := checkBatch("op "+o.name+": x", x, o.in)
	if err != nil {
		return nil, err
	}
	if ng, err := checkBatch("op "+o.name+": cotangent", g, o.out); err != nil {
		return nil, err
	} else if ng != n {
		return nil, fmt.Errorf("op %s: %d cotangents for %d images", o.name, ng, n)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	d, m := prod(o.in), prod(o.out)
	xs, gs := tensors.F32(x), tensors.F32(g)
	dst := make([]float32, n*d)
	xd, cd := o.bx.Data().([]float64), o.cot.Data().([]float64)
	for i := 0; i < n; i++ {
		for j, v := range xs[i*d : (i+1)*d] {
			xd[j] = float64(v)
		}
		for j, v := range gs[i*m : (i+1)*m] {
			cd[j] = float64(v)
		}
		o.bwd.Reset()
		if err := o.bwd.RunAll(); err != nil {
			return nil, fmt.Errorf("op %s: VJP: %w", o.name, err)
		}
		if err := copyOut(o.grad.Value(), dst[i*d:(i+1)*d]); err != nil {
			return nil, fmt.Errorf("op %s: VJP: %w", o.name, err)
		}
	}
	return tensor.New(tensor.WithShape(append([]int{n}, o.in...)...), tensor.WithBacking(dst)), nil
}

// copyOut rounds a float64 tensor value into dst.
func copyOut(v G.Value, dst []float32) error {
	d, ok := v.Data().([]float64)
	if !ok || len(d) != len(dst) {
		return fmt.Errorf("value %T of %d elements, want %d float64 values", v.Data(), len(d), len(dst))
	}
	for i, x := range d {
		dst[i] = float32(x)
	}
	return nil
}
