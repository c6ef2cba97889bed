package solve

import (
	"math"

	"gorgonia.org/tensor"
)

// DDRM is denoising diffusion restoration (Kawar et al., NeurIPS 2022), the
// SVD-space update of the official efficient_generalized_steps. In VE
// coordinates x̄ = x/√ᾱ with σ_i = √((1−ᾱ_i)/ᾱ_i), spectral coordinates
// (Vᵀ·)_j, ȳ_j = (Uᵀy)_j/s_j and next level σ' = σ_{i−1} (0 at the end):
//
//	unmeasured (s_j = 0 or j ≥ M):  x̂0_j + √(1−η²) σ' ε̂_j + η σ' z
//	s_j σ' ≤ σ_y (less noisy than y): x̂0_j + √(1−η²) σ' (ȳ_j − x̂0_j) s_j/σ_y + η σ' z
//	s_j σ' > σ_y (noisier than y):   η_B ȳ_j + (1−η_B) x̂0_j + √(σ'² − η_B² σ_y²/s_j²) z
//
// then x_{i−1} = √ᾱ_{i−1} V(·). x_T is drawn from DDRM's p(x_T | y) (ȳ_j plus
// noise where s_j σ_T > σ_y, pure noise elsewhere). Two deliberate
// differences from the official code: zero singular values always take the
// unmeasured branch (the code sends them to the "less noisy" branch when
// σ_y > 0, dropping the ε̂ term there), and x_T is √ᾱ_T times the VE draw
// (the code divides by σ_T, which agrees as ᾱ_T → 0; o.InitOverSigma
// does that). With σ_y = 0 every measured coordinate is in the "noisier"
// branch, and the last step returns η_B ȳ + (1−η_B) x̂0 there (the code's
// strict inequalities send it to the unmeasured branch there, returning x̂0
// on measured coordinates too). o.StrictCases selects the cases as
// the code does, for both differences. It needs an SVD and Gaussian (or
// clean) noise. Options: DDRMOptions (η = 0.85, η_B = 1, 20 steps).
func ddrm(p *problem, o DDRMOptions) (*tensor.Dense, error) {
	sched, err := p.respace(o.Steps)
	if err != nil {
		return nil, err
	}
	sp, err := p.spectral()
	if err != nil {
		return nil, err
	}
	M := len(sp.s)
	sy := p.sigmaY
	K := sched.Len()
	measured := func(j int) bool { return j < M && sp.s[j] != 0 }

	// x_T from p(x_T | y).
	sigT := sched.Sigma(K - 1)
	u := make([]float64, p.n*p.d)
	p.randn(u)
	for k := 0; k < p.n; k++ {
		for j := 0; j < p.d; j++ {
			idx := k*p.d + j
			if measured(j) && sp.s[j]*sigT > sy {
				u[idx] = sp.ybar[k*M+j] + math.Sqrt(sigT*sigT-sy*sy/(sp.s[j]*sp.s[j]))*u[idx]
			} else {
				u[idx] *= sigT
			}
			if o.InitOverSigma {
				u[idx] /= sigT
			} else {
				u[idx] *= sched.SqrtAlphaBar(K - 1)
			}
		}
	}
	x, err := p.v(u)
	if err != nil {
		return nil, err
	}
	for i := K - 1; i >= 0; i-- {
		eps, err := p.eps(sched, x, i)
		if err != nil {
			return nil, err
		}
		x0 := x0FromEps(sched, i, x, eps)
		vx0, err := p.vt(x0)
		if err != nil {
			return nil, err
		}
		veps, err := p.vt(eps)
		if err != nil {
			return nil, err
		}
		abPrev := sched.AlphaBarPrev(i)
		sn := math.Sqrt((1 - abPrev) / abPrev)
		z := make([]float64, len(vx0))
		if i > 0 {
			p.randn(z)
		}
		for k := 0; k < p.n; k++ {
			for j := 0; j < p.d; j++ {
				idx := k*p.d + j
				c := vx0[idx]
				if o.StrictCases {
					u[idx] = strictCase(o, sp, k, j, M, c, sn, sy, veps[idx], z[idx]) * math.Sqrt(abPrev)
					continue
				}
				switch {
				case !measured(j):
					u[idx] = c + math.Sqrt(1-o.Eta*o.Eta)*sn*veps[idx] + o.Eta*sn*z[idx]
				case sp.s[j]*sn > sy || sy == 0:
					yb := sp.ybar[k*M+j]
					sd := math.Sqrt(math.Max(sn*sn-o.EtaB*o.EtaB*sy*sy/(sp.s[j]*sp.s[j]), 0))
					u[idx] = o.EtaB*yb + (1-o.EtaB)*c + sd*z[idx]
				default:
					yb := sp.ybar[k*M+j]
					u[idx] = c + math.Sqrt(1-o.Eta*o.Eta)*sn*(yb-c)*sp.s[j]/sy + o.Eta*sn*z[idx]
				}
				u[idx] *= math.Sqrt(abPrev)
			}
		}
		if x, err = p.v(u); err != nil {
			return nil, err
		}
		p.tick(sched, i, x, x0)
	}
	return p.finish(x)
}

// strictCase is DDRM's update of spectral coordinate j of image k with the
// official code's case selection (o.StrictCases): noisier than y where
// s_j σ' > σ_y, less noisy where s_j σ' < σ_y (zero singular values
// included when σ_y > 0, with (Uᵀy)_j in place of s_j ȳ_j), the unmeasured
// case otherwise (j ≥ M, and ties: s_j = 0 or σ' = 0 at σ_y = 0).
func strictCase(opt DDRMOptions, sp *spectral, k, j, M int, c, sn, sy, veps, z float64) float64 {
	s := 0.0
	if j < M {
		s = sp.s[j]
	}
	switch {
	case j < M && s*sn > sy:
		sd := math.Sqrt(math.Max(sn*sn-opt.EtaB*opt.EtaB*sy*sy/(s*s), 0))
		return opt.EtaB*sp.ybar[k*M+j] + (1-opt.EtaB)*c + sd*z
	case j < M && s*sn < sy:
		return c + math.Sqrt(1-opt.Eta*opt.Eta)*sn*(sp.uty[k*M+j]-s*c)/sy + opt.Eta*sn*z
	}
	return c + math.Sqrt(1-opt.Eta*opt.Eta)*sn*veps + opt.Eta*sn*z
}
