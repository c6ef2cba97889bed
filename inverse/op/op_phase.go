package op

import (
	"fmt"
	"math"
	"math/cmplx"

	"github.com/diffinv/diffinv/internal/par"
	"github.com/diffinv/diffinv/internal/tensors"
	"gorgonia.org/tensor"
)

// PhaseRetrieval is the Fourier phase retrieval operator
// y = |F(pad(m(x)))|, per channel: the image is mapped by m (Domain),
// zero padded by Pad pixels on every side, transformed by the orthonormal
// 2-D DFT, and the magnitudes are returned fftshifted (DC at the centre, as
// DPS's fft2_m). Channels are not summed: y has per-image shape
// [C, H+2·Pad, W+2·Pad].
//
// Two choices differ from DPS's code (PhaseRetrievalOperator), both named
// options. Domain: diffinv's default DomainUnit maps x to [0, 1] first,
// m(x) = (x+1)/2 (our choice, so that ER/HIO's nonnegativity constraint
// holds), where DPS takes |F| of the [−1, 1] image as it is (DomainSigned).
// Padding: the default is round(oversample/8·side) per side, a quarter of
// the side for DPS's oversample 2 (64 px at 256, 7 px at 28); DPS's code
// computes int(oversample/8·256) = 64 px whatever the image size, which
// NewPhaseRetrievalPad(shape, 64, …) reproduces.
type PhaseRetrieval struct {
	c, h, w, pad int
	domain       Domain
}

// Domain is the map phase retrieval applies to the image before padding.
type Domain string

// The domains of phase retrieval (the "domain" parameter).
const (
	// DomainUnit maps the image to [0, 1]: (x+1)/2 (diffinv's default).
	DomainUnit Domain = "unit"
	// DomainSigned uses the [−1, 1] image as it is (DPS's code).
	DomainSigned Domain = "signed"
)

// ParseDomain checks a phase retrieval domain name.
func ParseDomain(s string) (Domain, error) {
	switch d := Domain(s); d {
	case DomainUnit, DomainSigned:
		return d, nil
	}
	return "", fmt.Errorf("domain %q, want %q ((x+1)/2, diffinv) or %q (x as it is, DPS's code)", s, DomainUnit, DomainSigned)
}

// NewPhaseRetrieval builds the operator for images of the given shape with
// oversampling factor oversample (> 0; DPS uses 2): padding
// round(oversample/8·side) per side, DomainUnit.
func NewPhaseRetrieval(shape [3]int, oversample float64) (*PhaseRetrieval, error) {
	if !(oversample > 0) || math.IsInf(oversample, 0) {
		return nil, fmt.Errorf("op.NewPhaseRetrieval: oversample %v, want > 0", oversample)
	}
	if err := checkImageShape("op.NewPhaseRetrieval", shape); err != nil {
		return nil, err
	}
	return NewPhaseRetrievalPad(shape, int(math.Round(oversample/8*float64(shape[1]))), DomainUnit)
}

// NewPhaseRetrievalPad builds the operator with pad pixels of zero padding
// per side (≥ 0) and the given domain.
func NewPhaseRetrievalPad(shape [3]int, pad int, d Domain) (*PhaseRetrieval, error) {
	if err := checkImageShape("op.NewPhaseRetrieval", shape); err != nil {
		return nil, err
	}
	if shape[1] != shape[2] {
		return nil, fmt.Errorf("op.NewPhaseRetrieval: image %d×%d, want square", shape[1], shape[2])
	}
	if pad < 0 {
		return nil, fmt.Errorf("op.NewPhaseRetrieval: pad %d, want ≥ 0", pad)
	}
	if _, err := ParseDomain(string(d)); err != nil {
		return nil, fmt.Errorf("op.NewPhaseRetrieval: %w", err)
	}
	return &PhaseRetrieval{c: shape[0], h: shape[1], w: shape[2], pad: pad, domain: d}, nil
}

// Domain reports the map applied before padding.
func (o *PhaseRetrieval) Domain() Domain { return o.domain }

// Pad is the zero padding on each side, in pixels.
func (o *PhaseRetrieval) Pad() int { return o.pad }

// InShape is [C, H, W].
func (o *PhaseRetrieval) InShape() []int { return []int{o.c, o.h, o.w} }

// OutShape is [C, H+2·Pad, W+2·Pad].
func (o *PhaseRetrieval) OutShape() []int { return []int{o.c, o.h + 2*o.pad, o.w + 2*o.pad} }

// spectrum returns the orthonormal DFT of pad(m(x)) for one channel.
func (o *PhaseRetrieval) spectrum(f *FFT2, x []float64) []complex128 {
	hp, wp := o.h+2*o.pad, o.w+2*o.pad
	buf := make([]complex128, hp*wp)
	for i := 0; i < o.h; i++ {
		for j := 0; j < o.w; j++ {
			v := x[i*o.w+j]
			if o.domain != DomainSigned {
				v = (v + 1) / 2
			}
			buf[(i+o.pad)*wp+j+o.pad] = complex(v, 0)
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

// Forward returns |F(pad(m(x)))| (fftshifted) per channel, the images
// side by side on the cores (par.Items: each image computed as it would be alone).
func (o *PhaseRetrieval) Forward(x *tensor.Dense) (*tensor.Dense, error) {
	n, err := checkBatch("phase_retrieval.Forward x", x, o.InShape())
	if err != nil {
		return nil, err
	}
	hp, wp := o.h+2*o.pad, o.w+2*o.pad
	dx, dy := prod(o.InShape()), prod(o.OutShape())
	xs := tensors.F32(x)
	res := tensors.New(append([]int{n}, o.OutShape()...)...)
	rs := tensors.F32(res)
	par.Items(n, 0, func(next func() (int, bool)) {
		f := NewFFT2(hp, wp)
		xi := make([]float64, o.h*o.w)
		for img, ok := next(); ok; img, ok = next() {
			for ch := 0; ch < o.c; ch++ {
				for i := range xi {
					xi[i] = float64(xs[img*dx+ch*o.h*o.w+i])
				}
				z := o.spectrum(f, xi)
				for k := 0; k < hp; k++ {
					for l := 0; l < wp; l++ {
						rs[img*dy+ch*hp*wp+shiftIndex(k, l, hp, wp)] = float32(cmplx.Abs(z[k*wp+l]))
					}
				}
			}
		}
	})
	return res, nil
}

// VJP returns (∂y/∂x)ᵀ g = m′·crop(Re(Fᴴ(g ⊙ Z/|Z|))) with Z = F(pad(m(x)))
// and m′ = ½ (DomainUnit) or 1 (DomainSigned);
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
	sc := math.Sqrt(float64(hp * wp)) // Fᴴ = √N · (unnormalised inverse / N)
	dm := 0.5                         // dm/dx of the domain map
	if o.domain == DomainSigned {
		dm = 1
	}
	par.Items(nx, 0, func(next func() (int, bool)) {
		f := NewFFT2(hp, wp)
		xi := make([]float64, o.h*o.w)
		for n, ok := next(); ok; n, ok = next() {
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
						rs[n*dx+ch*o.h*o.w+i*o.w+j] = float32(dm * sc * real(z[(i+o.pad)*wp+j+o.pad]))
					}
				}
			}
		}
	})
	return res, nil
}
