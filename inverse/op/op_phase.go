package op

import (
	"fmt"
	"math"
	"math/cmplx"

	"github.com/diffinv/diffinv/tensors"
	"gorgonia.org/tensor"
)

// PhaseRetrieval is the Fourier phase retrieval operator
// y = |F(pad((x+1)/2))|, per channel: the image is mapped to [0, 1] (as in
// the DPS-derived code bases, so that ER/HIO's nonnegativity holds), zero
// padded by Pad pixels on every side, transformed by the orthonormal 2-D
// DFT, and the magnitudes are returned fftshifted (DC at the centre, as
// DPS's fft2_m). Oversampling o gives Pad = round(o/8·side): DPS's o = 2
// pads a quarter of the side on each side (64 px at 256). Channels are not
// summed: y has per-image shape [C, H+2·Pad, W+2·Pad].
type PhaseRetrieval struct {
	c, h, w, pad int
}

// NewPhaseRetrieval builds the operator for images of the given shape with
// oversampling factor oversample (> 0; DPS uses 2).
func NewPhaseRetrieval(shape [3]int, oversample float64) (*PhaseRetrieval, error) {
	if err := checkImageShape("op.NewPhaseRetrieval", shape); err != nil {
		return nil, err
	}
	if !(oversample > 0) || math.IsInf(oversample, 0) {
		return nil, fmt.Errorf("op.NewPhaseRetrieval: oversample %v, want > 0", oversample)
	}
	if shape[1] != shape[2] {
		return nil, fmt.Errorf("op.NewPhaseRetrieval: image %d×%d, want square", shape[1], shape[2])
	}
	return &PhaseRetrieval{c: shape[0], h: shape[1], w: shape[2], pad: int(math.Round(oversample / 8 * float64(shape[1])))}, nil
}

// Pad is the zero padding on each side, in pixels.
func (o *PhaseRetrieval) Pad() int { return o.pad }

// InShape is [C, H, W].
func (o *PhaseRetrieval) InShape() []int { return []int{o.c, o.h, o.w} }

// OutShape is [C, H+2·Pad, W+2·Pad].
func (o *PhaseRetrieval) OutShape() []int { return []int{o.c, o.h + 2*o.pad, o.w + 2*o.pad} }

// spectrum returns the orthonormal DFT of pad((x+1)/2) for one channel.
func (o *PhaseRetrieval) spectrum(f *FFT2, x []float64) []complex128 {
	hp, wp := o.h+2*o.pad, o.w+2*o.pad
	buf := make([]complex128, hp*wp)
	for i := 0; i < o.h; i++ {
		for j := 0; j < o.w; j++ {
			buf[(i+o.pad)*wp+j+o.pad] = complex((x[i*o.w+j]+1)/2, 0)
		}
	}
	f.Forward(buf)
	sc := complex(1/math.Sqrt(float64(hp*wp)), 0)
	for i := range buf {
		buf[i] *= sc
	}
	return buf
}

// shiftIndex maps an unshifted frequency (k, l) to its fftshifted position.
func shiftIndex(k, l, hp, wp int) int { return ((k+hp/2)%hp)*wp + (l+wp/2)%wp }

// Forward returns |F(pad((x+1)/2))| (fftshifted) per channel.
func (o *PhaseRetrieval) Forward(x *tensor.Dense) (*tensor.Dense, error) {
	hp, wp := o.h+2*o.pad, o.w+2*o.pad
	return apply("phase_retrieval.Forward x", x, o.InShape(), o.OutShape(), func(in, out []float64) {
		f := NewFFT2(hp, wp)
		for ch := 0; ch < o.c; ch++ {
			z := o.spectrum(f, in[ch*o.h*o.w:(ch+1)*o.h*o.w])
			for k := 0; k < hp; k++ {
				for l := 0; l < wp; l++ {
					out[ch*hp*wp+shiftIndex(k, l, hp, wp)] = cmplx.Abs(z[k*wp+l])
				}
			}
		}
	})
}

// VJP returns (∂y/∂x)ᵀ g = ½·crop(Re(Fᴴ(g ⊙ Z/|Z|))) with Z = F(pad((x+1)/2));
// frequencies with Z = 0 (where |·| is not differentiable) contribute 0.
func (o *PhaseRetrieval) VJP(x, g *tensor.Dense) (*tensor.Dense, error) {
	nx, err := checkBatch("phase_retrieval.VJP x", x, o.InShape())
	if err != nil {
		return nil, err
	}
	ng, err := checkBatch("phase_retrieval.VJP g", g, o.OutShape())
	if err != nil {
		return nil, err
	}
	if nx != ng {
		return nil, fmt.Errorf("phase_retrieval.VJP: batch of x is %d but batch of g is %d", nx, ng)
	}
	hp, wp := o.h+2*o.pad, o.w+2*o.pad
	dx, dg := prod(o.InShape()), prod(o.OutShape())
	xs, gs := tensors.F32(x), tensors.F32(g)
	res := tensors.Like(x)
	rs := tensors.F32(res)
	f := NewFFT2(hp, wp)
	xi := make([]float64, o.h*o.w)
	sc := math.Sqrt(float64(hp * wp)) // Fᴴ = √N · (unnormalised inverse / N)
	for n := 0; n < nx; n++ {
		for ch := 0; ch < o.c; ch++ {
			for i := range xi {
				xi[i] = float64(xs[n*dx+ch*o.h*o.w+i])
			}
			z := o.spectrum(f, xi)
			for k := 0; k < hp; k++ {
				for l := 0; l < wp; l++ {
					v := z[k*wp+l]
					a := cmplx.Abs(v)
					if a == 0 {
						z[k*wp+l] = 0
						continue
					}
					gv := float64(gs[n*dg+ch*hp*wp+shiftIndex(k, l, hp, wp)])
					z[k*wp+l] = v * complex(gv/a, 0)
				}
			}
			f.Inverse(z)
			for i := 0; i < o.h; i++ {
				for j := 0; j < o.w; j++ {
					rs[n*dx+ch*o.h*o.w+i*o.w+j] = float32(0.5 * sc * real(z[(i+o.pad)*wp+j+o.pad]))
				}
			}
		}
	}
	return res, nil
}
