package nn

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// GroupNormNHWC is GroupNorm for channels-last activations: x is N×…×C
// (N×H×W×C for images; any rank ≥ 2, channels on the last axis), gamma and
// beta C. Groups are C/groups consecutive channels; each group's mean and
// biased variance (plus eps) are taken over all its channels at every
// position of the sample, as in PyTorch's nn.GroupNorm(groups, C, eps) on
// the NCHW transpose. Gradients flow to x, gamma and beta.
//
// Per sample the forward pass reads x twice (per-channel sums and sums of
// squares, accumulated in float64 and combined into the groups, then the
// normalised affine output), vectorised over the channels; the batch is
// split over GOMAXPROCS goroutines.
func GroupNormNHWC(x, gamma, beta *G.Node, groups int, eps float64) (*G.Node, error) {
	return groupNormNHWC("nn.GroupNormNHWC", x, gamma, beta, groups, eps, false)
}

// GroupNormSiLUNHWC is SiLU(GroupNormNHWC(x, gamma, beta, groups, eps)) in
// one op, the channels-last form of GroupNormSiLU.
func GroupNormSiLUNHWC(x, gamma, beta *G.Node, groups int, eps float64) (*G.Node, error) {
	return groupNormNHWC("nn.GroupNormSiLUNHWC", x, gamma, beta, groups, eps, true)
}

func groupNormNHWC(op string, x, gamma, beta *G.Node, groups int, eps float64, silu bool) (*G.Node, error) {
	xs, c, err := groupNormArgs(op, x, gamma, beta, groups, eps, true)
	if err != nil {
		return nil, err
	}
	o := &gnNHWCOp{n: xs[0], pix: xs.TotalSize() / (xs[0] * c), c: c, groups: groups, eps: eps, silu: silu, xShape: xs.Clone()}
	o.baseOp = baseOp{name: fmt.Sprintf("GroupNormNHWC(%v g=%d eps=%g silu=%v)", xs, groups, eps, silu), arity: 3, typ: fnType(len(xs), len(xs), 1, 1), shape: xs.Clone()}
	return G.ApplyOp(o, x, gamma, beta)
}

// gnNHWCPeriod is the length of the per-channel coefficient arrays of the C
// kernels: the channels repeated to at least 256 elements, so that their
// inner loops run over several pixels at once (long vector loops even for
// 32 channels).
func gnNHWCPeriod(c int) (period, reps int) {
	reps = (256 + c - 1) / c
	return c * reps, reps
}

// gnNHWCOp is the forward channels-last group norm; like gnOp it keeps each
// (sample, group)'s mean and 1/σ for its backward op.
type gnNHWCOp struct {
	baseOp
	n, pix, c, groups int // pix: positions per sample (H·W)
	eps               float64
	silu              bool
	xShape            tensor.Shape
	mean, rstd        []float64
	outBuffer
	wsD, wsT scratch // per-worker float64 and element-type work space
}

func (o *gnNHWCOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	if len(o.mean) != o.n*o.groups {
		o.mean, o.rstd = make([]float64, o.n*o.groups), make([]float64, o.n*o.groups)
	}
	y := o.out.get(dt, o.shape)
	if dt == tensor.Float32 {
		gnNHWCForward(o, data[float32](ds[0]), data[float32](ds[1]), data[float32](ds[2]), data[float32](y))
	} else {
		gnNHWCForward(o, data[float64](ds[0]), data[float64](ds[1]), data[float64](ds[2]), data[float64](y))
	}
	return y, nil
}

func gnNHWCForward[T float](o *gnNHWCOp, x, gamma, beta, y []T) {
	sz := o.pix * o.c
	parallel(o.n, workers(o.n), func(w, lo, hi int) {
		for n := lo; n < hi; n++ {
			xi, yi := x[n*sz:(n+1)*sz], y[n*sz:(n+1)*sz]
			mean, rstd := o.mean[n*o.groups:(n+1)*o.groups], o.rstd[n*o.groups:(n+1)*o.groups]
			if x32, ok := any(xi).([]float32); ok && haveCKernels {
				p, reps := gnNHWCPeriod(o.c)
				gnNHWCFwdF32(x32, any(yi).([]float32), any(gamma).([]float32), any(beta).([]float32), o.pix, o.c, o.groups, reps,
					o.eps, o.silu, mean, rstd, slice[float64](&o.wsD, w, 3*p), slice[float32](&o.wsT, w, 2*p))
				continue
			}
			gnNHWCFwdGo(xi, yi, gamma, beta, o.pix, o.c, o.groups, o.eps, o.silu, mean, rstd,
				slice[float64](&o.wsD, w, 3*o.c), slice[T](&o.wsT, w, 2*o.c))
		}
	})
}

// gnNHWCStats turns per-channel sums s1 = Σ(x−k) and s2 = Σ(x−k)² over pix
// positions, k the per-channel shift (the sample's first position, so that
// the sums do not cancel for large means), into each group's mean and 1/σ.
func gnNHWCStats(s1, s2, k []float64, pix, c, groups int, eps float64, mean, rstd []float64) {
	cg := c / groups
	np := float64(pix)
	gsz := np * float64(cg)
	for g := 0; g < groups; g++ {
		var sum float64
		for ch := g * cg; ch < (g+1)*cg; ch++ {
			sum += k[ch]*np + s1[ch]
		}
		m := sum / gsz
		var ss float64 // Σ (x−m)² = Σ (d + k−m)², d = x−k
		for ch := g * cg; ch < (g+1)*cg; ch++ {
			dl := k[ch] - m
			ss += s2[ch] + 2*dl*s1[ch] + np*dl*dl
		}
		v := max(ss/gsz, 0)
		mean[g], rstd[g] = m, 1/math.Sqrt(v+eps)
	}
}

// gnNHWCFwdGo is the forward pass on one sample x (pix×c) in Go: float64,
// and float32 without cgo. ws holds 3c float64s, wt 2c Ts.
func gnNHWCFwdGo[T float](x, y, gamma, beta []T, pix, c, groups int, eps float64, silu bool, mean, rstd, ws []float64, wt []T) {
	s1, s2, k := ws[:c], ws[c:2*c], ws[2*c:3*c]
	for ch := range c {
		k[ch], s1[ch], s2[ch] = float64(x[ch]), 0, 0
	}
	for p := 0; p < pix; p++ {
		xp := x[p*c : (p+1)*c]
		for ch, v := range xp {
			d := float64(v) - k[ch]
			s1[ch] += d
			s2[ch] += d * d
		}
	}
	gnNHWCStats(s1, s2, k, pix, c, groups, eps, mean, rstd)
	a, b := wt[:c], wt[c:2*c]
	cg := c / groups
	for ch := range c {
		g := ch / cg
		a[ch] = T(rstd[g]) * gamma[ch]
		b[ch] = beta[ch] - T(mean[g])*a[ch]
	}
	for p := 0; p < pix; p++ {
		xp, yp := x[p*c:(p+1)*c], y[p*c:(p+1)*c]
		for ch, v := range xp {
			yp[ch] = v*a[ch] + b[ch]
		}
	}
	if silu {
		siluSlice(y[:pix*c], y[:pix*c])
	}
}

func (o *gnNHWCOp) DiffWRT(n int) []bool { return []bool{true, true, true} }

func (o *gnNHWCOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	b := &gnNHWCBwdOp{fwd: o}
	b.baseOp = baseOp{name: fmt.Sprintf("GroupNormNHWCBwd(%p)", o), arity: 4, typ: fnType(len(o.xShape), len(o.xShape), 1, 1, len(o.xShape)), shape: o.xShape}
	dx, err := G.ApplyOp(b, inputs[0], inputs[1], inputs[2], grad)
	if err != nil {
		return nil, fmt.Errorf("nn.GroupNormNHWC backward: %w", err)
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

// DoDiff implements gorgonia.ADOp (LispMachine).
func (o *gnNHWCOp) DoDiff(_ G.ExecutionContext, in G.Nodes, out *G.Node) error {
	return doDiff(o, in, out)
}

// gnNHWCBwdOp computes dx from (x, gamma, beta, dy) with the statistics of
// its forward op's last run and, as by-products, dgamma and dbeta, which
// pick nodes hand on.
type gnNHWCBwdOp struct {
	baseOp
	fwd *gnNHWCOp
	outBuffer
	dgamma, dbeta buffer
	acc           scratch // per-worker dgamma, dbeta partial sums
	wsD, wsT      scratch
}

func (o *gnNHWCBwdOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	f := o.fwd
	if len(f.mean) != f.n*f.groups {
		return nil, fmt.Errorf("%s: the forward op has not run", o.name)
	}
	dx := o.out.get(dt, o.shape)
	dg := o.dgamma.get(dt, tensor.Shape{f.c})
	db := o.dbeta.get(dt, tensor.Shape{f.c})
	if dt == tensor.Float32 {
		gnNHWCBackward(o, data[float32](ds[0]), data[float32](ds[1]), data[float32](ds[2]), data[float32](ds[3]), data[float32](dx), data[float32](dg), data[float32](db))
	} else {
		gnNHWCBackward(o, data[float64](ds[0]), data[float64](ds[1]), data[float64](ds[2]), data[float64](ds[3]), data[float64](dx), data[float64](dg), data[float64](db))
	}
	return dx, nil
}

func gnNHWCBackward[T float](o *gnNHWCBwdOp, x, gamma, beta, dy, dx, dgamma, dbeta []T) {
	f := o.fwd
	sz := f.pix * f.c
	nw := workers(f.n)
	accs := make([][]float64, nw)
	parallel(f.n, nw, func(w, lo, hi int) {
		acc := slice[float64](&o.acc, w, 2*f.c)
		clear(acc)
		accs[w] = acc
		for n := lo; n < hi; n++ {
			xi, dyi, dxi := x[n*sz:(n+1)*sz], dy[n*sz:(n+1)*sz], dx[n*sz:(n+1)*sz]
			mean, rstd := f.mean[n*f.groups:(n+1)*f.groups], f.rstd[n*f.groups:(n+1)*f.groups]
			if x32, ok := any(xi).([]float32); ok && haveCKernels {
				p, reps := gnNHWCPeriod(f.c)
				gnNHWCBwdF32(x32, any(gamma).([]float32), any(beta).([]float32), any(dyi).([]float32), any(dxi).([]float32),
					f.pix, f.c, f.groups, reps, f.silu, mean, rstd, acc[:f.c], acc[f.c:],
					slice[float64](&o.wsD, w, 2*p), slice[float32](&o.wsT, w, 4*p))
				continue
			}
			gnNHWCBwdGo(xi, gamma, beta, dyi, dxi, f.pix, f.c, f.groups, f.silu, mean, rstd, acc[:f.c], acc[f.c:],
				slice[float64](&o.wsD, w, 2*f.c), slice[T](&o.wsT, w, 4*f.c))
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

// gnNHWCBwdGo is the backward pass on one sample in Go: it writes dx and
// adds Σ dz·x̂ and Σ dz per channel into accG and accB (dz the gradient
// before the affine map). ws holds 2c float64s, wt 4c Ts.
func gnNHWCBwdGo[T float](x, gamma, beta, dy, dx []T, pix, c, groups int, silu bool, mean, rstd, accG, accB, ws []float64, wt []T) {
	t1, t2 := ws[:c], ws[c:2*c] // Σ dz, Σ dz·(x−μ)
	clear(t1)
	clear(t2)
	mc, a, b, d := wt[:c], wt[c:2*c], wt[2*c:3*c], wt[3*c:4*c]
	cg := c / groups
	for ch := range c {
		g := ch / cg
		mc[ch] = T(mean[g])
		a[ch] = T(rstd[g]) * gamma[ch]
		b[ch] = beta[ch] - mc[ch]*a[ch]
	}
	n := pix * c
	dz := dy[:n]
	if silu {
		// z = x·a + b into dx, then dz = dy·SiLU'(z) over it
		for p := 0; p < pix; p++ {
			xp, zp := x[p*c:(p+1)*c], dx[p*c:(p+1)*c]
			for ch, v := range xp {
				zp[ch] = v*a[ch] + b[ch]
			}
		}
		siluGradSlice(dx[:n], dy[:n], dx[:n])
		dz = dx[:n]
	}
	for p := 0; p < pix; p++ {
		xp, dp := x[p*c:(p+1)*c], dz[p*c:(p+1)*c]
		for ch, v := range xp {
			g := dp[ch]
			t1[ch] += float64(g)
			t2[ch] += float64(g * (v - mc[ch]))
		}
	}
	// dx = rstd·(dz·γ − m1 − x̂·m2) = dz·A + (x−μ)·B + D
	for g := 0; g < groups; g++ {
		r := rstd[g]
		var m1, m2 float64
		for ch := g * cg; ch < (g+1)*cg; ch++ {
			sg := r * t2[ch]
			accG[ch] += sg
			accB[ch] += t1[ch]
			m1 += t1[ch] * float64(gamma[ch])
			m2 += sg * float64(gamma[ch])
		}
		m1 /= float64(pix * cg)
		m2 /= float64(pix * cg)
		for ch := g * cg; ch < (g+1)*cg; ch++ {
			a[ch] = T(r * float64(gamma[ch]))
			b[ch] = T(-r * r * m2)
			d[ch] = T(-r * m1)
		}
	}
	for p := 0; p < pix; p++ {
		xp, dp, op := x[p*c:(p+1)*c], dz[p*c:(p+1)*c], dx[p*c:(p+1)*c]
		for ch, v := range xp {
			op[ch] = dp[ch]*a[ch] + (v-mc[ch])*b[ch] + d[ch]
		}
	}
}
