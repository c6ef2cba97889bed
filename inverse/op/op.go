// Package op holds the forward models y = A(x) + n of diffinv's inverse
// problems: measurement operators (inpainting, super-resolution, blurs,
// colorization, compressed sensing, denoising, phase retrieval, non-uniform
// blur), noise models with their likelihoods, and a registry that builds
// both from a config's name and parameter map.
//
// Every operator works on batches of images x (N×C×H×W float32, in [-1, 1])
// one image at a time: the batch dimension is never mixed. Measurements y are
// 4-D as well, N×(per-image shape of OutShape). Internally every map runs in
// float64 and rounds to float32 at the end. Operators are immutable after
// construction and safe for concurrent use.
//
// Three levels of structure, so a solver asks for what it needs:
//
//   - Operator: Forward and VJP (what DPS needs).
//   - Linear: adds Adjoint and Pinv (what projection and DDNM need).
//   - SVD: adds the singular value decomposition A = U diag(s) Vᵀ in the
//     convention of DDRM's H_functions (what DDRM, DDNM+ and ΠGDM need).
//
// SVD convention. For one image let D = dim x and M = dim y (M ≤ D). Vt maps
// an image batch to spectral coordinates of shape N×D and V maps back; Ut
// maps a measurement batch to N×M and U maps back; Singulars returns M
// values. For i < M, spectral coordinate i of Vt(x) and coordinate i of Ut(y)
// are paired by s[i]: Ut(A x)[i] = s[i]·Vt(x)[i]. Coordinates i ≥ M of Vt(x)
// span the null space (singular value 0); AddZeros pads an N×M vector to N×D
// as DDRM's add_zeros does. Singular values are not sorted and may be zero
// (a masked pixel, a frequency a blur removes). V and U are orthogonal:
// Vt(V(z)) = z and Ut(U(z)) = z.
package op

import (
	"fmt"

	"github.com/diffinv/diffinv/internal/tensors"
	"gorgonia.org/tensor"
)

// Operator is the forward model A of a measurement y = A(x) + n.
type Operator interface {
	// Forward returns A(x) for a batch x (N×C×H×W).
	Forward(x *tensor.Dense) (*tensor.Dense, error)
	// VJP returns (∂A/∂x)ᵀ g at x for a cotangent g shaped like A(x): the
	// adjoint for linear A, a hand-derived backward otherwise.
	VJP(x, g *tensor.Dense) (*tensor.Dense, error)
}

// Linear is a linear operator with its adjoint and a pseudo-inverse.
type Linear interface {
	Operator
	// Adjoint returns Aᵀ y.
	Adjoint(y *tensor.Dense) (*tensor.Dense, error)
	// Pinv returns A† y, the minimum-norm least-squares solution (with the
	// operator's documented truncation of tiny singular values or
	// frequencies).
	Pinv(y *tensor.Dense) (*tensor.Dense, error)
}

// SVD is a linear operator with a cheap exact singular value decomposition,
// in the convention described in the package documentation.
type SVD interface {
	Linear
	Shaped
	// V maps spectral coordinates (N×D) to an image batch (N×C×H×W).
	V(z *tensor.Dense) (*tensor.Dense, error)
	// Vt maps an image batch (N×C×H×W) to spectral coordinates (N×D).
	Vt(x *tensor.Dense) (*tensor.Dense, error)
	// U maps measurement-side spectral coordinates (N×M) to a measurement batch.
	U(z *tensor.Dense) (*tensor.Dense, error)
	// Ut maps a measurement batch to measurement-side spectral coordinates (N×M).
	Ut(y *tensor.Dense) (*tensor.Dense, error)
	// Singulars returns the M singular values (a fresh copy), paired with
	// the first M spectral coordinates of both sides.
	Singulars() []float32
}

// Shaped reports the per-image shapes an operator was built for. Every
// operator of this package implements it.
type Shaped interface {
	// InShape is the per-image shape of x: [C, H, W].
	InShape() []int
	// OutShape is the per-image shape of y (3 dimensions; y batches are
	// N×OutShape).
	OutShape() []int
}

// imageMap maps one image's values (in) to one output's values (out, zeroed
// by the caller). It must not keep either slice.
type imageMap func(in, out []float64)

func prod(s []int) int {
	n := 1
	for _, v := range s {
		n *= v
	}
	return n
}

// checkBatch verifies that t is float32 with shape [N]+per and returns N.
func checkBatch(name string, t *tensor.Dense, per []int) (int, error) {
	if t == nil {
		return 0, fmt.Errorf("%s: nil tensor, want N×%v float32", name, per)
	}
	s := t.Shape()
	if t.Dtype() != tensor.Float32 {
		return 0, fmt.Errorf("%s: dtype %v, want float32", name, t.Dtype())
	}
	if len(s) != len(per)+1 {
		return 0, fmt.Errorf("%s: shape %v, want N×%v", name, []int(s), per)
	}
	for i, v := range per {
		if s[i+1] != v {
			return 0, fmt.Errorf("%s: shape %v, want N×%v", name, []int(s), per)
		}
	}
	if s[0] < 1 {
		return 0, fmt.Errorf("%s: empty batch (shape %v)", name, []int(s))
	}
	return s[0], nil
}

// apply runs f on every image of t (shape [N]+in) and returns the [N]+out
// batch of results.
func apply(name string, t *tensor.Dense, in, out []int, f imageMap) (*tensor.Dense, error) {
	n, err := checkBatch(name, t, in)
	if err != nil {
		return nil, err
	}
	din, dout := prod(in), prod(out)
	src := tensors.F32(t)
	res := tensors.New(append([]int{n}, out...)...)
	dst := tensors.F32(res)
	a := make([]float64, din)
	b := make([]float64, dout)
	for i := 0; i < n; i++ {
		for j, v := range src[i*din : (i+1)*din] {
			a[j] = float64(v)
		}
		for j := range b {
			b[j] = 0
		}
		f(a, b)
		for j, v := range b {
			dst[i*dout+j] = float32(v)
		}
	}
	return res, nil
}

// AddZeros pads measurement-side spectral coordinates z (N×M) with trailing
// zeros to N×d, as DDRM's add_zeros does.
func AddZeros(z *tensor.Dense, d int) (*tensor.Dense, error) {
	s := z.Shape()
	if len(s) != 2 || z.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("op.AddZeros: shape %v dtype %v, want N×M float32", []int(s), z.Dtype())
	}
	if d < s[1] {
		return nil, fmt.Errorf("op.AddZeros: target width %d smaller than M=%d", d, s[1])
	}
	out := tensors.New(s[0], d)
	src, dst := tensors.F32(z), tensors.F32(out)
	for i := 0; i < s[0]; i++ {
		copy(dst[i*d:i*d+s[1]], src[i*s[1]:(i+1)*s[1]])
	}
	return out, nil
}

// linOp is the shared skeleton of the linear operators: per-image shapes and
// per-image maps for A, Aᵀ and A†.
type linOp struct {
	name     string
	in, out  []int
	fwd, adj imageMap
	pinv     imageMap
}

// InShape is the per-image shape of x.
func (o *linOp) InShape() []int { return append([]int(nil), o.in...) }

// OutShape is the per-image shape of y.
func (o *linOp) OutShape() []int { return append([]int(nil), o.out...) }

// Forward returns A x.
func (o *linOp) Forward(x *tensor.Dense) (*tensor.Dense, error) {
	return apply(o.name+".Forward x", x, o.in, o.out, o.fwd)
}

// Adjoint returns Aᵀ y.
func (o *linOp) Adjoint(y *tensor.Dense) (*tensor.Dense, error) {
	return apply(o.name+".Adjoint y", y, o.out, o.in, o.adj)
}

// Pinv returns A† y.
func (o *linOp) Pinv(y *tensor.Dense) (*tensor.Dense, error) {
	return apply(o.name+".Pinv y", y, o.out, o.in, o.pinv)
}

// VJP returns Aᵀ g (x only fixes the batch shape).
func (o *linOp) VJP(x, g *tensor.Dense) (*tensor.Dense, error) {
	nx, err := checkBatch(o.name+".VJP x", x, o.in)
	if err != nil {
		return nil, err
	}
	ng, err := checkBatch(o.name+".VJP g", g, o.out)
	if err != nil {
		return nil, err
	}
	if nx != ng {
		return nil, fmt.Errorf("%s.VJP: batch of x is %d but batch of g is %d", o.name, nx, ng)
	}
	return o.Adjoint(g)
}

// svdOp adds the SVD maps to linOp. D = prod(in), M = prod(out) = len(s).
type svdOp struct {
	linOp
	v, vt, u, ut imageMap
	s            []float64
}

// Singulars returns a copy of the M singular values.
func (o *svdOp) Singulars() []float32 {
	r := make([]float32, len(o.s))
	for i, v := range o.s {
		r[i] = float32(v)
	}
	return r
}

// V maps spectral coordinates to images.
func (o *svdOp) V(z *tensor.Dense) (*tensor.Dense, error) {
	return apply(o.name+".V z", z, []int{prod(o.in)}, o.in, o.v)
}

// Vt maps images to spectral coordinates.
func (o *svdOp) Vt(x *tensor.Dense) (*tensor.Dense, error) {
	return apply(o.name+".Vt x", x, o.in, []int{prod(o.in)}, o.vt)
}

// U maps measurement-side spectral coordinates to measurements.
func (o *svdOp) U(z *tensor.Dense) (*tensor.Dense, error) {
	return apply(o.name+".U z", z, []int{prod(o.out)}, o.out, o.u)
}

// Ut maps measurements to their spectral coordinates.
func (o *svdOp) Ut(y *tensor.Dense) (*tensor.Dense, error) {
	return apply(o.name+".Ut y", y, o.out, []int{prod(o.out)}, o.ut)
}

// svdPinv builds A† = V diag(1/s, s>0) Uᵀ from the per-image SVD maps.
func svdPinv(vm, utm imageMap, s []float64, d int) imageMap {
	return func(in, out []float64) {
		z := make([]float64, len(s))
		utm(in, z)
		full := make([]float64, d)
		for i, sv := range s {
			if sv > 0 {
				full[i] = z[i] / sv
			}
		}
		vm(full, out)
	}
}

// svdApply builds A = U diag(s) Vᵀ from the SVD maps (used where no direct
// forward is simpler).
func svdApply(um, vtm imageMap, s []float64, d int) imageMap {
	return func(in, out []float64) {
		full := make([]float64, d)
		vtm(in, full)
		z := make([]float64, len(s))
		for i, sv := range s {
			z[i] = sv * full[i]
		}
		um(z, out)
	}
}

// svdAdjoint builds Aᵀ = V diag(s) Uᵀ from the SVD maps.
func svdAdjoint(vm, utm imageMap, s []float64, d int) imageMap {
	return func(in, out []float64) {
		z := make([]float64, len(s))
		utm(in, z)
		full := make([]float64, d)
		for i, sv := range s {
			full[i] = sv * z[i]
		}
		vm(full, out)
	}
}

func identityMap(in, out []float64) { copy(out, in) }
