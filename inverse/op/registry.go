package op

import (
	"fmt"
	"math"
	"math/rand"
	"sort"
	"strings"

	prm "github.com/diffinv/diffinv/internal/params"
)

// params reads one operator's parameter map (internal/params: the reader
// the solver registry's options share).
type params struct{ *prm.Reader }

func newParams(op string, m map[string]any) *params {
	return &params{prm.New(fmt.Sprintf("operator %q", op), "parameter", m)}
}

// orientation reads the "orientation" parameter of a kernel-based
// operator (default Correlate, as PyTorch's conv2d and so DPS).
func (p *params) orientation() Orientation {
	v := p.Str("orientation", string(Correlate))
	o, err := ParseOrientation(v)
	if err != nil && p.Err() == nil {
		p.Failf("parameter \"orientation\": %w", err)
	}
	return o
}

// filterBoundary holds the boundary parameters of a non-separable blur
// (blur_motion, blur_file): boundary (circular | reflect), pinv_tol (the
// circular A†'s relative frequency cut-off, 0.03) and pinv_iters (the
// reflect A†'s conjugate-gradient cap, DefaultReflectPinvIters).
type filterBoundary struct {
	boundary Boundary
	tol      float64
	iters    int
}

// filterBoundary reads boundary, pinv_tol and pinv_iters; each of the last
// two belongs to one boundary, and giving it with the other is an error.
func (p *params) filterBoundary() filterBoundary {
	fb := filterBoundary{tol: 3e-2, iters: DefaultReflectPinvIters}
	b, err := ParseFilterBoundary(p.Str("boundary", string(BoundaryCircular)))
	if err != nil && p.Err() == nil {
		p.Failf("parameter \"boundary\": %w", err)
	}
	fb.boundary = b
	hasTol, hasIters := p.Has("pinv_tol"), p.Has("pinv_iters")
	fb.tol = p.Float("pinv_tol", fb.tol)
	fb.iters = p.Int("pinv_iters", fb.iters)
	if p.Err() == nil && b == BoundaryReflect && hasTol {
		p.Failf("parameter \"pinv_tol\" (%v) is the circular boundary's Fourier cut-off; with boundary reflect A† is conjugate gradients, capped by \"pinv_iters\"", fb.tol)
	}
	if p.Err() == nil && b == BoundaryCircular && hasIters {
		p.Failf("parameter \"pinv_iters\" (%d) applies to boundary reflect; the circular boundary's A† is exact in Fourier space (cut-off \"pinv_tol\")", fb.iters)
	}
	return fb
}

// build makes the filter: CircFilter (circular) or ReflectFilter.
func (fb filterBoundary) build(name string, s [3]int, k []float64, kh, kw int, orient Orientation) (Operator, error) {
	if fb.boundary == BoundaryReflect {
		return NewReflectFilter(name, s, k, kh, kw, orient, fb.iters)
	}
	return NewCircFilter(name, s, k, kh, kw, orient, fb.tol)
}

// blurOptions reads the parameters shared by the separable blurs:
// orientation (correlate), boundary (zero), taps (all | ddrm), forward
// (exact | svd), svd_trunc (product) and svd_tol (3e-2).
func (p *params) blurOptions() (BlurOptions, float64) {
	var o BlurOptions
	o.Orientation = p.orientation()
	tol := p.Float("svd_tol", 3e-2)
	b, err := ParseBoundary(p.Str("boundary", string(BoundaryZero)))
	if err != nil && p.Err() == nil {
		p.Failf("parameter \"boundary\": %w", err)
	}
	o.Boundary = b
	tr, err := ParseTruncation(p.Str("svd_trunc", string(TruncProduct)))
	if err != nil && p.Err() == nil {
		p.Failf("parameter \"svd_trunc\": %w", err)
	}
	o.Trunc = tr
	switch f := p.Str("forward", "exact"); f {
	case "exact":
	case "svd":
		o.SVDForward = true
	default:
		if p.Err() == nil {
			p.Failf("parameter \"forward\": %q, want \"exact\" or \"svd\" (Forward and Adjoint through the truncated SVD, as DDRM's/DDNM's A and At)", f)
		}
	}
	switch t := p.Str("taps", "all"); t {
	case "all":
	case "ddrm":
		o.DropLastTap = true
	default:
		if p.Err() == nil {
			p.Failf("parameter \"taps\": %q, want \"all\" or \"ddrm\" (DDRM's/DDNM's Deblurring matrix, which leaves out the last tap)", t)
		}
	}
	return o, tol
}

// gaussKernel builds a 1-D Gaussian factor: "sampled" (Gaussian1D, the
// default) or "scipy" (GaussianScipy1D, DPS's Blurkernel).
func gaussKernel(form string, size int, sigma float64) ([]float64, error) {
	switch form {
	case "sampled":
		return Gaussian1D(size, sigma)
	case "scipy":
		return GaussianScipy1D(size, sigma)
	}
	return nil, fmt.Errorf("kernel %q, want \"sampled\" (exp(−t²/2σ²) on the window, normalised) or \"scipy\" (scipy.ndimage.gaussian_filter of a delta, DPS's Blurkernel)", form)
}

type builder func(p *params, shape [3]int, rng *rand.Rand) (Operator, error)

func needRNG(name string, rng *rand.Rand) error {
	if rng == nil {
		return fmt.Errorf("operator %q draws random numbers: pass a seeded *rand.Rand, got nil", name)
	}
	return nil
}

// registry maps operator names to their builders. Each builder reads every
// parameter it accepts before the first error return, so unknown keys are
// reported against the full valid list.
var registry = map[string]builder{
	"denoise": func(p *params, s [3]int, _ *rand.Rand) (Operator, error) {
		if err := p.Done(); err != nil {
			return nil, err
		}
		return NewIdentity(s)
	},
	"inpaint_box": func(p *params, s [3]int, rng *rand.Rand) (Operator, error) {
		size := p.Int("size", s[1]/2)
		pos := p.Str("position", "random")
		hasT, hasL := p.Has("top"), p.Has("left")
		top, left := p.Int("top", 0), p.Int("left", 0)
		if err := p.Done(); err != nil {
			return nil, err
		}
		switch {
		case hasT || hasL:
			if !(hasT && hasL) {
				return nil, fmt.Errorf("operator \"inpaint_box\": give both top and left, or neither")
			}
		case pos == "center":
			top, left = (s[1]-size)/2, (s[2]-size)/2
		case pos == "random":
			if err := needRNG("inpaint_box", rng); err != nil {
				return nil, err
			}
			var err error
			if top, left, err = RandomBoxCorner(s[1], s[2], size, s[1]/16, rng); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("operator \"inpaint_box\": position %q, want \"random\" or \"center\"", pos)
		}
		return NewInpaintBox(s, size, top, left)
	},
	"inpaint_random": func(p *params, s [3]int, rng *rand.Rand) (Operator, error) {
		miss := p.Float("missing", 0.92)
		if err := p.Done(); err != nil {
			return nil, err
		}
		if err := needRNG("inpaint_random", rng); err != nil {
			return nil, err
		}
		return NewInpaintRandom(s, miss, rng)
	},
	"inpaint_file": func(p *params, s [3]int, _ *rand.Rand) (Operator, error) {
		path := p.Str("path", "")
		if err := p.Done(); err != nil {
			return nil, err
		}
		if path == "" {
			return nil, fmt.Errorf("operator \"inpaint_file\": parameter \"path\" is required (a .png or .npy mask)")
		}
		m, err := LoadMask(path, s[1], s[2])
		if err != nil {
			return nil, err
		}
		return NewInpaintMask(s, m)
	},
	"sr_avgpool": func(p *params, s [3]int, _ *rand.Rand) (Operator, error) {
		k := p.Int("factor", 4)
		if err := p.Done(); err != nil {
			return nil, err
		}
		return NewSRAvgPool(s, k)
	},
	"sr_bicubic": func(p *params, s [3]int, _ *rand.Rand) (Operator, error) {
		k := p.Int("factor", 4)
		if err := p.Done(); err != nil {
			return nil, err
		}
		return NewSRBicubic(s, k)
	},
	"blur_gauss": func(p *params, s [3]int, _ *rand.Rand) (Operator, error) {
		size := p.Int("size", ScaledOddSize(61, s[1]))
		sigma := p.Float("sigma", 3*float64(s[1])/256)
		form := p.Str("kernel", "sampled")
		o, tol := p.blurOptions()
		if err := p.Done(); err != nil {
			return nil, err
		}
		k, err := gaussKernel(form, size, sigma)
		if err != nil {
			return nil, fmt.Errorf("operator \"blur_gauss\": %w", err)
		}
		return NewSeparableBlurOpts(fmt.Sprintf("blur_gauss(%d,σ=%g)", size, sigma), s, k, k, tol, o)
	},
	"blur_aniso": func(p *params, s [3]int, _ *rand.Rand) (Operator, error) {
		size := p.Int("size", ScaledOddSize(61, s[1]))
		sh := p.Float("sigma_h", 20*float64(s[1])/256)
		sw := p.Float("sigma_w", 1*float64(s[2])/256)
		form := p.Str("kernel", "sampled")
		o, tol := p.blurOptions()
		if err := p.Done(); err != nil {
			return nil, err
		}
		kh, err := gaussKernel(form, size, sh)
		if err != nil {
			return nil, fmt.Errorf("operator \"blur_aniso\": sigma_h: %w", err)
		}
		kw, err := gaussKernel(form, size, sw)
		if err != nil {
			return nil, fmt.Errorf("operator \"blur_aniso\": sigma_w: %w", err)
		}
		return NewSeparableBlurOpts(fmt.Sprintf("blur_aniso(%d,σ=%g,%g)", size, sh, sw), s, kh, kw, tol, o)
	},
	"blur_uniform": func(p *params, s [3]int, _ *rand.Rand) (Operator, error) {
		size := p.Int("size", ScaledOddSize(9, s[1]))
		o, tol := p.blurOptions()
		if err := p.Done(); err != nil {
			return nil, err
		}
		if size < 1 || size%2 != 1 {
			return nil, fmt.Errorf("operator \"blur_uniform\": size %d, want a positive odd number", size)
		}
		k := make([]float64, size)
		for i := range k {
			k[i] = 1 / float64(size)
		}
		return NewSeparableBlurOpts(fmt.Sprintf("blur_uniform(%d)", size), s, k, k, tol, o)
	},
	"blur_motion": func(p *params, s [3]int, rng *rand.Rand) (Operator, error) {
		size := p.Int("size", ScaledOddSize(61, s[1]))
		inten := p.Float("intensity", 0.5)
		orient := p.orientation()
		fb := p.filterBoundary()
		if err := p.Done(); err != nil {
			return nil, err
		}
		if err := needRNG("blur_motion", rng); err != nil {
			return nil, err
		}
		k, err := MotionKernel(size, inten, rng)
		if err != nil {
			return nil, err
		}
		return fb.build(fmt.Sprintf("blur_motion(%d,%g)", size, inten), s, Rot180(k, size, size), size, size, orient)
	},
	"blur_file": func(p *params, s [3]int, _ *rand.Rand) (Operator, error) {
		path := p.Str("path", "")
		idx := p.Int("index", 0)
		orient := p.orientation()
		fb := p.filterBoundary()
		if err := p.Done(); err != nil {
			return nil, err
		}
		if path == "" {
			return nil, fmt.Errorf("operator \"blur_file\": parameter \"path\" is required (a .npy kernel)")
		}
		k, kh, kw, err := LoadKernel(path, idx)
		if err != nil {
			return nil, err
		}
		return fb.build("blur_file("+path+")", s, k, kh, kw, orient)
	},
	"blur_nonuniform": func(p *params, s [3]int, rng *rand.Rand) (Operator, error) {
		n := p.Int("kernels", 4)
		size := p.Int("size", ScaledOddSize(61, s[1]))
		inten := p.Float("intensity", 0.5)
		orient := p.orientation()
		b, err := ParseFilterBoundary(p.Str("boundary", string(BoundaryCircular)))
		if err != nil && p.Err() == nil {
			p.Failf("parameter \"boundary\": %w", err)
		}
		if err := p.Done(); err != nil {
			return nil, err
		}
		if err := needRNG("blur_nonuniform", rng); err != nil {
			return nil, err
		}
		if n < 1 {
			return nil, fmt.Errorf("operator \"blur_nonuniform\": kernels %d, want ≥ 1", n)
		}
		ks := make([][]float64, n)
		for i := range ks {
			k, err := MotionKernel(size, inten, rng)
			if err != nil {
				return nil, err
			}
			ks[i] = Rot180(k, size, size)
		}
		return NewNonUniformBoundary(s, ks, size, size, orient, b)
	},
	"colorize": func(p *params, s [3]int, _ *rand.Rand) (Operator, error) {
		wts := p.Str("weights", "equal")
		if err := p.Done(); err != nil {
			return nil, err
		}
		switch wts {
		case "equal":
			return NewColorize(s)
		case "ddnm":
			return NewColorizeWeights(s, DDNMGrayWeights)
		}
		return nil, fmt.Errorf("operator \"colorize\": weights %q, want \"equal\" (1/3 each) or \"ddnm\" (DDNM's SVD Colorization: 0.3333, 0.3334, 0.3333)", wts)
	},
	"cs_walsh": func(p *params, s [3]int, rng *rand.Rand) (Operator, error) {
		r := p.Float("ratio", 0.25)
		if err := p.Done(); err != nil {
			return nil, err
		}
		if err := needRNG("cs_walsh", rng); err != nil {
			return nil, err
		}
		return NewCSWalsh(s, r, rng)
	},
	"cs_block": func(p *params, s [3]int, rng *rand.Rand) (Operator, error) {
		r := p.Float("ratio", 0.25)
		b := p.Int("block", 4)
		if err := p.Done(); err != nil {
			return nil, err
		}
		if err := needRNG("cs_block", rng); err != nil {
			return nil, err
		}
		return NewCSBlock(s, r, b, rng)
	},
	"phase_retrieval": func(p *params, s [3]int, _ *rand.Rand) (Operator, error) {
		o := p.Float("oversample", 2)
		hasPad := p.Has("pad")
		pad := p.Int("pad", 0)
		dom := p.Str("domain", string(DomainUnit))
		if err := p.Done(); err != nil {
			return nil, err
		}
		if hasPad && p.Has("oversample") {
			return nil, fmt.Errorf("operator \"phase_retrieval\": give oversample or pad, not both (pad %d px fixes the padding; oversample %g sets it to round(oversample/8·side))", pad, o)
		}
		d, err := ParseDomain(dom)
		if err != nil {
			return nil, fmt.Errorf("operator \"phase_retrieval\": %w", err)
		}
		if !hasPad {
			if !(o > 0) || math.IsInf(o, 0) {
				return nil, fmt.Errorf("operator \"phase_retrieval\": oversample %v, want > 0", o)
			}
			pad = int(math.Round(o / 8 * float64(s[1])))
		}
		return NewPhaseRetrievalPad(s, pad, d)
	},
}

// Names lists the registered operator names, sorted.
func Names() []string {
	r := make([]string, 0, len(registry))
	for k := range registry {
		r = append(r, k)
	}
	sort.Strings(r)
	return r
}

// New builds the operator registered under name (measurement.operator.name)
// for images of imageShape [C, H, W], from its parameter map
// (measurement.operator.*; nil for all defaults). Random operators draw from
// rng. Unknown names list the valid ones; unknown or ill-typed parameters
// are errors naming the key. Defaults are DPS's settings scaled to the image
// side H: blur kernels of ScaledOddSize(61, H), Gaussian σ = 3·H/256,
// anisotropic σ = 20·H/256 and 1·H/256, uniform size ScaledOddSize(9, H),
// box of side H/2 at a random position (margin H/16), 92% missing pixels,
// ×4 SR, motion intensity 0.5, oversampling 2, CS ratio 0.25 (block 4),
// singular value / frequency truncation 3e-2 for blurs. Kernels are
// correlated (orientation: correlate, PyTorch's conv2d as in DPS) unless
// orientation: convolve (DiffPIR's true convolution) is given; separable
// blurs take boundary, taps, svd_trunc and forward to match DPS's or
// DDRM's/DDNM's operators, and the non-separable blurs boundary: reflect
// for DPS's reflect-padded blur (inverse/op/README.md lists them).
func New(name string, param map[string]any, imageShape [3]int, rng *rand.Rand) (Operator, error) {
	b, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("unknown operator %q (valid: %s)", name, strings.Join(Names(), ", "))
	}
	if err := checkImageShape("op.New("+name+")", imageShape); err != nil {
		return nil, err
	}
	if param == nil {
		param = map[string]any{}
	}
	return b(newParams(name, param), imageShape, rng)
}

// NoiseNames lists the registered noise names.
func NoiseNames() []string { return []string{"clean", "gaussian", "poisson"} }

// NewNoise builds the noise model measurement.noise.name with its sigma
// (gaussian) or rate (poisson); the parameter the model does not use is
// ignored.
func NewNoise(name string, sigma, rate float64) (Noise, error) {
	switch name {
	case "clean", "none", "":
		return NewGaussian(0)
	case "gaussian":
		return NewGaussian(sigma)
	case "poisson":
		return NewPoisson(rate)
	}
	return nil, fmt.Errorf("unknown noise %q (valid: %s)", name, strings.Join(NoiseNames(), ", "))
}

// revisions numbers the changes of an operator's output for the same
// parameters (see solve.Revision); absent operators are at revision 1.
var revisions = map[string]int{
	// 2: the kernel is cross-correlated by default (orientation: correlate,
	// PyTorch's conv2d as in the DPS code), where revision 1 convolved.
	"blur_file": 2,
}

// Revision returns the revision of the operator registered under name.
func Revision(name string) int {
	if r, ok := revisions[name]; ok {
		return r
	}
	return 1
}
