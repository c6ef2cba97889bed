// Package baseline holds the classical reconstructions that set the floor
// every diffusion solver must beat: the pseudo-inverse A†y, Tikhonov
// regularisation through an operator's SVD, Wiener / Tikhonov deconvolution
// in the Fourier domain for circular blurs, ADMM with a total-variation
// prior for any linear operator, and error reduction (ER) and hybrid
// input–output (HIO) for Fourier phase retrieval.
//
// Inputs and outputs follow diffinv's conventions: images are N×C×H×W
// float32 in [−1, 1], measurements are what the operators of package
// inverse/op produce, and every image of a batch is reconstructed on its own.
package baseline

import (
	"fmt"
	"math"

	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/inverse/op"
	"gorgonia.org/tensor"
)

// Pinv returns A†y, the naive reconstruction.
func Pinv(a op.Linear, y *tensor.Dense) (*tensor.Dense, error) {
	x, err := a.Pinv(y)
	if err != nil {
		return nil, fmt.Errorf("baseline.Pinv: %w", err)
	}
	return x, nil
}

// Tikhonov returns argmin_x ‖Ax − y‖² + λ‖x‖² through the SVD:
// x = V diag(s/(s² + λ)) Uᵀ y. λ ≥ 0; λ = 0 is the pseudo-inverse without
// truncation beyond the operator's own.
func Tikhonov(a op.SVD, y *tensor.Dense, lambda float64) (*tensor.Dense, error) {
	if !(lambda >= 0) {
		return nil, fmt.Errorf("baseline.Tikhonov: lambda %v, want ≥ 0", lambda)
	}
	z, err := a.Ut(y)
	if err != nil {
		return nil, fmt.Errorf("baseline.Tikhonov: %w", err)
	}
	s := a.Singulars()
	zd := tensors.F32(z)
	n := z.Shape()[0]
	m := len(s)
	for i := 0; i < n; i++ {
		for j := 0; j < m; j++ {
			sv := float64(s[j])
			if sv == 0 {
				zd[i*m+j] = 0
				continue
			}
			zd[i*m+j] = float32(float64(zd[i*m+j]) * sv / (sv*sv + lambda))
		}
	}
	d := 1
	for _, v := range a.InShape() {
		d *= v
	}
	full, err := op.AddZeros(z, d)
	if err != nil {
		return nil, fmt.Errorf("baseline.Tikhonov: %w", err)
	}
	return a.V(full)
}

// Wiener deconvolves a circular blur in the Fourier domain:
// X̂ = conj(K̂)·Ŷ / (|K̂|² + λ), per channel. λ is the noise-to-signal ratio
// (λ = 0 gives plain inverse filtering, unstable where K̂ vanishes); for
// white noise of standard deviation σ on images of per-pixel power P,
// λ ≈ σ²/P.
func Wiener(a *op.CircConv, y *tensor.Dense, lambda float64) (*tensor.Dense, error) {
	if !(lambda >= 0) {
		return nil, fmt.Errorf("baseline.Wiener: lambda %v, want ≥ 0", lambda)
	}
	in := a.InShape()
	c, h, w := in[0], in[1], in[2]
	n, _, _, _, err := tensors.NCHW("baseline.Wiener y", y)
	if err != nil {
		return nil, err
	}
	if err := tensors.SameShape("y", y, "a batch of the operator's images", tensors.New(n, c, h, w)); err != nil {
		return nil, fmt.Errorf("baseline.Wiener: %w", err)
	}
	otf := a.OTF()
	f := op.NewFFT2(h, w)
	out := tensors.Like(y)
	yd, od := tensors.F32(y), tensors.F32(out)
	buf := make([]complex128, h*w)
	for i := 0; i < n*c; i++ {
		for p := range buf {
			buf[p] = complex(float64(yd[i*h*w+p]), 0)
		}
		f.Forward(buf)
		for p, k := range otf {
			den := real(k)*real(k) + imag(k)*imag(k) + lambda
			if den == 0 {
				buf[p] = 0
				continue
			}
			buf[p] = buf[p] * complex(real(k), -imag(k)) / complex(den, 0)
		}
		f.Inverse(buf)
		for p := range buf {
			od[i*h*w+p] = float32(real(buf[p]))
		}
	}
	return out, nil
}

// Clamp returns x clipped to [−1, 1] (a fresh tensor).
func Clamp(x *tensor.Dense) *tensor.Dense {
	out := tensors.Clone(x)
	for i, v := range tensors.F32(out) {
		tensors.F32(out)[i] = float32(math.Max(-1, math.Min(1, float64(v))))
	}
	return out
}

// Names lists the classical methods, usable as solver.baseline or, in
// experiments and as solver.method, as methods of their own.
func Names() []string { return []string{"pinv", "tikhonov", "admm_tv", "hio", "er"} }

// IsMethod reports whether method is one of Names.
func IsMethod(method string) bool {
	for _, b := range Names() {
		if b == method {
			return true
		}
	}
	return false
}
