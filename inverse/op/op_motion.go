package op

import (
	"fmt"
	"math"
	"math/cmplx"
	"math/rand"
)

// MotionKernel draws a size×size motion blur kernel, summing to 1, with a
// generator of the same kind as DPS's (LeviBorodenko/motionblur's Kernel):
// on a canvas twice the size, a random-walk camera path whose total length
// is 0.75·diagonal·(U(0,1) + U(0, intensity²)), made of Beta(1,30)-sized
// steps whose angles turn by at most U(0, intensity·π) and flip sign with a
// Beta(2,20) probability, centred on its centre of mass and randomly
// rotated, is drawn as a line of width ⌊diagonal/150⌋ (at least one pixel),
// blurred by a Gaussian of σ = ⌊0.01·diagonal⌋ and averaged 2×2 down to
// size×size. Differences from the Python: a 2×2 box instead of Lanczos for
// the final resize, and our own line rasteriser. intensity is in [0, 1]
// (DPS uses 0.5); every draw comes from rng.
func MotionKernel(size int, intensity float64, rng *rand.Rand) ([]float64, error) {
	if size < 1 {
		return nil, fmt.Errorf("op.MotionKernel: size %d, want ≥ 1", size)
	}
	if !(intensity >= 0 && intensity <= 1) {
		return nil, fmt.Errorf("op.MotionKernel: intensity %v, want in [0, 1]", intensity)
	}
	if rng == nil {
		return nil, fmt.Errorf("op.MotionKernel: nil rng")
	}
	const eps = 0.1
	big := 2 * size
	diag := math.Sqrt(2) * float64(big)
	uniform := func(a, b float64) float64 { return a + (b-a)*rng.Float64() }
	gamma := func(k int) float64 { // integer shape, scale 1
		s := 0.0
		for i := 0; i < k; i++ {
			s -= math.Log(1 - rng.Float64())
		}
		return s
	}
	beta := func(a, b int) float64 { x, y := gamma(a), gamma(b); return x / (x + y) }
	triangular := func(lo, mode, hi float64) float64 {
		u := rng.Float64()
		if hi <= lo {
			return lo
		}
		fc := (mode - lo) / (hi - lo)
		if u < fc {
			return lo + math.Sqrt(u*(hi-lo)*(mode-lo))
		}
		return hi - math.Sqrt((1-u)*(hi-lo)*(hi-mode))
	}
	maxLen := 0.75 * diag * (uniform(0, 1) + uniform(0, intensity*intensity))
	var steps []float64
	total := 0.0
	for total < maxLen {
		st := beta(1, 30) * (1 - intensity + eps) * diag
		if st < maxLen {
			steps = append(steps, st)
			total += st
		}
	}
	maxAngle := uniform(0, intensity*math.Pi)
	jitter := beta(2, 20)
	sign := func(v float64) float64 {
		switch {
		case v > 0:
			return 1
		case v < 0:
			return -1
		}
		return 0
	}
	angles := []float64{uniform(-maxAngle, maxAngle)}
	for len(angles) < len(steps) {
		a := triangular(0, intensity*maxAngle, maxAngle+eps)
		prev := sign(angles[len(angles)-1])
		if rng.Float64() < jitter {
			a *= -prev
		} else {
			a *= prev
		}
		angles = append(angles, a)
	}
	path := make([]complex128, len(steps))
	var acc, com complex128
	for i := range steps {
		acc += cmplx.Rect(steps[i], angles[i])
		path[i] = acc
		com += acc
	}
	com /= complex(float64(len(steps)), 0)
	rot := cmplx.Rect(1, uniform(0, math.Pi))
	centre := complex(float64(big)/2, float64(big)/2)
	for i := range path {
		path[i] = (path[i]-com)*rot + centre
	}
	// Rasterise the polyline: dense samples, each setting the pixels within
	// half the line width.
	canvas := make([]float64, big*big)
	width := math.Max(1, math.Floor(diag/150))
	half := width / 2
	plot := func(p complex128) {
		x, y := real(p), imag(p)
		for i := int(math.Floor(y - half)); i <= int(math.Ceil(y+half)); i++ {
			for j := int(math.Floor(x - half)); j <= int(math.Ceil(x+half)); j++ {
				if i < 0 || j < 0 || i >= big || j >= big {
					continue
				}
				dx, dy := float64(j)+0.5-x, float64(i)+0.5-y
				if dx*dx+dy*dy <= math.Max(half*half, 0.5) {
					canvas[i*big+j] = 1
				}
			}
		}
	}
	plot(path[0])
	for i := 1; i < len(path); i++ {
		d := cmplx.Abs(path[i] - path[i-1])
		n := int(math.Ceil(d/0.25)) + 1
		for t := 0; t <= n; t++ {
			plot(path[i-1] + (path[i]-path[i-1])*complex(float64(t)/float64(n), 0))
		}
	}
	if sigma := math.Floor(0.01 * diag); sigma >= 1 {
		g, err := Gaussian1D(2*int(math.Ceil(3*sigma))+1, sigma)
		if err != nil {
			return nil, err
		}
		canvas = blurSame(canvas, big, big, g)
	}
	k := make([]float64, size*size)
	for i := 0; i < size; i++ {
		for j := 0; j < size; j++ {
			k[i*size+j] = (canvas[2*i*big+2*j] + canvas[2*i*big+2*j+1] + canvas[(2*i+1)*big+2*j] + canvas[(2*i+1)*big+2*j+1]) / 4
		}
	}
	nk, err := NormalizeKernel(k)
	if err != nil { // the path left the canvas entirely: fall back to a delta
		nk = make([]float64, size*size)
		nk[(size/2)*size+size/2] = 1
	}
	return nk, nil
}

// blurSame convolves an h×w image with the separable kernel g ⊗ g, zero
// padding, same size.
func blurSame(img []float64, h, w int, g []float64) []float64 {
	r := len(g) / 2
	tmp := make([]float64, h*w)
	out := make([]float64, h*w)
	for i := 0; i < h; i++ {
		for j := 0; j < w; j++ {
			s := 0.0
			for t, gv := range g {
				if jj := j + t - r; jj >= 0 && jj < w {
					s += gv * img[i*w+jj]
				}
			}
			tmp[i*w+j] = s
		}
	}
	for i := 0; i < h; i++ {
		for j := 0; j < w; j++ {
			s := 0.0
			for t, gv := range g {
				if ii := i + t - r; ii >= 0 && ii < h {
					s += gv * tmp[ii*w+j]
				}
			}
			out[i*w+j] = s
		}
	}
	return out
}
