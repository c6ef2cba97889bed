package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Pad2d pads x (N×C×H×W) with zeros: top rows above, bottom rows below,
// left columns before and right columns after every plane, giving
// N×C×(top+H+bottom)×(left+W+right). It is PyTorch's
// F.pad(x, (left, right, top, bottom)) (note PyTorch's order: the last axis
// first) with mode "constant" and value 0. Every pad must be ≥ 0; with all
// four zero the result is a copy of x. Its gradient is the crop of the
// output's gradient back to H×W.
//
// DDPM's Downsample is Pad2d(x, 0, 1, 0, 1) followed by an unpadded stride-2
// 3×3 convolution.
func Pad2d(x *G.Node, top, bottom, left, right int) (*G.Node, error) {
	xs, err := padArgs("nn.Pad2d", x, top, bottom, left, right)
	if err != nil {
		return nil, err
	}
	o := &padOp{nc: xs[0] * xs[1], h: xs[2], w: xs[3], top: top, bottom: bottom, left: left, right: right}
	shape := tensor.Shape{xs[0], xs[1], xs[2] + top + bottom, xs[3] + left + right}
	o.baseOp = baseOp{name: fmt.Sprintf("Pad2d(%v t%d b%d l%d r%d)", xs, top, bottom, left, right), arity: 1, typ: fnType(4, 4), shape: shape}
	return G.ApplyOp(o, x)
}

// padArgs checks a Pad2d's input (rank 4, float) and pads (≥ 0) and
// returns the input's shape.
func padArgs(op string, x *G.Node, top, bottom, left, right int) (tensor.Shape, error) {
	xs, err := shapeOf(op, "input", x, 4)
	if err != nil {
		return nil, err
	}
	if _, err := dtypeOf(op, x); err != nil {
		return nil, err
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"top", top}, {"bottom", bottom}, {"left", left}, {"right", right}} {
		if p.v < 0 {
			return nil, fmt.Errorf("%s: %s pad %d of %s, want ≥ 0", op, p.name, p.v, x.Name())
		}
	}
	return xs, nil
}

// padOp maps nc planes of h×w (small) to nc planes of
// (top+h+bottom)×(left+w+right) (big) by zero padding; with crop it is the
// adjoint, big → small, dropping the padding (Pad2d's backward, and the
// crop's backward is the padding again).
type padOp struct {
	baseOp
	crop                     bool
	nc, h, w                 int
	top, bottom, left, right int
	outBuffer
}

func (o *padOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	want := o.nc * o.h * o.w
	if o.crop {
		want = o.nc * o.bigH() * o.bigW()
	}
	if n := ds[0].Shape().TotalSize(); n != want {
		return nil, fmt.Errorf("%s: input has shape %v (%d elements), want %d elements", o.name, ds[0].Shape(), n, want)
	}
	y := o.out.get(dt, o.shape)
	if dt == tensor.Float32 {
		padRun(o, data[float32](ds[0]), data[float32](y))
	} else {
		padRun(o, data[float64](ds[0]), data[float64](y))
	}
	return y, nil
}

func (o *padOp) bigH() int { return o.top + o.h + o.bottom }
func (o *padOp) bigW() int { return o.left + o.w + o.right }

func padRun[T float](o *padOp, x, y []T) {
	h, w, bh, bw := o.h, o.w, o.bigH(), o.bigW()
	top, left := o.top, o.left
	parallel(o.nc, elemWorkers(o.nc*bh*bw), func(_, lo, hi int) {
		for p := lo; p < hi; p++ {
			small, big := p*h*w, p*bh*bw
			if o.crop {
				xs, ys := x[big:big+bh*bw], y[small:small+h*w]
				for i := 0; i < h; i++ {
					copy(ys[i*w:(i+1)*w], xs[(top+i)*bw+left:])
				}
				continue
			}
			xs, ys := x[small:small+h*w], y[big:big+bh*bw]
			clear(ys[:top*bw])
			for i := 0; i < h; i++ {
				r := ys[(top+i)*bw : (top+i+1)*bw]
				clear(r[:left])
				copy(r[left:left+w], xs[i*w:(i+1)*w])
				clear(r[left+w:])
			}
			clear(ys[(top+h)*bw:])
		}
	})
}

func (o *padOp) DiffWRT(int) []bool { return []bool{true} }

func (o *padOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	b := &padOp{crop: !o.crop, nc: o.nc, h: o.h, w: o.w, top: o.top, bottom: o.bottom, left: o.left, right: o.right}
	b.baseOp = baseOp{name: "Bwd" + o.name, arity: 1, typ: fnType(4, 4), shape: inputs[0].Shape().Clone()}
	dx, err := G.ApplyOp(b, grad)
	if err != nil {
		return nil, fmt.Errorf("nn: %s backward: %w", o.name, err)
	}
	return G.Nodes{dx}, nil
}

// DoDiff implements gorgonia.ADOp.
func (o *padOp) DoDiff(_ G.ExecutionContext, in G.Nodes, out *G.Node) error {
	return doDiff(o, in, out)
}
