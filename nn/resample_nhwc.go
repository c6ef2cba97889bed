package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// NHWC forms of the UNet's data-movement and per-channel broadcast ops, for
// the bf16 engine's activation layout: images are N×H×W×C (channels
// innermost, so a pixel's channels are one contiguous run of C values).
// Each op computes what its NCHW counterpart computes on the transposed
// image, with the same validation, the same float32/float64 support, the
// same op-owned output buffers and the same backward (SymDiff for
// G.Grad / G.Backpropagate, DoDiff for the LispMachine):
//
//	Upsample2xNHWC(x)                          x N×H×W×C → N×2H×2W×C, nearest
//	AvgPool2xNHWC(x)                           x N×H×W×C → N×⌊H/2⌋×⌊W/2⌋×C, 2×2 mean
//	Pad2dNHWC(x, top, bottom, left, right)     x N×H×W×C → N×(top+H+bottom)×(left+W+right)×C
//	ConcatNHWC(xs...)                          xs N×…×Cᵢ → N×…×ΣCᵢ, along the last axis
//	AddChannelNHWC(x, e)                       x N×…×C, e N×C: x + e[:, None, …, :]
//	ScaleShiftNHWC(x, scale, shift)            x N×…×C, scale/shift N×C: x·(1+scale)+shift
//
// The elementwise passes are split over the rows of the output (N·H image
// rows, or N·pixels), so they use every worker at any batch size; the
// per-image reductions of the backward passes (Σ over pixels) are split
// over the batch.

// Upsample2xNHWC repeats every pixel of x (N×H×W×C) into a 2×2 block:
// N×2H×2W×C. It is Upsample2x for channels-last images.
func Upsample2xNHWC(x *G.Node) (*G.Node, error) {
	const op = "nn.Upsample2xNHWC"
	xs, err := shapeOf(op, "input", x, 4)
	if err != nil {
		return nil, err
	}
	if _, err := dtypeOf(op, x); err != nil {
		return nil, err
	}
	o := &resampleNHWCOp{expand: true, scale: 1, n: xs[0], h: xs[1], w: xs[2], c: xs[3], bh: 2 * xs[1], bw: 2 * xs[2]}
	o.baseOp = baseOp{name: fmt.Sprintf("Upsample2xNHWC(%v)", xs), arity: 1, typ: fnType(4, 4), shape: tensor.Shape{xs[0], 2 * xs[1], 2 * xs[2], xs[3]}}
	return G.ApplyOp(o, x)
}

// AvgPool2xNHWC averages x (N×H×W×C) over non-overlapping 2×2 blocks:
// N×⌊H/2⌋×⌊W/2⌋×C (an odd last row or column is dropped, and gets a zero
// gradient), like AvgPool2x. H and W must be at least 2.
func AvgPool2xNHWC(x *G.Node) (*G.Node, error) {
	const op = "nn.AvgPool2xNHWC"
	xs, err := shapeOf(op, "input", x, 4)
	if err != nil {
		return nil, err
	}
	if _, err := dtypeOf(op, x); err != nil {
		return nil, err
	}
	if xs[1] < 2 || xs[2] < 2 {
		return nil, fmt.Errorf("%s: input %s is %d×%d, want at least 2×2", op, x.Name(), xs[1], xs[2])
	}
	o := &resampleNHWCOp{expand: false, scale: 0.25, n: xs[0], h: xs[1] / 2, w: xs[2] / 2, c: xs[3], bh: xs[1], bw: xs[2]}
	o.baseOp = baseOp{name: fmt.Sprintf("AvgPool2xNHWC(%v)", xs), arity: 1, typ: fnType(4, 4), shape: tensor.Shape{xs[0], xs[1] / 2, xs[2] / 2, xs[3]}}
	return G.ApplyOp(o, x)
}

// resampleNHWCOp is resampleOp for N images of C channels innermost: it maps
// between a small h×w image and a big bh×bw one (bh ≥ 2h, bw ≥ 2w). expand:
// every small pixel times scale fills its 2×2 block (the rest of the big
// image is zero); else every small pixel is scale times the sum of its 2×2
// block. Upsample is expand with scale 1, its adjoint the block sum;
// average pooling is the block sum with scale ¼, its adjoint the expansion
// with scale ¼.
type resampleNHWCOp struct {
	baseOp
	expand     bool
	scale      float64
	n, h, w, c int
	bh, bw     int
	outBuffer
}

func (o *resampleNHWCOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	want := o.n * o.bh * o.bw * o.c
	if o.expand {
		want = o.n * o.h * o.w * o.c
	}
	if n := ds[0].Shape().TotalSize(); n != want {
		return nil, fmt.Errorf("%s: input has shape %v (%d elements), want %d elements", o.name, ds[0].Shape(), n, want)
	}
	y := o.out.get(dt, o.shape)
	if dt == tensor.Float32 {
		resampleNHWCRun(o, data[float32](ds[0]), data[float32](y))
	} else {
		resampleNHWCRun(o, data[float64](ds[0]), data[float64](y))
	}
	return y, nil
}

func resampleNHWCRun[T float](o *resampleNHWCOp, x, y []T) {
	h, w, c, bh, bw := o.h, o.w, o.c, o.bh, o.bw
	s := T(o.scale)
	sw, bwc := w*c, bw*c // lengths of a small and a big row
	// one task per small row i of image n: big rows 2i and 2i+1
	parallel(o.n*h, elemWorkers(o.n*bh*bwc), func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			n, i := r/h, r%h
			small := x[r*sw : (r+1)*sw]
			if !o.expand {
				small = y[r*sw : (r+1)*sw]
			}
			b0 := (n*bh + 2*i) * bwc
			var r0, r1 []T
			if o.expand {
				r0, r1 = y[b0:b0+bwc], y[b0+bwc:b0+2*bwc]
			} else {
				r0, r1 = x[b0:b0+bwc], x[b0+bwc:b0+2*bwc]
			}
			if o.expand {
				for j := 0; j < w; j++ {
					src := small[j*c : (j+1)*c]
					d0, d1 := r0[2*j*c:(2*j+1)*c], r0[(2*j+1)*c:(2*j+2)*c]
					if s == 1 {
						copy(d0, src)
					} else {
						d0 = d0[:len(src)]
						for k, v := range src {
							d0[k] = v * s
						}
					}
					copy(d1, d0)
				}
				clear(r0[2*sw:]) // an odd last column of the big image
				copy(r1, r0)
				if i == h-1 && bh > 2*h { // an odd last row
					clear(y[b0+2*bwc : (n+1)*bh*bwc])
				}
				continue
			}
			for j := 0; j < w; j++ {
				yr := small[j*c : (j+1)*c]
				a, b := r0[2*j*c:(2*j+1)*c], r0[(2*j+1)*c:(2*j+2)*c]
				d, e := r1[2*j*c:(2*j+1)*c], r1[(2*j+1)*c:(2*j+2)*c]
				a, b, d, e = a[:len(yr)], b[:len(yr)], d[:len(yr)], e[:len(yr)]
				for k := range yr {
					yr[k] = s * (a[k] + b[k] + d[k] + e[k])
				}
			}
		}
	})
}

func (o *resampleNHWCOp) DiffWRT(int) []bool { return []bool{true} }

func (o *resampleNHWCOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	b := &resampleNHWCOp{expand: !o.expand, scale: o.scale, n: o.n, h: o.h, w: o.w, c: o.c, bh: o.bh, bw: o.bw}
	b.baseOp = baseOp{name: "Bwd" + o.name, arity: 1, typ: fnType(4, 4), shape: inputs[0].Shape().Clone()}
	dx, err := G.ApplyOp(b, grad)
	if err != nil {
		return nil, fmt.Errorf("nn: %s backward: %w", o.name, err)
	}
	return G.Nodes{dx}, nil
}

// DoDiff implements gorgonia.ADOp.
func (o *resampleNHWCOp) DoDiff(_ G.ExecutionContext, in G.Nodes, out *G.Node) error {
	return doDiff(o, in, out)
}

// Pad2dNHWC pads x (N×H×W×C) with zeros: top rows above, bottom rows below,
// left columns before and right columns after every image, giving
// N×(top+H+bottom)×(left+W+right)×C; every channel is padded alike. It is
// Pad2d for channels-last images (PyTorch's F.pad(x, (0, 0, left, right,
// top, bottom)) on an NHWC tensor). Every pad must be ≥ 0; its gradient is
// the crop of the output's gradient back to H×W.
func Pad2dNHWC(x *G.Node, top, bottom, left, right int) (*G.Node, error) {
	xs, err := padArgs("nn.Pad2dNHWC", x, top, bottom, left, right)
	if err != nil {
		return nil, err
	}
	o := &padNHWCOp{n: xs[0], h: xs[1], w: xs[2], c: xs[3], top: top, bottom: bottom, left: left, right: right}
	shape := tensor.Shape{xs[0], xs[1] + top + bottom, xs[2] + left + right, xs[3]}
	o.baseOp = baseOp{name: fmt.Sprintf("Pad2dNHWC(%v t%d b%d l%d r%d)", xs, top, bottom, left, right), arity: 1, typ: fnType(4, 4), shape: shape}
	return G.ApplyOp(o, x)
}

// padNHWCOp is padOp for N channels-last images: it maps h×w images to
// (top+h+bottom)×(left+w+right) ones by zero padding, or with crop the
// adjoint, big → small.
type padNHWCOp struct {
	baseOp
	crop                     bool
	n, h, w, c               int
	top, bottom, left, right int
	outBuffer
}

func (o *padNHWCOp) bigH() int { return o.top + o.h + o.bottom }
func (o *padNHWCOp) bigW() int { return o.left + o.w + o.right }

func (o *padNHWCOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	want := o.n * o.h * o.w * o.c
	if o.crop {
		want = o.n * o.bigH() * o.bigW() * o.c
	}
	if n := ds[0].Shape().TotalSize(); n != want {
		return nil, fmt.Errorf("%s: input has shape %v (%d elements), want %d elements", o.name, ds[0].Shape(), n, want)
	}
	y := o.out.get(dt, o.shape)
	if dt == tensor.Float32 {
		padNHWCRun(o, data[float32](ds[0]), data[float32](y))
	} else {
		padNHWCRun(o, data[float64](ds[0]), data[float64](y))
	}
	return y, nil
}

func padNHWCRun[T float](o *padNHWCOp, x, y []T) {
	h, c, bh := o.h, o.c, o.bigH()
	sw, bwc, lc := o.w*c, o.bigW()*c, o.left*c // small row, big row, left pad
	if o.crop {
		parallel(o.n*h, elemWorkers(o.n*h*sw), func(_, lo, hi int) {
			for r := lo; r < hi; r++ {
				n, i := r/h, r%h
				copy(y[r*sw:(r+1)*sw], x[(n*bh+o.top+i)*bwc+lc:])
			}
		})
		return
	}
	parallel(o.n*bh, elemWorkers(o.n*bh*bwc), func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			n, i := r/bh, r%bh-o.top
			yr := y[r*bwc : (r+1)*bwc]
			if i < 0 || i >= h {
				clear(yr)
				continue
			}
			clear(yr[:lc])
			copy(yr[lc:lc+sw], x[(n*h+i)*sw:])
			clear(yr[lc+sw:])
		}
	})
}

func (o *padNHWCOp) DiffWRT(int) []bool { return []bool{true} }

func (o *padNHWCOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	b := &padNHWCOp{crop: !o.crop, n: o.n, h: o.h, w: o.w, c: o.c, top: o.top, bottom: o.bottom, left: o.left, right: o.right}
	b.baseOp = baseOp{name: "Bwd" + o.name, arity: 1, typ: fnType(4, 4), shape: inputs[0].Shape().Clone()}
	dx, err := G.ApplyOp(b, grad)
	if err != nil {
		return nil, fmt.Errorf("nn: %s backward: %w", o.name, err)
	}
	return G.Nodes{dx}, nil
}

// DoDiff implements gorgonia.ADOp.
func (o *padNHWCOp) DoDiff(_ G.ExecutionContext, in G.Nodes, out *G.Node) error {
	return doDiff(o, in, out)
}

// ConcatNHWC joins xs (each N×…×Cᵢ, equal but for the last axis) along the
// last, channel, axis: the UNet's skip connections for channels-last
// images, torch.cat(xs, dim=-1). Its gradient slices the channels back out.
func ConcatNHWC(xs ...*G.Node) (*G.Node, error) {
	shape, cs, err := concatArgs("nn.ConcatNHWC", xs, true)
	if err != nil {
		return nil, err
	}
	s0 := xs[0].Shape()
	o := &concatNHWCOp{rows: s0.TotalSize() / s0[len(s0)-1], cs: cs}
	ins := make([]int, len(xs))
	for i := range ins {
		ins[i] = len(s0)
	}
	o.baseOp = baseOp{name: fmt.Sprintf("ConcatNHWC(%v %v)", shape, o.cs), arity: len(xs), typ: fnType(len(s0), ins...), shape: shape}
	return G.ApplyOp(o, xs...)
}

// concatNHWCOp concatenates rows×cs[i] matrices along their columns.
type concatNHWCOp struct {
	baseOp
	rows int
	cs   []int
	outBuffer
}

func (o *concatNHWCOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	for i, d := range ds {
		if n := d.Shape().TotalSize(); n != o.rows*o.cs[i] {
			return nil, fmt.Errorf("%s: argument %d has shape %v (%d elements), want %d elements", o.name, i, d.Shape(), n, o.rows*o.cs[i])
		}
	}
	y := o.out.get(dt, o.shape)
	if dt == tensor.Float32 {
		concatNHWCRun[float32](o, ds, data[float32](y))
	} else {
		concatNHWCRun[float64](o, ds, data[float64](y))
	}
	return y, nil
}

func concatNHWCRun[T float](o *concatNHWCOp, ds []*tensor.Dense, y []T) {
	total := o.shape[len(o.shape)-1]
	xs := make([][]T, len(ds))
	for i, d := range ds {
		xs[i] = data[T](d)
	}
	parallel(o.rows, elemWorkers(len(y)), func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			yr := y[r*total : (r+1)*total]
			for i, x := range xs {
				c := o.cs[i]
				copy(yr[:c], x[r*c:(r+1)*c])
				yr = yr[c:]
			}
		}
	})
}

func (o *concatNHWCOp) DiffWRT(n int) []bool {
	r := make([]bool, n)
	for i := range r {
		r[i] = true
	}
	return r
}

func (o *concatNHWCOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	res := make(G.Nodes, len(inputs))
	total, lo := o.shape[len(o.shape)-1], 0
	for i, in := range inputs {
		s := &sliceLastOp{rows: o.rows, total: total, lo: lo, hi: lo + o.cs[i]}
		s.baseOp = baseOp{name: fmt.Sprintf("SliceChannelsNHWC(%v %d:%d)", o.shape, s.lo, s.hi), arity: 1, typ: fnType(len(o.shape), len(o.shape)), shape: in.Shape().Clone()}
		d, err := G.ApplyOp(s, grad)
		if err != nil {
			return nil, fmt.Errorf("nn.ConcatNHWC backward: %w", err)
		}
		res[i] = d
		lo += o.cs[i]
	}
	return res, nil
}

// DoDiff implements gorgonia.ADOp.
func (o *concatNHWCOp) DoDiff(_ G.ExecutionContext, in G.Nodes, out *G.Node) error {
	return doDiff(o, in, out)
}

// sliceLastOp copies columns [lo, hi) of x (rows×total): ConcatNHWC's
// backward.
type sliceLastOp struct {
	baseOp
	rows, total, lo, hi int
	outBuffer
}

func (o *sliceLastOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	if n := ds[0].Shape().TotalSize(); n != o.rows*o.total {
		return nil, fmt.Errorf("%s: input has shape %v (%d elements), want %d elements", o.name, ds[0].Shape(), n, o.rows*o.total)
	}
	y := o.out.get(dt, o.shape)
	if dt == tensor.Float32 {
		sliceLastRun(o, data[float32](ds[0]), data[float32](y))
	} else {
		sliceLastRun(o, data[float64](ds[0]), data[float64](y))
	}
	return y, nil
}

func sliceLastRun[T float](o *sliceLastOp, x, y []T) {
	c := o.hi - o.lo
	parallel(o.rows, elemWorkers(len(y)), func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			copy(y[r*c:(r+1)*c], x[r*o.total+o.lo:])
		}
	})
}

// AddChannelNHWC returns x + e[:, None, …, :] for x N×…×C (channels last)
// and e N×C: AddChannel (the timestep-embedding injection of a ResBlock)
// for channels-last images. Its gradients are dy for x and the per-image
// sum of dy over the pixels for e.
func AddChannelNHWC(x, e *G.Node) (*G.Node, error) {
	xs, c, err := addChannelArgs("nn.AddChannelNHWC", x, e, true)
	if err != nil {
		return nil, err
	}
	o := &addChannelNHWCOp{pix: xs.TotalSize() / (xs[0] * c), c: c}
	o.baseOp = baseOp{name: fmt.Sprintf("AddChannelNHWC(%v)", xs), arity: 2, typ: fnType(len(xs), len(xs), 2), shape: xs.Clone()}
	return G.ApplyOp(o, x, e)
}

// addChannelNHWCOp adds e[n, :] to every pixel row of image n (pix rows of
// c values per image).
type addChannelNHWCOp struct {
	baseOp
	pix, c int
	outBuffer
}

func (o *addChannelNHWCOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	y := o.out.get(dt, o.shape)
	if dt == tensor.Float32 {
		addChannelNHWCRun(data[float32](ds[0]), data[float32](ds[1]), data[float32](y), o.pix, o.c)
	} else {
		addChannelNHWCRun(data[float64](ds[0]), data[float64](ds[1]), data[float64](y), o.pix, o.c)
	}
	return y, nil
}

func addChannelNHWCRun[T float](x, e, y []T, pix, c int) {
	parallel(len(x)/c, elemWorkers(len(x)), func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			n := r / pix
			er := e[n*c : (n+1)*c]
			xr, yr := x[r*c:(r+1)*c], y[r*c:(r+1)*c]
			er, yr = er[:len(xr)], yr[:len(xr)]
			for k, v := range xr {
				yr[k] = v + er[k]
			}
		}
	})
}

func (o *addChannelNHWCOp) DiffWRT(int) []bool { return []bool{true, true} }

func (o *addChannelNHWCOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	de, err := pixelSumNHWC(grad)
	if err != nil {
		return nil, fmt.Errorf("nn.AddChannelNHWC backward: %w", err)
	}
	return G.Nodes{grad, de}, nil
}

// DoDiff implements gorgonia.ADOp.
func (o *addChannelNHWCOp) DoDiff(_ G.ExecutionContext, in G.Nodes, out *G.Node) error {
	return doDiff(o, in, out)
}

// batchWorkers returns the goroutine count for a pass over n images of
// total elements in all: elemWorkers(total), at most one per image.
func batchWorkers(n, total int) int {
	return max(1, min(elemWorkers(total), n))
}

// pixelSumNHWC sums x (N×…×C) over its middle axes, the pixels: N×C (the
// NHWC spatialSum, the gradient of a per-image channel bias).
func pixelSumNHWC(x *G.Node) (*G.Node, error) {
	s := x.Shape()
	if len(s) < 2 {
		return nil, fmt.Errorf("nn.pixelSumNHWC: %s has shape %v, want N×…×C", x.Name(), s)
	}
	c := s[len(s)-1]
	o := &pixelSumNHWCOp{n: s[0], pix: s.TotalSize() / (s[0] * c), c: c}
	o.baseOp = baseOp{name: fmt.Sprintf("PixelSumNHWC(%v)", s), arity: 1, typ: fnType(2, len(s)), shape: tensor.Shape{s[0], c}}
	return G.ApplyOp(o, x)
}

type pixelSumNHWCOp struct {
	baseOp
	n, pix, c int
	outBuffer
	acc scratch
}

func (o *pixelSumNHWCOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	y := o.out.get(dt, o.shape)
	if dt == tensor.Float32 {
		pixelSumNHWCRun(o, data[float32](ds[0]), data[float32](y))
	} else {
		pixelSumNHWCRun(o, data[float64](ds[0]), data[float64](y))
	}
	return y, nil
}

// pixelSumNHWCRun sums in float64 (like rowSum does for the NCHW layout),
// one image per task, four pixels at a time.
func pixelSumNHWCRun[T float](o *pixelSumNHWCOp, x, y []T) {
	pix, c := o.pix, o.c
	parallel(o.n, batchWorkers(o.n, len(x)), func(w, lo, hi int) {
		acc := slice[float64](&o.acc, w, c)
		for n := lo; n < hi; n++ {
			clear(acc)
			img := x[n*pix*c : (n+1)*pix*c]
			p := 0
			for ; p+4 <= pix; p += 4 { // four pixels per pass over acc
				r0, r1 := img[p*c:(p+1)*c], img[(p+1)*c:(p+2)*c]
				r2, r3 := img[(p+2)*c:(p+3)*c], img[(p+3)*c:(p+4)*c]
				r0, r1, r2, r3 = r0[:len(acc)], r1[:len(acc)], r2[:len(acc)], r3[:len(acc)]
				for k := range acc {
					acc[k] += (float64(r0[k]) + float64(r1[k])) + (float64(r2[k]) + float64(r3[k]))
				}
			}
			for ; p < pix; p++ {
				xr := img[p*c : (p+1)*c]
				xr = xr[:len(acc)]
				for k, v := range xr {
					acc[k] += float64(v)
				}
			}
			yr := y[n*c : (n+1)*c]
			for k, v := range acc {
				yr[k] = T(v)
			}
		}
	})
}

// ScaleShiftNHWC returns x·(1 + scale) + shift with scale and shift N×C
// broadcast over the pixels of x (N×…×C, channels last): ScaleShift
// (guided-diffusion's use_scale_shift_norm) for channels-last images.
func ScaleShiftNHWC(x, scale, shift *G.Node) (*G.Node, error) {
	xs, c, err := scaleShiftArgs("nn.ScaleShiftNHWC", x, scale, shift, true)
	if err != nil {
		return nil, err
	}
	o := &scaleShiftNHWCOp{pix: xs.TotalSize() / (xs[0] * c), c: c}
	o.baseOp = baseOp{name: fmt.Sprintf("ScaleShiftNHWC(%v)", xs), arity: 3, typ: fnType(len(xs), len(xs), 2, 2), shape: xs.Clone()}
	return G.ApplyOp(o, x, scale, shift)
}

type scaleShiftNHWCOp struct {
	baseOp
	pix, c int
	outBuffer
}

func (o *scaleShiftNHWCOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	y := o.out.get(dt, o.shape)
	if dt == tensor.Float32 {
		scaleShiftNHWCRun(data[float32](ds[0]), data[float32](ds[1]), data[float32](ds[2]), data[float32](y), o.pix, o.c)
	} else {
		scaleShiftNHWCRun(data[float64](ds[0]), data[float64](ds[1]), data[float64](ds[2]), data[float64](y), o.pix, o.c)
	}
	return y, nil
}

func scaleShiftNHWCRun[T float](x, sc, sh, y []T, pix, c int) {
	parallel(len(x)/c, elemWorkers(len(x)), func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			n := r / pix
			xr, yr := x[r*c:(r+1)*c], y[r*c:(r+1)*c]
			scr, shr := sc[n*c:(n+1)*c], sh[n*c:(n+1)*c]
			yr, scr, shr = yr[:len(xr)], scr[:len(xr)], shr[:len(xr)]
			for k, v := range xr {
				a := 1 + scr[k]
				yr[k] = v*a + shr[k]
			}
		}
	})
}

func (o *scaleShiftNHWCOp) DiffWRT(int) []bool { return []bool{true, true, true} }

func (o *scaleShiftNHWCOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	b := &scaleShiftNHWCBwdOp{pix: o.pix, c: o.c}
	r := len(o.shape)
	b.baseOp = baseOp{name: fmt.Sprintf("ScaleShiftNHWCBwd(%p)", o), arity: 3, typ: fnType(r, r, 2, r), shape: o.shape}
	dx, err := G.ApplyOp(b, inputs[0], inputs[1], grad)
	if err != nil {
		return nil, fmt.Errorf("nn.ScaleShiftNHWC backward: %w", err)
	}
	nc := tensor.Shape{o.shape[0], o.c}
	dsc, err := pick(dx, &b.dscale, fmt.Sprintf("%p.dscale", b), nc)
	if err != nil {
		return nil, err
	}
	dsh, err := pixelSumNHWC(grad)
	if err != nil {
		return nil, fmt.Errorf("nn.ScaleShiftNHWC backward: %w", err)
	}
	return G.Nodes{dx, dsc, dsh}, nil
}

// DoDiff implements gorgonia.ADOp.
func (o *scaleShiftNHWCOp) DoDiff(_ G.ExecutionContext, in G.Nodes, out *G.Node) error {
	return doDiff(o, in, out)
}

// scaleShiftNHWCBwdOp computes dx = dy·(1+scale) from (x, scale, dy) and, as
// a by-product, dscale = Σ over pixels of dy·x (accumulated in the input's
// precision, pixels in order, as scaleShiftBwdOp does).
type scaleShiftNHWCBwdOp struct {
	baseOp
	pix, c int
	outBuffer
	dscale buffer
}

func (o *scaleShiftNHWCBwdOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	dx := o.out.get(dt, o.shape)
	dsc := o.dscale.get(dt, ds[1].Shape())
	if dt == tensor.Float32 {
		scaleShiftNHWCBwdRun(data[float32](ds[0]), data[float32](ds[1]), data[float32](ds[2]), data[float32](dx), data[float32](dsc), o.pix, o.c)
	} else {
		scaleShiftNHWCBwdRun(data[float64](ds[0]), data[float64](ds[1]), data[float64](ds[2]), data[float64](dx), data[float64](dsc), o.pix, o.c)
	}
	return dx, nil
}

func scaleShiftNHWCBwdRun[T float](x, sc, dy, dx, dsc []T, pix, c int) {
	nImg := len(sc) / c
	parallel(nImg, batchWorkers(nImg, len(x)), func(_, lo, hi int) {
		for n := lo; n < hi; n++ {
			scr, dsr := sc[n*c:(n+1)*c], dsc[n*c:(n+1)*c]
			clear(dsr)
			for p := n * pix; p < (n+1)*pix; p++ {
				xr, dyr, dxr := x[p*c:(p+1)*c], dy[p*c:(p+1)*c], dx[p*c:(p+1)*c]
				xr, dxr, scr, ds := xr[:len(dyr)], dxr[:len(dyr)], scr[:len(dyr)], dsr[:len(dyr)]
				for k, g := range dyr {
					a := 1 + scr[k]
					dxr[k] = g * a
					ds[k] += g * xr[k]
				}
			}
		}
	})
}
