package op

import (
	"fmt"
	"math"
	"math/cmplx"
)

// CircConv is 2-D circular (periodic) convolution of every channel with one
// kernel: y[i,j] = Σ_{a,b} k[a,b]·x[(i−a+ca) mod H, (j−b+cb) mod W], with the
// kernel's centre (ca, cb) = (kh/2, kw/2). The periodic boundary makes the
// operator diagonal in the 2-D DFT, so Adjoint and Pinv are exact Fourier
// multipliers: Pinv divides by the transfer function K̂ where
// |K̂| > max(tol, 1e-6)·max|K̂| and zeroes the other frequencies. It is the operator of
// non-separable blurs (motion, Levin and DiffPIR kernels). DPS convolves
// with reflect padding instead; the two differ near the border.
type CircConv struct {
	linOp
	h, w   int
	kh, kw int
	kernel []float64
	otf    []complex128
}

// Kernel returns a copy of the kh×kw kernel (row-major) and its size.
func (o *CircConv) Kernel() (k []float64, kh, kw int) {
	return append([]float64(nil), o.kernel...), o.kh, o.kw
}

// OTF returns a copy of the H×W transfer function K̂ (unnormalised DFT of
// the centred, wrapped kernel): y's DFT is K̂ times x's DFT, per channel.
func (o *CircConv) OTF() []complex128 { return append([]complex128(nil), o.otf...) }

// NewCircConv builds circular convolution with a kh×kw row-major kernel on
// images of the given shape. tol is the relative frequency cut-off of Pinv,
// in [0, 1).
func NewCircConv(name string, shape [3]int, kernel []float64, kh, kw int, tol float64) (*CircConv, error) {
	if err := checkImageShape("op.NewCircConv("+name+")", shape); err != nil {
		return nil, err
	}
	if kh < 1 || kw < 1 || len(kernel) != kh*kw {
		return nil, fmt.Errorf("op.NewCircConv(%s): kernel of %d values for size %d×%d", name, len(kernel), kh, kw)
	}
	if tol < 0 || tol >= 1 || math.IsNaN(tol) {
		return nil, fmt.Errorf("op.NewCircConv(%s): pinv tolerance %v, want in [0, 1)", name, tol)
	}
	c, h, w := shape[0], shape[1], shape[2]
	otf := make([]complex128, h*w)
	ca, cb := kh/2, kw/2
	for a := 0; a < kh; a++ {
		for b := 0; b < kw; b++ {
			i := ((a-ca)%h + h) % h
			j := ((b-cb)%w + w) % w
			otf[i*w+j] += complex(kernel[a*kw+b], 0)
		}
	}
	NewFFT2(h, w).Forward(otf)
	amax := 0.0
	for _, v := range otf {
		amax = math.Max(amax, cmplx.Abs(v))
	}
	inv := make([]complex128, h*w)
	adjm := make([]complex128, h*w)
	for i, v := range otf {
		adjm[i] = cmplx.Conj(v)
		if a := cmplx.Abs(v); a > math.Max(tol, minRelSingular)*amax {
			inv[i] = 1 / v
		}
	}
	mul := func(m []complex128) imageMap {
		return func(in, out []float64) {
			f := NewFFT2(h, w)
			buf := make([]complex128, h*w)
			for ch := 0; ch < c; ch++ {
				for i := range buf {
					buf[i] = complex(in[ch*h*w+i], 0)
				}
				f.Forward(buf)
				for i := range buf {
					buf[i] *= m[i]
				}
				f.Inverse(buf)
				for i := range buf {
					out[ch*h*w+i] = real(buf[i])
				}
			}
		}
	}
	return &CircConv{
		linOp:  linOp{name: name, in: shape[:], out: shape[:], fwd: mul(otf), adj: mul(adjm), pinv: mul(inv)},
		h:      h,
		w:      w,
		kh:     kh,
		kw:     kw,
		kernel: append([]float64(nil), kernel...),
		otf:    otf,
	}, nil
}

// NormalizeKernel scales k to sum 1; it fails on a kernel that sums to zero
// or less, or holds a non-finite value.
func NormalizeKernel(k []float64) ([]float64, error) {
	sum := 0.0
	for i, v := range k {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("op.NormalizeKernel: value %v at %d", v, i)
		}
		sum += v
	}
	if !(sum > 0) {
		return nil, fmt.Errorf("op.NormalizeKernel: kernel sums to %v, want > 0", sum)
	}
	r := make([]float64, len(k))
	for i, v := range k {
		r[i] = v / sum
	}
	return r, nil
}
