package solve

import (
	"math"
	"math/rand"

	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/inverse/op"
	"gorgonia.org/tensor"
)

// poissonFloor keeps DPS's Poisson weights finite where y is black.
const poissonFloor = 1e-2

// DPS is diffusion posterior sampling (Chung et al., ICLR 2023). Starting
// from x_T ~ N(0, I), at each index i it takes the ancestral DDPM step
// (posterior variance β̃) to x'_{i−1} and then
//
//	x_{i−1} = x'_{i−1} − ζ ∇_{x_i} ρ(x̂0(x_i)),  ρ = ‖y − A(x̂0)‖_W,
//
// the norm, not its square. The gradient is (g − √(1−ᾱ) VJP_ε(g))/√ᾱ with
// g = ∇_{x̂0} ρ = −J_Aᵀ W (y − A(x̂0))/ρ from the operator's VJP and the
// denoiser's EpsVJP. Gaussian (and clean) noise uses W = I; Poisson noise
// uses DPS's shot-noise weighting W = diag(1/max(u_j, 0.01)), u_j = (y_j+1)/2
// the measured intensity (the paper's Λ = diag(1/2y) up to a constant that ζ
// absorbs).
//
// ρ is per image, so image k moves by ζ/‖y_k − A(x̂0_k)‖ times the gradient
// of ½‖·‖²: the step size of an image never depends on the others. The
// official code differentiates the norm of the whole batch's residual, which
// couples images (a badly fitting image shrinks every other image's step);
// diffinv does not copy that. Options: o.DPS. Works with any Operator.
func DPS(den diffusion.Denoiser, A op.Operator, noise op.Noise, y *tensor.Dense, sched *diffusion.Schedule, o Options, rngs []*rand.Rand, progress Progress) (*tensor.Dense, error) {
	return dpsLoop("dps", den, A, noise, y, sched, o.DPS, rngs, progress, false)
}

// MCG is manifold-constrained gradient (Chung et al., NeurIPS 2022) in the
// form of the DPS code: the DPS step (same ζ rule, per image), then the
// projection onto the noised measurement at level i−1,
//
//	x_{i−1} ← x_{i−1} − A†(A x_{i−1} − y_{i−1}),  y_{i−1} = √ᾱ_{i−1} y + √(1−ᾱ_{i−1}) A z,
//
// which for inpainting is (I − AᵀA) x + Aᵀ y_{i−1}. It needs a linear
// operator; options o.MCG. After a projection the residual ρ is small, so
// the DPS rule's step ζ/ρ gets large: on the 4×4 correlated Gaussian test
// prior with a 2×2 hole, ζ = 0.5 leaves the mean 0.81 from the posterior
// mean (posterior shift 1.5), ζ = 0.1 0.57, ζ = 0.02 0.11 (projection alone,
// ζ = 0: 0.29). Expect to need a much smaller ζ than DPS.
func MCG(den diffusion.Denoiser, A op.Operator, noise op.Noise, y *tensor.Dense, sched *diffusion.Schedule, o Options, rngs []*rand.Rand, progress Progress) (*tensor.Dense, error) {
	return dpsLoop("mcg", den, A, noise, y, sched, o.MCG, rngs, progress, true)
}

func dpsLoop(method string, den diffusion.Denoiser, A op.Operator, noise op.Noise, y *tensor.Dense, sched *diffusion.Schedule, o DPSOptions, rngs []*rand.Rand, progress Progress, project bool) (*tensor.Dense, error) {
	p, err := newProblem(method, den, A, noise, y, sched, rngs, progress)
	if err != nil {
		return nil, err
	}
	if err := o.Validate(method); err != nil {
		return nil, err
	}
	if sched, err = respaced(method, sched, o.Steps); err != nil {
		return nil, err
	}
	_, poisson := noise.(*op.Poisson)
	var w []float64
	if poisson {
		w = make([]float64, len(p.yv))
		for j, v := range p.yv {
			w[j] = 1 / math.Max((v+1)/2, poissonFloor)
		}
	}
	K := sched.Len()
	p.steps = K
	x := make([]float64, p.n*p.d)
	p.randn(x)
	for i := K - 1; i >= 0; i-- {
		x0, grad, err := p.dpsGrad(sched, i, x, w)
		if err != nil {
			return nil, err
		}
		next := p.ancestral(sched, i, x, x0, o.ClipX0)
		for j := range next {
			next[j] -= o.Scale * grad[j]
		}
		if project {
			if next, err = p.project(sched, i, next); err != nil {
				return nil, err
			}
		}
		x = next
		p.tick()
	}
	return p.finish(x)
}

// dpsGrad returns x̂0(x) and ∇_x ρ(x̂0(x)) at index i, ρ = ‖y − A(x̂0)‖_W
// per image (W = diag(w), or I when w is nil; 0 where ρ = 0).
func (p *problem) dpsGrad(sched *diffusion.Schedule, i int, x, w []float64) (x0, grad []float64, err error) {
	eps, pull, err := p.epsPullback(sched, x, i)
	if err != nil {
		return nil, nil, err
	}
	x0 = x0FromEps(sched, i, x, eps)
	ax, err := p.forward(x0)
	if err != nil {
		return nil, nil, err
	}
	// r = W (A(x̂0) − y) / ρ per image: the cotangent of ρ at A(x̂0).
	r := make([]float64, len(ax))
	for k := 0; k < p.n; k++ {
		rho := 0.0
		for j := k * p.m; j < (k+1)*p.m; j++ {
			e := ax[j] - p.yv[j]
			wj := 1.0
			if w != nil {
				wj = w[j]
			}
			r[j] = wj * e
			rho += wj * e * e
		}
		rho = math.Sqrt(rho)
		for j := k * p.m; j < (k+1)*p.m; j++ {
			if rho > 0 {
				r[j] /= rho
			} else {
				r[j] = 0
			}
		}
	}
	g, err := p.vjpA(x0, r)
	if err != nil {
		return nil, nil, err
	}
	vjp, err := pull(g)
	if err != nil {
		return nil, nil, err
	}
	return x0, x0Grad(sched, i, g, vjp), nil
}

// project returns x − A†(A x − y_{i−1}) with y_{i−1} = √ᾱ_{i−1} y +
// √(1−ᾱ_{i−1}) A z, z drawn per image (y itself at i = 0).
func (p *problem) project(sched *diffusion.Schedule, i int, x []float64) ([]float64, error) {
	abPrev := sched.AlphaBarPrev(i)
	yt := make([]float64, len(p.yv))
	for j, v := range p.yv {
		yt[j] = math.Sqrt(abPrev) * v
	}
	if i > 0 {
		z := make([]float64, len(x))
		p.randn(z)
		az, err := p.forward(z)
		if err != nil {
			return nil, err
		}
		for j := range yt {
			yt[j] += math.Sqrt(1-abPrev) * az[j]
		}
	}
	ax, err := p.forward(x)
	if err != nil {
		return nil, err
	}
	for j := range ax {
		ax[j] -= yt[j]
	}
	c, err := p.pinv(ax)
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(x))
	for j := range x {
		out[j] = x[j] - c[j]
	}
	return out, nil
}

// Projection is the Score-SDE (Song et al., ICLR 2021) / ILVR (Choi et al.
// 2021) style solver: an unconditional ancestral DDPM step, then the
// measured part of x_{i−1} is replaced by that of the measurement noised to
// level i−1 (see MCG); no gradient. It needs a linear operator and ignores
// the noise model (y is taken as exact). Options: o.Projection.
func Projection(den diffusion.Denoiser, A op.Operator, noise op.Noise, y *tensor.Dense, sched *diffusion.Schedule, o Options, rngs []*rand.Rand, progress Progress) (*tensor.Dense, error) {
	p, err := newProblem("projection", den, A, noise, y, sched, rngs, progress)
	if err != nil {
		return nil, err
	}
	if err := o.Projection.Validate(); err != nil {
		return nil, err
	}
	if sched, err = respaced("projection", sched, o.Projection.Steps); err != nil {
		return nil, err
	}
	K := sched.Len()
	p.steps = K
	x := make([]float64, p.n*p.d)
	p.randn(x)
	for i := K - 1; i >= 0; i-- {
		eps, err := p.eps(sched, x, i)
		if err != nil {
			return nil, err
		}
		x0 := x0FromEps(sched, i, x, eps)
		next := p.ancestral(sched, i, x, x0, o.Projection.ClipX0)
		if x, err = p.project(sched, i, next); err != nil {
			return nil, err
		}
		p.tick()
	}
	return p.finish(x)
}
