package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// minPar is the element count below which elementwise ops stay on one
// goroutine.
const minPar = 1 << 15

// elemWorkers returns the goroutine count for an elementwise pass over n
// elements.
func elemWorkers(n int) int {
	if n < minPar {
		return 1
	}
	return workers(n)
}

// SiLU returns x·sigmoid(x) elementwise (x of any shape), PyTorch's nn.SiLU.
func SiLU(x *G.Node) (*G.Node, error) {
	if x == nil {
		return nil, fmt.Errorf("nn.SiLU: input is nil")
	}
	if _, err := dtypeOf("nn.SiLU", x); err != nil {
		return nil, err
	}
	s := x.Shape()
	o := &siluOp{}
	o.baseOp = baseOp{name: fmt.Sprintf("SiLU(%v)", s), arity: 1, typ: fnType(len(s), len(s)), shape: s.Clone()}
	return G.ApplyOp(o, x)
}

type siluOp struct {
	baseOp
	outBuffer
}

func (o *siluOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	y := o.out.get(dt, o.shape)
	if dt == tensor.Float32 {
		siluRun(data[float32](ds[0]), data[float32](y))
	} else {
		siluRun(data[float64](ds[0]), data[float64](y))
	}
	return y, nil
}

func siluRun[T float](x, y []T) {
	parallel(len(x), elemWorkers(len(x)), func(_, lo, hi int) {
		siluSlice(x[lo:hi], y[lo:hi])
	})
}

func (o *siluOp) DiffWRT(int) []bool { return []bool{true} }

func (o *siluOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	b := &siluBwdOp{}
	b.baseOp = baseOp{name: "SiLUBwd" + o.name[4:], arity: 2, typ: fnType(len(o.shape), len(o.shape), len(o.shape)), shape: o.shape}
	dx, err := G.ApplyOp(b, inputs[0], grad)
	if err != nil {
		return nil, fmt.Errorf("nn.SiLU backward: %w", err)
	}
	return G.Nodes{dx}, nil
}

// siluBwdOp computes dx = dy·s·(1 + x·(1−s)), s = sigmoid(x), from (x, dy).
type siluBwdOp struct {
	baseOp
	outBuffer
}

func (o *siluBwdOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	dx := o.out.get(dt, o.shape)
	if dt == tensor.Float32 {
		siluBwdRun(data[float32](ds[0]), data[float32](ds[1]), data[float32](dx))
	} else {
		siluBwdRun(data[float64](ds[0]), data[float64](ds[1]), data[float64](dx))
	}
	return dx, nil
}

func siluBwdRun[T float](x, dy, dx []T) {
	parallel(len(x), elemWorkers(len(x)), func(_, lo, hi int) {
		siluGradSlice(x[lo:hi], dy[lo:hi], dx[lo:hi])
	})
}

// Add returns a + b for two tensors of the same shape (no broadcasting),
// into an op-owned buffer: the residual additions of the UNet.
func Add(a, b *G.Node) (*G.Node, error) {
	const op = "nn.Add"
	if a == nil || b == nil {
		return nil, fmt.Errorf("%s: nil input", op)
	}
	if _, err := sameDtype(op, a, b); err != nil {
		return nil, err
	}
	if !a.Shape().Eq(b.Shape()) {
		return nil, fmt.Errorf("%s: %s has shape %v, %s has %v: want equal shapes", op, a.Name(), a.Shape(), b.Name(), b.Shape())
	}
	s := a.Shape()
	o := &addOp{}
	o.baseOp = baseOp{name: fmt.Sprintf("Add(%v)", s), arity: 2, typ: fnType(len(s), len(s), len(s)), shape: s.Clone()}
	return G.ApplyOp(o, a, b)
}

type addOp struct {
	baseOp
	outBuffer
}

func (o *addOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	y := o.out.get(dt, o.shape)
	if dt == tensor.Float32 {
		addRun(data[float32](ds[0]), data[float32](ds[1]), data[float32](y))
	} else {
		addRun(data[float64](ds[0]), data[float64](ds[1]), data[float64](y))
	}
	return y, nil
}

func addRun[T float](a, b, y []T) {
	if a32, ok := any(a).([]float32); ok {
		b32, y32 := any(b).([]float32), any(y).([]float32)
		parallel(len(a), elemWorkers(len(a)), func(_, lo, hi int) { addF32(a32[lo:hi], b32[lo:hi], y32[lo:hi]) })
		return
	}
	parallel(len(a), elemWorkers(len(a)), func(_, lo, hi int) {
		bb, yy := b[lo:hi], y[lo:hi]
		for i, v := range a[lo:hi] {
			yy[i] = v + bb[i]
		}
	})
}

func (o *addOp) DiffWRT(int) []bool { return []bool{true, true} }

func (o *addOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	return G.Nodes{grad, grad}, nil
}

// AddChannel returns x + e[:, :, None, …] for x N×C×… and e N×C: the
// timestep-embedding injection of a ResBlock.
func AddChannel(x, e *G.Node) (*G.Node, error) {
	xs, _, err := addChannelArgs("nn.AddChannel", x, e, false)
	if err != nil {
		return nil, err
	}
	o := &addChannelOp{nc: xs[0] * xs[1], inner: xs.TotalSize() / (xs[0] * xs[1])}
	o.baseOp = baseOp{name: fmt.Sprintf("AddChannel(%v)", xs), arity: 2, typ: fnType(len(xs), len(xs), 2), shape: xs.Clone()}
	return G.ApplyOp(o, x, e)
}

// addChannelArgs checks AddChannel's arguments: x N×C×… (or, with last,
// N×…×C) and e N×C; it returns x's shape and C.
func addChannelArgs(op string, x, e *G.Node, last bool) (tensor.Shape, int, error) {
	if x == nil || e == nil {
		return nil, 0, fmt.Errorf("%s: nil input", op)
	}
	xs := x.Shape()
	if len(xs) < 2 {
		want := "N×C×…"
		if last {
			want = "N×…×C"
		}
		return nil, 0, fmt.Errorf("%s: %s has shape %v, want %s", op, x.Name(), xs, want)
	}
	es, err := shapeOf(op, "embedding", e, 2)
	if err != nil {
		return nil, 0, err
	}
	c := xs[1]
	if last {
		c = xs[len(xs)-1]
	}
	if es[0] != xs[0] || es[1] != c {
		return nil, 0, fmt.Errorf("%s: %s has shape %v, want [%d %d] to match %s %v", op, e.Name(), es, xs[0], c, x.Name(), xs)
	}
	if _, err := sameDtype(op, x, e); err != nil {
		return nil, 0, err
	}
	return xs, c, nil
}

type addChannelOp struct {
	baseOp
	nc, inner int
	outBuffer
}

func (o *addChannelOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	y := o.out.get(dt, o.shape)
	if dt == tensor.Float32 {
		addChannelRun(data[float32](ds[0]), data[float32](ds[1]), data[float32](y), o.inner)
	} else {
		addChannelRun(data[float64](ds[0]), data[float64](ds[1]), data[float64](y), o.inner)
	}
	return y, nil
}

func addChannelRun[T float](x, e, y []T, inner int) {
	parallel(len(e), elemWorkers(len(x)), func(_, lo, hi int) {
		for j := lo; j < hi; j++ {
			ev := e[j]
			xr, yr := x[j*inner:(j+1)*inner], y[j*inner:(j+1)*inner]
			for i, v := range xr {
				yr[i] = v + ev
			}
		}
	})
}

func (o *addChannelOp) DiffWRT(int) []bool { return []bool{true, true} }

func (o *addChannelOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	de, err := spatialSum(grad)
	if err != nil {
		return nil, fmt.Errorf("nn.AddChannel backward: %w", err)
	}
	return G.Nodes{grad, de}, nil
}

// spatialSum sums x (N×C×…) over its trailing axes: N×C.
func spatialSum(x *G.Node) (*G.Node, error) {
	s := x.Shape()
	o := &spatialSumOp{inner: s.TotalSize() / (s[0] * s[1])}
	o.baseOp = baseOp{name: fmt.Sprintf("SpatialSum(%v)", s), arity: 1, typ: fnType(2, len(s)), shape: tensor.Shape{s[0], s[1]}}
	return G.ApplyOp(o, x)
}

type spatialSumOp struct {
	baseOp
	inner int
	outBuffer
}

func (o *spatialSumOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	y := o.out.get(dt, o.shape)
	if dt == tensor.Float32 {
		spatialSumRun(data[float32](ds[0]), data[float32](y), o.inner)
	} else {
		spatialSumRun(data[float64](ds[0]), data[float64](y), o.inner)
	}
	return y, nil
}

func spatialSumRun[T float](x, y []T, inner int) {
	parallel(len(y), elemWorkers(len(x)), func(_, lo, hi int) {
		for j := lo; j < hi; j++ {
			y[j] = T(rowSum(x[j*inner : (j+1)*inner]))
		}
	})
}

// ScaleShift returns x·(1 + scale) + shift with scale and shift N×C
// broadcast over x's trailing axes (x N×C×…): guided-diffusion's
// use_scale_shift_norm, out_norm(h)·(1+scale)+shift.
func ScaleShift(x, scale, shift *G.Node) (*G.Node, error) {
	xs, _, err := scaleShiftArgs("nn.ScaleShift", x, scale, shift, false)
	if err != nil {
		return nil, err
	}
	o := &scaleShiftOp{inner: xs.TotalSize() / (xs[0] * xs[1])}
	o.baseOp = baseOp{name: fmt.Sprintf("ScaleShift(%v)", xs), arity: 3, typ: fnType(len(xs), len(xs), 2, 2), shape: xs.Clone()}
	return G.ApplyOp(o, x, scale, shift)
}

// scaleShiftArgs checks ScaleShift's arguments: x N×C×… (or, with last,
// N×…×C), scale and shift N×C; it returns x's shape and C.
func scaleShiftArgs(op string, x, scale, shift *G.Node, last bool) (tensor.Shape, int, error) {
	if x == nil {
		return nil, 0, fmt.Errorf("%s: input is nil", op)
	}
	xs := x.Shape()
	if len(xs) < 2 {
		want := "N×C×…"
		if last {
			want = "N×…×C"
		}
		return nil, 0, fmt.Errorf("%s: %s has shape %v, want %s", op, x.Name(), xs, want)
	}
	c := xs[1]
	if last {
		c = xs[len(xs)-1]
	}
	for _, p := range []struct {
		n    *G.Node
		what string
	}{{scale, "scale"}, {shift, "shift"}} {
		s, err := shapeOf(op, p.what, p.n, 2)
		if err != nil {
			return nil, 0, err
		}
		if s[0] != xs[0] || s[1] != c {
			return nil, 0, fmt.Errorf("%s: %s %s has shape %v, want [%d %d]", op, p.what, p.n.Name(), s, xs[0], c)
		}
	}
	if _, err := sameDtype(op, x, scale, shift); err != nil {
		return nil, 0, err
	}
	return xs, c, nil
}

type scaleShiftOp struct {
	baseOp
	inner int
	outBuffer
}

func (o *scaleShiftOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	y := o.out.get(dt, o.shape)
	if dt == tensor.Float32 {
		scaleShiftRun(data[float32](ds[0]), data[float32](ds[1]), data[float32](ds[2]), data[float32](y), o.inner)
	} else {
		scaleShiftRun(data[float64](ds[0]), data[float64](ds[1]), data[float64](ds[2]), data[float64](y), o.inner)
	}
	return y, nil
}

func scaleShiftRun[T float](x, sc, sh, y []T, inner int) {
	parallel(len(sc), elemWorkers(len(x)), func(_, lo, hi int) {
		for j := lo; j < hi; j++ {
			a, b := 1+sc[j], sh[j]
			xr, yr := x[j*inner:(j+1)*inner], y[j*inner:(j+1)*inner]
			for i, v := range xr {
				yr[i] = v*a + b
			}
		}
	})
}

func (o *scaleShiftOp) DiffWRT(int) []bool { return []bool{true, true, true} }

func (o *scaleShiftOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	b := &scaleShiftBwdOp{inner: o.inner}
	r := len(o.shape)
	b.baseOp = baseOp{name: fmt.Sprintf("ScaleShiftBwd(%p)", o), arity: 3, typ: fnType(r, r, 2, r), shape: o.shape}
	dx, err := G.ApplyOp(b, inputs[0], inputs[1], grad)
	if err != nil {
		return nil, fmt.Errorf("nn.ScaleShift backward: %w", err)
	}
	nc := tensor.Shape{o.shape[0], o.shape[1]}
	dsc, err := pick(dx, &b.dscale, fmt.Sprintf("%p.dscale", b), nc)
	if err != nil {
		return nil, err
	}
	dsh, err := spatialSum(grad)
	if err != nil {
		return nil, fmt.Errorf("nn.ScaleShift backward: %w", err)
	}
	return G.Nodes{dx, dsc, dsh}, nil
}

// scaleShiftBwdOp computes dx = dy·(1+scale) from (x, scale, dy) and, as a
// by-product, dscale = Σ dy·x.
type scaleShiftBwdOp struct {
	baseOp
	inner int
	outBuffer
	dscale buffer
}

func (o *scaleShiftBwdOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	dx := o.out.get(dt, o.shape)
	dsc := o.dscale.get(dt, ds[1].Shape())
	if dt == tensor.Float32 {
		scaleShiftBwdRun(data[float32](ds[0]), data[float32](ds[1]), data[float32](ds[2]), data[float32](dx), data[float32](dsc), o.inner)
	} else {
		scaleShiftBwdRun(data[float64](ds[0]), data[float64](ds[1]), data[float64](ds[2]), data[float64](dx), data[float64](dsc), o.inner)
	}
	return dx, nil
}

func scaleShiftBwdRun[T float](x, sc, dy, dx, dsc []T, inner int) {
	parallel(len(sc), elemWorkers(len(x)), func(_, lo, hi int) {
		for j := lo; j < hi; j++ {
			a := 1 + sc[j]
			xr, dyr, dxr := x[j*inner:(j+1)*inner], dy[j*inner:(j+1)*inner], dx[j*inner:(j+1)*inner]
			var s T
			for i, g := range dyr {
				dxr[i] = g * a
				s += g * xr[i]
			}
			dsc[j] = s
		}
	})
}
