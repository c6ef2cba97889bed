package baseline

import (
	"fmt"
	"math"

	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/inverse/op"
	"gorgonia.org/tensor"
)

// TVOptions configures ADMMTV.
type TVOptions struct {
	// Lambda weighs the TV term against ½‖Ax − y‖² (images on the [−1, 1]
	// scale).
	Lambda float64
	// Rho is the ADMM penalty parameter.
	Rho float64
	// Iters is the number of ADMM iterations.
	Iters int
	// CGIters is the number of conjugate-gradient steps of each x-update
	// (warm started).
	CGIters int
	// Anisotropic uses |∂x| + |∂y| instead of the isotropic √(∂x² + ∂y²).
	Anisotropic bool
}

// DefaultTV returns the settings used for the README table: λ = 0.01,
// ρ = 0.1, 100 iterations of 20 CG steps, isotropic TV. The DPS repository
// ships no ADMM-TV code or settings, so these were chosen by a small sweep
// on MNIST test digits (see the package tests), not copied from the paper.
func DefaultTV() TVOptions {
	return TVOptions{Lambda: 0.01, Rho: 0.1, Iters: 100, CGIters: 20}
}

// grad computes forward differences with a Neumann boundary (zero at the
// last row/column): out[0] = ∂x (along W), out[1] = ∂y (along H), per channel.
func grad(x []float64, c, h, w int, dx, dy []float64) {
	for ch := 0; ch < c; ch++ {
		o := ch * h * w
		for i := 0; i < h; i++ {
			for j := 0; j < w; j++ {
				p := o + i*w + j
				dx[p], dy[p] = 0, 0
				if j+1 < w {
					dx[p] = x[p+1] - x[p]
				}
				if i+1 < h {
					dy[p] = x[p+w] - x[p]
				}
			}
		}
	}
}

// gradT is the adjoint of grad (a negative divergence).
func gradT(dx, dy []float64, c, h, w int, out []float64) {
	for i := range out {
		out[i] = 0
	}
	for ch := 0; ch < c; ch++ {
		o := ch * h * w
		for i := 0; i < h; i++ {
			for j := 0; j < w; j++ {
				p := o + i*w + j
				if j+1 < w {
					out[p+1] += dx[p]
					out[p] -= dx[p]
				}
				if i+1 < h {
					out[p+w] += dy[p]
					out[p] -= dy[p]
				}
			}
		}
	}
}

// TVObjective returns ½‖Ax − y‖² + λ·TV(x) per image (isotropic or
// anisotropic as in opt).
func TVObjective(a op.Operator, x, y *tensor.Dense, opt TVOptions) ([]float64, error) {
	ax, err := a.Forward(x)
	if err != nil {
		return nil, err
	}
	n, c, h, w, err := tensors.NCHW("baseline.TVObjective x", x)
	if err != nil {
		return nil, err
	}
	if err := tensors.SameShape("A(x)", ax, "y", y); err != nil {
		return nil, fmt.Errorf("baseline.TVObjective: %w", err)
	}
	d, m := c*h*w, len(tensors.F32(ax))/n
	xd, ad, yd := tensors.F32(x), tensors.F32(ax), tensors.F32(y)
	res := make([]float64, n)
	xi := make([]float64, d)
	dx, dy := make([]float64, d), make([]float64, d)
	for i := 0; i < n; i++ {
		s := 0.0
		for j := 0; j < m; j++ {
			e := float64(ad[i*m+j]) - float64(yd[i*m+j])
			s += e * e / 2
		}
		for j := range xi {
			xi[j] = float64(xd[i*d+j])
		}
		grad(xi, c, h, w, dx, dy)
		tv := 0.0
		for p := range dx {
			if opt.Anisotropic {
				tv += math.Abs(dx[p]) + math.Abs(dy[p])
			} else {
				tv += math.Hypot(dx[p], dy[p])
			}
		}
		res[i] = s + opt.Lambda*tv
	}
	return res, nil
}

// adjointer is a linear operator that offers Aᵀ (every op.Linear, and
// op.NonUniformBlur).
type adjointer interface {
	op.Operator
	op.Shaped
	Adjoint(y *tensor.Dense) (*tensor.Dense, error)
}

// ADMMTV solves min_x ½‖Ax − y‖² + λ·TV(x) by ADMM with the split z = ∇x:
// the x-update solves (AᵀA + ρ∇ᵀ∇)x = Aᵀy + ρ∇ᵀ(z − u) by warm-started
// conjugate gradients, the z-update shrinks ∇x + u by λ/ρ (per pixel and
// channel for isotropic TV), and u accumulates ∇x − z. a must be linear
// with an Adjoint method and report its shapes (every operator of package
// op but phase retrieval). It starts from A†y when a has a Pinv, from Aᵀy
// otherwise, works image by image and returns the result clipped to
// [−1, 1].
func ADMMTV(o op.Operator, y *tensor.Dense, opt TVOptions) (*tensor.Dense, error) {
	a, ok := o.(adjointer)
	if !ok {
		return nil, fmt.Errorf("baseline.ADMMTV: operator %T has no Adjoint or does not report its shapes (want a linear operator)", o)
	}
	start := a.Adjoint
	if l, ok := o.(op.Linear); ok {
		start = l.Pinv
	}
	if !(opt.Lambda >= 0) || !(opt.Rho > 0) || opt.Iters < 0 || opt.CGIters < 1 {
		return nil, fmt.Errorf("baseline.ADMMTV: options %+v, want λ ≥ 0, ρ > 0, Iters ≥ 0, CGIters ≥ 1", opt)
	}
	in, outS := a.InShape(), a.OutShape()
	c, h, w := in[0], in[1], in[2]
	d := c * h * w
	m := 1
	for _, v := range outS {
		m *= v
	}
	ys := y.Shape()
	if len(ys) != len(outS)+1 || ys[0] < 1 || len(tensors.F32(y)) != ys[0]*m {
		return nil, fmt.Errorf("baseline.ADMMTV: y has shape %v, want N×%v", []int(ys), outS)
	}
	n := ys[0]
	out := tensors.New(n, c, h, w)
	// single-image helpers through the batch API
	apply := func(f func(*tensor.Dense) (*tensor.Dense, error), v []float64, shape []int) ([]float64, error) {
		t := tensors.New(append([]int{1}, shape...)...)
		for i, x := range v {
			tensors.F32(t)[i] = float32(x)
		}
		r, err := f(t)
		if err != nil {
			return nil, err
		}
		res := make([]float64, len(tensors.F32(r)))
		for i, x := range tensors.F32(r) {
			res[i] = float64(x)
		}
		return res, nil
	}
	dx, dy := make([]float64, d), make([]float64, d)
	tmp := make([]float64, d)
	// normal applies (AᵀA + ρ∇ᵀ∇) to v.
	normal := func(v []float64) ([]float64, error) {
		av, err := apply(a.Forward, v, in)
		if err != nil {
			return nil, err
		}
		r, err := apply(a.Adjoint, av, outS)
		if err != nil {
			return nil, err
		}
		grad(v, c, h, w, dx, dy)
		gradT(dx, dy, c, h, w, tmp)
		for i := range r {
			r[i] += opt.Rho * tmp[i]
		}
		return r, nil
	}
	for img := 0; img < n; img++ {
		yi := make([]float64, m)
		for j := range yi {
			yi[j] = float64(tensors.F32(y)[img*m+j])
		}
		x, err := apply(start, yi, outS)
		if err != nil {
			return nil, fmt.Errorf("baseline.ADMMTV: %w", err)
		}
		aty, err := apply(a.Adjoint, yi, outS)
		if err != nil {
			return nil, fmt.Errorf("baseline.ADMMTV: %w", err)
		}
		zx, zy := make([]float64, d), make([]float64, d)
		ux, uy := make([]float64, d), make([]float64, d)
		gx, gy := make([]float64, d), make([]float64, d)
		grad(x, c, h, w, zx, zy)
		rhs := make([]float64, d)
		for it := 0; it < opt.Iters; it++ {
			for p := range zx {
				gx[p], gy[p] = zx[p]-ux[p], zy[p]-uy[p]
			}
			gradT(gx, gy, c, h, w, rhs)
			for p := range rhs {
				rhs[p] = aty[p] + opt.Rho*rhs[p]
			}
			if x, err = cg(normal, rhs, x, opt.CGIters); err != nil {
				return nil, fmt.Errorf("baseline.ADMMTV: %w", err)
			}
			grad(x, c, h, w, gx, gy)
			t := opt.Lambda / opt.Rho
			for p := range gx {
				vx, vy := gx[p]+ux[p], gy[p]+uy[p]
				if opt.Anisotropic {
					zx[p], zy[p] = soft(vx, t), soft(vy, t)
				} else if r := math.Hypot(vx, vy); r > t {
					zx[p], zy[p] = vx*(1-t/r), vy*(1-t/r)
				} else {
					zx[p], zy[p] = 0, 0
				}
				ux[p] += gx[p] - zx[p]
				uy[p] += gy[p] - zy[p]
			}
		}
		for j, v := range x {
			tensors.F32(out)[img*d+j] = float32(math.Max(-1, math.Min(1, v)))
		}
	}
	return out, nil
}

func soft(v, t float64) float64 {
	switch {
	case v > t:
		return v - t
	case v < -t:
		return v + t
	}
	return 0
}

// cg runs k conjugate-gradient steps on the symmetric positive
// semi-definite system M x = b from x0.
func cg(mul func([]float64) ([]float64, error), b, x0 []float64, k int) ([]float64, error) {
	x := append([]float64(nil), x0...)
	mx, err := mul(x)
	if err != nil {
		return nil, err
	}
	r := make([]float64, len(b))
	for i := range r {
		r[i] = b[i] - mx[i]
	}
	p := append([]float64(nil), r...)
	rr := dot64(r, r)
	bb := dot64(b, b)
	for it := 0; it < k && rr > 1e-20*bb; it++ {
		mp, err := mul(p)
		if err != nil {
			return nil, err
		}
		pmp := dot64(p, mp)
		if pmp <= 0 {
			break
		}
		alpha := rr / pmp
		for i := range x {
			x[i] += alpha * p[i]
			r[i] -= alpha * mp[i]
		}
		rn := dot64(r, r)
		for i := range p {
			p[i] = r[i] + rn/rr*p[i]
		}
		rr = rn
	}
	return x, nil
}

func dot64(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}
