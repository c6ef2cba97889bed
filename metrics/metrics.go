// Package metrics scores reconstructions: PSNR and SSIM on [0, 1] images
// (data range 1), and the measurement consistency ‖y − A(x̂)‖.
//
// Functions whose names end in 01 take one image already in [0, 1] as a
// flat C×H×W slice. The Batch functions take diffinv's N×C×H×W float32
// tensors in [-1, 1], map them to [0, 1] with (v+1)/2, clamp to [0, 1] and
// return one score per image; average with Mean. Outputs are never
// min–max normalised (a practice that changes the numbers).
//
// SSIM follows Wang et al. (2004) with the defaults of scikit-image's
// structural_similarity(gaussian_weights=True, sigma=1.5,
// use_sample_covariance=False, data_range=1): an 11×11 Gaussian window,
// σ = 1.5, K1 = 0.01, K2 = 0.03, the SSIM map averaged over the "valid"
// positions where the window lies wholly inside the image (what scikit-image
// gets by filtering with reflection and cropping the border), and the
// per-channel means averaged over channels.
package metrics

import (
	"fmt"
	"math"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/internal/tensors"
)

// MSE returns the mean squared difference of two equally long slices.
func MSE(x, y []float32) (float64, error) {
	if len(x) != len(y) || len(x) == 0 {
		return 0, fmt.Errorf("MSE: lengths %d and %d, want equal and non-zero", len(x), len(y))
	}
	var s float64
	for i := range x {
		d := float64(x[i]) - float64(y[i])
		s += d * d
	}
	return s / float64(len(x)), nil
}

// PSNRFromMSE returns 10·log10(dataRange²/mse) in dB; +Inf when mse is 0.
func PSNRFromMSE(mse, dataRange float64) float64 {
	return 10 * math.Log10(dataRange*dataRange/mse)
}

// PSNR01 returns the PSNR in dB of two images in [0, 1] with data range 1,
// +Inf for identical images. Values are used as given (not clamped).
func PSNR01(x, y []float32) (float64, error) {
	mse, err := MSE(x, y)
	if err != nil {
		return 0, fmt.Errorf("PSNR01: %w", err)
	}
	return PSNRFromMSE(mse, 1), nil
}

// SSIMOptions are the SSIM constants; a zero field takes its default.
type SSIMOptions struct {
	// Sigma is the standard deviation of the Gaussian window (default 1.5).
	Sigma float64
	// Window is the odd side of the window; default 2·⌊3.5σ + 0.5⌋ + 1,
	// scikit-image's choice (11 for σ = 1.5).
	Window int
	// K1 and K2 set the stabilisers C1 = (K1·L)², C2 = (K2·L)² (defaults
	// 0.01 and 0.03).
	K1, K2 float64
	// DataRange is L, the value range of the images (default 1).
	DataRange float64
}

func (o SSIMOptions) withDefaults() (SSIMOptions, error) {
	if o.Sigma == 0 {
		o.Sigma = 1.5
	}
	if o.Window == 0 {
		o.Window = 2*int(3.5*o.Sigma+0.5) + 1
	}
	if o.K1 == 0 {
		o.K1 = 0.01
	}
	if o.K2 == 0 {
		o.K2 = 0.03
	}
	if o.DataRange == 0 {
		o.DataRange = 1
	}
	if o.Sigma < 0 || o.Window < 1 || o.Window%2 == 0 || o.K1 < 0 || o.K2 <= 0 || o.DataRange < 0 {
		return o, fmt.Errorf("SSIM options %+v: want σ > 0, an odd window ≥ 1, K1 ≥ 0, K2 > 0, data range > 0", o)
	}
	return o, nil
}

// gaussian1D returns the normalised 1-D Gaussian of the given odd size.
func gaussian1D(size int, sigma float64) []float64 {
	g := make([]float64, size)
	r := size / 2
	var s float64
	for i := range g {
		x := float64(i - r)
		g[i] = math.Exp(-0.5 * x * x / (sigma * sigma))
		s += g[i]
	}
	for i := range g {
		g[i] /= s
	}
	return g
}

// filterValid convolves an h×w plane with the separable kernel g along both
// axes, keeping only the (h−k+1)×(w−k+1) positions where it fits wholly.
func filterValid(p []float64, h, w int, g []float64, tmp, out []float64) {
	k := len(g)
	ow, oh := w-k+1, h-k+1
	for y := range h {
		row := p[y*w : (y+1)*w]
		for x := range ow {
			var s float64
			for i, gi := range g {
				s += gi * row[x+i]
			}
			tmp[y*ow+x] = s
		}
	}
	for y := range oh {
		for x := range ow {
			var s float64
			for i, gi := range g {
				s += gi * tmp[(y+i)*ow+x]
			}
			out[y*ow+x] = s
		}
	}
}

// SSIM01 returns the mean SSIM of two C×H×W images in [0, 1] (flat slices),
// the per-channel means averaged over channels. H and W must be at least
// the window size (11 by default).
func SSIM01(x, y []float32, c, h, w int, opt SSIMOptions) (float64, error) {
	opt, err := opt.withDefaults()
	if err != nil {
		return 0, err
	}
	if c < 1 || h < 1 || w < 1 || len(x) != c*h*w || len(y) != c*h*w {
		return 0, fmt.Errorf("SSIM01: lengths %d and %d for a %d×%d×%d image, want %d each", len(x), len(y), c, h, w, c*h*w)
	}
	k := opt.Window
	if h < k || w < k {
		return 0, fmt.Errorf("SSIM01: image %d×%d is smaller than the %d×%d window", h, w, k, k)
	}
	g := gaussian1D(k, opt.Sigma)
	c1 := (opt.K1 * opt.DataRange) * (opt.K1 * opt.DataRange)
	c2 := (opt.K2 * opt.DataRange) * (opt.K2 * opt.DataRange)
	n, m := h*w, (h-k+1)*(w-k+1)
	planes := make([][]float64, 5) // x, y, x², y², xy
	for i := range planes {
		planes[i] = make([]float64, n)
	}
	tmp := make([]float64, h*(w-k+1))
	mu := make([][]float64, 5)
	for i := range mu {
		mu[i] = make([]float64, m)
	}
	var total float64
	for ch := range c {
		for i := range n {
			a, b := float64(x[ch*n+i]), float64(y[ch*n+i])
			planes[0][i], planes[1][i] = a, b
			planes[2][i], planes[3][i], planes[4][i] = a*a, b*b, a*b
		}
		for i := range planes {
			filterValid(planes[i], h, w, g, tmp, mu[i])
		}
		var s float64
		for i := range m {
			ux, uy := mu[0][i], mu[1][i]
			vx, vy, vxy := mu[2][i]-ux*ux, mu[3][i]-uy*uy, mu[4][i]-ux*uy
			s += (2*ux*uy + c1) * (2*vxy + c2) / ((ux*ux + uy*uy + c1) * (vx + vy + c2))
		}
		total += s / float64(m)
	}
	return total / float64(c), nil
}

// to01 maps image k of an N×C×H×W [-1, 1] tensor's data to [0, 1], clamped.
func to01(d []float32, k, size int, out []float32) {
	for i, v := range d[k*size : (k+1)*size] {
		u := (v + 1) / 2
		switch {
		case u > 1:
			u = 1
		case !(u >= 0): // also NaN
			u = 0
		}
		out[i] = u
	}
}

// batchPair checks two N×C×H×W tensors of the same shape.
func batchPair(name string, x, y *tensor.Dense) (n, c, h, w int, err error) {
	if n, c, h, w, err = tensors.NCHW(name+" x", x); err != nil {
		return
	}
	if _, _, _, _, err = tensors.NCHW(name+" y", y); err != nil {
		return
	}
	err = tensors.SameShape(name+" x", x, name+" y", y)
	return
}

// PSNRBatch returns the PSNR in dB of each image pair of x and y, N×C×H×W
// float32 tensors in [-1, 1], computed on [0, 1] (clamped) with data range 1.
func PSNRBatch(x, y *tensor.Dense) ([]float64, error) {
	n, c, h, w, err := batchPair("PSNRBatch", x, y)
	if err != nil {
		return nil, err
	}
	size := c * h * w
	a, b := make([]float32, size), make([]float32, size)
	out := make([]float64, n)
	for k := range n {
		to01(tensors.F32(x), k, size, a)
		to01(tensors.F32(y), k, size, b)
		if out[k], err = PSNR01(a, b); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// SSIMBatch returns the SSIM (default options) of each image pair of x and
// y, N×C×H×W float32 tensors in [-1, 1], computed on [0, 1] (clamped).
func SSIMBatch(x, y *tensor.Dense) ([]float64, error) {
	n, c, h, w, err := batchPair("SSIMBatch", x, y)
	if err != nil {
		return nil, err
	}
	size := c * h * w
	a, b := make([]float32, size), make([]float32, size)
	out := make([]float64, n)
	for k := range n {
		to01(tensors.F32(x), k, size, a)
		to01(tensors.F32(y), k, size, b)
		if out[k], err = SSIM01(a, b, c, h, w, SSIMOptions{}); err != nil {
			return nil, fmt.Errorf("SSIMBatch image %d: %w", k, err)
		}
	}
	return out, nil
}

// Consistency returns ‖y_k − Ax_k‖₂ for each batch element k: the
// measurement residual of a reconstruction x̂ whose forward model output
// is ax = A(x̂). y and ax are float32 tensors of the same shape whose first
// dimension is the batch; values are used as given, in the measurement's
// own units (no [0, 1] conversion).
func Consistency(y, ax *tensor.Dense) ([]float64, error) {
	if err := tensors.SameShape("Consistency y", y, "Consistency A(x)", ax); err != nil {
		return nil, err
	}
	if y.Dtype() != tensor.Float32 || ax.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("Consistency: dtypes %v and %v, want float32", y.Dtype(), ax.Dtype())
	}
	s := y.Shape()
	if len(s) < 1 || s[0] < 1 {
		return nil, fmt.Errorf("Consistency: shape %v, want a leading batch dimension ≥ 1", []int(s))
	}
	n := s[0]
	dy, da := tensors.F32(y), tensors.F32(ax)
	size := len(dy) / n
	out := make([]float64, n)
	for k := range n {
		var sum float64
		for i := k * size; i < (k+1)*size; i++ {
			d := float64(dy[i]) - float64(da[i])
			sum += d * d
		}
		out[k] = math.Sqrt(sum)
	}
	return out, nil
}

// Mean returns the arithmetic mean of v (NaN for an empty slice).
func Mean(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}
