package op

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// NewSeparable builds the operator that maps every channel X (H×W) of an
// image of shape [C, H, W] to Y = Ah·X·Awᵀ, with Ah of size mh×H and Aw of
// size mw×W (mh ≤ H, mw ≤ W). Super-resolution (average pooling, bicubic)
// and the separable blurs are all of this form.
//
// Its SVD comes from the SVDs of the two 1-D factors, Ah = Uh Sh Vhᵀ and
// Aw = Uw Sw Vwᵀ: per channel the spectral image is Vhᵀ X Vw and the
// measurement-side one Uhᵀ Y Uw, paired by s = sh[i]·sw[j]. Spectral layout:
// the first M = C·mh·mw coordinates are (c, i, j) with i < mh, j < mw in
// row-major order, then the null-space coordinates (i ≥ mh or j ≥ mw) in
// row-major order. Singular values at or below max(tol, 1e-6)·max(s) are
// reported as 0 and Pinv inverts only the others (1e-6 is float32 round-off
// level: inverting smaller ones only amplifies rounding); Forward and
// Adjoint stay exact.
func NewSeparable(name string, shape [3]int, ah, aw *mat.Dense, tol float64) (SVD, error) {
	return NewSeparableTrunc(name, shape, ah, aw, tol, TruncProduct)
}

// Truncation is the rule by which a separable operator's small singular
// values are reported as 0 (and not inverted by Pinv).
type Truncation string

// The truncation rules of separable operators (the "svd_trunc" parameter).
const (
	// TruncProduct zeroes the 2-D singular values s = sh[i]·sw[j] at or
	// below max(tol, 1e-6)·max(s): a relative cut on the pairs. diffinv's
	// default.
	TruncProduct Truncation = "product"
	// TruncFactor zeroes the 1-D singular values of each factor below tol
	// (absolute) before forming the pairs, as DDRM's and DDNM's Deblurring
	// does (singulars_small < ZERO with ZERO = 3e-2); pairs at or below
	// 1e-6·max(s) are zeroed as well. The two rules keep different pairs:
	// TruncFactor drops a pair with one factor below tol however large the
	// other is, and keeps pairs of two moderate factors whose product is
	// below tol·max. For DDNM's deblur_gauss matrix at 64 px with tol 0.03
	// it keeps 3,600 of 4,096 pairs per channel where TruncProduct keeps
	// 2,424 (TestGoldenDDNMDeblur).
	TruncFactor Truncation = "factor"
)

// ParseTruncation checks a truncation rule name.
func ParseTruncation(s string) (Truncation, error) {
	switch t := Truncation(s); t {
	case TruncProduct, TruncFactor:
		return t, nil
	}
	return "", fmt.Errorf("svd_trunc %q, want %q (pairs below svd_tol·max, diffinv) or %q (1-D singular values below svd_tol, DDRM/DDNM code)", s, TruncProduct, TruncFactor)
}

// NewSeparableTrunc is NewSeparable with an explicit truncation rule.
func NewSeparableTrunc(name string, shape [3]int, ah, aw *mat.Dense, tol float64, rule Truncation) (SVD, error) {
	return newSeparable(name, shape, ah, aw, tol, rule, false)
}

// newSeparable builds the separable operator; with svdForward, Forward and
// Adjoint apply the truncated SVD, U diag(s) Vᵀ and V diag(s) Uᵀ, as DDRM's
// and DDNM's H_functions A and At do, instead of the exact factors.
func newSeparable(name string, shape [3]int, ah, aw *mat.Dense, tol float64, rule Truncation, svdForward bool) (SVD, error) {
	if _, err := ParseTruncation(string(rule)); err != nil {
		return nil, fmt.Errorf("op.NewSeparable(%s): %w", name, err)
	}
	if err := checkImageShape("op.NewSeparable("+name+")", shape); err != nil {
		return nil, err
	}
	c, h, w := shape[0], shape[1], shape[2]
	mh, hh := ah.Dims()
	mw, ww := aw.Dims()
	if hh != h || ww != w || mh > h || mw > w || mh < 1 || mw < 1 {
		return nil, fmt.Errorf("op.NewSeparable(%s): factors %d×%d and %d×%d do not fit an image %d×%d (want mh×H, mw×W with mh ≤ H, mw ≤ W)", name, mh, hh, mw, ww, h, w)
	}
	if tol < 0 || tol >= 1 || math.IsNaN(tol) {
		return nil, fmt.Errorf("op.NewSeparable(%s): svd tolerance %v, want in [0, 1)", name, tol)
	}
	var sh, sw mat.SVD
	if !sh.Factorize(ah, mat.SVDFull) || !sw.Factorize(aw, mat.SVDFull) {
		return nil, fmt.Errorf("op.NewSeparable(%s): SVD of a 1-D factor did not converge", name)
	}
	var uh, vh, uw, vw mat.Dense
	sh.UTo(&uh)
	sh.VTo(&vh)
	sw.UTo(&uw)
	sw.VTo(&vw)
	svh, svw := sh.Values(nil), sw.Values(nil)
	if rule == TruncFactor {
		for _, sv := range [][]float64{svh, svw} {
			for i, v := range sv {
				if v < tol {
					sv[i] = 0
				}
			}
		}
	}

	m := c * mh * mw
	s := make([]float64, m)
	smax := 0.0
	for ch := 0; ch < c; ch++ {
		for i := 0; i < mh; i++ {
			for j := 0; j < mw; j++ {
				v := svh[i] * svw[j]
				s[ch*mh*mw+i*mw+j] = v
				smax = math.Max(smax, v)
			}
		}
	}
	cut := math.Max(tol, minRelSingular) * smax
	if rule == TruncFactor {
		cut = minRelSingular * smax
	}
	for i, v := range s {
		if v <= cut {
			s[i] = 0
		}
	}
	// pos[k] is the index in the C×H×W spectral image of spectral coordinate k.
	pos := make([]int, 0, c*h*w)
	for ch := 0; ch < c; ch++ {
		for i := 0; i < mh; i++ {
			for j := 0; j < mw; j++ {
				pos = append(pos, ch*h*w+i*w+j)
			}
		}
	}
	for ch := 0; ch < c; ch++ {
		for i := 0; i < h; i++ {
			for j := 0; j < w; j++ {
				if i >= mh || j >= mw {
					pos = append(pos, ch*h*w+i*w+j)
				}
			}
		}
	}
	ahT, awT := ah.T(), aw.T()
	// sandwich computes per channel out = L · in · R.
	sandwich := func(l, r mat.Matrix, ih, iw int, in, out []float64) {
		lr, _ := l.Dims()
		_, rc := r.Dims()
		var tmp mat.Dense
		for ch := 0; ch < c; ch++ {
			x := mat.NewDense(ih, iw, in[ch*ih*iw:(ch+1)*ih*iw])
			tmp.Reset()
			tmp.Mul(l, x)
			y := mat.NewDense(lr, rc, out[ch*lr*rc:(ch+1)*lr*rc])
			y.Mul(&tmp, r)
		}
	}
	fwd := func(in, out []float64) { sandwich(ah, awT, h, w, in, out) }
	adj := func(in, out []float64) { sandwich(ahT, aw, mh, mw, in, out) }
	vt := func(in, out []float64) {
		full := make([]float64, c*h*w)
		sandwich(vh.T(), &vw, h, w, in, full)
		for k, p := range pos {
			out[k] = full[p]
		}
	}
	v := func(in, out []float64) {
		full := make([]float64, c*h*w)
		for k, p := range pos {
			full[p] = in[k]
		}
		sandwich(&vh, vw.T(), h, w, full, out)
	}
	ut := func(in, out []float64) { sandwich(uh.T(), &uw, mh, mw, in, out) }
	u := func(in, out []float64) { sandwich(&uh, uw.T(), mh, mw, in, out) }
	d := c * h * w
	if svdForward {
		fwd, adj = svdApply(u, vt, s, d), svdAdjoint(v, ut, s, d)
	}
	return &svdOp{
		linOp: linOp{name: name, in: shape[:], out: []int{c, mh, mw}, fwd: fwd, adj: adj, pinv: svdPinv(v, ut, s, d)},
		v:     v, vt: vt, u: u, ut: ut, s: s,
	}, nil
}

// minRelSingular is the relative floor below which singular values and
// transfer-function magnitudes count as zero, whatever the tolerance.
const minRelSingular = 1e-6

// AvgPoolMatrix is the 1-D factor of k× average pooling: (n/k)×n with
// entries 1/k on each block of k consecutive inputs.
func AvgPoolMatrix(n, k int) (*mat.Dense, error) {
	if k < 1 || n%k != 0 {
		return nil, fmt.Errorf("op.AvgPoolMatrix: size %d is not divisible by factor %d", n, k)
	}
	a := mat.NewDense(n/k, n, nil)
	for i := 0; i < n/k; i++ {
		for t := 0; t < k; t++ {
			a.Set(i, i*k+t, 1/float64(k))
		}
	}
	return a, nil
}

// cubic is Keys' cubic convolution kernel with a = −0.5 (MATLAB's imresize,
// DPS's Resizer).
func cubic(x float64) float64 {
	ax := math.Abs(x)
	ax2, ax3 := ax*ax, ax*ax*ax
	switch {
	case ax <= 1:
		return 1.5*ax3 - 2.5*ax2 + 1
	case ax <= 2:
		return -0.5*ax3 + 2.5*ax2 - 4*ax + 2
	}
	return 0
}

// BicubicMatrix is the 1-D factor of antialiased bicubic downsampling by an
// integer factor k, as DPS's Resizer (MATLAB imresize) builds it: the cubic
// kernel stretched by k (antialiasing), weights normalised to sum 1 per
// output, and reflect padding at the borders folded into the matrix.
func BicubicMatrix(n, k int) (*mat.Dense, error) {
	if k < 1 || n%k != 0 {
		return nil, fmt.Errorf("op.BicubicMatrix: size %d is not divisible by factor %d", n, k)
	}
	out := n / k
	scale := 1 / float64(k)
	kw := 4.0 / scale
	a := mat.NewDense(out, n, nil)
	taps := int(math.Ceil(kw)) + 2
	for o := 1; o <= out; o++ {
		match := float64(o)/scale + 0.5*(1-1/scale) // (out−in·scale)/2 = 0 for integer k
		left := math.Floor(match - kw/2)
		ws := make([]float64, taps)
		idx := make([]int, taps)
		sum := 0.0
		for t := 0; t < taps; t++ {
			f := int(left) + t - 1
			ws[t] = scale * cubic(scale*(match-float64(f)-1))
			idx[t] = f
			sum += ws[t]
		}
		if sum == 0 {
			sum = 1
		}
		for t := 0; t < taps; t++ {
			j := ((idx[t] % (2 * n)) + 2*n) % (2 * n)
			if j >= n {
				j = 2*n - 1 - j
			}
			a.Set(o-1, j, a.At(o-1, j)+ws[t]/sum)
		}
	}
	return a, nil
}

// Boundary is how a separable blur treats pixels beyond the image border.
type Boundary string

// The boundaries of separable blurs (the "boundary" parameter).
const (
	// BoundaryZero pads with zeros (DDRM's and DDNM's 1-D matrices).
	BoundaryZero Boundary = "zero"
	// BoundaryReflect mirrors about the edge pixel without repeating it
	// (x[−1] = x[1], x[n] = x[n−2]): PyTorch's ReflectionPad2d, which DPS's
	// Blurkernel applies before its conv2d. Folded into the 1-D matrix, so
	// the SVD stays exact.
	BoundaryReflect Boundary = "reflect"
)

// ParseBoundary checks a separable blur's boundary name.
func ParseBoundary(s string) (Boundary, error) {
	switch b := Boundary(s); b {
	case BoundaryZero, BoundaryReflect:
		return b, nil
	}
	return "", fmt.Errorf("boundary %q, want %q (DDRM/DDNM) or %q (DPS's ReflectionPad2d)", s, BoundaryZero, BoundaryReflect)
}

// BlurMatrix is the n×n matrix of 'same' 1-D correlation with kernel k (odd
// length, centre r = len(k)/2): (A x)[i] = Σ_t k[t]·x[i+t−r], with the
// given boundary. dropLast leaves out the kernel's last tap (t = 2r), as
// the loop `for j in range(i − r, i + r)` of DDRM's and DDNM's Deblurring
// does; that matrix is what their deblurring tasks measure with.
func BlurMatrix(n int, k []float64, b Boundary, dropLast bool) (*mat.Dense, error) {
	if len(k)%2 != 1 {
		return nil, fmt.Errorf("op.BlurMatrix: kernel length %d, want odd", len(k))
	}
	if _, err := ParseBoundary(string(b)); err != nil {
		return nil, fmt.Errorf("op.BlurMatrix: %w", err)
	}
	r := len(k) / 2
	if b == BoundaryReflect && r >= n {
		return nil, fmt.Errorf("op.BlurMatrix: reflect padding of %d px needs a side > %d, got %d", r, r, n)
	}
	a := mat.NewDense(n, n, nil)
	for i := 0; i < n; i++ {
		for t, kv := range k {
			if dropLast && t == len(k)-1 {
				continue
			}
			j := i + t - r
			if b == BoundaryReflect {
				if j < 0 {
					j = -j
				}
				if j >= n {
					j = 2*(n-1) - j
				}
			}
			if j >= 0 && j < n {
				a.Set(i, j, a.At(i, j)+kv)
			}
		}
	}
	return a, nil
}

// Gaussian1D returns the odd-length sampled Gaussian exp(−t²/2σ²),
// t = −size/2..size/2, zero beyond ⌊4σ + ½⌋ (scipy.ndimage.gaussian_filter's
// truncate = 4, which DPS uses to build its kernel) and normalised to sum 1.
func Gaussian1D(size int, sigma float64) ([]float64, error) {
	if size < 1 || size%2 != 1 {
		return nil, fmt.Errorf("op.Gaussian1D: size %d, want a positive odd number", size)
	}
	if !(sigma > 0) {
		return nil, fmt.Errorf("op.Gaussian1D: sigma %v, want > 0", sigma)
	}
	k := make([]float64, size)
	r := size / 2
	trunc := math.Floor(4*sigma + 0.5)
	sum := 0.0
	for t := range k {
		d := float64(t - r)
		if math.Abs(d) > trunc {
			continue
		}
		k[t] = math.Exp(-d * d / (2 * sigma * sigma))
		sum += k[t]
	}
	for t := range k {
		k[t] /= sum
	}
	return k, nil
}

// GaussianScipy1D returns the 1-D factor of the size×size kernel DPS's
// Blurkernel builds: scipy.ndimage.gaussian_filter(delta, sigma) of a
// centred delta, i.e. the sampled Gaussian of radius ⌊4σ + ½⌋ (truncate =
// 4), normalised to sum 1 over that radius, then correlated with the delta
// under scipy's default mode 'reflect' (x[−1] = x[0]), which folds taps
// beyond the window back onto it. Where the radius fits in the window (DPS's
// 61 px, σ = 3) this equals Gaussian1D; where it does not (7 px, σ = 1) the
// edge taps are larger (0.004566 against Gaussian1D's 0.004433).
func GaussianScipy1D(size int, sigma float64) ([]float64, error) {
	if size < 1 || size%2 != 1 {
		return nil, fmt.Errorf("op.GaussianScipy1D: size %d, want a positive odd number", size)
	}
	if !(sigma > 0) || math.IsInf(sigma, 0) {
		return nil, fmt.Errorf("op.GaussianScipy1D: sigma %v, want > 0", sigma)
	}
	rad := int(4*sigma + 0.5)
	w := make([]float64, 2*rad+1)
	sum := 0.0
	for t := range w {
		d := float64(t - rad)
		w[t] = math.Exp(-0.5 / (sigma * sigma) * d * d)
		sum += w[t]
	}
	for t := range w {
		w[t] /= sum
	}
	// scipy 'reflect' (half-sample symmetric) index map, period 2·size.
	refl := func(j int) int {
		p := 2 * size
		j = ((j % p) + p) % p
		if j >= size {
			j = p - 1 - j
		}
		return j
	}
	c := size / 2
	k := make([]float64, size)
	for i := range k {
		for t, wv := range w {
			if refl(i+t-rad) == c {
				k[i] += wv
			}
		}
	}
	return k, nil
}

// ScaledOddSize scales a kernel size given at 256 px to an image side n:
// 2·round((ref−1)/2 · n/256) + 1, at least 3. DPS's 61 px kernels become 61
// at 256, 17 at 64, 9 at 32 and 7 at 28.
func ScaledOddSize(ref, n int) int {
	half := int(math.Round(float64(ref-1) / 2 * float64(n) / 256))
	if half < 1 {
		half = 1
	}
	return 2*half + 1
}

// NewSRAvgPool is ×k super-resolution by k×k average pooling (DDNM's SR
// operator), with its exact separable SVD.
func NewSRAvgPool(shape [3]int, k int) (SVD, error) {
	ah, err := AvgPoolMatrix(shape[1], k)
	if err != nil {
		return nil, fmt.Errorf("op.NewSRAvgPool: height: %w", err)
	}
	aw, err := AvgPoolMatrix(shape[2], k)
	if err != nil {
		return nil, fmt.Errorf("op.NewSRAvgPool: width: %w", err)
	}
	return NewSeparable(fmt.Sprintf("sr_avgpool(x%d)", k), shape, ah, aw, 0)
}

// NewSRBicubic is ×k super-resolution by antialiased bicubic downsampling
// (DPS's default SR operator), with its exact separable SVD.
func NewSRBicubic(shape [3]int, k int) (SVD, error) {
	ah, err := BicubicMatrix(shape[1], k)
	if err != nil {
		return nil, fmt.Errorf("op.NewSRBicubic: height: %w", err)
	}
	aw, err := BicubicMatrix(shape[2], k)
	if err != nil {
		return nil, fmt.Errorf("op.NewSRBicubic: width: %w", err)
	}
	return NewSeparable(fmt.Sprintf("sr_bicubic(x%d)", k), shape, ah, aw, 0)
}

// NewSeparableBlur blurs every channel with the separable kernel kh ⊗ kw
// (odd lengths) by 'same' correlation with zero padding. tol is the relative
// truncation of the 2-D singular values (TruncProduct, see NewSeparable).
func NewSeparableBlur(name string, shape [3]int, kh, kw []float64, tol float64) (SVD, error) {
	return NewSeparableBlurOpts(name, shape, kh, kw, tol, BlurOptions{})
}

// BlurOptions are the choices of a separable blur that differ between the
// reference codes; the zero value is diffinv's default (correlate, zero
// padding, all taps, TruncProduct).
type BlurOptions struct {
	// Orientation: Correlate ("" too) or Convolve (the 1-D kernels
	// reversed; no effect on symmetric ones).
	Orientation Orientation
	// Boundary: BoundaryZero ("" too) or BoundaryReflect (DPS).
	Boundary Boundary
	// DropLastTap builds DDRM's/DDNM's Deblurring matrix, which leaves
	// out each 1-D kernel's last tap (see BlurMatrix).
	DropLastTap bool
	// Trunc: TruncProduct ("" too) or TruncFactor (DDRM/DDNM code).
	Trunc Truncation
	// SVDForward makes Forward and Adjoint apply the truncated SVD, as
	// DDRM's and DDNM's A and At do (their measurement y = A(x) of a
	// deblurring task is made with it); false keeps them exact.
	SVDForward bool
}

// NewSeparableBlurOpts is NewSeparableBlur with the options o.
func NewSeparableBlurOpts(name string, shape [3]int, kh, kw []float64, tol float64, o BlurOptions) (SVD, error) {
	if o.Orientation == "" {
		o.Orientation = Correlate
	}
	if o.Boundary == "" {
		o.Boundary = BoundaryZero
	}
	if o.Trunc == "" {
		o.Trunc = TruncProduct
	}
	if _, err := ParseOrientation(string(o.Orientation)); err != nil {
		return nil, fmt.Errorf("op.NewSeparableBlur(%s): %w", name, err)
	}
	if o.Orientation == Convolve {
		kh, kw = reversed(kh), reversed(kw)
	}
	ah, err := BlurMatrix(shape[1], kh, o.Boundary, o.DropLastTap)
	if err != nil {
		return nil, fmt.Errorf("op.NewSeparableBlur(%s): vertical kernel: %w", name, err)
	}
	aw, err := BlurMatrix(shape[2], kw, o.Boundary, o.DropLastTap)
	if err != nil {
		return nil, fmt.Errorf("op.NewSeparableBlur(%s): horizontal kernel: %w", name, err)
	}
	return newSeparable(name, shape, ah, aw, tol, o.Trunc, o.SVDForward)
}

func reversed(k []float64) []float64 {
	r := make([]float64, len(k))
	for i, v := range k {
		r[len(k)-1-i] = v
	}
	return r
}

// NewGaussianBlur is the isotropic Gaussian blur of the given odd kernel size
// and σ (DPS: 61×61, σ = 3 at 256 px; see ScaledOddSize for the scaling).
func NewGaussianBlur(shape [3]int, size int, sigma, tol float64) (SVD, error) {
	k, err := Gaussian1D(size, sigma)
	if err != nil {
		return nil, fmt.Errorf("op.NewGaussianBlur: %w", err)
	}
	return NewSeparableBlur(fmt.Sprintf("blur_gauss(%d,σ=%g)", size, sigma), shape, k, k, tol)
}
