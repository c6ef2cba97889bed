package solve

import (
	"math"

	"gorgonia.org/tensor"
)

// PiGDM is pseudo-inverse guided diffusion (Song, Vahdat, Mardani, Kautz,
// ICLR 2023). It approximates p(x0 | x_t) by N(x̂0, r_t² I) with
// r_t² = v σ_t²/(v + σ_t²) (σ_t the VE level, v = o.DataVar, 1 in the
// paper), so that p(y | x_t) ≈ N(A x̂0, r_t² A Aᵀ + σ_y² I) and
//
//	∇_{x_t} log p(y | x_t) ≈ (∂x̂0/∂x_t)ᵀ h / r_t²,
//	h = r_t² Aᵀ (r_t² A Aᵀ + σ_y² I)⁻¹ (y − A x̂0),
//
// h in closed form per singular value for an SVD operator
// (r_t² s_j ((Uᵀy)_j − s_j (Vᵀx̂0)_j)/(r_t² s_j² + σ_y²)); for a linear
// operator without SVD, A†(y − A x̂0) when σ_y = 0 and otherwise by
// conjugate gradients on the measurement-space system (see weightedPinv),
// operator applications only. The Jacobian product is one VJP through the
// network.
//
// The default step is the paper's Algorithm 1 with its adaptive weight
// r_t² (as in the authors' code): the unconditional DDIM step (η =
// o.Eta) plus w √ᾱ_{t−1} √ᾱ_t (∂x̂0/∂x_t)ᵀ h = w √ᾱ_{t−1} (h − √(1−ᾱ_t)
// (∂ε/∂x_t)ᵀ h), w = o.Weight. Its gain on the measured components
// is at most √ᾱ_{t−1}, so it is stable on trained networks.
//
// With o.Tweedie the guidance instead enters through Tweedie's
// formula for the conditional, x̂0_y = x̂0 + w σ_t² ∇ log p(y | x_t)/√ᾱ_t and
// ε̂_y = ε̂ − w √(1−ᾱ_t) ∇ log p(y | x_t). That is the exact conditional
// score of the same approximation, so for a prior N(μ, v I) the sampler is
// exact; but (∂x̂0/∂x_t)ᵀ h is multiplied by σ_t²/r_t² ≈ 1/ᾱ_t at high
// noise, and a trained ε-network's Jacobian is not exact enough for that:
// on the shipped MNIST model this form diverges. Needs Gaussian (or clean)
// noise.
func piGDM(p *problem, o PiGDMOptions) (*tensor.Dense, error) {
	sched, err := p.respace(o.Steps)
	if err != nil {
		return nil, err
	}
	const method = "pigdm"
	var sp *spectral
	if p.svd != nil {
		if sp, err = p.spectral(); err != nil {
			return nil, err
		}
	}
	K := sched.Len()
	x := make([]float64, p.n*p.d)
	p.randn(x)
	for i := K - 1; i >= 0; i-- {
		eps, pull, err := p.epsPullback(sched, x, i)
		if err != nil {
			return nil, err
		}
		x0 := x0FromEps(sched, i, x, eps)
		a, s := sched.SqrtAlphaBar(i), sched.SqrtOneMinusAlphaBar(i)
		sig2 := (1 - sched.AlphaBar(i)) / sched.AlphaBar(i)
		r2 := o.DataVar * sig2 / (o.DataVar + sig2)
		var h []float64
		if sp != nil {
			vx0, err := p.vt(x0)
			if err != nil {
				return nil, err
			}
			M := len(sp.s)
			c := make([]float64, p.n*p.d)
			for k := 0; k < p.n; k++ {
				for j, sv := range sp.s {
					if sv == 0 {
						continue
					}
					c[k*p.d+j] = r2 * sv * (sp.uty[k*M+j] - sv*vx0[k*p.d+j]) / (r2*sv*sv + p.sigmaY*p.sigmaY)
				}
			}
			if h, err = p.v(c); err != nil {
				return nil, err
			}
		} else {
			ax, err := p.forward(x0)
			if err != nil {
				return nil, err
			}
			for j := range ax {
				ax[j] = p.yv[j] - ax[j]
			}
			if p.sigmaY == 0 {
				h, err = p.pinv(ax)
			} else {
				h, err = p.weightedPinv(ax, r2)
			}
			if err != nil {
				return nil, err
			}
		}
		vjp, err := pull(h)
		if err != nil {
			return nil, err
		}
		if o.Tweedie {
			// g = ∇ log p(y | x_t) = (h − s·vjp)/(a r²).
			for j := range x0 {
				g := (h[j] - s*vjp[j]) / (a * r2)
				x0[j] += o.Weight * s * s / a * g
				eps[j] -= o.Weight * s * g
			}
			x = p.ddim(sched, i, x0, eps, o.Eta)
		} else {
			x = p.ddim(sched, i, x0, eps, o.Eta)
			w := o.Weight * math.Sqrt(sched.AlphaBarPrev(i))
			for j := range x {
				x[j] += w * (h[j] - s*vjp[j])
			}
		}
		p.tick(sched, i, x, x0)
	}
	return p.finish(x)
}

// pigdmCGIters caps the conjugate-gradient iterations of weightedPinv; the
// system is well conditioned (eigenvalues in [σ_y², r²‖A‖² + σ_y²]) and
// stops far earlier on the operators here.
const pigdmCGIters = 200

// weightedPinv returns h = r² Aᵀ u with (r² A Aᵀ + σ_y² I) u = res, image
// by image, by conjugate gradients (relative residual 1e-10 or
// pigdmCGIters iterations): ΠGDM's guidance direction for a linear
// operator without an SVD (blur by circular convolution, for one).
func (p *problem) weightedPinv(res []float64, r2 float64) ([]float64, error) {
	m := p.m
	u := make([]float64, p.n*m)
	err := p.cgEach(res, pigdmCGIters, 1e-20, func(dir []float64) ([]float64, error) {
		atd, err := p.adjoint(dir)
		if err != nil {
			return nil, err
		}
		aatd, err := p.forward(atd)
		if err != nil {
			return nil, err
		}
		for j := range aatd {
			aatd[j] *= r2
		}
		return aatd, nil
	}, func(k int, alpha float64, dir []float64, _ float64) bool {
		for j, v := range dir {
			u[k*m+j] += alpha * v
		}
		return false
	})
	if err != nil {
		return nil, err
	}
	h, err := p.adjoint(u)
	if err != nil {
		return nil, err
	}
	for j := range h {
		h[j] *= r2
	}
	return h, nil
}

// cgEach runs conjugate gradients on (σ_y² I + B) u = rhs for every image
// of the batch separately (scalars per image, one batched apply per
// iteration): apply returns B·dir for the batch's directions (those of
// finished images are zero); after each image's step, step gets the image,
// the step length α, its direction before the update and the new squared
// residual, and returns true to stop that image. An image also stops when
// its squared residual falls to tol times the initial one, or when dirᵀM dir
// is not positive (M not positive definite along dir), and all stop after
// iters iterations. The caller accumulates what it needs (u += α dir, or an
// image-space image of it) in step.
func (p *problem) cgEach(rhs []float64, iters int, tol float64, apply func(dir []float64) ([]float64, error), step func(k int, alpha float64, dir []float64, rs float64) bool) error {
	return cgBatch(p.n, p.m, p.sigmaY*p.sigmaY, rhs, iters, tol, apply, step)
}

// cgBatch runs conjugate gradients on (shift·I + B) u = rhs for each of n
// blocks of dim values separately, as cgEach describes (measurement space
// for ΠGDM and moment matching, image space for DiffPIR's data step).
func cgBatch(n, m int, shift float64, rhs []float64, iters int, tol float64, apply func(dir []float64) ([]float64, error), step func(k int, alpha float64, dir []float64, rs float64) bool) error {
	sy2 := shift
	res := append([]float64(nil), rhs...)
	dir := append([]float64(nil), rhs...)
	rs, rs0 := make([]float64, n), make([]float64, n)
	active := make([]bool, n)
	for k := 0; k < n; k++ {
		rs[k] = dot(res[k*m:(k+1)*m], res[k*m:(k+1)*m])
		rs0[k] = rs[k]
		active[k] = rs[k] > 0
	}
	mp := make([]float64, m)
	for it := 0; it < iters; it++ {
		any := false
		for k := 0; k < n; k++ {
			if active[k] {
				any = true
				continue
			}
			clear(dir[k*m : (k+1)*m])
		}
		if !any {
			break
		}
		bd, err := apply(dir)
		if err != nil {
			return err
		}
		for k := 0; k < n; k++ {
			if !active[k] {
				continue
			}
			lo, hi := k*m, (k+1)*m
			for j := lo; j < hi; j++ {
				mp[j-lo] = sy2*dir[j] + bd[j]
			}
			pmp := dot(dir[lo:hi], mp)
			if !(pmp > 0) {
				active[k] = false
				continue
			}
			alpha := rs[k] / pmp
			for j := lo; j < hi; j++ {
				res[j] -= alpha * mp[j-lo]
			}
			rsNew := dot(res[lo:hi], res[lo:hi])
			if step(k, alpha, dir[lo:hi], rsNew) || rsNew <= tol*rs0[k] {
				active[k] = false
				continue
			}
			beta := rsNew / rs[k]
			rs[k] = rsNew
			for j := lo; j < hi; j++ {
				dir[j] = res[j] + beta*dir[j]
			}
		}
	}
	return nil
}

func dot(a, b []float64) float64 {
	s := 0.0
	for j := range a {
		s += a[j] * b[j]
	}
	return s
}

// cgDiverged stops moment matching's CG for an image once its residual
// has grown this many times (squared norm) over the smallest one reached.
const cgDiverged = 100

// MomentMatching approximates p(x0 | x_t) by a Gaussian with mean x̂0 and
// the covariance Tweedie's second-order formula gives,
//
//	Cov[x0 | x_t] = (1−ᾱ_t)/√ᾱ_t · ∂x̂0/∂x_t,
//
// so that p(y | x_t) ≈ N(A x̂0, A Cov Aᵀ + σ_y² I), and steps with the
// conditional mean x̂0_y = x̂0 + Cov Aᵀ u, (σ_y² I + A Cov Aᵀ) u = y − A x̂0
// (Boys et al. 2023, "Tweedie moment projected diffusions"; Rozet et al.
// 2024, MMPS), then a DDIM step with η = o.Eta and
// ε̂_y = (x_t − √ᾱ x̂0_y)/√(1−ᾱ). The system is solved per image by
// o.CGIters conjugate-gradient iterations (stopping early
// per image once the residual falls by 1e-12 or grows cgDiverged-fold over
// its smallest value; each image keeps its smallest-residual iterate, so a
// step never corrects x̂0 away from y: with a trained network Cov is
// non-symmetric and, where (1−ᾱ_t)/ᾱ_t amplifies the Jacobian's error at
// high noise, indefinite, and plain CG diverged on the shipped MNIST
// model), each applying Cov by one VJP
// through the denoiser: Cov v = (1−ᾱ)/ᾱ · (v − √(1−ᾱ) VJP_ε(v)). Using the
// VJP for the Jacobian-vector product assumes ∂ε/∂x_t symmetric, which holds
// for an exact score (a gradient field) and approximately for a trained
// network, as in Rozet et al.; no finite differences are used. For a
// Gaussian prior the covariance is exact, and so is the mean of the result
// up to the CG tolerance. Needs a linear operator and Gaussian (or clean)
// noise.
func momentMatching(p *problem, o MomentMatchingOptions) (*tensor.Dense, error) {
	sched, err := p.respace(o.Steps)
	if err != nil {
		return nil, err
	}
	const method = "moment-matching"
	K := sched.Len()
	x := make([]float64, p.n*p.d)
	p.randn(x)
	n, d, m := p.n, p.d, p.m
	for i := K - 1; i >= 0; i-- {
		eps, pull, err := p.epsPullback(sched, x, i)
		if err != nil {
			return nil, err
		}
		x0 := x0FromEps(sched, i, x, eps)
		ab := sched.AlphaBar(i)
		a, s := math.Sqrt(ab), math.Sqrt(1-ab)
		ax, err := p.forward(x0)
		if err != nil {
			return nil, err
		}
		res := make([]float64, n*m)
		for j := range res {
			res[j] = p.yv[j] - ax[j]
		}
		corr := make([]float64, n*d) // Cov Aᵀ u
		best := make([]float64, n*d) // corr at the smallest residual so far
		bestRS := make([]float64, n)
		for k := 0; k < n; k++ {
			bestRS[k] = dot(res[k*m:(k+1)*m], res[k*m:(k+1)*m])
		}
		var cq []float64 // Cov Aᵀ dir of the current iteration
		err = p.cgEach(res, o.CGIters, 1e-12, func(dir []float64) ([]float64, error) {
			q, err := p.adjoint(dir)
			if err != nil {
				return nil, err
			}
			vj, err := pull(q)
			if err != nil {
				return nil, err
			}
			cq = make([]float64, n*d)
			for j := range cq {
				cq[j] = (1 - ab) / ab * (q[j] - s*vj[j])
			}
			return p.forward(cq)
		}, func(k int, alpha float64, _ []float64, rs float64) bool {
			for j := k * d; j < (k+1)*d; j++ {
				corr[j] += alpha * cq[j]
			}
			if rs < bestRS[k] {
				bestRS[k] = rs
				copy(best[k*d:(k+1)*d], corr[k*d:(k+1)*d])
			}
			return rs > cgDiverged*bestRS[k]
		})
		if err != nil {
			return nil, err
		}
		for j := range x0 {
			x0[j] += best[j]
			eps[j] -= a / s * best[j]
		}
		x = p.ddim(sched, i, x0, eps, o.Eta)
		p.tick(sched, i, x, x0)
	}
	return p.finish(x)
}
