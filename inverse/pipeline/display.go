package pipeline

import (
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/internal/tensors"
)

// DisplayY turns a measurement batch into an N×C×H×W picture in [−1, 1]
// for grids, never for metrics: a vector measurement (compressed sensing)
// is shown as Aᵀy when A has an adjoint (else blank); values outside
// [−1, 1] (Fourier magnitudes) are min–max scaled per image; other sizes
// (a 7×7 low-resolution image, a 56×56 magnitude) are resized by nearest
// neighbour; one channel is repeated to C.
func DisplayY(y *tensor.Dense, A interface{}, c, h, w int) *tensor.Dense {
	n := y.Shape()[0]
	if len(y.Shape()) != 4 {
		if adj, ok := A.(interface {
			Adjoint(*tensor.Dense) (*tensor.Dense, error)
		}); ok {
			if x, err := adj.Adjoint(y); err == nil && len(x.Shape()) == 4 {
				y = x
			}
		}
		if len(y.Shape()) != 4 {
			return tensors.New(n, c, h, w)
		}
	}
	yc, yh, yw := y.Shape()[1], y.Shape()[2], y.Shape()[3]
	src := tensors.F32(y)
	out := tensors.New(n, c, h, w)
	dst := tensors.F32(out)
	per := yc * yh * yw
	for i := 0; i < n; i++ {
		img := src[i*per : (i+1)*per]
		lo, hi := float32(-1), float32(1)
		for _, v := range img {
			lo, hi = min(lo, v), max(hi, v)
		}
		scale := float32(1)
		if lo < -1 || hi > 1 {
			lo, hi = img[0], img[0]
			for _, v := range img {
				lo, hi = min(lo, v), max(hi, v)
			}
			scale = 0
			if hi > lo {
				scale = 2 / (hi - lo)
			}
		} else {
			lo = -1
		}
		for ch := 0; ch < c; ch++ {
			sc := min(ch, yc-1)
			for r := 0; r < h; r++ {
				sr := r * yh / h
				for q := 0; q < w; q++ {
					v := img[sc*yh*yw+sr*yw+q*yw/w]
					if scale != 1 {
						v = (v-lo)*scale - 1
					}
					dst[((i*c+ch)*h+r)*w+q] = v
				}
			}
		}
	}
	return out
}
