package op

import (
	"fmt"
	"math"
	"math/cmplx"
)

// Orientation says how a blur kernel k is applied to an image: as a true
// convolution or as a cross-correlation (k rotated by 180°). The two agree
// only for kernels symmetric under that rotation (Gaussian, box); for a
// motion or a measured kernel they are different operators, not a border
// effect.
type Orientation string

// The orientations of kernel-based operators (the "orientation" parameter).
const (
	// Correlate is y[i,j] = Σ k[a,b]·x[i+a−ca, j+b−cb]: PyTorch's conv2d, and so
	// DPS's Blurkernel (Gaussian and motion blur) and DDRM's/DDNM's 1-D
	// blur matrices.
	Correlate Orientation = "correlate"
	// Convolve is y[i,j] = Σ k[a,b]·x[i−a+ca, j−b+cb]: a true convolution, as
	// DiffPIR degrades its images (scipy.ndimage.convolve with mode='wrap',
	// and psf2otf in its FFT data step).
	Convolve Orientation = "convolve"
)

// ParseOrientation checks an orientation name.
func ParseOrientation(s string) (Orientation, error) {
	switch o := Orientation(s); o {
	case Correlate, Convolve:
		return o, nil
	}
	return "", fmt.Errorf("orientation %q, want %q (PyTorch conv2d, DPS, DDRM, DDNM) or %q (a true convolution, DiffPIR)", s, Correlate, Convolve)
}

// Rot180 returns the kh×kw row-major kernel k rotated by 180°: correlating
// with k is convolving with Rot180(k) (for odd kh and kw).
func Rot180(k []float64, kh, kw int) []float64 {
	r := make([]float64, len(k))
	for a := 0; a < kh; a++ {
		for b := 0; b < kw; b++ {
			r[(kh-1-a)*kw+kw-1-b] = k[a*kw+b]
		}
	}
	return r
}

// CircConv is 2-D circular (periodic) filtering of every channel with one
// kernel, as a true convolution, y[i,j] = Σ_{a,b} k[a,b]·x[(i−a+ca) mod H,
// (j−b+cb) mod W], or as a cross-correlation, y[i,j] = Σ_{a,b}
// k[a,b]·x[(i+a−ca) mod H, (j+b−cb) mod W] (see Orientation), with the
// kernel's centre (ca, cb) = (kh/2, kw/2). The periodic boundary makes the
// operator diagonal in the 2-D DFT, so Adjoint and Pinv are exact Fourier
// multipliers: Pinv divides by the transfer function K̂ where
// |K̂| > max(tol, 1e-6)·max|K̂| and zeroes the other frequencies. It is the
// operator of non-separable blurs (motion, Levin and DiffPIR kernels).
// DiffPIR's degradation is this operator with Convolve; DPS correlates with
// reflect padding instead (ReflectConv, the blurs' boundary: reflect),
// which differs from this only within a kernel radius of the border.
type CircConv struct {
	linOp
	h, w   int
	kh, kw int
	orient Orientation
	kernel []float64
	otf    []complex128
}

// Orientation reports whether the kernel is convolved or correlated.
func (o *CircConv) Orientation() Orientation { return o.orient }

// Kernel returns a copy of the kh×kw kernel (row-major) and its size.
func (o *CircConv) Kernel() (k []float64, kh, kw int) {
	return append([]float64(nil), o.kernel...), o.kh, o.kw
}

// OTF returns a copy of the H×W transfer function K̂ (unnormalised DFT of
// the centred, wrapped kernel): y's DFT is K̂ times x's DFT, per channel.
func (o *CircConv) OTF() []complex128 { return append([]complex128(nil), o.otf...) }

// NewCircConv builds circular convolution (Convolve) with a kh×kw row-major
// kernel on images of the given shape. tol is the relative frequency
// cut-off of Pinv, in [0, 1).
func NewCircConv(name string, shape [3]int, kernel []float64, kh, kw int, tol float64) (*CircConv, error) {
	return NewCircFilter(name, shape, kernel, kh, kw, Convolve, tol)
}

// NewCircFilter is NewCircConv with the kernel's orientation: Convolve or
// Correlate (PyTorch's conv2d, DPS).
func NewCircFilter(name string, shape [3]int, kernel []float64, kh, kw int, orient Orientation, tol float64) (*CircConv, error) {
	if _, err := ParseOrientation(string(orient)); err != nil {
		return nil, fmt.Errorf("op.NewCircFilter(%s): %w", name, err)
	}
	if err := checkImageShape("op.NewCircFilter("+name+")", shape); err != nil {
		return nil, err
	}
	if kh < 1 || kw < 1 || len(kernel) != kh*kw {
		return nil, fmt.Errorf("op.NewCircFilter(%s): kernel of %d values for size %d×%d", name, len(kernel), kh, kw)
	}
	if tol < 0 || tol >= 1 || math.IsNaN(tol) {
		return nil, fmt.Errorf("op.NewCircFilter(%s): pinv tolerance %v, want in [0, 1)", name, tol)
	}
	c, h, w := shape[0], shape[1], shape[2]
	otf := filterOTF(kernel, kh, kw, h, w, orient)
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
	fwd, adj := mul(otf), mul(adjm)
	if taps := circTaps(filterPSF(kernel, kh, kw, h, w, orient), h, w); directCheaper(len(taps), h, w) {
		fwd, adj = directFilter(taps, c, h, w, 1), directFilter(taps, c, h, w, -1)
	}
	return &CircConv{
		linOp:  linOp{name: name, in: shape[:], out: shape[:], fwd: fwd, adj: adj, pinv: mul(inv)},
		h:      h,
		w:      w,
		kh:     kh,
		kw:     kw,
		orient: orient,
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

// circTap is one nonzero offset of a circular point spread: y[i,j] gets
// v·x[i − di, j − dj] (indices mod H, W).
type circTap struct {
	di, dj int
	v      float64
}

// circTaps lists the nonzero entries of the h×w point spread psf.
func circTaps(psf []float64, h, w int) []circTap {
	var taps []circTap
	for i := 0; i < h; i++ {
		for j := 0; j < w; j++ {
			if v := psf[i*w+j]; v != 0 {
				taps = append(taps, circTap{i, j, v})
			}
		}
	}
	return taps
}

// directCheaper reports whether filtering an h×w image with taps nonzero
// offsets costs less directly (taps multiply-adds a pixel) than through
// the two FFTs of the Fourier path. Measured (BenchmarkCircConv, gonum's
// FFT, AMD EPYC with 2 cores, 2026-12-07): the two cost the same at about
// 170 taps (13×13) at 28×28 and 200 (14×14) at 64×64, 17 taps per log2 of
// the pixel count; the bound takes 12, a margin for other machines; at
// 7×7 the direct path is 4.0–4.2× (28 px) and 3.6–5.0× (64 px) faster
// (two runs; BENCHMARKS.md).
func directCheaper(taps, h, w int) bool {
	return float64(taps) <= directTapsPerLog2*math.Log2(float64(h*w))
}

// directTapsPerLog2 scales directCheaper's bound (taps per log2 of the
// pixel count); a variable so that tests can force either path.
var directTapsPerLog2 = 12.0

// directFilter is the spatial form of circular filtering with taps: sign
// +1 is y[i,j] = Σ v·x[i − di, j − dj] (the operator), −1 is y[i,j] = Σ
// v·x[i + di, j + dj] (its adjoint); per channel, indices mod H, W. It
// adds into out, which apply hands over zeroed.
func directFilter(taps []circTap, c, h, w, sign int) imageMap {
	return func(in, out []float64) {
		for ch := 0; ch < c; ch++ {
			x := in[ch*h*w : (ch+1)*h*w]
			y := out[ch*h*w : (ch+1)*h*w]
			for _, t := range taps {
				di, dj := (h-sign*t.di%h)%h, (w-sign*t.dj%w)%w // y[i,j] += v·x[i+di, j+dj]
				for i := 0; i < h; i++ {
					si := i + di
					if si >= h {
						si -= h
					}
					xr := x[si*w : (si+1)*w]
					yr := y[i*w : (i+1)*w]
					// columns j with j + dj < w, then the wrapped ones
					n := w - dj
					for j, xv := range xr[dj:] {
						yr[j] += t.v * xv
					}
					for j, xv := range xr[:dj] {
						yr[n+j] += t.v * xv
					}
				}
			}
		}
	}
}
