package op

import (
	"fmt"
	"math"
	"math/cmplx"
)

// BoundaryCircular is the periodic boundary of the non-separable blurs
// (blur_motion, blur_file, blur_nonuniform: CircConv), their default; the
// alternative there is BoundaryReflect (ReflectConv).
const BoundaryCircular Boundary = "circular"

// ParseFilterBoundary checks a non-separable blur's boundary name:
// BoundaryCircular or BoundaryReflect.
func ParseFilterBoundary(s string) (Boundary, error) {
	switch b := Boundary(s); b {
	case BoundaryCircular, BoundaryReflect:
		return b, nil
	}
	return "", fmt.Errorf("boundary %q, want %q (periodic, Fourier A†) or %q (DPS's ReflectionPad2d + conv2d, A† by conjugate gradients)", s, BoundaryCircular, BoundaryReflect)
}

// DefaultReflectPinvIters is the default iteration cap of ReflectConv's
// pseudo-inverse (the "pinv_iters" parameter).
const DefaultReflectPinvIters = 100

// reflectPinvTol is the relative normal-equation residual at which
// ReflectConv's conjugate gradients stop: ‖Aᵀ(y − A x_k)‖ ≤ 1e-6·‖Aᵀy‖.
const reflectPinvTol = 1e-6

// ReflectConv is 2-D filtering of every channel with one kh×kw kernel after
// reflect padding, DPS's Blurkernel: PyTorch's ReflectionPad2d by (kh/2,
// kw/2) (mirror about the edge pixel without repeating it, x[−t] = x[t],
// x[n−1+t] = x[n−1−t]) followed by a 'valid' conv2d, i.e. with the centre
// (ca, cb) = (kh/2, kw/2)
//
//	y[i,j] = Σ_{a,b} k[a,b]·x̃[i+a−ca, j+b−cb]   (Correlate, conv2d)
//	y[i,j] = Σ_{a,b} k[a,b]·x̃[i−a+ca, j−b+cb]   (Convolve)
//
// with x̃ the reflect-extended image. For odd kernels this is DPS's operator
// on the whole image, borders included; CircConv is the same map away from
// a kernel radius of the border. The padding needs kh/2 < H and kw/2 < W
// (PyTorch's own limit).
//
// Forward pads, filters the padded image (directly through the kernel's
// taps when that is cheaper, see directCheaper; else through an FFT of a
// smooth size ≥ the padded size, which no wrap-around reaches the kept
// outputs from) and crops.
// Adjoint is the exact transpose of those three maps: embed, filter with
// the conjugate transfer function, and fold the padded border back onto
// the pixels it was mirrored from. There is no closed-form pseudo-inverse
// (the reflect boundary is not diagonalised by the DFT), so Pinv runs
// conjugate gradients on the normal equations (CGLS) per channel from
// x = 0, which converges to the minimum-norm least-squares solution: it
// stops when ‖Aᵀ(y − A x_k)‖ ≤ 1e-6·‖Aᵀy‖ or after pinvIters iterations
// (DefaultReflectPinvIters), each one Forward and one Adjoint. Stopped
// early, CG acts as a spectral filter on the small singular values (as
// CircConv's pinv_tol does), and A† y is then only approximately linear in
// y.
type ReflectConv struct {
	linOp
	h, w      int
	kh, kw    int
	orient    Orientation
	kernel    []float64
	pinvIters int
}

// Orientation reports whether the kernel is convolved or correlated.
func (o *ReflectConv) Orientation() Orientation { return o.orient }

// Kernel returns a copy of the kh×kw kernel (row-major) and its size.
func (o *ReflectConv) Kernel() (k []float64, kh, kw int) {
	return append([]float64(nil), o.kernel...), o.kh, o.kw
}

// PinvIters is the iteration cap of Pinv's conjugate gradients.
func (o *ReflectConv) PinvIters() int { return o.pinvIters }

// reflectIndex maps a padded coordinate i ∈ [−r, n−1+r] (r < n) to the
// image coordinate PyTorch's reflect padding reads.
func reflectIndex(i, n int) int {
	if i < 0 {
		return -i
	}
	if i >= n {
		return 2*(n-1) - i
	}
	return i
}

// smoothLen returns the smallest 2^a·3^b·5^c ≥ n (fast sizes for the FFT).
func smoothLen(n int) int {
	for m := max(n, 1); ; m++ {
		r := m
		for _, p := range []int{2, 3, 5} {
			for r%p == 0 {
				r /= p
			}
		}
		if r == 1 {
			return m
		}
	}
}

// filterOTF is the h×w transfer function of circular filtering with the
// kh×kw kernel centred at (kh/2, kw/2), in the given orientation.
func filterOTF(kernel []float64, kh, kw, h, w int, orient Orientation) []complex128 {
	psf := filterPSF(kernel, kh, kw, h, w, orient)
	otf := make([]complex128, h*w)
	for i, v := range psf {
		otf[i] = complex(v, 0)
	}
	NewFFT2(h, w).Forward(otf)
	return otf
}

// filterPSF is the h×w circular point spread of filtering with the kh×kw
// kernel centred at (kh/2, kw/2): y[i] = Σ_d psf[d]·x[i − d] (indices mod
// h×w), kernel values that wrap onto one offset summed.
func filterPSF(kernel []float64, kh, kw, h, w int, orient Orientation) []float64 {
	psf := make([]float64, h*w)
	ca, cb := kh/2, kw/2
	for a := 0; a < kh; a++ {
		for b := 0; b < kw; b++ {
			da, db := a-ca, b-cb // convolution: x[i−da] contributes
			if orient == Correlate {
				da, db = -da, -db // correlation: x[i+da] contributes
			}
			i := (da%h + h) % h
			j := (db%w + w) % w
			psf[i*w+j] += kernel[a*kw+b]
		}
	}
	return psf
}

// NewReflectFilter builds reflect-padded filtering with a kh×kw row-major
// kernel on images of the given shape; orient is Correlate (PyTorch's
// conv2d, DPS) or Convolve; pinvIters ≥ 1 caps Pinv's conjugate gradients.
func NewReflectFilter(name string, shape [3]int, kernel []float64, kh, kw int, orient Orientation, pinvIters int) (*ReflectConv, error) {
	if _, err := ParseOrientation(string(orient)); err != nil {
		return nil, fmt.Errorf("op.NewReflectFilter(%s): %w", name, err)
	}
	if err := checkImageShape("op.NewReflectFilter("+name+")", shape); err != nil {
		return nil, err
	}
	if kh < 1 || kw < 1 || len(kernel) != kh*kw {
		return nil, fmt.Errorf("op.NewReflectFilter(%s): kernel of %d values for size %d×%d", name, len(kernel), kh, kw)
	}
	for i, v := range kernel {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("op.NewReflectFilter(%s): kernel value %v at %d", name, v, i)
		}
	}
	c, h, w := shape[0], shape[1], shape[2]
	rh, rw := kh/2, kw/2
	if rh >= h || rw >= w {
		return nil, fmt.Errorf("op.NewReflectFilter(%s): reflect padding of %d×%d px (kernel %d×%d) needs an image larger than %d×%d, got %d×%d (use boundary circular)", name, rh, rw, kh, kw, rh, rw, h, w)
	}
	if pinvIters < 1 {
		return nil, fmt.Errorf("op.NewReflectFilter(%s): pinv_iters %d, want ≥ 1", name, pinvIters)
	}
	ph, pw := h+2*rh, w+2*rw               // the padded image
	lh, lw := smoothLen(ph), smoothLen(pw) // its FFT grid
	otf := filterOTF(kernel, kh, kw, lh, lw, orient)
	adjm := make([]complex128, len(otf))
	for i, v := range otf {
		adjm[i] = cmplx.Conj(v)
	}
	// Per channel: pad, filter circularly on the lh×lw grid (outputs
	// (rh..rh+h−1, rw..rw+w−1) only read padded inputs), crop.
	fwd1 := func(f *FFT2, buf []complex128, in, out []float64) {
		for i := range buf {
			buf[i] = 0
		}
		for pi := 0; pi < ph; pi++ {
			si := reflectIndex(pi-rh, h)
			for pj := 0; pj < pw; pj++ {
				buf[pi*lw+pj] = complex(in[si*w+reflectIndex(pj-rw, w)], 0)
			}
		}
		f.Forward(buf)
		for i := range buf {
			buf[i] *= otf[i]
		}
		f.Inverse(buf)
		for i := 0; i < h; i++ {
			for j := 0; j < w; j++ {
				out[i*w+j] = real(buf[(i+rh)*lw+j+rw])
			}
		}
	}
	// The transpose: embed, filter with conj(K̂), fold the padding back.
	adj1 := func(f *FFT2, buf []complex128, in, out []float64) {
		for i := range buf {
			buf[i] = 0
		}
		for i := 0; i < h; i++ {
			for j := 0; j < w; j++ {
				buf[(i+rh)*lw+j+rw] = complex(in[i*w+j], 0)
			}
		}
		f.Forward(buf)
		for i := range buf {
			buf[i] *= adjm[i]
		}
		f.Inverse(buf)
		for i := range out[:h*w] {
			out[i] = 0
		}
		for pi := 0; pi < ph; pi++ {
			si := reflectIndex(pi-rh, h)
			for pj := 0; pj < pw; pj++ {
				out[si*w+reflectIndex(pj-rw, w)] += real(buf[pi*lw+pj])
			}
		}
	}
	// Small kernels filter the padded image directly through their taps,
	// as CircConv does (directCheaper); the transpose scatters into the
	// padded grid and folds it back. Both forms are exact.
	type tap struct {
		oi, oj int // y[i,j] += v·x̃[i+oi, j+oj]
		v      float64
	}
	var taps []tap
	for a := 0; a < kh; a++ {
		for b := 0; b < kw; b++ {
			if v := kernel[a*kw+b]; v != 0 {
				oi, oj := a-kh/2, b-kw/2
				if orient == Convolve {
					oi, oj = -oi, -oj
				}
				taps = append(taps, tap{oi, oj, v})
			}
		}
	}
	// The padded image's FFT grid (smooth sizes ≥ the padded side) costs
	// more than CircConv's, so the direct path wins further: measured
	// (BenchmarkReflectConv, two runs of 2026-12-07) 5.5–9.6× at 7×7 /
	// 28 px, 2–2.7× at 17×17 / 28 px, 1.1–1.4× at 15×15 / 64 px (the face
	// blurs) and 0.94–2.1× at 17×17 / 64 px; the bound takes 1.75×
	// CircConv's (15×15 direct and 17×17 by FFT at both sizes).
	direct := float64(len(taps)) <= reflectDirectScale*directTapsPerLog2*math.Log2(float64(ph*pw))
	// maps returns one channel's forward and adjoint with their own work
	// space (an imageMap call may run beside others).
	maps := func() (fwd, adj func(in, out []float64)) {
		if direct {
			pad := make([]float64, ph*pw)
			fwd = func(in, out []float64) {
				for pi := 0; pi < ph; pi++ {
					si := reflectIndex(pi-rh, h)
					for pj := 0; pj < pw; pj++ {
						pad[pi*pw+pj] = in[si*w+reflectIndex(pj-rw, w)]
					}
				}
				for i := range out[:h*w] {
					out[i] = 0
				}
				for _, t := range taps {
					for i := 0; i < h; i++ {
						src := pad[(i+rh+t.oi)*pw+rw+t.oj:]
						dst := out[i*w : (i+1)*w]
						for j := range dst {
							dst[j] += t.v * src[j]
						}
					}
				}
			}
			adj = func(in, out []float64) {
				for i := range pad {
					pad[i] = 0
				}
				for _, t := range taps {
					for i := 0; i < h; i++ {
						dst := pad[(i+rh+t.oi)*pw+rw+t.oj:]
						src := in[i*w : (i+1)*w]
						for j, v := range src {
							dst[j] += t.v * v
						}
					}
				}
				for i := range out[:h*w] {
					out[i] = 0
				}
				for pi := 0; pi < ph; pi++ {
					si := reflectIndex(pi-rh, h)
					for pj := 0; pj < pw; pj++ {
						out[si*w+reflectIndex(pj-rw, w)] += pad[pi*pw+pj]
					}
				}
			}
			return fwd, adj
		}
		f := NewFFT2(lh, lw)
		buf := make([]complex128, lh*lw)
		return func(in, out []float64) { fwd1(f, buf, in, out) }, func(in, out []float64) { adj1(f, buf, in, out) }
	}
	perChannel := func(adjoint bool) imageMap {
		return func(in, out []float64) {
			fwd, adj := maps()
			m := fwd
			if adjoint {
				m = adj
			}
			for ch := 0; ch < c; ch++ {
				m(in[ch*h*w:(ch+1)*h*w], out[ch*h*w:(ch+1)*h*w])
			}
		}
	}
	pinv := func(in, out []float64) {
		A, At := maps()
		for ch := 0; ch < c; ch++ {
			cgls(A, At, in[ch*h*w:(ch+1)*h*w], out[ch*h*w:(ch+1)*h*w], pinvIters, reflectPinvTol)
		}
	}
	return &ReflectConv{
		linOp:     linOp{name: name, in: shape[:], out: shape[:], fwd: perChannel(false), adj: perChannel(true), pinv: pinv},
		h:         h,
		w:         w,
		kh:        kh,
		kw:        kw,
		orient:    orient,
		kernel:    append([]float64(nil), kernel...),
		pinvIters: pinvIters,
	}, nil
}

// reflectDirectScale scales directCheaper's bound for ReflectConv.
const reflectDirectScale = 1.75

// cgls writes into x (len n, overwritten) the conjugate-gradient
// least-squares solution of min ‖A x − y‖ for a square map A given with its
// transpose At, started from x = 0 (so the iterates stay in the range of
// Aᵀ and converge to the minimum-norm solution). It stops when
// ‖Aᵀ(y − A x)‖ ≤ tol·‖Aᵀy‖ or after iters iterations.
func cgls(A, At func(in, out []float64), y, x []float64, iters int, tol float64) {
	n := len(x)
	for i := range x {
		x[i] = 0
	}
	r := append([]float64(nil), y...)
	s := make([]float64, n)
	At(r, s)
	p := append([]float64(nil), s...)
	q := make([]float64, len(y))
	gamma := dotf(s, s)
	stop := tol * tol * gamma
	for k := 0; k < iters && gamma > stop && gamma > 0; k++ {
		A(p, q)
		qq := dotf(q, q)
		if qq == 0 {
			return
		}
		alpha := gamma / qq
		for i := range x {
			x[i] += alpha * p[i]
		}
		for i := range r {
			r[i] -= alpha * q[i]
		}
		At(r, s)
		g := dotf(s, s)
		beta := g / gamma
		gamma = g
		for i := range p {
			p[i] = s[i] + beta*p[i]
		}
	}
}

func dotf(a, b []float64) float64 {
	s := 0.0
	for i, v := range a {
		s += v * b[i]
	}
	return s
}
