package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// GroupNormScaleShiftSiLUNHWC is SiLU(ScaleShiftNHWC(GroupNormNHWC(x,
// gamma, beta, groups, eps), scale, shift)) in one op: the out_layers head
// of guided-diffusion's ResBlock with use_scale_shift_norm, channels last.
// x is N×…×C, gamma and beta C, scale and shift N×C.
//
// Why one op: the scale-shift folds into the group norm's affine map, per
// image, as γ'ₙ = γ·(1 + scaleₙ) and β'ₙ = β·(1 + scaleₙ) + shiftₙ, so the
// group-norm-and-SiLU kernels run with those coefficients and neither the
// normalised nor the scaled activations exist: the three-op chain read and
// wrote the activation five times more and kept two more activations for
// the backward pass. The backward pass gets γ', β' gradients per image from
// the same kernels and applies the chain rule to them: ∂γ = Σₙ ∂γ'ₙ(1 +
// scaleₙ), ∂β = Σₙ ∂β'ₙ(1 + scaleₙ), ∂scaleₙ = ∂γ'ₙ·γ + ∂β'ₙ·β, ∂shiftₙ =
// ∂β'ₙ. Results equal the chain's to float32 rounding (the affine map is
// computed in another order), tested, and gradient-checked in float64.
func GroupNormScaleShiftSiLUNHWC(x, gamma, beta, scale, shift *G.Node, groups int, eps float64) (*G.Node, error) {
	const op = "nn.GroupNormScaleShiftSiLUNHWC"
	xs, c, err := groupNormArgs(op, x, gamma, beta, groups, eps, true)
	if err != nil {
		return nil, err
	}
	if _, _, err := scaleShiftArgs(op, x, scale, shift, true); err != nil {
		return nil, err
	}
	o := &gnSSNHWCOp{gn: gnNHWCOp{n: xs[0], pix: xs.TotalSize() / (xs[0] * c), c: c, groups: groups, eps: eps, silu: true, xShape: xs.Clone()}}
	r := len(xs)
	o.baseOp = baseOp{name: fmt.Sprintf("GroupNormScaleShiftSiLUNHWC(%v g=%d eps=%g)", xs, groups, eps), arity: 5, typ: fnType(r, r, 1, 1, 2, 2), shape: xs.Clone()}
	return G.ApplyOp(o, x, gamma, beta, scale, shift)
}

// gnSSNHWCOp is the forward op. gn holds the group norm's geometry and
// statistics (its mean and 1/σ per sample and group) and runs the kernels.
type gnSSNHWCOp struct {
	baseOp
	gn gnNHWCOp
	outBuffer
	coef scratch // per-worker γ', β'
}

// foldCoef writes image n's γ' = γ(1 + scale) and β' = β(1 + scale) +
// shift into g and b.
func foldCoef[T float](gamma, beta, scale, shift, g, b []T, n, c int) {
	sc, sh := scale[n*c:(n+1)*c], shift[n*c:(n+1)*c]
	for ch := range c {
		a := 1 + sc[ch]
		g[ch] = gamma[ch] * a
		b[ch] = beta[ch]*a + sh[ch]
	}
}

func (o *gnSSNHWCOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	f := &o.gn
	if len(f.mean) != f.n*f.groups {
		f.mean, f.rstd = make([]float64, f.n*f.groups), make([]float64, f.n*f.groups)
	}
	y := o.out.get(dt, o.shape)
	if dt == tensor.Float32 {
		gnSSForward(o, data[float32](ds[0]), data[float32](ds[1]), data[float32](ds[2]), data[float32](ds[3]), data[float32](ds[4]), data[float32](y))
	} else {
		gnSSForward(o, data[float64](ds[0]), data[float64](ds[1]), data[float64](ds[2]), data[float64](ds[3]), data[float64](ds[4]), data[float64](y))
	}
	return y, nil
}

func gnSSForward[T float](o *gnSSNHWCOp, x, gamma, beta, scale, shift, y []T) {
	f := &o.gn
	sz := f.pix * f.c
	parallel(f.n, workers(f.n), func(w, lo, hi int) {
		cf := slice[T](&o.coef, w, 2*f.c)
		g, b := cf[:f.c], cf[f.c:]
		for n := lo; n < hi; n++ {
			foldCoef(gamma, beta, scale, shift, g, b, n, f.c)
			xi, yi := x[n*sz:(n+1)*sz], y[n*sz:(n+1)*sz]
			mean, rstd := f.mean[n*f.groups:(n+1)*f.groups], f.rstd[n*f.groups:(n+1)*f.groups]
			if x32, ok := any(xi).([]float32); ok && haveCKernels {
				p, reps := gnNHWCPeriod(f.c)
				gnNHWCFwdF32(x32, any(yi).([]float32), any(g).([]float32), any(b).([]float32), f.pix, f.c, f.groups, reps,
					f.eps, true, mean, rstd, slice[float64](&f.wsD, w, 3*p), slice[float32](&f.wsT, w, 2*p))
				continue
			}
			gnNHWCFwdGo(xi, yi, g, b, f.pix, f.c, f.groups, f.eps, true, mean, rstd,
				slice[float64](&f.wsD, w, 3*f.c), slice[T](&f.wsT, w, 2*f.c))
		}
	})
}

func (o *gnSSNHWCOp) DiffWRT(n int) []bool { return []bool{true, true, true, true, true} }

func (o *gnSSNHWCOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	f := &o.gn
	r := len(f.xShape)
	b := &gnSSNHWCBwdOp{fwd: o}
	b.baseOp = baseOp{name: fmt.Sprintf("GroupNormScaleShiftSiLUNHWCBwd(%p)", o), arity: 6, typ: fnType(r, r, 1, 1, 2, 2, r), shape: f.xShape}
	dx, err := G.ApplyOp(b, inputs[0], inputs[1], inputs[2], inputs[3], inputs[4], grad)
	if err != nil {
		return nil, fmt.Errorf("nn.GroupNormScaleShiftSiLUNHWC backward: %w", err)
	}
	nc := tensor.Shape{f.n, f.c}
	res := G.Nodes{dx}
	for _, p := range []struct {
		buf   *buffer
		what  string
		shape tensor.Shape
	}{{&b.dgamma, "dgamma", tensor.Shape{f.c}}, {&b.dbeta, "dbeta", tensor.Shape{f.c}}, {&b.dscale, "dscale", nc}, {&b.dshift, "dshift", nc}} {
		n, err := pick(dx, p.buf, fmt.Sprintf("%p.%s", b, p.what), p.shape)
		if err != nil {
			return nil, err
		}
		res = append(res, n)
	}
	return res, nil
}

// DoDiff implements gorgonia.ADOp (LispMachine).
func (o *gnSSNHWCOp) DoDiff(_ G.ExecutionContext, in G.Nodes, out *G.Node) error {
	return doDiff(o, in, out)
}

// gnSSNHWCBwdOp computes dx from (x, gamma, beta, scale, shift, dy) with
// the statistics of its forward op's last run and, as by-products that
// pick nodes hand on, the gradients of gamma, beta, scale and shift.
type gnSSNHWCBwdOp struct {
	baseOp
	fwd *gnSSNHWCOp
	outBuffer
	dgamma, dbeta, dscale, dshift buffer
	acc                           scratch // per-worker Σₙ ∂γ'(1+s), Σₙ ∂β'(1+s); then one image's ∂γ', ∂β'
	coef                          scratch
	wsD, wsT                      scratch
}

func (o *gnSSNHWCBwdOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	f := &o.fwd.gn
	if len(f.mean) != f.n*f.groups {
		return nil, fmt.Errorf("%s: the forward op has not run", o.name)
	}
	dx := o.out.get(dt, o.shape)
	dg := o.dgamma.get(dt, tensor.Shape{f.c})
	db := o.dbeta.get(dt, tensor.Shape{f.c})
	dsc := o.dscale.get(dt, tensor.Shape{f.n, f.c})
	dsh := o.dshift.get(dt, tensor.Shape{f.n, f.c})
	if dt == tensor.Float32 {
		gnSSBackward(o, data[float32](ds[0]), data[float32](ds[1]), data[float32](ds[2]), data[float32](ds[3]), data[float32](ds[4]), data[float32](ds[5]),
			data[float32](dx), data[float32](dg), data[float32](db), data[float32](dsc), data[float32](dsh))
	} else {
		gnSSBackward(o, data[float64](ds[0]), data[float64](ds[1]), data[float64](ds[2]), data[float64](ds[3]), data[float64](ds[4]), data[float64](ds[5]),
			data[float64](dx), data[float64](dg), data[float64](db), data[float64](dsc), data[float64](dsh))
	}
	return dx, nil
}

func gnSSBackward[T float](o *gnSSNHWCBwdOp, x, gamma, beta, scale, shift, dy, dx, dgamma, dbeta, dscale, dshift []T) {
	f := &o.fwd.gn
	c := f.c
	sz := f.pix * c
	nw := workers(f.n)
	accs := make([][]float64, nw)
	parallel(f.n, nw, func(w, lo, hi int) {
		acc := slice[float64](&o.acc, w, 4*c)
		clear(acc[:2*c])
		accs[w] = acc
		sg, sb := acc[:c], acc[c:2*c]     // Σₙ ∂γ'ₙ(1+sₙ), Σₙ ∂β'ₙ(1+sₙ)
		ig, ib := acc[2*c:3*c], acc[3*c:] // image n's ∂γ', ∂β'
		cf := slice[T](&o.coef, w, 2*c)
		g, b := cf[:c], cf[c:]
		for n := lo; n < hi; n++ {
			foldCoef(gamma, beta, scale, shift, g, b, n, c)
			clear(ig)
			clear(ib)
			xi, dyi, dxi := x[n*sz:(n+1)*sz], dy[n*sz:(n+1)*sz], dx[n*sz:(n+1)*sz]
			mean, rstd := f.mean[n*f.groups:(n+1)*f.groups], f.rstd[n*f.groups:(n+1)*f.groups]
			if x32, ok := any(xi).([]float32); ok && haveCKernels {
				p, reps := gnNHWCPeriod(c)
				gnNHWCBwdF32(x32, any(g).([]float32), any(b).([]float32), any(dyi).([]float32), any(dxi).([]float32),
					f.pix, c, f.groups, reps, true, mean, rstd, ig, ib,
					slice[float64](&o.wsD, w, 2*p), slice[float32](&o.wsT, w, 4*p))
			} else {
				gnNHWCBwdGo(xi, g, b, dyi, dxi, f.pix, c, f.groups, true, mean, rstd, ig, ib,
					slice[float64](&o.wsD, w, 2*c), slice[T](&o.wsT, w, 4*c))
			}
			sc := scale[n*c : (n+1)*c]
			dsc, dsh := dscale[n*c:(n+1)*c], dshift[n*c:(n+1)*c]
			for ch := range c {
				a := 1 + float64(sc[ch])
				sg[ch] += ig[ch] * a
				sb[ch] += ib[ch] * a
				dsc[ch] = T(ig[ch]*float64(gamma[ch]) + ib[ch]*float64(beta[ch]))
				dsh[ch] = T(ib[ch])
			}
		}
	})
	for ch := 0; ch < c; ch++ {
		var sg, sb float64
		for _, acc := range accs {
			if acc != nil {
				sg += acc[ch]
				sb += acc[c+ch]
			}
		}
		dgamma[ch], dbeta[ch] = T(sg), T(sb)
	}
}
