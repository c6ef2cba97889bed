package nn

// Stride-1 convolutions without im2col ("shifted GEMMs"): on a zero-padded
// copy of the image with row length Wp = W+2·pad, the input under kernel tap
// (ki, kj) for every output pixel is the padded plane shifted by ki·Wp+kj.
// So the convolution is a sum over taps of GEMMs W_tap (O×C) × Xpad[:,
// shift:] (C×L, row stride Hp·Wp), computed on an OH×Wp grid (L = OH·Wp)
// whose last Wp−OW columns are garbage and cropped. This skips the K×P
// column matrix (KH·KW copies of the image) and, in the backward pass,
// col2im; measured about 25% faster forward and 35% faster for the input
// gradient than im2col on 3×3 convs of the MNIST UNet.

// shiftGeom holds the padded-grid sizes of a stride-1 convolution.
type shiftGeom struct {
	hp, wp, plane, l int
}

func (g *convGeom) shiftGeom() shiftGeom {
	hp, wp := g.h+2*g.pad, g.w+2*g.pad
	return shiftGeom{hp: hp, wp: wp, plane: hp * wp, l: g.oh * wp}
}

// useShift reports whether the shifted-GEMM path applies: stride 1, and
// enough input channels that one GEMM per tap (inner size C) is not a string
// of rank-few updates; with few channels im2col is cheap and its single GEMM
// (inner size C·KH·KW) better.
func (g *convGeom) useShift() bool {
	return g.stride == 1 && !g.direct && !g.noShift && g.c >= 8
}

// copy2 copies c planes of h rows of w elements from src (plane stride
// splane, row stride srow) to dst (dplane, drow).
func copy2[T float](dst []T, dplane, drow int, src []T, splane, srow, c, h, w int) {
	if d32, ok := any(dst).([]float32); ok {
		copy2F32(d32, dplane, drow, any(src).([]float32), splane, srow, c, h, w)
		return
	}
	copy2Go(dst, dplane, drow, src, splane, srow, c, h, w)
}

func copy2Go[T float](dst []T, dplane, drow int, src []T, splane, srow, c, h, w int) {
	for k := 0; k < c; k++ {
		for i := 0; i < h; i++ {
			copy(dst[k*dplane+i*drow:][:w], src[k*splane+i*srow:][:w])
		}
	}
}

// padInto writes x (C×H×W) into xp (C×Hp×Wp plus slack) with zero borders.
func padInto[T float](x []T, g *convGeom, s shiftGeom, xp []T) {
	clear(xp)
	copy2(xp[g.pad*s.wp+g.pad:], s.plane, s.wp, x, g.h*g.w, g.w, g.c, g.h, g.w)
}

// reorgWeights copies w (O×C×KH×KW) to wr (KH·KW × O×C): one O×C matrix per tap.
func reorgWeights[T float](w []T, g *convGeom, wr []T) {
	kk := g.kh * g.kw
	for o := 0; o < g.o; o++ {
		for c := 0; c < g.c; c++ {
			src := w[(o*g.c+c)*kk:][:kk]
			for t, v := range src {
				wr[(t*g.o+o)*g.c+c] = v
			}
		}
	}
}

func convForwardShift[T float](o *convOp, x, w, b, y []T) {
	g := &o.geom
	s := g.shiftGeom()
	kk := g.kh * g.kw
	wr := slice[T](&o.wr, 0, kk*g.o*g.c)
	reorgWeights(w, g, wr)
	xsz, ysz := g.c*g.h*g.w, g.o*g.p
	parallel(g.n, g.workers(g.n), func(wk, lo, hi int) {
		xp := slice[T](&o.cols, wk, g.c*s.plane+g.kw)
		yp := slice[T](&o.aux, wk, g.o*s.l)
		for n := lo; n < hi; n++ {
			padInto(x[n*xsz:(n+1)*xsz], g, s, xp)
			for t := 0; t < kk; t++ {
				var beta T
				if t > 0 {
					beta = 1
				}
				off := (t/g.kw)*s.wp + t%g.kw
				gemm(false, false, g.o, s.l, g.c, 1, wr[t*g.o*g.c:], g.c, xp[off:], s.plane, beta, yp, s.l)
			}
			yn := y[n*ysz : (n+1)*ysz]
			for oc := 0; oc < g.o; oc++ {
				var bias T
				if b != nil {
					bias = b[oc]
				}
				for i := 0; i < g.oh; i++ {
					dst := yn[(oc*g.oh+i)*g.ow:][:g.ow]
					src := yp[oc*s.l+i*s.wp:][:g.ow]
					for j, v := range src {
						dst[j] = v + bias
					}
				}
			}
		}
	})
}

// padGrad writes dy (O×OH×OW) onto the O×L grid with zero garbage columns.
func padGrad[T float](dy []T, g *convGeom, s shiftGeom, dyp []T) {
	if s.wp > g.ow {
		clear(dyp[:g.o*s.l])
	}
	copy2(dyp, s.l, s.wp, dy, g.oh*g.ow, g.ow, g.o, g.oh, g.ow)
}

func convBwdDataShift[T float](o *convBwdData, w, dy, dx []T) {
	g := o.geom
	s := g.shiftGeom()
	kk := g.kh * g.kw
	wr := slice[T](&o.wr, 0, kk*g.o*g.c)
	reorgWeights(w, g, wr)
	xsz, ysz := g.c*g.h*g.w, g.o*g.p
	parallel(g.n, g.workers(g.n), func(wk, lo, hi int) {
		dxp := slice[T](&o.cols, wk, g.c*s.plane+g.kw)
		dyp := slice[T](&o.aux, wk, g.o*s.l)
		for n := lo; n < hi; n++ {
			padGrad(dy[n*ysz:(n+1)*ysz], g, s, dyp)
			clear(dxp)
			for t := 0; t < kk; t++ {
				off := (t/g.kw)*s.wp + t%g.kw
				gemm(true, false, g.c, s.l, g.o, 1, wr[t*g.o*g.c:], g.c, dyp, s.l, 1, dxp[off:], s.plane)
			}
			copy2(dx[n*xsz:(n+1)*xsz], g.h*g.w, g.w, dxp[g.pad*s.wp+g.pad:], s.plane, s.wp, g.c, g.h, g.w)
		}
	})
}

func convBwdFilterShift[T float](o *convBwdFilter, x, dy, dw []T) {
	g := o.geom
	s := g.shiftGeom()
	kk := g.kh * g.kw
	xsz, ysz := g.c*g.h*g.w, g.o*g.p
	nw := g.workers(g.n)
	accs := make([][]T, nw)
	parallel(g.n, nw, func(wk, lo, hi int) {
		xp := slice[T](&o.cols, wk, g.c*s.plane+g.kw)
		dyp := slice[T](&o.aux, wk, g.o*s.l)
		acc := slice[T](&o.acc, wk, kk*g.o*g.c)
		clear(acc)
		accs[wk] = acc
		for n := lo; n < hi; n++ {
			padInto(x[n*xsz:(n+1)*xsz], g, s, xp)
			padGrad(dy[n*ysz:(n+1)*ysz], g, s, dyp)
			for t := 0; t < kk; t++ {
				off := (t/g.kw)*s.wp + t%g.kw
				gemm(false, true, g.o, g.c, s.l, 1, dyp, s.l, xp[off:], s.plane, 1, acc[t*g.o*g.c:], g.c)
			}
		}
	})
	for _, a := range accs[1:] {
		for i, v := range a {
			accs[0][i] += v
		}
	}
	acc := accs[0]
	for oc := 0; oc < g.o; oc++ {
		for c := 0; c < g.c; c++ {
			dst := dw[(oc*g.c+c)*kk:][:kk]
			for t := range dst {
				dst[t] = acc[(t*g.o+oc)*g.c+c]
			}
		}
	}
}

// The ...Split variants serve batches smaller than the worker count (a DPS
// step on one image): each image's GEMMs are split across workers by output
// channel (forward, weight gradient) or input channel (input gradient).

func convForwardShiftSplit[T float](o *convOp, x, w, b, y []T, nw int) {
	g := &o.geom
	s := g.shiftGeom()
	kk := g.kh * g.kw
	wr := slice[T](&o.wr, 0, kk*g.o*g.c)
	reorgWeights(w, g, wr)
	xp := slice[T](&o.cols, 0, g.c*s.plane+g.kw)
	yp := slice[T](&o.aux, 0, g.o*s.l)
	xsz, ysz := g.c*g.h*g.w, g.o*g.p
	for n := 0; n < g.n; n++ {
		padInto(x[n*xsz:(n+1)*xsz], g, s, xp)
		yn := y[n*ysz : (n+1)*ysz]
		parallel(g.o, nw, func(_, o0, o1 int) {
			for t := 0; t < kk; t++ {
				var beta T
				if t > 0 {
					beta = 1
				}
				off := (t/g.kw)*s.wp + t%g.kw
				gemm(false, false, o1-o0, s.l, g.c, 1, wr[(t*g.o+o0)*g.c:], g.c, xp[off:], s.plane, beta, yp[o0*s.l:], s.l)
			}
			for oc := o0; oc < o1; oc++ {
				var bias T
				if b != nil {
					bias = b[oc]
				}
				for i := 0; i < g.oh; i++ {
					dst := yn[(oc*g.oh+i)*g.ow:][:g.ow]
					for j, v := range yp[oc*s.l+i*s.wp:][:g.ow] {
						dst[j] = v + bias
					}
				}
			}
		})
	}
}

func convBwdDataShiftSplit[T float](o *convBwdData, w, dy, dx []T, nw int) {
	g := o.geom
	s := g.shiftGeom()
	kk := g.kh * g.kw
	wr := slice[T](&o.wr, 0, kk*g.o*g.c)
	reorgWeights(w, g, wr)
	dyp := slice[T](&o.aux, 0, g.o*s.l)
	xsz, ysz := g.c*g.h*g.w, g.o*g.p
	for n := 0; n < g.n; n++ {
		padGrad(dy[n*ysz:(n+1)*ysz], g, s, dyp)
		dxn := dx[n*xsz : (n+1)*xsz]
		parallel(g.c, nw, func(wk, c0, c1 int) {
			// own buffer per worker: the GEMM's last row spills a few
			// (zero) elements past its channel range
			dxp := slice[T](&o.cols, wk, (c1-c0)*s.plane+g.kw)
			clear(dxp)
			for t := 0; t < kk; t++ {
				off := (t/g.kw)*s.wp + t%g.kw
				gemm(true, false, c1-c0, s.l, g.o, 1, wr[t*g.o*g.c+c0:], g.c, dyp, s.l, 1, dxp[off:], s.plane)
			}
			copy2(dxn[c0*g.h*g.w:], g.h*g.w, g.w, dxp[g.pad*s.wp+g.pad:], s.plane, s.wp, c1-c0, g.h, g.w)
		})
	}
}

func convBwdFilterShiftSplit[T float](o *convBwdFilter, x, dy, dw []T, nw int) {
	g := o.geom
	s := g.shiftGeom()
	kk := g.kh * g.kw
	xp := slice[T](&o.cols, 0, g.c*s.plane+g.kw)
	dyp := slice[T](&o.aux, 0, g.o*s.l)
	acc := slice[T](&o.acc, 0, kk*g.o*g.c)
	clear(acc)
	xsz, ysz := g.c*g.h*g.w, g.o*g.p
	for n := 0; n < g.n; n++ {
		padInto(x[n*xsz:(n+1)*xsz], g, s, xp)
		padGrad(dy[n*ysz:(n+1)*ysz], g, s, dyp)
		parallel(g.o, nw, func(_, o0, o1 int) {
			for t := 0; t < kk; t++ {
				off := (t/g.kw)*s.wp + t%g.kw
				gemm(false, true, o1-o0, g.c, s.l, 1, dyp[o0*s.l:], s.l, xp[off:], s.plane, 1, acc[(t*g.o+o0)*g.c:], g.c)
			}
		})
	}
	for oc := 0; oc < g.o; oc++ {
		for c := 0; c < g.c; c++ {
			dst := dw[(oc*g.c+c)*kk:][:kk]
			for t := range dst {
				dst[t] = acc[(t*g.o+oc)*g.c+c]
			}
		}
	}
}
