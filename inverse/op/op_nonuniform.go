package op

import (
	"fmt"
	"math"

	"github.com/diffinv/diffinv/internal/tensors"
	"gorgonia.org/tensor"
)

// NonUniformBlur is a spatially varying blur: y = Σ_k w_k ⊙ (K_k ⊛ x), with
// a few circular convolutions (or correlations, see Orientation; or
// reflect-padded filters, ReflectConv, with boundary reflect) K_k blended by
// smooth weight maps w_k that sum to one at every pixel. The weights are a normalised Gaussian partition of
// unity, w_k ∝ exp(−‖p − c_k‖²/(2ℓ²)), centres c_k evenly on a circle of
// radius 0.3·side about the image centre and ℓ = 0.35·side, so every kernel
// dominates one region and the blur changes smoothly between them. This is
// our physically defined stand-in for DPS's non-uniform (neural, bkse) blur
// model, whose weights are not available. It is linear, so VJP is the
// adjoint Σ_k K_kᵀ(w_k ⊙ g); it has no cheap pseudo-inverse.
type NonUniformBlur struct {
	c, h, w int
	convs   []filterMap
	weights [][]float64
}

// filterMap is one kernel's filter of a NonUniformBlur: CircConv or
// ReflectConv.
type filterMap interface {
	Forward(x *tensor.Dense) (*tensor.Dense, error)
	Adjoint(y *tensor.Dense) (*tensor.Dense, error)
}

// NewNonUniformBlur blends the given kh×kw kernels (each row-major, any
// number ≥ 1, applied by true convolution) over images of the given shape.
func NewNonUniformBlur(shape [3]int, kernels [][]float64, kh, kw int) (*NonUniformBlur, error) {
	return NewNonUniformFilter(shape, kernels, kh, kw, Convolve)
}

// NewNonUniformFilter is NewNonUniformBlur with the kernels' orientation
// (Convolve or Correlate).
func NewNonUniformFilter(shape [3]int, kernels [][]float64, kh, kw int, orient Orientation) (*NonUniformBlur, error) {
	return NewNonUniformBoundary(shape, kernels, kh, kw, orient, BoundaryCircular)
}

// NewNonUniformBoundary is NewNonUniformFilter with the kernels' boundary:
// BoundaryCircular (CircConv) or BoundaryReflect (ReflectConv, each kernel
// applied to the reflect-padded image before the weights blend them).
func NewNonUniformBoundary(shape [3]int, kernels [][]float64, kh, kw int, orient Orientation, b Boundary) (*NonUniformBlur, error) {
	if _, err := ParseFilterBoundary(string(b)); err != nil {
		return nil, fmt.Errorf("op.NewNonUniformBlur: %w", err)
	}
	if err := checkImageShape("op.NewNonUniformBlur", shape); err != nil {
		return nil, err
	}
	if len(kernels) < 1 {
		return nil, fmt.Errorf("op.NewNonUniformBlur: no kernels, want at least one")
	}
	c, h, w := shape[0], shape[1], shape[2]
	o := &NonUniformBlur{c: c, h: h, w: w}
	for i, k := range kernels {
		var cv filterMap
		var err error
		if b == BoundaryReflect {
			cv, err = NewReflectFilter(fmt.Sprintf("blur_nonuniform[%d]", i), shape, k, kh, kw, orient, DefaultReflectPinvIters)
		} else {
			cv, err = NewCircFilter(fmt.Sprintf("blur_nonuniform[%d]", i), shape, k, kh, kw, orient, 0)
		}
		if err != nil {
			return nil, fmt.Errorf("op.NewNonUniformBlur: kernel %d: %w", i, err)
		}
		o.convs = append(o.convs, cv)
	}
	n := len(kernels)
	side := float64(max(h, w))
	ell := 0.35 * side
	o.weights = make([][]float64, n)
	for k := range o.weights {
		o.weights[k] = make([]float64, h*w)
	}
	for i := 0; i < h; i++ {
		for j := 0; j < w; j++ {
			sum := 0.0
			for k := 0; k < n; k++ {
				v := 1.0
				if n > 1 {
					ang := 2 * math.Pi * float64(k) / float64(n)
					ci := float64(h-1)/2 + 0.3*side*math.Sin(ang)
					cj := float64(w-1)/2 + 0.3*side*math.Cos(ang)
					d2 := (float64(i)-ci)*(float64(i)-ci) + (float64(j)-cj)*(float64(j)-cj)
					v = math.Exp(-d2 / (2 * ell * ell))
				}
				o.weights[k][i*w+j] = v
				sum += v
			}
			for k := 0; k < n; k++ {
				o.weights[k][i*w+j] /= sum
			}
		}
	}
	return o, nil
}

// Weights returns a copy of the H×W weight map of kernel k.
func (o *NonUniformBlur) Weights(k int) []float64 {
	if k < 0 || k >= len(o.weights) {
		return nil
	}
	return append([]float64(nil), o.weights[k]...)
}

// InShape is [C, H, W].
func (o *NonUniformBlur) InShape() []int { return []int{o.c, o.h, o.w} }

// OutShape is [C, H, W].
func (o *NonUniformBlur) OutShape() []int { return []int{o.c, o.h, o.w} }

// Forward returns Σ_k w_k ⊙ (K_k ⊛ x).
func (o *NonUniformBlur) Forward(x *tensor.Dense) (*tensor.Dense, error) {
	n, err := checkBatch("blur_nonuniform.Forward x", x, o.InShape())
	if err != nil {
		return nil, err
	}
	out := tensors.Like(x)
	od := tensors.F32(out)
	hw := o.h * o.w
	for k, cv := range o.convs {
		yk, err := cv.Forward(x)
		if err != nil {
			return nil, err
		}
		yd := tensors.F32(yk)
		for i := 0; i < n*o.c; i++ {
			for p := 0; p < hw; p++ {
				od[i*hw+p] += float32(o.weights[k][p]) * yd[i*hw+p]
			}
		}
	}
	return out, nil
}

// Adjoint returns Σ_k K_kᵀ(w_k ⊙ y).
func (o *NonUniformBlur) Adjoint(y *tensor.Dense) (*tensor.Dense, error) {
	n, err := checkBatch("blur_nonuniform.Adjoint y", y, o.OutShape())
	if err != nil {
		return nil, err
	}
	out := tensors.Like(y)
	od := tensors.F32(out)
	yd := tensors.F32(y)
	hw := o.h * o.w
	tmp := tensors.Like(y)
	td := tensors.F32(tmp)
	for k, cv := range o.convs {
		for i := 0; i < n*o.c; i++ {
			for p := 0; p < hw; p++ {
				td[i*hw+p] = float32(o.weights[k][p]) * yd[i*hw+p]
			}
		}
		ak, err := cv.Adjoint(tmp)
		if err != nil {
			return nil, err
		}
		for i, v := range tensors.F32(ak) {
			od[i] += v
		}
	}
	return out, nil
}

// VJP returns Adjoint(g) (the operator is linear); x only fixes the shape.
func (o *NonUniformBlur) VJP(x, g *tensor.Dense) (*tensor.Dense, error) {
	nx, err := checkBatch("blur_nonuniform.VJP x", x, o.InShape())
	if err != nil {
		return nil, err
	}
	ng, err := checkBatch("blur_nonuniform.VJP g", g, o.OutShape())
	if err != nil {
		return nil, err
	}
	if nx != ng {
		return nil, fmt.Errorf("blur_nonuniform.VJP: batch of x is %d but batch of g is %d", nx, ng)
	}
	return o.Adjoint(g)
}
