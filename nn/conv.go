package nn

import (
	"fmt"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// convGeom is the geometry of a 2-D convolution, fixed when the graph is built.
type convGeom struct {
	n, c, h, w     int // input
	o, kh, kw      int // filters
	oh, ow         int // output
	stride, pad    int
	k, p           int  // c·kh·kw and oh·ow: the GEMM's inner and column sizes
	direct         bool // 1×1, stride 1, pad 0: the input is its own im2col
	colBlock       int  // bytes per column-matrix block (colBlockBytes)
	noShift        bool // use im2col even where shifted GEMMs apply (tests)
	maxWorkers     int  // goroutine count instead of GOMAXPROCS when > 0 (tests)
	xShape, wShape tensor.Shape
	yShape         tensor.Shape
	// bf16 runs float32 values on oneDNN in bfloat16 (Conv2dPrec with BF16);
	// its state is shared by the forward op and the backward ops.
	bf16 *bf16Conv
}

// workers returns the goroutine count for n items: workers(n), or at most
// maxWorkers when that is set.
func (g *convGeom) workers(n int) int {
	if g.maxWorkers > 0 {
		return max(1, min(n, g.maxWorkers))
	}
	return workers(n)
}

// colBlockBytes bounds one block of the column matrix (per worker): whole
// images up to this size, then blocks of output rows, so that large images
// do not need a K×H·W scratch matrix. (Blocks that fit in L2 measured slower:
// the smaller GEMMs lose more than the cache gains.)
const colBlockBytes = 4 << 20

// blockRows returns how many output rows one column block holds.
func (g *convGeom) blockRows(elem int) int {
	r := g.colBlock / (g.k * g.ow * elem)
	return max(1, min(r, g.oh))
}

// elemSize returns the size of T in bytes.
func elemSize[T float]() int {
	var z T
	if any(z) == any(float32(0)) {
		return 4
	}
	return 8
}

func (g *convGeom) String() string {
	return fmt.Sprintf("x%v w%v s%d p%d", g.xShape, g.wShape, g.stride, g.pad)
}

// convGeomOf checks a convolution's arguments (x N×C×H×W, or N×H×W×C
// with nhwc; w O×C×KH×KW; b O or nil) and returns its geometry, with the
// NCHW shapes the GEMM kernels use, and the op's inputs.
func convGeomOf(op string, x, w, b *G.Node, stride, pad int, nhwc bool) (convGeom, []*G.Node, error) {
	var g convGeom
	xs, err := shapeOf(op, "input", x, 4)
	if err != nil {
		return g, nil, err
	}
	ws, err := shapeOf(op, "weight", w, 4)
	if err != nil {
		return g, nil, err
	}
	ins := []*G.Node{x, w}
	if b != nil {
		bs, err := shapeOf(op, "bias", b, 1)
		if err != nil {
			return g, nil, err
		}
		if bs[0] != ws[0] {
			return g, nil, fmt.Errorf("%s: bias %s has %d elements, want %d (the weight's output channels)", op, b.Name(), bs[0], ws[0])
		}
		ins = append(ins, b)
	}
	if _, err := sameDtype(op, ins...); err != nil {
		return g, nil, err
	}
	if stride < 1 || pad < 0 {
		return g, nil, fmt.Errorf("%s: stride %d, pad %d: want stride ≥ 1 and pad ≥ 0", op, stride, pad)
	}
	n, c, h, wd, axis := xs[0], xs[1], xs[2], xs[3], "channels"
	if nhwc {
		c, h, wd, axis = xs[3], xs[1], xs[2], "channels (last axis)"
	}
	if c != ws[1] {
		return g, nil, fmt.Errorf("%s: input %s has %d %s, weight %s expects %d", op, x.Name(), c, axis, w.Name(), ws[1])
	}
	g = convGeom{n: n, c: c, h: h, w: wd, o: ws[0], kh: ws[2], kw: ws[3], stride: stride, pad: pad}
	if g.h+2*pad < g.kh || g.w+2*pad < g.kw {
		return g, nil, fmt.Errorf("%s: kernel %d×%d larger than the padded input %d×%d", op, g.kh, g.kw, g.h+2*pad, g.w+2*pad)
	}
	g.oh = (g.h+2*pad-g.kh)/stride + 1
	g.ow = (g.w+2*pad-g.kw)/stride + 1
	g.k, g.p = g.c*g.kh*g.kw, g.oh*g.ow
	g.direct = g.kh == 1 && g.kw == 1 && stride == 1 && pad == 0
	g.colBlock = colBlockBytes
	g.xShape, g.wShape = tensor.Shape{g.n, g.c, g.h, g.w}, ws.Clone()
	g.yShape = tensor.Shape{g.n, g.o, g.oh, g.ow}
	return g, ins, nil
}

// Conv2d returns the cross-correlation of x (N×C×H×W) with w (O×C×KH×KW)
// plus the bias b (O, or nil for none), with the given stride and zero
// padding on every side: out is N×O×OH×OW with OH = (H+2·pad−KH)/stride+1,
// PyTorch's nn.Conv2d. It runs as im2col + GEMM on the blas package,
// split over the batch across GOMAXPROCS goroutines, with buffers reused
// across runs; gradients flow to x, w and b.
func Conv2d(x, w, b *G.Node, stride, pad int) (*G.Node, error) {
	return Conv2dPrec(x, w, b, stride, pad, FP32)
}

// Conv2dPrec is Conv2d in the given precision: with BF16, float32 values run
// on oneDNN's bf16 kernels (inputs and weights rounded to bfloat16, products
// accumulated in float32; see package internal/dnnl), float64 values (the
// gradient checks) as with FP32. BF16 where it cannot run is an error.
func Conv2dPrec(x, w, b *G.Node, stride, pad int, prec Precision) (*G.Node, error) {
	const op = "nn.Conv2d"
	if err := canRun(op, prec); err != nil {
		return nil, err
	}
	g, ins, err := convGeomOf(op, x, w, b, stride, pad, false)
	if err != nil {
		return nil, err
	}
	o := &convOp{geom: g, bias: b != nil}
	name := fmt.Sprintf("Conv2d(%v bias=%v)", &g, b != nil)
	if prec == BF16 {
		o.geom.bf16 = &bf16Conv{geom: &o.geom}
		name = fmt.Sprintf("Conv2d(%v bias=%v bf16)", &g, b != nil)
	}
	o.baseOp = baseOp{name: name, arity: len(ins), shape: g.yShape}
	if b != nil {
		o.typ = fnType(4, 4, 4, 1)
	} else {
		o.typ = fnType(4, 4, 4)
	}
	return G.ApplyOp(o, ins...)
}

// convOp is the forward convolution: inputs x, w[, b].
type convOp struct {
	baseOp
	geom convGeom
	bias bool
	outBuffer
	cols  scratch // im2col columns, or the padded image (shifted GEMMs)
	aux   scratch // the padded output grid (shifted GEMMs)
	wr    scratch // weights by kernel tap (shifted GEMMs)
	stats convStats
}

func (o *convOp) Do(vs ...G.Value) (G.Value, error) {
	start := time.Now()
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	y := o.out.get(dt, o.geom.yShape)
	if dt == tensor.Float32 && o.geom.bf16 != nil {
		var b []float32
		if o.bias {
			b = data[float32](ds[2])
		}
		if err := o.geom.bf16.forward(data[float32](ds[0]), data[float32](ds[1]), b, data[float32](y)); err != nil {
			return nil, err
		}
	} else if dt == tensor.Float32 {
		convForward[float32](o, ds, y)
	} else {
		convForward[float64](o, ds, y)
	}
	o.stats.add(&o.geom, time.Since(start))
	return y, nil
}

func convForward[T float](o *convOp, ds []*tensor.Dense, yd *tensor.Dense) {
	g := &o.geom
	x, w, y := data[T](ds[0]), data[T](ds[1]), data[T](yd)
	var b []T
	if o.bias {
		b = data[T](ds[2])
	}
	xsz, ysz := g.c*g.h*g.w, g.o*g.p
	nw := g.workers(1 << 30)
	if g.useShift() {
		if g.n >= nw {
			convForwardShift(o, x, w, b, y)
		} else {
			convForwardShiftSplit(o, x, w, b, y, nw)
		}
		return
	}
	if g.n < nw {
		// fewer images than cores: split each image's work instead
		for n := 0; n < g.n; n++ {
			xn, yn := x[n*xsz:(n+1)*xsz], y[n*ysz:(n+1)*ysz]
			cols := xn
			if !g.direct {
				cols = slice[T](&o.cols, 0, g.k*g.p)
				parallel(g.c, nw, func(_, c0, c1 int) { im2colRange(xn, g, cols, c0, c1) })
			}
			parallel(g.p, nw, func(_, lo, hi int) {
				var beta T
				if b != nil {
					for oc := 0; oc < g.o; oc++ {
						row := yn[oc*g.p+lo : oc*g.p+hi]
						for i := range row {
							row[i] = b[oc]
						}
					}
					beta = 1
				}
				gemm(false, false, g.o, hi-lo, g.k, 1, w, g.k, cols[lo:], g.p, beta, yn[lo:], g.p)
			})
		}
		return
	}
	rows := g.blockRows(elemSize[T]())
	parallel(g.n, g.workers(g.n), func(wk, lo, hi int) {
		for n := lo; n < hi; n++ {
			xn, yn := x[n*xsz:(n+1)*xsz], y[n*ysz:(n+1)*ysz]
			var beta T
			if b != nil {
				for oc := 0; oc < g.o; oc++ {
					row := yn[oc*g.p : (oc+1)*g.p]
					for i := range row {
						row[i] = b[oc]
					}
				}
				beta = 1
			}
			if g.direct {
				gemm(false, false, g.o, g.p, g.k, 1, w, g.k, xn, g.p, beta, yn, g.p)
				continue
			}
			// blocks of output rows keep the column matrix in cache
			for r0 := 0; r0 < g.oh; r0 += rows {
				r1 := min(r0+rows, g.oh)
				pb := (r1 - r0) * g.ow
				cols := slice[T](&o.cols, wk, g.k*pb)
				im2colBlock(xn, g, cols, 0, g.c, r0, r1)
				gemm(false, false, g.o, pb, g.k, 1, w, g.k, cols, pb, beta, yn[r0*g.ow:], g.p)
			}
		}
	})
}

// im2colRange writes the rows of channels [c0, c1) of the K×P column
// matrix of one image x (C×H×W).
func im2colRange[T float](x []T, g *convGeom, cols []T, c0, c1 int) {
	im2colBlock(x, g, cols, c0, c1, 0, g.oh)
}

// im2colBlock writes the rows of channels [c0, c1) of the column matrix
// restricted to output rows [r0, r1): cols is K×((r1−r0)·OW).
func im2colBlock[T float](x []T, g *convGeom, cols []T, c0, c1, r0, r1 int) {
	hw := g.h * g.w
	pb := (r1 - r0) * g.ow
	for c := c0; c < c1; c++ {
		xc := x[c*hw : (c+1)*hw]
		for ki := 0; ki < g.kh; ki++ {
			for kj := 0; kj < g.kw; kj++ {
				row := cols[((c*g.kh+ki)*g.kw+kj)*pb:][:pb]
				lo, hi := colRange(g, kj)
				for oh := r0; oh < r1; oh++ {
					dst := row[(oh-r0)*g.ow : (oh-r0+1)*g.ow]
					ih := oh*g.stride - g.pad + ki
					if ih < 0 || ih >= g.h {
						clear(dst)
						continue
					}
					xr := xc[ih*g.w : (ih+1)*g.w]
					clear(dst[:lo])
					clear(dst[hi:])
					if g.stride == 1 {
						copy(dst[lo:hi], xr[lo-g.pad+kj:])
					} else {
						for ow := lo; ow < hi; ow++ {
							dst[ow] = xr[ow*g.stride-g.pad+kj]
						}
					}
				}
			}
		}
	}
}

// col2imRange adds the rows of channels [c0, c1) of a K×P column matrix
// into their planes of the image dx (C×H×W), the adjoint of im2colRange.
func col2imRange[T float](cols []T, g *convGeom, dx []T, c0, c1 int) {
	col2imBlock(cols, g, dx, c0, c1, 0, g.oh)
}

// col2imBlock is the adjoint of im2colBlock: it adds the block of output
// rows [r0, r1) of channels [c0, c1) into dx.
func col2imBlock[T float](cols []T, g *convGeom, dx []T, c0, c1, r0, r1 int) {
	hw := g.h * g.w
	pb := (r1 - r0) * g.ow
	for c := c0; c < c1; c++ {
		dc := dx[c*hw : (c+1)*hw]
		for ki := 0; ki < g.kh; ki++ {
			for kj := 0; kj < g.kw; kj++ {
				row := cols[((c*g.kh+ki)*g.kw+kj)*pb:][:pb]
				lo, hi := colRange(g, kj)
				for oh := r0; oh < r1; oh++ {
					ih := oh*g.stride - g.pad + ki
					if ih < 0 || ih >= g.h {
						continue
					}
					src := row[(oh-r0)*g.ow : (oh-r0+1)*g.ow]
					dr := dc[ih*g.w : (ih+1)*g.w]
					if g.stride == 1 {
						d := dr[lo-g.pad+kj : hi-g.pad+kj]
						s := src[lo:hi]
						for i := range d {
							d[i] += s[i]
						}
					} else {
						for ow := lo; ow < hi; ow++ {
							dr[ow*g.stride-g.pad+kj] += src[ow]
						}
					}
				}
			}
		}
	}
}

// colRange returns the output columns [lo, hi) whose input column for kernel
// column kj lies inside the image.
func colRange(g *convGeom, kj int) (lo, hi int) {
	// iw = ow·s − pad + kj ∈ [0, W)  ⇔  ow ≥ ceil((pad−kj)/s), ow ≤ floor((W−1+pad−kj)/s)
	lo = 0
	if d := g.pad - kj; d > 0 {
		lo = (d + g.stride - 1) / g.stride
	}
	hi = g.ow
	if m := g.w - 1 + g.pad - kj; m < 0 {
		hi = 0
	} else if m/g.stride+1 < hi {
		hi = m/g.stride + 1
	}
	if lo > g.ow {
		lo = g.ow
	}
	if hi < lo {
		hi = lo
	}
	return lo, hi
}

func (o *convOp) DiffWRT(n int) []bool {
	r := make([]bool, n)
	for i := range r {
		r[i] = true
	}
	return r
}

func (o *convOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	g := &o.geom
	dx := &convBwdData{geom: g}
	dx.baseOp = baseOp{name: fmt.Sprintf("Conv2dBwdData(%v)", g), arity: 2, typ: fnType(4, 4, 4), shape: g.xShape}
	dxn, err := G.ApplyOp(dx, inputs[1], grad)
	if err != nil {
		return nil, fmt.Errorf("nn.Conv2d backward (input): %w", err)
	}
	dw := &convBwdFilter{geom: g}
	dw.baseOp = baseOp{name: fmt.Sprintf("Conv2dBwdFilter(%v)", g), arity: 2, typ: fnType(4, 4, 4), shape: g.wShape}
	dwn, err := G.ApplyOp(dw, inputs[0], grad)
	if err != nil {
		return nil, fmt.Errorf("nn.Conv2d backward (weight): %w", err)
	}
	res := G.Nodes{dxn, dwn}
	if o.bias {
		dbn, err := channelSum(grad)
		if err != nil {
			return nil, fmt.Errorf("nn.Conv2d backward (bias): %w", err)
		}
		res = append(res, dbn)
	}
	return res, nil
}

// convBwdData computes the input gradient from (w, dy).
type convBwdData struct {
	baseOp
	geom *convGeom
	outBuffer
	cols  scratch
	aux   scratch
	wr    scratch
	stats convStats
}

func (o *convBwdData) Do(vs ...G.Value) (G.Value, error) {
	start := time.Now()
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	dx := o.out.get(dt, o.geom.xShape)
	if dt == tensor.Float32 && o.geom.bf16 != nil {
		if err := o.geom.bf16.backwardData(data[float32](ds[0]), data[float32](ds[1]), data[float32](dx)); err != nil {
			return nil, err
		}
	} else if dt == tensor.Float32 {
		convBwdDataRun[float32](o, ds[0], ds[1], dx)
	} else {
		convBwdDataRun[float64](o, ds[0], ds[1], dx)
	}
	o.stats.add(o.geom, time.Since(start))
	return dx, nil
}

func convBwdDataRun[T float](o *convBwdData, wd, dyd, dxd *tensor.Dense) {
	g := o.geom
	w, dy, dx := data[T](wd), data[T](dyd), data[T](dxd)
	xsz, ysz := g.c*g.h*g.w, g.o*g.p
	nw := g.workers(1 << 30)
	if g.useShift() {
		if g.n >= nw {
			convBwdDataShift(o, w, dy, dx)
		} else {
			convBwdDataShiftSplit(o, w, dy, dx, nw)
		}
		return
	}
	if g.n < nw {
		for n := 0; n < g.n; n++ {
			dxn, dyn := dx[n*xsz:(n+1)*xsz], dy[n*ysz:(n+1)*ysz]
			cols := dxn
			if !g.direct {
				cols = slice[T](&o.cols, 0, g.k*g.p)
			}
			parallel(g.p, nw, func(_, lo, hi int) {
				gemm(true, false, g.k, hi-lo, g.o, 1, w, g.k, dyn[lo:], g.p, 0, cols[lo:], g.p)
			})
			if !g.direct {
				parallel(g.c, nw, func(_, c0, c1 int) {
					clear(dxn[c0*g.h*g.w : c1*g.h*g.w])
					col2imRange(cols, g, dxn, c0, c1)
				})
			}
		}
		return
	}
	rows := g.blockRows(elemSize[T]())
	parallel(g.n, g.workers(g.n), func(wk, lo, hi int) {
		for n := lo; n < hi; n++ {
			dxn, dyn := dx[n*xsz:(n+1)*xsz], dy[n*ysz:(n+1)*ysz]
			if g.direct {
				gemm(true, false, g.k, g.p, g.o, 1, w, g.k, dyn, g.p, 0, dxn, g.p)
				continue
			}
			clear(dxn)
			for r0 := 0; r0 < g.oh; r0 += rows {
				r1 := min(r0+rows, g.oh)
				pb := (r1 - r0) * g.ow
				cols := slice[T](&o.cols, wk, g.k*pb)
				gemm(true, false, g.k, pb, g.o, 1, w, g.k, dyn[r0*g.ow:], g.p, 0, cols, pb)
				col2imBlock(cols, g, dxn, 0, g.c, r0, r1)
			}
		}
	})
}

// convBwdFilter computes the weight gradient from (x, dy).
type convBwdFilter struct {
	baseOp
	geom *convGeom
	outBuffer
	cols  scratch
	aux   scratch
	acc   scratch
	stats convStats
}

func (o *convBwdFilter) Do(vs ...G.Value) (G.Value, error) {
	start := time.Now()
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	dw := o.out.get(dt, o.geom.wShape)
	if dt == tensor.Float32 && o.geom.bf16 != nil {
		if err := o.geom.bf16.backwardWeights(data[float32](ds[0]), data[float32](ds[1]), data[float32](dw)); err != nil {
			return nil, err
		}
	} else if dt == tensor.Float32 {
		convBwdFilterRun[float32](o, ds[0], ds[1], dw)
	} else {
		convBwdFilterRun[float64](o, ds[0], ds[1], dw)
	}
	o.stats.add(o.geom, time.Since(start))
	return dw, nil
}

func convBwdFilterRun[T float](o *convBwdFilter, xd, dyd, dwd *tensor.Dense) {
	g := o.geom
	x, dy, dw := data[T](xd), data[T](dyd), data[T](dwd)
	xsz, ysz := g.c*g.h*g.w, g.o*g.p
	if nw := g.workers(1 << 30); g.useShift() {
		if g.n >= nw {
			convBwdFilterShift(o, x, dy, dw)
		} else {
			convBwdFilterShiftSplit(o, x, dy, dw, nw)
		}
		return
	}
	if nw := g.workers(1 << 30); g.n < nw {
		clear(dw)
		for n := 0; n < g.n; n++ {
			xn, dyn := x[n*xsz:(n+1)*xsz], dy[n*ysz:(n+1)*ysz]
			cols := xn
			if !g.direct {
				cols = slice[T](&o.cols, 0, g.k*g.p)
				parallel(g.c, nw, func(_, c0, c1 int) { im2colRange(xn, g, cols, c0, c1) })
			}
			parallel(g.o, nw, func(_, o0, o1 int) {
				gemm(false, true, o1-o0, g.k, g.p, 1, dyn[o0*g.p:], g.p, cols, g.p, 1, dw[o0*g.k:], g.k)
			})
		}
		return
	}
	nw := g.workers(g.n)
	rows := g.blockRows(elemSize[T]())
	accs := make([][]T, nw)
	parallel(g.n, nw, func(wk, lo, hi int) {
		acc := dw
		if wk > 0 {
			acc = slice[T](&o.acc, wk, len(dw))
		}
		accs[wk] = acc
		clear(acc)
		for n := lo; n < hi; n++ {
			xn, dyn := x[n*xsz:(n+1)*xsz], dy[n*ysz:(n+1)*ysz]
			if g.direct {
				gemm(false, true, g.o, g.k, g.p, 1, dyn, g.p, xn, g.p, 1, acc, g.k)
				continue
			}
			for r0 := 0; r0 < g.oh; r0 += rows {
				r1 := min(r0+rows, g.oh)
				pb := (r1 - r0) * g.ow
				cols := slice[T](&o.cols, wk, g.k*pb)
				im2colBlock(xn, g, cols, 0, g.c, r0, r1)
				gemm(false, true, g.o, g.k, pb, 1, dyn[r0*g.ow:], g.p, cols, pb, 1, acc, g.k)
			}
		}
	})
	for _, acc := range accs[1:] {
		for i, v := range acc {
			dw[i] += v
		}
	}
}

// denseAll checks the arity and converts every value to a contiguous dense
// tensor of the first value's dtype (float32 or float64).
func denseAll(b *baseOp, vs []G.Value) ([]*tensor.Dense, tensor.Dtype, error) {
	if err := b.checkArity(len(vs)); err != nil {
		return nil, tensor.Float32, err
	}
	first, ok := vs[0].(*tensor.Dense)
	if !ok {
		return nil, tensor.Float32, fmt.Errorf("%s: argument 0 is %T, want *tensor.Dense", b.name, vs[0])
	}
	dt := first.Dtype()
	if dt != tensor.Float32 && dt != tensor.Float64 {
		return nil, dt, fmt.Errorf("%s: dtype %v, want float32 or float64", b.name, dt)
	}
	ds := make([]*tensor.Dense, len(vs))
	for i, v := range vs {
		d, err := dense(b.name, i, v, dt)
		if err != nil {
			return nil, dt, err
		}
		ds[i] = d
	}
	return ds, dt, nil
}
