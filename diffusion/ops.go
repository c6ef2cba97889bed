package diffusion

import (
	"fmt"

	"github.com/diffinv/diffinv/internal/tensors"
	"gorgonia.org/tensor"
)

// In every function below t holds one schedule index per batch element
// (0..Len()−1; equal to the timestep for an unrespaced schedule), so each
// sample of a batch may sit at its own noise level. With a = √ᾱ_t and
// s = √(1−ᾱ_t):
//
//	x_t = a·x0 + s·ε,   v = a·ε − s·x0   (v-prediction, Salimans & Ho 2022)
//	x0  = (x_t − s·ε)/a = a·x_t − s·v
//	ε   = (x_t − a·x0)/s = s·x_t + a·v
//
// Inputs are N×C×H×W float32 tensors of one shape; outputs are new tensors.

// combine returns ca(t_n)·A + cb(t_n)·B sample by sample.
func (s *Schedule) combine(op string, nameA string, A *tensor.Dense, nameB string, B *tensor.Dense, t []int,
	coefs func(i int) (float64, float64)) (*tensor.Dense, error) {
	n, _, _, _, err := tensors.NCHW(nameA, A)
	if err != nil {
		return nil, fmt.Errorf("diffusion.%s: %w", op, err)
	}
	if _, _, _, _, err := tensors.NCHW(nameB, B); err != nil {
		return nil, fmt.Errorf("diffusion.%s: %w", op, err)
	}
	if err := tensors.SameShape(nameA, A, nameB, B); err != nil {
		return nil, fmt.Errorf("diffusion.%s: %w", op, err)
	}
	if err := s.checkIndices(t, n); err != nil {
		return nil, fmt.Errorf("diffusion.%s: %w", op, err)
	}
	out := tensors.Like(A)
	a, b, o := tensors.F32(A), tensors.F32(B), tensors.F32(out)
	d := len(a) / n
	for k := 0; k < n; k++ {
		ca, cb := coefs(t[k])
		for j := k * d; j < (k+1)*d; j++ {
			o[j] = float32(ca*float64(a[j]) + cb*float64(b[j]))
		}
	}
	return out, nil
}

// checkIndices returns an error unless t has n entries in 0..Len()−1.
func (s *Schedule) checkIndices(t []int, n int) error {
	if len(t) != n {
		return fmt.Errorf("%d timesteps for a batch of %d, want one per sample", len(t), n)
	}
	for k, ti := range t {
		if ti < 0 || ti >= s.Len() {
			return fmt.Errorf("timestep index t[%d] = %d out of range, want 0..%d", k, ti, s.Len()-1)
		}
	}
	return nil
}

// QSample draws from q(x_t | x0) with the given standard normal noise:
// x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·noise.
func (s *Schedule) QSample(x0 *tensor.Dense, t []int, noise *tensor.Dense) (*tensor.Dense, error) {
	return s.combine("QSample", "x0", x0, "noise", noise, t, func(i int) (float64, float64) {
		return s.SqrtAlphaBar(i), s.SqrtOneMinusAlphaBar(i)
	})
}

// X0FromEps returns x̂0 = (x_t − √(1−ᾱ_t)·ε)/√ᾱ_t (Tweedie's estimate when ε
// is the network's E[ε | x_t]).
func (s *Schedule) X0FromEps(xt *tensor.Dense, t []int, eps *tensor.Dense) (*tensor.Dense, error) {
	return s.combine("X0FromEps", "xt", xt, "eps", eps, t, func(i int) (float64, float64) {
		a := s.SqrtAlphaBar(i)
		return 1 / a, -s.SqrtOneMinusAlphaBar(i) / a
	})
}

// EpsFromX0 returns ε = (x_t − √ᾱ_t·x0)/√(1−ᾱ_t).
func (s *Schedule) EpsFromX0(xt *tensor.Dense, t []int, x0 *tensor.Dense) (*tensor.Dense, error) {
	return s.combine("EpsFromX0", "xt", xt, "x0", x0, t, func(i int) (float64, float64) {
		sd := s.SqrtOneMinusAlphaBar(i)
		return 1 / sd, -s.SqrtAlphaBar(i) / sd
	})
}

// VFromEps returns v = √ᾱ_t·ε − √(1−ᾱ_t)·x0.
func (s *Schedule) VFromEps(x0 *tensor.Dense, t []int, eps *tensor.Dense) (*tensor.Dense, error) {
	return s.combine("VFromEps", "x0", x0, "eps", eps, t, func(i int) (float64, float64) {
		return -s.SqrtOneMinusAlphaBar(i), s.SqrtAlphaBar(i)
	})
}

// X0FromV returns x0 = √ᾱ_t·x_t − √(1−ᾱ_t)·v.
func (s *Schedule) X0FromV(xt *tensor.Dense, t []int, v *tensor.Dense) (*tensor.Dense, error) {
	return s.combine("X0FromV", "xt", xt, "v", v, t, func(i int) (float64, float64) {
		return s.SqrtAlphaBar(i), -s.SqrtOneMinusAlphaBar(i)
	})
}

// EpsFromV returns ε = √(1−ᾱ_t)·x_t + √ᾱ_t·v.
func (s *Schedule) EpsFromV(xt *tensor.Dense, t []int, v *tensor.Dense) (*tensor.Dense, error) {
	return s.combine("EpsFromV", "xt", xt, "v", v, t, func(i int) (float64, float64) {
		return s.SqrtOneMinusAlphaBar(i), s.SqrtAlphaBar(i)
	})
}

// PosteriorMean returns the mean of q(x_{t−1} | x_t, x0), c0·x0 + ct·x_t
// with the coefficients of PosteriorMeanCoefs.
func (s *Schedule) PosteriorMean(x0, xt *tensor.Dense, t []int) (*tensor.Dense, error) {
	return s.combine("PosteriorMean", "x0", x0, "xt", xt, t, func(i int) (float64, float64) {
		return s.PosteriorMeanCoefs(i)
	})
}
