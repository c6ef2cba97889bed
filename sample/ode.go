package sample

import (
	"fmt"
	"math"
	"sort"

	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/internal/tensors"
	"gorgonia.org/tensor"
)

// ODE step methods.
const (
	// Euler is one ε̂ evaluation per step (DDIM with η = 0 in disguise).
	Euler = "euler"
	// Heun is the second-order step of EDM / k-diffusion: two evaluations,
	// both at schedule points.
	Heun = "heun"
	// RK4 is the classical fourth-order Runge–Kutta step in σ. Its two
	// half-step evaluations need a timestep between schedule points: the
	// original timestep whose σ is nearest to the midpoint is used, so run
	// it on a respaced schedule (stride ≥ 2) where that rounding is small.
	RK4 = "rk4"
)

// ODEOptions configures ProbabilityFlow.
type ODEOptions struct {
	// Method is Euler, Heun or RK4.
	Method string
	// Denoise ends with an Euler step from σ_0 to σ = 0, Tweedie's
	// x̂0 = x̃ − σ_0 ε̂; without it the result is x at index 0.
	Denoise bool
}

// DefaultODEOptions returns Heun with the final denoising step.
func DefaultODEOptions() ODEOptions { return ODEOptions{Method: Heun, Denoise: true} }

// Validate returns an error naming a bad option.
func (o ODEOptions) Validate() error {
	switch o.Method {
	case Euler, Heun, RK4:
		return nil
	}
	return fmt.Errorf("sample: ode method %q, want one of [%s %s %s]", o.Method, Euler, Heun, RK4)
}

// ProbabilityFlow integrates the probability-flow ODE of the schedule's VP
// SDE from index K−1 to 0. In the scaled variable x̃ = x/√ᾱ and the VE
// noise level σ = √(1−ᾱ)/√ᾱ the ODE is exactly
//
//	dx̃/dσ = ε̂(√ᾱ(σ)·x̃, t(σ)),
//
// (Song et al. 2021; Karras et al. 2022), integrated over the schedule's σ
// grid with o.Method. Deterministic: no rng.
func ProbabilityFlow(den diffusion.Denoiser, xT *tensor.Dense, sched *diffusion.Schedule, o ODEOptions, cb diffusion.Callback) (*tensor.Dense, error) {
	if _, _, err := checkInputs("ode", den, xT, sched, nil, false); err != nil {
		return nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	K := sched.Len()
	grid := make([]int, K)
	for k := range grid {
		grid[k] = K - 1 - k
	}
	return flow("ode", den, xT, sched, grid, o, o.Denoise, cb)
}

// node is a point of the σ grid: the network timestep and its ᾱ and σ.
type node struct {
	t         int
	ab, sigma float64
}

func nodeAt(s *diffusion.Schedule, i int) node {
	return node{t: s.Timestep(i), ab: s.AlphaBar(i), sigma: s.Sigma(i)}
}

// nearestNode returns the original timestep whose σ is nearest to sigma.
func nearestNode(s *diffusion.Schedule, sigma float64) (node, error) {
	T := s.OriginalT()
	sig := func(t int) (float64, float64) {
		ab, _ := s.AlphaBarAtTimestep(t) // t is in range by construction
		return math.Sqrt((1 - ab) / ab), ab
	}
	// σ(t) increases with t.
	t := sort.Search(T, func(t int) bool { sg, _ := sig(t); return sg >= sigma })
	best := -1
	bestD := math.Inf(1)
	for _, c := range []int{t - 1, t} {
		if c < 0 || c >= T {
			continue
		}
		sg, _ := sig(c)
		if dd := math.Abs(sg - sigma); dd < bestD {
			best, bestD = c, dd
		}
	}
	if best < 0 {
		return node{}, fmt.Errorf("no timestep near σ = %g", sigma)
	}
	sg, ab := sig(best)
	return node{t: best, ab: ab, sigma: sg}, nil
}

func flow(name string, den diffusion.Denoiser, xin *tensor.Dense, sched *diffusion.Schedule, grid []int, o ODEOptions, denoise bool, cb diffusion.Callback) (*tensor.Dense, error) {
	n := xin.Shape()[0]
	first := nodeAt(sched, grid[0])
	xt := make([]float64, len(tensors.F32(xin)))
	for j, v := range tensors.F32(xin) {
		xt[j] = float64(v) / math.Sqrt(first.ab)
	}
	buf := tensors.Like(xin)
	// f returns ε̂(√ᾱ·y, t) for the scaled state y.
	f := func(y []float64, nd node) ([]float64, error) {
		a := math.Sqrt(nd.ab)
		b := tensors.F32(buf)
		for j := range b {
			b[j] = float32(a * y[j])
		}
		eps, err := den.Eps(buf, repeat(nd.t, n))
		if err != nil {
			return nil, fmt.Errorf("sample: %s: denoiser at timestep %d: %w", name, nd.t, err)
		}
		if err := tensors.SameShape("eps", eps, "x_t", buf); err != nil {
			return nil, fmt.Errorf("sample: %s: %w", name, err)
		}
		out := make([]float64, len(y))
		for j, e := range tensors.F32(eps) {
			out[j] = float64(e)
		}
		return out, nil
	}
	axpy := func(y []float64, h float64, k []float64) []float64 {
		out := make([]float64, len(y))
		for j := range y {
			out[j] = y[j] + h*k[j]
		}
		return out
	}
	steps := len(grid) - 1
	total := steps
	if denoise {
		total++
	}
	for k := 0; k < steps; k++ {
		cur, next := nodeAt(sched, grid[k]), nodeAt(sched, grid[k+1])
		h := next.sigma - cur.sigma
		k1, err := f(xt, cur)
		if err != nil {
			return nil, err
		}
		switch o.Method {
		case Euler:
			xt = axpy(xt, h, k1)
		case Heun:
			k2, err := f(axpy(xt, h, k1), next)
			if err != nil {
				return nil, err
			}
			for j := range xt {
				xt[j] += h / 2 * (k1[j] + k2[j])
			}
		case RK4:
			mid, err := nearestNode(sched, cur.sigma+h/2)
			if err != nil {
				return nil, fmt.Errorf("sample: %s: %w", name, err)
			}
			k2, err := f(axpy(xt, h/2, k1), mid)
			if err != nil {
				return nil, err
			}
			k3, err := f(axpy(xt, h/2, k2), mid)
			if err != nil {
				return nil, err
			}
			k4, err := f(axpy(xt, h, k3), next)
			if err != nil {
				return nil, err
			}
			for j := range xt {
				xt[j] += h / 6 * (k1[j] + 2*k2[j] + 2*k3[j] + k4[j])
			}
		}
		if cb != nil {
			report(cb, k+1, total, sched, grid[k], vpState(xt, math.Sqrt(next.ab)), nil, xin.Shape())
		}
	}
	last := nodeAt(sched, grid[len(grid)-1])
	out := tensors.Like(xin)
	o32 := tensors.F32(out)
	if denoise {
		eps, err := f(xt, last)
		if err != nil {
			return nil, err
		}
		for j := range xt {
			o32[j] = float32(xt[j] - last.sigma*eps[j])
		}
		report(cb, total, total, sched, grid[len(grid)-1], o32, nil, xin.Shape())
		return out, nil
	}
	a := math.Sqrt(last.ab)
	for j := range xt {
		o32[j] = float32(a * xt[j])
	}
	return out, nil
}
