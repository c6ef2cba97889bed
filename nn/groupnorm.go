package nn

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// GroupNorm normalises x (N×C×…, any rank ≥ 2) over groups of C/groups
// channels and all trailing axes, with eps added to the variance (biased),
// then applies the per-channel affine gamma, beta (both C): PyTorch's
// nn.GroupNorm(groups, C, eps). guided-diffusion uses groups 32, eps 1e-5.
// Gradients flow to x, gamma and beta.
func GroupNorm(x, gamma, beta *G.Node, groups int, eps float64) (*G.Node, error) {
	return groupNorm("nn.GroupNorm", x, gamma, beta, groups, eps, false)
}

// GroupNormSiLU is SiLU(GroupNorm(x, gamma, beta, groups, eps)) in one op:
// one pass over memory instead of two and no intermediate tensor, the
// normalisation every guided-diffusion ResBlock starts with.
func GroupNormSiLU(x, gamma, beta *G.Node, groups int, eps float64) (*G.Node, error) {
	return groupNorm("nn.GroupNormSiLU", x, gamma, beta, groups, eps, true)
}

func groupNorm(op string, x, gamma, beta *G.Node, groups int, eps float64, silu bool) (*G.Node, error) {
	xs, c, err := groupNormArgs(op, x, gamma, beta, groups, eps, false)
	if err != nil {
		return nil, err
	}
	o := &gnOp{n: xs[0], c: c, groups: groups, inner: xs.TotalSize() / (xs[0] * c), eps: eps, silu: silu, xShape: xs.Clone()}
	o.baseOp = baseOp{name: fmt.Sprintf("GroupNorm(%v g=%d eps=%g silu=%v)", xs, groups, eps, silu), arity: 3, typ: fnType(len(xs), len(xs), 1, 1), shape: xs.Clone()}
	return G.ApplyOp(o, x, gamma, beta)
}

// groupNormArgs checks a group norm's arguments and returns x's shape and
// channel count: x N×C×… (channels on axis 1) or, with last, N×…×C.
func groupNormArgs(op string, x, gamma, beta *G.Node, groups int, eps float64, last bool) (tensor.Shape, int, error) {
	if x == nil {
		return nil, 0, fmt.Errorf("%s: input is nil", op)
	}
	xs := x.Shape()
	if len(xs) < 2 {
		want := "N×C×…"
		if last {
			want = "N×…×C"
		}
		return nil, 0, fmt.Errorf("%s: input %s has shape %v, want %s", op, x.Name(), xs, want)
	}
	c := xs[1]
	if last {
		if xs.TotalSize() == 0 {
			return nil, 0, fmt.Errorf("%s: input %s has shape %v, want no zero-sized axis", op, x.Name(), xs)
		}
		c = xs[len(xs)-1]
	}
	if groups < 1 || c%groups != 0 {
		return nil, 0, fmt.Errorf("%s: %d groups do not divide %d channels", op, groups, c)
	}
	if !(eps > 0) {
		return nil, 0, fmt.Errorf("%s: eps %g, want > 0", op, eps)
	}
	for _, p := range []struct {
		n    *G.Node
		what string
	}{{gamma, "gamma"}, {beta, "beta"}} {
		s, err := shapeOf(op, p.what, p.n, 1)
		if err != nil {
			return nil, 0, err
		}
		if s[0] != c {
			return nil, 0, fmt.Errorf("%s: %s %s has %d elements, want %d channels", op, p.what, p.n.Name(), s[0], c)
		}
	}
	if _, err := sameDtype(op, x, gamma, beta); err != nil {
		return nil, 0, err
	}
	return xs, c, nil
}

// gnOp is the forward group norm; it keeps each group's mean and 1/σ for
// its backward op (state that is never a node value).
type gnOp struct {
	baseOp
	n, c, groups, inner int
	eps                 float64
	silu                bool
	xShape              tensor.Shape
	mean, rstd          []float64
	outBuffer
}

func (o *gnOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	if len(o.mean) != o.n*o.groups {
		o.mean, o.rstd = make([]float64, o.n*o.groups), make([]float64, o.n*o.groups)
	}
	y := o.out.get(dt, o.shape)
	if dt == tensor.Float32 {
		gnForward(o, data[float32](ds[0]), data[float32](ds[1]), data[float32](ds[2]), data[float32](y))
	} else {
		gnForward(o, data[float64](ds[0]), data[float64](ds[1]), data[float64](ds[2]), data[float64](y))
	}
	return y, nil
}

func gnForward[T float](o *gnOp, x, gamma, beta, y []T) {
	cg := o.c / o.groups
	gsz := cg * o.inner
	jobs := o.n * o.groups
	parallel(jobs, workers(jobs), func(_, lo, hi int) {
		// runs of groups [g0, g1) within one sample n
		for j := lo; j < hi; {
			n, g0 := j/o.groups, j%o.groups
			g1 := min(o.groups, g0+hi-j)
			j += g1 - g0
			if x32, ok := any(x).([]float32); ok && haveCKernels {
				a, b := (n*o.groups+g0)*gsz, (n*o.groups+g1)*gsz
				gnFwdF32(x32[a:b], any(y).([]float32)[a:b], any(gamma).([]float32)[g0*cg:], any(beta).([]float32)[g0*cg:],
					(g1-g0)*cg, g1-g0, o.inner, o.eps, o.silu, o.mean[n*o.groups+g0:], o.rstd[n*o.groups+g0:])
				continue
			}
			for g := g0; g < g1; g++ {
				base := (n*o.groups + g) * gsz
				xg := x[base : base+gsz]
				var s float64
				for _, v := range xg {
					s += float64(v)
				}
				mean := s / float64(gsz)
				var ss float64
				for _, v := range xg {
					d := float64(v) - mean
					ss += d * d
				}
				rstd := 1 / math.Sqrt(ss/float64(gsz)+o.eps)
				o.mean[n*o.groups+g], o.rstd[n*o.groups+g] = mean, rstd
				for ci := 0; ci < cg; ci++ {
					ch := g*cg + ci
					a := T(rstd) * gamma[ch]
					b := beta[ch] - T(mean)*a
					xr := xg[ci*o.inner : (ci+1)*o.inner]
					yr := y[base+ci*o.inner : base+(ci+1)*o.inner]
					for i, v := range xr {
						yr[i] = v*a + b
					}
					if o.silu {
						siluSlice(yr, yr)
					}
				}
			}
		}
	})
}

func (o *gnOp) DiffWRT(n int) []bool { return []bool{true, true, true} }

func (o *gnOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	b := &gnBwdOp{fwd: o}
	b.baseOp = baseOp{name: fmt.Sprintf("GroupNormBwd(%p)", o), arity: 4, typ: fnType(len(o.xShape), len(o.xShape), 1, 1, len(o.xShape)), shape: o.xShape}
	dx, err := G.ApplyOp(b, inputs[0], inputs[1], inputs[2], grad)
	if err != nil {
		return nil, fmt.Errorf("nn.GroupNorm backward: %w", err)
	}
	dg, err := pick(dx, &b.dgamma, fmt.Sprintf("%p.dgamma", b), tensor.Shape{o.c})
	if err != nil {
		return nil, err
	}
	db, err := pick(dx, &b.dbeta, fmt.Sprintf("%p.dbeta", b), tensor.Shape{o.c})
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx, dg, db}, nil
}

// gnBwdOp computes dx from (x, gamma, beta, dy) and, as by-products, dgamma
// and dbeta, which pick nodes hand on.
type gnBwdOp struct {
	baseOp
	fwd *gnOp
	outBuffer
	dgamma, dbeta buffer
	acc           scratch
}

func (o *gnBwdOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	dx := o.out.get(dt, o.shape)
	dg := o.dgamma.get(dt, tensor.Shape{o.fwd.c})
	db := o.dbeta.get(dt, tensor.Shape{o.fwd.c})
	if dt == tensor.Float32 {
		gnBackward(o, data[float32](ds[0]), data[float32](ds[1]), data[float32](ds[2]), data[float32](ds[3]), data[float32](dx), data[float32](dg), data[float32](db))
	} else {
		gnBackward(o, data[float64](ds[0]), data[float64](ds[1]), data[float64](ds[2]), data[float64](ds[3]), data[float64](dx), data[float64](dg), data[float64](db))
	}
	return dx, nil
}

func gnBackward[T float](o *gnBwdOp, x, gamma, beta, dy, dx, dgamma, dbeta []T) {
	f := o.fwd
	cg := f.c / f.groups
	gsz := cg * f.inner
	jobs := f.n * f.groups
	nw := workers(jobs)
	accs := make([][]float64, nw)
	parallel(jobs, nw, func(wk, lo, hi int) {
		acc := slice[float64](&o.acc, wk, 2*f.c) // dgamma, dbeta partial sums
		clear(acc)
		accs[wk] = acc
		for j := lo; j < hi; {
			n, g0 := j/f.groups, j%f.groups
			g1 := min(f.groups, g0+hi-j)
			j += g1 - g0
			if x32, ok := any(x).([]float32); ok && haveCKernels {
				a, b := (n*f.groups+g0)*gsz, (n*f.groups+g1)*gsz
				gnBwdF32(x32[a:b], any(gamma).([]float32)[g0*cg:], any(beta).([]float32)[g0*cg:], any(dy).([]float32)[a:b],
					any(dx).([]float32)[a:b], (g1-g0)*cg, g1-g0, f.inner, f.silu,
					f.mean[n*f.groups+g0:], f.rstd[n*f.groups+g0:], acc[g0*cg:], acc[f.c+g0*cg:])
				continue
			}
			for g := g0; g < g1; g++ {
				base := (n*f.groups + g) * gsz
				mean, rstd := f.mean[n*f.groups+g], f.rstd[n*f.groups+g]
				var m1, m2 float64 // Σ dxhat, Σ dxhat·xhat
				for ci := 0; ci < cg; ci++ {
					ch := g*cg + ci
					off := base + ci*f.inner
					xr, dyr, dzr := x[off:off+f.inner], dy[off:off+f.inner], dx[off:off+f.inner]
					// dz (the gradient before the affine map) goes into dx
					// for now; it is overwritten by dx below.
					if f.silu {
						a := T(rstd) * gamma[ch]
						b := beta[ch] - T(mean)*a
						for i, v := range xr {
							dzr[i] = v*a + b // z
						}
						siluGradSlice(dzr, dyr, dzr)
					} else {
						copy(dzr, dyr)
					}
					var sg, sb float64
					for i, v := range xr {
						xh := (float64(v) - mean) * rstd
						dz := float64(dzr[i])
						sg += dz * xh
						sb += dz
					}
					acc[ch] += sg
					acc[f.c+ch] += sb
					m1 += sb * float64(gamma[ch])
					m2 += sg * float64(gamma[ch])
				}
				m1 /= float64(gsz)
				m2 /= float64(gsz)
				for ci := 0; ci < cg; ci++ {
					ch := g*cg + ci
					off := base + ci*f.inner
					xr, dzr := x[off:off+f.inner], dx[off:off+f.inner]
					gm := float64(gamma[ch])
					for i, v := range xr {
						xh := (float64(v) - mean) * rstd
						dzr[i] = T(rstd * (float64(dzr[i])*gm - m1 - xh*m2))
					}
				}
			}
		}
	})
	for ch := 0; ch < f.c; ch++ {
		var sg, sb float64
		for _, acc := range accs {
			sg += acc[ch]
			sb += acc[f.c+ch]
		}
		dgamma[ch], dbeta[ch] = T(sg), T(sb)
	}
}

// pick returns a node whose value is the op-owned buffer *src, filled by the
// op that computes dep (a by-product of dep's op); dep is its input so that
// it runs after dep.
func pick(dep *G.Node, src *buffer, name string, shape tensor.Shape) (*G.Node, error) {
	o := &pickOp{src: src}
	o.baseOp = baseOp{name: "Pick(" + name + ")", arity: 1, typ: fnType(len(shape), dep.Dims()), shape: shape.Clone()}
	n, err := G.ApplyOp(o, dep)
	if err != nil {
		return nil, fmt.Errorf("nn: %s: %w", o.name, err)
	}
	return n, nil
}

type pickOp struct {
	baseOp
	src *buffer
}

func (o *pickOp) Do(vs ...G.Value) (G.Value, error) {
	if err := o.checkArity(len(vs)); err != nil {
		return nil, err
	}
	if o.src.t == nil {
		return nil, fmt.Errorf("%s: source not computed", o.name)
	}
	return o.src.t, nil
}
