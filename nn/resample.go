package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Upsample2x repeats every pixel of x (N×C×H×W) into a 2×2 block:
// N×C×2H×2W, PyTorch's F.interpolate(x, scale_factor=2, mode="nearest").
func Upsample2x(x *G.Node) (*G.Node, error) {
	xs, err := shapeOf("nn.Upsample2x", "input", x, 4)
	if err != nil {
		return nil, err
	}
	if _, err := dtypeOf("nn.Upsample2x", x); err != nil {
		return nil, err
	}
	o := &resampleOp{expand: true, scale: 1, nc: xs[0] * xs[1], h: xs[2], w: xs[3], bh: 2 * xs[2], bw: 2 * xs[3]}
	o.baseOp = baseOp{name: fmt.Sprintf("Upsample2x(%v)", xs), arity: 1, typ: fnType(4, 4), shape: tensor.Shape{xs[0], xs[1], 2 * xs[2], 2 * xs[3]}}
	return G.ApplyOp(o, x)
}

// AvgPool2x averages x (N×C×H×W) over non-overlapping 2×2 blocks:
// N×C×⌊H/2⌋×⌊W/2⌋ (an odd last row or column is dropped), PyTorch's
// nn.AvgPool2d(2) and guided-diffusion's Downsample without conv_resample.
func AvgPool2x(x *G.Node) (*G.Node, error) {
	xs, err := shapeOf("nn.AvgPool2x", "input", x, 4)
	if err != nil {
		return nil, err
	}
	if _, err := dtypeOf("nn.AvgPool2x", x); err != nil {
		return nil, err
	}
	if xs[2] < 2 || xs[3] < 2 {
		return nil, fmt.Errorf("nn.AvgPool2x: input %s is %d×%d, want at least 2×2", x.Name(), xs[2], xs[3])
	}
	o := &resampleOp{expand: false, scale: 0.25, nc: xs[0] * xs[1], h: xs[2] / 2, w: xs[3] / 2, bh: xs[2], bw: xs[3]}
	o.baseOp = baseOp{name: fmt.Sprintf("AvgPool2x(%v)", xs), arity: 1, typ: fnType(4, 4), shape: tensor.Shape{xs[0], xs[1], xs[2] / 2, xs[3] / 2}}
	return G.ApplyOp(o, x)
}

// resampleOp maps between a small h×w plane and a big bh×bw one (bh ≥ 2h,
// bw ≥ 2w) for nc planes. expand: every small pixel times scale fills its
// 2×2 block (the rest of the big plane is zero); else every small pixel is
// scale times the sum of its 2×2 block. Upsample is expand with scale 1 and
// its adjoint the block sum; average pooling is the block sum with scale ¼
// and its adjoint the expansion with scale ¼.
type resampleOp struct {
	baseOp
	expand   bool
	scale    float64
	nc, h, w int
	bh, bw   int
	outBuffer
}

func (o *resampleOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	y := o.out.get(dt, o.shape)
	if dt == tensor.Float32 {
		resampleRun(o, data[float32](ds[0]), data[float32](y))
	} else {
		resampleRun(o, data[float64](ds[0]), data[float64](y))
	}
	return y, nil
}

func resampleRun[T float](o *resampleOp, x, y []T) {
	h, w, bh, bw := o.h, o.w, o.bh, o.bw
	s := T(o.scale)
	parallel(o.nc, elemWorkers(o.nc*bh*bw), func(_, lo, hi int) {
		for p := lo; p < hi; p++ {
			small, big := p*h*w, p*bh*bw
			if o.expand {
				xs, ys := x[small:small+h*w], y[big:big+bh*bw]
				if bh > 2*h || bw > 2*w {
					clear(ys)
				}
				for i := 0; i < h; i++ {
					r0, r1 := ys[2*i*bw:2*i*bw+2*w], ys[(2*i+1)*bw:(2*i+1)*bw+2*w]
					for j, v := range xs[i*w : (i+1)*w] {
						v *= s
						r0[2*j], r0[2*j+1] = v, v
					}
					copy(r1, r0)
				}
				continue
			}
			xs, ys := x[big:big+bh*bw], y[small:small+h*w]
			for i := 0; i < h; i++ {
				r0, r1 := xs[2*i*bw:], xs[(2*i+1)*bw:]
				yr := ys[i*w : (i+1)*w]
				for j := range yr {
					yr[j] = s * (r0[2*j] + r0[2*j+1] + r1[2*j] + r1[2*j+1])
				}
			}
		}
	})
}

func (o *resampleOp) DiffWRT(int) []bool { return []bool{true} }

func (o *resampleOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	b := &resampleOp{expand: !o.expand, scale: o.scale, nc: o.nc, h: o.h, w: o.w, bh: o.bh, bw: o.bw}
	b.baseOp = baseOp{name: "Bwd" + o.name, arity: 1, typ: fnType(4, 4), shape: inputs[0].Shape().Clone()}
	dx, err := G.ApplyOp(b, grad)
	if err != nil {
		return nil, fmt.Errorf("nn: %s backward: %w", o.name, err)
	}
	return G.Nodes{dx}, nil
}

// concatArgs checks the inputs of a concatenation along axis 1 (N×Cᵢ×…)
// or, with last, along the last axis (N×…×Cᵢ), and returns the output's
// shape and each input's size on that axis.
func concatArgs(op string, xs []*G.Node, last bool) (tensor.Shape, []int, error) {
	if len(xs) == 0 {
		return nil, nil, fmt.Errorf("%s: no inputs", op)
	}
	for i, x := range xs {
		if x == nil {
			return nil, nil, fmt.Errorf("%s: input %d is nil", op, i)
		}
	}
	if _, err := sameDtype(op, xs...); err != nil {
		return nil, nil, err
	}
	s0 := xs[0].Shape()
	if len(s0) < 2 {
		want := "N×C×…"
		if last {
			want = "N×…×C"
		}
		return nil, nil, fmt.Errorf("%s: %s has shape %v, want %s", op, xs[0].Name(), s0, want)
	}
	axis, where := 1, "axis 1"
	if last {
		axis, where = len(s0)-1, "the last axis"
	}
	var cs []int
	total := 0
	for _, x := range xs {
		s := x.Shape()
		ok := len(s) == len(s0)
		for d := 0; ok && d < len(s); d++ {
			ok = d == axis || s[d] == s0[d]
		}
		if !ok {
			return nil, nil, fmt.Errorf("%s: %s has shape %v, want %v but for %s", op, x.Name(), s, s0, where)
		}
		cs = append(cs, s[axis])
		total += s[axis]
	}
	shape := s0.Clone()
	shape[axis] = total
	return shape, cs, nil
}

// Concat joins xs (each N×Cᵢ×…, equal but for the channel axis) along the
// channel axis 1: the UNet's skip connections, torch.cat(xs, dim=1).
func Concat(xs ...*G.Node) (*G.Node, error) {
	shape, cs, err := concatArgs("nn.Concat", xs, false)
	if err != nil {
		return nil, err
	}
	s0 := xs[0].Shape()
	o := &concatOp{n: s0[0], inner: s0.TotalSize() / (s0[0] * s0[1]), cs: cs}
	ins := make([]int, len(xs))
	for i := range ins {
		ins[i] = len(s0)
	}
	o.baseOp = baseOp{name: fmt.Sprintf("Concat(%v %v)", shape, o.cs), arity: len(xs), typ: fnType(len(s0), ins...), shape: shape}
	return G.ApplyOp(o, xs...)
}

type concatOp struct {
	baseOp
	n, inner int
	cs       []int
	outBuffer
}

func (o *concatOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	y := o.out.get(dt, o.shape)
	if dt == tensor.Float32 {
		concatRun[float32](o, ds, data[float32](y))
	} else {
		concatRun[float64](o, ds, data[float64](y))
	}
	return y, nil
}

func concatRun[T float](o *concatOp, ds []*tensor.Dense, y []T) {
	total := o.shape[1]
	parallel(o.n, elemWorkers(len(y)), func(_, lo, hi int) {
		for n := lo; n < hi; n++ {
			off := n * total * o.inner
			for i, d := range ds {
				sz := o.cs[i] * o.inner
				copy(y[off:off+sz], data[T](d)[n*sz:(n+1)*sz])
				off += sz
			}
		}
	})
}

func (o *concatOp) DiffWRT(n int) []bool {
	r := make([]bool, n)
	for i := range r {
		r[i] = true
	}
	return r
}

func (o *concatOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	res := make(G.Nodes, len(inputs))
	lo := 0
	for i, in := range inputs {
		s := &sliceChanOp{n: o.n, inner: o.inner, total: o.shape[1], lo: lo, hi: lo + o.cs[i]}
		s.baseOp = baseOp{name: fmt.Sprintf("SliceChannels(%v %d:%d)", o.shape, s.lo, s.hi), arity: 1, typ: fnType(len(o.shape), len(o.shape)), shape: in.Shape().Clone()}
		d, err := G.ApplyOp(s, grad)
		if err != nil {
			return nil, fmt.Errorf("nn.Concat backward: %w", err)
		}
		res[i] = d
		lo += o.cs[i]
	}
	return res, nil
}

// sliceChanOp copies channels [lo, hi) of x (N×total×…): Concat's backward.
type sliceChanOp struct {
	baseOp
	n, inner, total, lo, hi int
	outBuffer
}

func (o *sliceChanOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	y := o.out.get(dt, o.shape)
	if dt == tensor.Float32 {
		sliceChanRun(o, data[float32](ds[0]), data[float32](y))
	} else {
		sliceChanRun(o, data[float64](ds[0]), data[float64](y))
	}
	return y, nil
}

func sliceChanRun[T float](o *sliceChanOp, x, y []T) {
	sz := (o.hi - o.lo) * o.inner
	for n := 0; n < o.n; n++ {
		copy(y[n*sz:(n+1)*sz], x[(n*o.total+o.lo)*o.inner:])
	}
}
