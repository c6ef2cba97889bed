package solve

import (
	"fmt"
	"math"

	"gorgonia.org/tensor"
)

// DDNM is the noise-free range–null-space solver (Wang et al., ICLR 2023):
// at each index i,
//
//	x̂0 ← x̂0 − A†(A x̂0 − y),
//	x_{i−1} = √ᾱ_{i−1} x̂0 + √(1−ᾱ_{i−1}) (√(1−η²) ε̂ + η z),
//
// (the official code's DDIM-style step and η convention). The last step
// returns the corrected x̂0, so A x̂ = A A† y = y for y in the range of A.
// It needs a linear operator and treats y as exact whatever the noise model
// says (use ddnm+ for noisy y). Options: DDNMOptions (no time travel).
func ddnm(p *problem, o DDNMOptions) (*tensor.Dense, error) {
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
		ax, err := p.forward(x0)
		if err != nil {
			return nil, err
		}
		for j := range ax {
			ax[j] -= p.yv[j]
		}
		c, err := p.pinv(ax)
		if err != nil {
			return nil, err
		}
		for j := range x0 {
			x0[j] -= c[j]
		}
		x = p.mix(sched, i, x0, eps, o.Eta)
		p.tick(sched, i, x, x0)
	}
	return p.finish(x)
}

// spectral holds an SVD operator's singular values and ȳ = Σ⁻¹Uᵀy.
type spectral struct {
	s    []float64 // M singular values
	ybar []float64 // N×M: (Uᵀy)_j/s_j, 0 where s_j = 0
	uty  []float64 // N×M: Uᵀy
}

func (p *problem) spectral() (*spectral, error) {
	s32 := p.svd.Singulars()
	M := len(s32)
	if M > p.d {
		return nil, fmt.Errorf("solve: %s: operator %s has %d singular values for images of dimension %d, want at most %d", p.method, operatorName(p.A), M, p.d, p.d)
	}
	sp := &spectral{s: make([]float64, M)}
	for j, v := range s32 {
		sp.s[j] = float64(v)
	}
	ut, err := p.svd.Ut(p.y)
	if err != nil {
		return nil, fmt.Errorf("solve: %s: operator %s Uᵀy: %w", p.method, operatorName(p.A), err)
	}
	sp.uty = f64(ut)
	if len(sp.uty) != p.n*M {
		return nil, fmt.Errorf("solve: %s: operator %s: Uᵀy has %d values, want N×M = %d×%d", p.method, operatorName(p.A), len(sp.uty), p.n, M)
	}
	sp.ybar = make([]float64, len(sp.uty))
	for k := 0; k < p.n; k++ {
		for j, sv := range sp.s {
			if sv != 0 {
				sp.ybar[k*M+j] = sp.uty[k*M+j] / sv
			}
		}
	}
	return sp, nil
}

// vt returns Vᵀx (N×D) and v returns V z (an image batch).
func (p *problem) vt(x []float64) ([]float64, error) {
	r, err := p.svd.Vt(p.image(x))
	if err != nil {
		return nil, fmt.Errorf("solve: %s: operator %s Vᵀ: %w", p.method, operatorName(p.A), err)
	}
	return f64(r), nil
}

func (p *problem) v(z []float64) ([]float64, error) {
	r, err := p.svd.V(f32(z, p.n, p.d))
	if err != nil {
		return nil, fmt.Errorf("solve: %s: operator %s V: %w", p.method, operatorName(p.A), err)
	}
	return f64(r), nil
}

// DDNMPlus is DDNM+ (Wang et al., ICLR 2023, Sec. 3.3) for y with Gaussian
// noise σ_y, per singular value as the official SVD-based code
// (svd_operators' Lambda and Lambda_noise). Per spectral coordinate j with
// s_j > 0 the measurement ȳ_j = (Uᵀy)_j/s_j carries noise n_j = σ_y/s_j;
// with a = √ᾱ_{i−1}, σ = √(1−ᾱ_{i−1}) and the DDNM/DDRM η,
//
//	σ ≥ a n_j: λ_j = 1,                  noise γ (η z_j + √(1−η²) (Vᵀε̂)_j), γ = √(σ² − a² n_j²)
//	σ < a n_j: λ_j = σ√(1−η²)/(a n_j),   noise σ η z_j
//	(Vᵀx̂0)_j ← (Vᵀx̂0)_j − λ_j ((Vᵀx̂0)_j − ȳ_j),   (Vᵀx_{i−1})_j = a (Vᵀx̂0)_j + noise,
//
// so the noise y carries into x_{i−1} plus the added noise has the variance
// σ² of q(x_{i−1} | x0). Coordinates with s_j = 0 (and j ≥ M) keep x̂0 with
// noise σ (η z + √(1−η²) (Vᵀε̂)_j). With σ_y = 0 this is DDNM.
//
// The first row's noise is diffinv's form, not the official code's: the
// official Lambda_noise adds fresh noise γ z_j there and no ε̂ term (and
// passes ε̂ to the spectral side without Vᵀ, a slip of that code that only
// matters where it keeps an ε̂ term). o.FreshNoise selects the
// official form (at σ_y > 0; at σ_y = 0 the official code runs DDNM, and so
// does this). Both give the noise its variance γ²; diffinv's keeps the
// DDIM-style ε̂ share that DDNM's own step and the unmeasured coordinates
// have, and that the official "simplified" DDNM+ (one λ for all of
// A†(A x̂0 − y)) applies to every coordinate. That simplified variant is
// right only when all s_j are equal and is not offered.
//
// Time travel (o.TravelLength L > 0, TravelRepeat r > 1) follows
// the official get_schedule_jump: from every index 0, L, 2L, … below K−L
// the chain goes back up L steps, r−1 times, one index per move. It goes
// up by the forward process, x_j = √(ᾱ_j/ᾱ_i) x_i + √(1−ᾱ_j/ᾱ_i) z
// (RePaint), which keeps the marginals of x_j and the corrected state; the
// official code instead re-noises the last step's uncorrected x̂0 (its
// x0_preds[-1], recorded before the range–null-space correction) to level
// j at every move, x_j = √ᾱ_j x̂0 + √(1−ᾱ_j) z, so only the last of the L
// moves counts: o.TravelX0 does that. It needs an SVD and
// Gaussian (or clean) noise. Options: o.
func ddnmPlus(p *problem, o DDNMOptions) (*tensor.Dense, error) {
	sched, err := p.respace(o.Steps)
	if err != nil {
		return nil, err
	}
	const method = "ddnm+"
	sp, err := p.spectral()
	if err != nil {
		return nil, err
	}
	M := len(sp.s)
	K := sched.Len()
	times := jumpSchedule(K, o.TravelLength, o.TravelRepeat)
	p.steps = 0 // the descending moves, revisits included
	for j := 1; j < len(times); j++ {
		if times[j] < times[j-1] {
			p.steps++
		}
	}
	x := make([]float64, p.n*p.d)
	p.randn(x)
	eta := o.Eta
	fresh := o.FreshNoise && p.sigmaY > 0
	var lastX0 []float64 // the last step's uncorrected x̂0 (travel_x0)
	for q := 1; q < len(times); q++ {
		i, next := times[q-1], times[q]
		if next > i { // time travel: re-noise from index i to index next
			z := make([]float64, len(x))
			p.randn(z)
			if o.TravelX0 {
				a := sched.AlphaBar(next)
				for j := range x {
					x[j] = math.Sqrt(a)*lastX0[j] + math.Sqrt(1-a)*z[j]
				}
				continue
			}
			r := sched.AlphaBar(next) / sched.AlphaBar(i)
			for j := range x {
				x[j] = math.Sqrt(r)*x[j] + math.Sqrt(1-r)*z[j]
			}
			continue
		}
		eps, err := p.eps(sched, x, i)
		if err != nil {
			return nil, err
		}
		x0 := x0FromEps(sched, i, x, eps)
		lastX0 = x0
		vx0, err := p.vt(x0)
		if err != nil {
			return nil, err
		}
		veps, err := p.vt(eps)
		if err != nil {
			return nil, err
		}
		abPrev := sched.AlphaBarPrev(i)
		a, sig := math.Sqrt(abPrev), math.Sqrt(1-abPrev)
		var z []float64
		if (eta > 0 || fresh) && i > 0 {
			z = make([]float64, len(vx0))
			p.randn(z)
		}
		u := make([]float64, len(vx0))
		for k := 0; k < p.n; k++ {
			for j := 0; j < p.d; j++ {
				idx := k*p.d + j
				c := vx0[idx]
				d1, d2 := sig*eta, sig*math.Sqrt(1-eta*eta) // fresh noise, ε̂
				if j < M && sp.s[j] != 0 {
					nj := p.sigmaY / sp.s[j]
					lam := 1.0
					switch {
					case sig < a*nj:
						lam = sig * math.Sqrt(1-eta*eta) / (a * nj)
						d2 = 0
					case fresh:
						d1, d2 = math.Sqrt(sig*sig-a*a*nj*nj), 0
					default:
						g := math.Sqrt(sig*sig - a*a*nj*nj)
						d1, d2 = g*eta, g*math.Sqrt(1-eta*eta)
					}
					c -= lam * (c - sp.ybar[k*M+j])
				}
				u[idx] = a*c + d2*veps[idx]
				if z != nil {
					u[idx] += d1 * z[idx]
				}
			}
		}
		if x, err = p.v(u); err != nil {
			return nil, err
		}
		p.tick(sched, i, x, x0)
	}
	return p.finish(x)
}

// jumpSchedule returns the indices visited by DDNM's / RePaint's time
// travel over K steps: K−1 down to −1, going back up L steps r−1 times from
// every index j = 0, L, 2L, … < K−L. L = 0 or r = 1 gives K−1, …, 0, −1.
func jumpSchedule(K, L, r int) []int {
	jumps := map[int]int{}
	if L > 0 {
		for j := 0; j < K-L; j += L {
			jumps[j] = r - 1
		}
	}
	var ts []int
	t := K
	for t >= 1 {
		t--
		ts = append(ts, t)
		if jumps[t] > 0 {
			jumps[t]--
			for l := 0; l < L; l++ {
				t++
				ts = append(ts, t)
			}
		}
	}
	return append(ts, -1)
}
