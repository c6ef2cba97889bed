package nn

import (
	"fmt"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Conv2dNHWC is Conv2d on channels-last activations: x N×H×W×C, w O×C×KH×KW
// (PyTorch's layout, float32 master weights), b O or nil; out
// N×OH×OW×O. float32 values run on oneDNN's bf16 kernels, which read and
// write this layout directly (no reorder of the activations; the input and
// output gradient are rounded to bf16, products accumulate in float32), so
// it needs bf16 (BF16Available). float64 values (the gradient checks) run
// the float64 GEMM path on transposed copies.
func Conv2dNHWC(x, w, b *G.Node, stride, pad int) (*G.Node, error) {
	const op = "nn.Conv2dNHWC"
	if ok, why := BF16Available(); !ok {
		return nil, fmt.Errorf("%s: needs bf16, which cannot run here: %s", op, why)
	}
	g, ins, err := convGeomOf(op, x, w, b, stride, pad, true)
	if err != nil {
		return nil, err
	}
	xs, ws := x.Shape(), g.wShape
	o := &convNHWCOp{ref: &convOp{geom: g, bias: b != nil}}
	o.ref.baseOp = baseOp{name: "Conv2dNHWC reference", arity: len(ins), shape: g.yShape}
	o.geom = &o.ref.geom
	o.bf16 = &bf16Conv{geom: o.geom, nhwc: true}
	o.xShape = xs.Clone()
	o.yShape = tensor.Shape{g.n, g.oh, g.ow, g.o}
	o.baseOp = baseOp{name: fmt.Sprintf("Conv2dNHWC(x%v w%v s%d p%d bias=%v)", xs, ws, stride, pad, b != nil), arity: len(ins), shape: o.yShape}
	if b != nil {
		o.typ = fnType(4, 4, 4, 1)
	} else {
		o.typ = fnType(4, 4, 4)
	}
	return G.ApplyOp(o, ins...)
}

// convNHWCOp is the forward convolution on NHWC activations: inputs x, w[, b].
type convNHWCOp struct {
	baseOp
	geom           *convGeom // the NCHW geometry (shared with ref)
	ref            *convOp   // the float64 reference path, on NCHW copies
	bf16           *bf16Conv
	xShape, yShape tensor.Shape // NHWC
	outBuffer
	stats convStats
}

// nhwcCopy returns the NCHW (toNCHW) or NHWC transposition of d (n images
// of c channels and hw pixels) in a new float64 tensor of shape shape.
func nhwcCopy(d *tensor.Dense, shape tensor.Shape, n, c, hw int, toNCHW bool) *tensor.Dense {
	r := tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(shape.Clone()...))
	src, dst := data[float64](d), data[float64](r)
	sz := c * hw
	for i := 0; i < n; i++ {
		if toNCHW {
			transposeTo(src[i*sz:(i+1)*sz], dst[i*sz:(i+1)*sz], hw, c)
		} else {
			transposeTo(src[i*sz:(i+1)*sz], dst[i*sz:(i+1)*sz], c, hw)
		}
	}
	return r
}

func (o *convNHWCOp) Do(vs ...G.Value) (G.Value, error) {
	start := time.Now()
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	g := o.geom
	y := o.out.get(dt, o.yShape)
	if dt == tensor.Float32 {
		var b []float32
		if o.ref.bias {
			b = data[float32](ds[2])
		}
		if err := o.bf16.forward(data[float32](ds[0]), data[float32](ds[1]), b, data[float32](y)); err != nil {
			return nil, err
		}
	} else {
		in := append([]G.Value{nhwcCopy(ds[0], g.xShape, g.n, g.c, g.h*g.w, true)}, vs[1:]...)
		yv, err := o.ref.Do(in...)
		if err != nil {
			return nil, err
		}
		copy(data[float64](y), data[float64](nhwcCopy(yv.(*tensor.Dense), o.yShape, g.n, g.o, g.p, false)))
	}
	o.stats.add(g, time.Since(start))
	return y, nil
}

func (o *convNHWCOp) DiffWRT(n int) []bool {
	r := make([]bool, n)
	for i := range r {
		r[i] = true
	}
	return r
}

func (o *convNHWCOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx := &convNHWCBwd{fwd: o, data: true}
	dx.baseOp = baseOp{name: fmt.Sprintf("Conv2dNHWCBwdData(%v)", o.name), arity: 2, typ: fnType(4, 4, 4), shape: o.xShape}
	dxn, err := G.ApplyOp(dx, inputs[1], grad)
	if err != nil {
		return nil, fmt.Errorf("nn.Conv2dNHWC backward (input): %w", err)
	}
	dw := &convNHWCBwd{fwd: o}
	dw.baseOp = baseOp{name: fmt.Sprintf("Conv2dNHWCBwdFilter(%v)", o.name), arity: 2, typ: fnType(4, 4, 4), shape: o.geom.wShape}
	dwn, err := G.ApplyOp(dw, inputs[0], grad)
	if err != nil {
		return nil, fmt.Errorf("nn.Conv2dNHWC backward (weight): %w", err)
	}
	res := G.Nodes{dxn, dwn}
	if o.ref.bias {
		dbn, err := lastAxisSum(grad)
		if err != nil {
			return nil, fmt.Errorf("nn.Conv2dNHWC backward (bias): %w", err)
		}
		res = append(res, dbn)
	}
	return res, nil
}

// DoDiff implements gorgonia.ADOp.
func (o *convNHWCOp) DoDiff(_ G.ExecutionContext, in G.Nodes, out *G.Node) error {
	return doDiff(o, in, out)
}

// convNHWCBwd is the input gradient (data: inputs w, dy) or the weight
// gradient (inputs x, dy) of a convNHWCOp.
type convNHWCBwd struct {
	baseOp
	fwd  *convNHWCOp
	data bool
	outBuffer
	ref   G.Op // the float64 reference op, built on first use
	stats convStats
}

func (o *convNHWCBwd) Do(vs ...G.Value) (G.Value, error) {
	start := time.Now()
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	f := o.fwd
	g := f.geom
	res := o.out.get(dt, o.shape)
	if dt == tensor.Float32 {
		if o.data {
			err = f.bf16.backwardData(data[float32](ds[0]), data[float32](ds[1]), data[float32](res))
		} else {
			// x is the bf16 copy the forward pass kept (see unread).
			err = f.bf16.backwardWeights(nil, data[float32](ds[1]), data[float32](res))
		}
		if err != nil {
			return nil, err
		}
	} else {
		dy := nhwcCopy(ds[1], g.yShape, g.n, g.o, g.p, true)
		var rv G.Value
		if o.data {
			if o.ref == nil {
				o.ref = &convBwdData{geom: g, baseOp: baseOp{name: "Conv2dNHWC reference backward data", arity: 2, shape: g.xShape}}
			}
			rv, err = o.ref.Do(ds[0], dy)
			if err == nil {
				copy(data[float64](res), data[float64](nhwcCopy(rv.(*tensor.Dense), f.xShape, g.n, g.c, g.h*g.w, false)))
			}
		} else {
			if o.ref == nil {
				o.ref = &convBwdFilter{geom: g, baseOp: baseOp{name: "Conv2dNHWC reference backward filter", arity: 2, shape: g.wShape}}
			}
			rv, err = o.ref.Do(nhwcCopy(ds[0], g.xShape, g.n, g.c, g.h*g.w, true), dy)
			if err == nil {
				copy(data[float64](res), data[float64](rv.(*tensor.Dense)))
			}
		}
		if err != nil {
			return nil, err
		}
	}
	o.stats.add(g, time.Since(start))
	return res, nil
}

// lastAxisSum sums x (…×C) over every axis but the last: the gradient of a
// per-channel bias on channels-last activations. Its result is C.
func lastAxisSum(x *G.Node) (*G.Node, error) {
	s := x.Shape()
	if len(s) < 2 {
		return nil, fmt.Errorf("nn.lastAxisSum: %s has shape %v, want at least 2 dimensions", x.Name(), s)
	}
	c := s[len(s)-1]
	o := &lastAxisSumOp{rows: s.TotalSize() / c, c: c}
	o.baseOp = baseOp{name: fmt.Sprintf("LastAxisSum(%v)", s), arity: 1, typ: fnType(1, len(s)), shape: tensor.Shape{c}}
	return G.ApplyOp(o, x)
}

type lastAxisSumOp struct {
	baseOp
	rows, c int
	outBuffer
	acc scratch
}

func (o *lastAxisSumOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	y := o.out.get(dt, o.shape)
	if dt == tensor.Float32 {
		lastAxisSumRun(o, data[float32](ds[0]), data[float32](y))
	} else {
		lastAxisSumRun(o, data[float64](ds[0]), data[float64](y))
	}
	return y, nil
}

// lastAxisSumRun sums rows in float64 per worker, then the workers' sums in
// worker order (the same bits on every run).
func lastAxisSumRun[T float](o *lastAxisSumOp, x, y []T) {
	nw := workers(o.rows)
	parts := make([][]float64, nw)
	parallel(o.rows, nw, func(wk, lo, hi int) {
		acc := slice[float64](&o.acc, wk, o.c)
		clear(acc)
		if x32, ok := any(x).([]float32); ok {
			colSumF32(x32[lo*o.c:hi*o.c], hi-lo, o.c, acc)
		} else {
			colSumGo(x[lo*o.c:hi*o.c], hi-lo, o.c, acc)
		}
		parts[wk] = acc
	})
	for j := range y {
		var s float64
		for _, p := range parts {
			s += p[j]
		}
		y[j] = T(s)
	}
}

func (o *lastAxisSumOp) DiffWRT(int) []bool { return []bool{false} }

func (o *lastAxisSumOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("nn.lastAxisSum: no second derivative")
}

// colSumGo adds the column sums of x (rows×c) to acc, row after row.
func colSumGo[T float](x []T, rows, c int, acc []float64) {
	for r := 0; r < rows; r++ {
		row := x[r*c : (r+1)*c]
		for j, v := range row {
			acc[j] += float64(v)
		}
	}
}

// unread implements partialReader: in float32 the weight gradient reads x
// from the bf16 copy its forward convolution kept, not from its argument, so
// x's float32 buffer may be reused once the forward pass is done with it.
func (o *convNHWCBwd) unread() []int {
	if o.data {
		return nil
	}
	return []int{0}
}
