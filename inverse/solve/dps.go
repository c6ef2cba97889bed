package solve

import (
	"fmt"
	"math"

	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/inverse/op"
	"gorgonia.org/tensor"
)

// poissonFloor keeps DPS's Poisson weights finite where y is black.
const poissonFloor = 1e-2

// DPS is diffusion posterior sampling (Chung et al., ICLR 2023). Starting
// from x_T ~ N(0, I), at each index i it takes the ancestral DDPM step
// (the model's reverse variance, Prior.Variance) to x'_{i−1} and then
//
//	x_{i−1} = x'_{i−1} − ζ ∇_{x_i} ρ(x̂0(x_i)),  ρ = ‖y − A(x̂0)‖_W,
//
// the norm, not its square. The gradient is (g − √(1−ᾱ) VJP_ε(g))/√ᾱ with
// g = ∇_{x̂0} ρ = −J_Aᵀ W (y − A(x̂0))/ρ from the operator's VJP and the
// denoiser's EpsVJP. Gaussian (and clean) noise uses W = I; Poisson noise
// uses by default (poisson_weight shot) the shot-noise weighting
// W = diag(1/max(u_j, 0.01)), u_j = (y_j+1)/2 the measured intensity (the
// paper's Λ = diag(1/2y) up to a constant that ζ absorbs). The DPS code
// does not weight pixels: its Poisson branch differentiates
// mean_j(‖y − A(x̂0)‖/|y_j|), the Gaussian norm times mean_j 1/|y_j|;
// poisson_weight scalar does that (see DPSOptions.PoissonWeight).
//
// With clip_x0, x̂0 is clamped to [−1, 1] in both the ancestral mean and ρ,
// so g passes through the clamp (zero where x̂0 is out of range): the DPS
// code's clip_denoised, whose pred_xstart feeds both. clip_mean_only keeps
// the clamp out of ρ (see DPSOptions.ClipMeanOnly for why one may want it).
//
// ρ is per image, so image k moves by ζ/‖y_k − A(x̂0_k)‖ times the gradient
// of ½‖·‖²: the step size of an image never depends on the others. The
// official code differentiates the norm of the whole batch's residual, which
// couples images (a badly fitting image shrinks every other image's step);
// batch_norm does that. Options: DPSOptions. Works with any Operator.
func dps(p *problem, o DPSOptions) (*tensor.Dense, error) { return dpsLoop(p, o, false) }

// MCG is manifold-constrained gradient (Chung et al., NeurIPS 2022): the
// DPS step (same ζ rule and clamp, per image unless batch_norm), then the
// projection onto the noised measurement at level i−1,
//
//	x_{i−1} ← x_{i−1} − A†(A x_{i−1} − y_{i−1}),  y_{i−1} = √ᾱ_{i−1} y + √(1−ᾱ_{i−1}) A z,
//
// which for inpainting is (I − AᵀA) x + Aᵀ y_{i−1}. The official MCG code
// (HJ-harry/MCG_diffusion, inpainting) differentiates the clamped x̂0 too
// (clip_denoised) and takes the same step with ζ = 1 and the gradient
// restricted to the unmeasured pixels (which the projection makes no
// difference); it noises y to level i rather than i−1 (at the last step
// too) and with image-space noise on the mask, which is A z for
// inpainting: noise_level current does that, and with scale 1, batch_norm
// and clip_x0 it is that code's step. (The DPS repository's MCG
// projection, LinearOperator.project, returns (I − AᵀA) y_t − A x, which is
// not a projection.) It needs a linear operator; options DPSOptions. After a
// projection the residual ρ is small, so the DPS rule's step ζ/ρ gets
// large: on the 4×4 correlated Gaussian test prior with a 2×2 hole, ζ =
// 0.5 leaves the mean 0.81 from the posterior mean (posterior shift 1.5),
// ζ = 0.1 0.57, ζ = 0.02 0.11 (projection alone, ζ = 0: 0.29), without
// clip_x0. Expect to need a much smaller ζ than DPS.
func mcg(p *problem, o DPSOptions) (*tensor.Dense, error) { return dpsLoop(p, o, true) }

func dpsLoop(p *problem, o DPSOptions, project bool) (*tensor.Dense, error) {
	method, noise := p.method, p.noise
	if err := p.useVariance(); err != nil {
		return nil, err
	}
	sched, err := p.respace(o.Steps)
	if err != nil {
		return nil, err
	}
	_, poisson := noise.(*op.Poisson)
	if o.PoissonWeight != "" && !poisson {
		return nil, fmt.Errorf("solve: %s: poisson_weight = %q is set, but the noise is %q: it weights Poisson noise only", method, o.PoissonWeight, noise.Name())
	}
	var w, scalar []float64
	switch {
	case poisson && o.PoissonWeight == PoissonScalar:
		if scalar, err = p.poissonScalar(o.BatchNorm); err != nil {
			return nil, err
		}
	case poisson:
		w = make([]float64, len(p.yv))
		for j, v := range p.yv {
			w[j] = 1 / math.Max((v+1)/2, poissonFloor)
		}
	}
	current := o.NoiseLevel == NoiseLevelCurrent
	K := sched.Len()
	x := make([]float64, p.n*p.d)
	p.randn(x)
	clipLoss := o.ClipX0 && !o.ClipMeanOnly
	for i := K - 1; i >= 0; i-- {
		x0, grad, err := p.dpsGrad(sched, i, x, w, clipLoss, o.BatchNorm)
		if err != nil {
			return nil, err
		}
		if scalar != nil {
			for k := 0; k < p.n; k++ {
				for j := k * p.d; j < (k+1)*p.d; j++ {
					grad[j] *= scalar[k]
				}
			}
		}
		v, err := p.varOut(sched, x, i)
		if err != nil {
			return nil, err
		}
		next := p.ancestral(sched, i, x, x0, v, o.ClipX0)
		for j := range next {
			next[j] -= o.Scale * grad[j]
		}
		if project {
			if next, err = p.project(sched, i, next, current); err != nil {
				return nil, err
			}
		}
		x = next
		p.tick(sched, i, x, x0)
	}
	return p.finish(x)
}

// poissonScalar returns, per image, the DPS code's Poisson factor
// mean_j 1/|y_j| (over image k's measurement, or over the whole batch with
// batchNorm, as the code's batch mean): poisson_weight scalar. A zero y_j
// is an error naming it (the code divides by it).
func (p *problem) poissonScalar(batchNorm bool) ([]float64, error) {
	c := make([]float64, p.n)
	for k := 0; k < p.n; k++ {
		for j := k * p.m; j < (k+1)*p.m; j++ {
			if p.yv[j] == 0 {
				return nil, fmt.Errorf("solve: %s: poisson_weight %q divides by |y_j| as the DPS code does, but y of image %d is 0 at element %d; use poisson_weight %q", p.method, PoissonScalar, k, j-k*p.m, PoissonShot)
			}
			c[k] += 1 / math.Abs(p.yv[j])
		}
	}
	if batchNorm {
		total := 0.0
		for _, v := range c {
			total += v
		}
		for k := range c {
			c[k] = total / float64(p.n*p.m)
		}
		return c, nil
	}
	for k := range c {
		c[k] /= float64(p.m)
	}
	return c, nil
}

// dpsGrad returns x̂0(x) and ∇_x ρ(x̂0(x)) at index i, ρ = ‖y − A(x̂0)‖_W
// (W = diag(w), or I when w is nil; 0 where ρ = 0), per image or, with
// batchNorm, over the whole batch. With clip, ρ is taken at clamp(x̂0) and
// the gradient passes through the clamp (torch's: 1 on [−1, 1], 0 outside);
// x̂0 is returned unclamped either way.
func (p *problem) dpsGrad(sched *diffusion.Schedule, i int, x, w []float64, clip, batchNorm bool) (x0, grad []float64, err error) {
	eps, pull, err := p.epsPullback(sched, x, i)
	if err != nil {
		return nil, nil, err
	}
	x0 = x0FromEps(sched, i, x, eps)
	at := x0
	if clip {
		at = make([]float64, len(x0))
		for j, v := range x0 {
			at[j] = clip1(v)
		}
	}
	ax, err := p.forward(at)
	if err != nil {
		return nil, nil, err
	}
	// r = W (A(x̂0) − y) / ρ: the cotangent of ρ at A(x̂0).
	r := make([]float64, len(ax))
	rho := make([]float64, p.n)
	for k := 0; k < p.n; k++ {
		for j := k * p.m; j < (k+1)*p.m; j++ {
			e := ax[j] - p.yv[j]
			wj := 1.0
			if w != nil {
				wj = w[j]
			}
			r[j] = wj * e
			rho[k] += wj * e * e
		}
	}
	if batchNorm {
		total := 0.0
		for _, v := range rho {
			total += v
		}
		for k := range rho {
			rho[k] = total
		}
	}
	for k := 0; k < p.n; k++ {
		norm := math.Sqrt(rho[k])
		for j := k * p.m; j < (k+1)*p.m; j++ {
			if norm > 0 {
				r[j] /= norm
			} else {
				r[j] = 0
			}
		}
	}
	g, err := p.vjpA(at, r)
	if err != nil {
		return nil, nil, err
	}
	if clip {
		for j, v := range x0 {
			if v < -1 || v > 1 {
				g[j] = 0
			}
		}
	}
	vjp, err := pull(g)
	if err != nil {
		return nil, nil, err
	}
	return x0, x0Grad(sched, i, g, vjp), nil
}

// project returns x − A†(A x − y_{i−1}) with y_{i−1} = √ᾱ_{i−1} y +
// √(1−ᾱ_{i−1}) A z, z drawn per image (y itself at i = 0); with current,
// y_i = √ᾱ_i y + √(1−ᾱ_i) A z instead (MCG's noise_level current), drawn
// at i = 0 too.
func (p *problem) project(sched *diffusion.Schedule, i int, x []float64, current bool) ([]float64, error) {
	abPrev := sched.AlphaBarPrev(i)
	if current {
		abPrev = sched.AlphaBar(i)
	}
	yt := make([]float64, len(p.yv))
	for j, v := range p.yv {
		yt[j] = math.Sqrt(abPrev) * v
	}
	if i > 0 || current {
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
// 2021) style solver: an unconditional ancestral DDPM step (the model's
// reverse variance, Prior.Variance), then the
// measured part of x_{i−1} is replaced by that of the measurement noised to
// level i−1 (see MCG); no gradient. It needs a linear operator and ignores
// the noise model (y is taken as exact). Options: ProjectionOptions.
func projection(p *problem, o ProjectionOptions) (*tensor.Dense, error) {
	if err := p.useVariance(); err != nil {
		return nil, err
	}
	sched, err := p.respace(o.Steps)
	if err != nil {
		return nil, err
	}
	K := sched.Len()
	x := make([]float64, p.n*p.d)
	p.randn(x)
	for i := K - 1; i >= 0; i-- {
		eps, err := p.eps(sched, x, i)
		if err != nil {
			return nil, err
		}
		x0 := x0FromEps(sched, i, x, eps)
		v, err := p.varOut(sched, x, i)
		if err != nil {
			return nil, err
		}
		next := p.ancestral(sched, i, x, x0, v, o.ClipX0)
		if x, err = p.project(sched, i, next, false); err != nil {
			return nil, err
		}
		p.tick(sched, i, x, x0)
	}
	return p.finish(x)
}
