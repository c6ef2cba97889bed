package op

import (
	"fmt"
	"math"
	"math/rand"
)

func checkImageShape(name string, shape [3]int) error {
	if shape[0] < 1 || shape[1] < 1 || shape[2] < 1 {
		return fmt.Errorf("%s: image shape %v, want positive [C H W]", name, shape)
	}
	return nil
}

// NewIdentity returns the denoising operator A = I on images of the given
// [C, H, W] shape. Its SVD is V = U = I with all singular values 1.
func NewIdentity(shape [3]int) (SVD, error) {
	if err := checkImageShape("op.NewIdentity", shape); err != nil {
		return nil, err
	}
	in := shape[:]
	d := prod(in)
	s := make([]float64, d)
	for i := range s {
		s[i] = 1
	}
	return &svdOp{
		linOp: linOp{name: "denoise", in: in, out: in, fwd: identityMap, adj: identityMap, pinv: identityMap},
		v:     identityMap, vt: identityMap, u: identityMap, ut: identityMap, s: s,
	}, nil
}

// Inpaint is the inpainting operator y = m ⊙ x for a per-pixel mask m ∈
// {0, 1}^{H×W} (1 = observed) shared by all channels. y keeps the image's
// shape with zeros at missing pixels (as in DPS and DDNM). Its SVD is
// V = U = I with singular values m (per channel), so A† = Aᵀ = A.
type Inpaint struct {
	svdOp
	mask []float64
}

// Mask returns a copy of the H×W mask (row-major, 1 = observed).
func (o *Inpaint) Mask() []float32 {
	r := make([]float32, len(o.mask))
	for i, v := range o.mask {
		r[i] = float32(v)
	}
	return r
}

// NewInpaintMask builds the inpainting operator for images of shape [C, H, W]
// from a row-major H×W mask with values 0 (missing) or 1 (observed).
func NewInpaintMask(shape [3]int, mask []float32) (*Inpaint, error) {
	if err := checkImageShape("op.NewInpaintMask", shape); err != nil {
		return nil, err
	}
	c, h, w := shape[0], shape[1], shape[2]
	if len(mask) != h*w {
		return nil, fmt.Errorf("op.NewInpaintMask: mask has %d values, want H×W = %d×%d = %d", len(mask), h, w, h*w)
	}
	m := make([]float64, h*w)
	for i, v := range mask {
		if v != 0 && v != 1 {
			return nil, fmt.Errorf("op.NewInpaintMask: mask value %v at %d, want 0 or 1", v, i)
		}
		m[i] = float64(v)
	}
	s := make([]float64, c*h*w)
	for ch := 0; ch < c; ch++ {
		copy(s[ch*h*w:], m)
	}
	mul := func(in, out []float64) {
		for i, v := range in {
			out[i] = v * s[i]
		}
	}
	in := shape[:]
	return &Inpaint{
		svdOp: svdOp{
			linOp: linOp{name: "inpaint", in: in, out: in, fwd: mul, adj: mul, pinv: mul},
			v:     identityMap, vt: identityMap, u: identityMap, ut: identityMap, s: s,
		},
		mask: m,
	}, nil
}

// NewInpaintBox masks out a size×size box whose top-left corner is
// (top, left); the rest is observed.
func NewInpaintBox(shape [3]int, size, top, left int) (*Inpaint, error) {
	h, w := shape[1], shape[2]
	if size < 1 || top < 0 || left < 0 || top+size > h || left+size > w {
		return nil, fmt.Errorf("op.NewInpaintBox: box of size %d at (%d,%d) does not fit in %d×%d", size, top, left, h, w)
	}
	m := make([]float32, h*w)
	for i := range m {
		m[i] = 1
	}
	for i := top; i < top+size; i++ {
		for j := left; j < left+size; j++ {
			m[i*w+j] = 0
		}
	}
	return NewInpaintMask(shape, m)
}

// RandomBoxCorner draws a box's top-left corner as DPS's random_sq_bbox
// does: top uniform in [margin, h−margin−size), left likewise (DPS uses a
// margin of 16 px at 256 px); when that range is empty but the box fits at
// the margin, the margin itself.
func RandomBoxCorner(h, w, size, margin int, rng *rand.Rand) (top, left int, err error) {
	if rng == nil {
		return 0, 0, fmt.Errorf("op.RandomBoxCorner: nil rng")
	}
	if size < 1 || margin < 0 {
		return 0, 0, fmt.Errorf("op.RandomBoxCorner: size %d, margin %d: want size ≥ 1, margin ≥ 0", size, margin)
	}
	nT, nL := h-margin-size-margin, w-margin-size-margin
	if nT < 0 || nL < 0 {
		return 0, 0, fmt.Errorf("op.RandomBoxCorner: box %d with margin %d does not fit in %d×%d", size, margin, h, w)
	}
	top, left = margin, margin
	if nT > 0 {
		top += rng.Intn(nT)
	}
	if nL > 0 {
		left += rng.Intn(nL)
	}
	return top, left, nil
}

// NewInpaintRandom masks out round(missing·H·W) pixels chosen uniformly
// without replacement (DPS's random inpainting uses missing = 0.92).
func NewInpaintRandom(shape [3]int, missing float64, rng *rand.Rand) (*Inpaint, error) {
	if missing < 0 || missing > 1 || math.IsNaN(missing) {
		return nil, fmt.Errorf("op.NewInpaintRandom: missing fraction %v, want in [0, 1]", missing)
	}
	if rng == nil {
		return nil, fmt.Errorf("op.NewInpaintRandom: nil rng")
	}
	h, w := shape[1], shape[2]
	m := make([]float32, h*w)
	for i := range m {
		m[i] = 1
	}
	k := int(math.Round(missing * float64(h*w)))
	for _, i := range rng.Perm(h * w)[:k] {
		m[i] = 0
	}
	return NewInpaintMask(shape, m)
}

// NewColorize maps an RGB image to gray, y = (r + g + b)/3 (DDNM's
// A = [1/3, 1/3, 1/3]); y has one channel. Per pixel its SVD has the single
// singular value 1/√3 with right vector (1,1,1)/√3; the other two spectral
// coordinates of a pixel, on (1,−1,0)/√2 and (1,1,−2)/√6, span the null
// space. Spectral layout: H·W coordinates on (1,1,1)/√3, then H·W on each
// null vector.
func NewColorize(shape [3]int) (SVD, error) {
	if err := checkImageShape("op.NewColorize", shape); err != nil {
		return nil, err
	}
	if shape[0] != 3 {
		return nil, fmt.Errorf("op.NewColorize: image has %d channels, want 3", shape[0])
	}
	hw := shape[1] * shape[2]
	basis := [3][3]float64{
		{1 / math.Sqrt(3), 1 / math.Sqrt(3), 1 / math.Sqrt(3)},
		{1 / math.Sqrt(2), -1 / math.Sqrt(2), 0},
		{1 / math.Sqrt(6), 1 / math.Sqrt(6), -2 / math.Sqrt(6)},
	}
	vt := func(in, out []float64) {
		for p := 0; p < hw; p++ {
			for k := 0; k < 3; k++ {
				out[k*hw+p] = basis[k][0]*in[p] + basis[k][1]*in[hw+p] + basis[k][2]*in[2*hw+p]
			}
		}
	}
	v := func(in, out []float64) {
		for p := 0; p < hw; p++ {
			for c := 0; c < 3; c++ {
				out[c*hw+p] = basis[0][c]*in[p] + basis[1][c]*in[hw+p] + basis[2][c]*in[2*hw+p]
			}
		}
	}
	s := make([]float64, hw)
	for i := range s {
		s[i] = 1 / math.Sqrt(3)
	}
	fwd := func(in, out []float64) {
		for p := 0; p < hw; p++ {
			out[p] = (in[p] + in[hw+p] + in[2*hw+p]) / 3
		}
	}
	adj := func(in, out []float64) {
		for p := 0; p < hw; p++ {
			out[p], out[hw+p], out[2*hw+p] = in[p]/3, in[p]/3, in[p]/3
		}
	}
	pinv := func(in, out []float64) { // A† = Aᵀ(AAᵀ)⁻¹ = 3·Aᵀ: copy the gray value
		for p := 0; p < hw; p++ {
			out[p], out[hw+p], out[2*hw+p] = in[p], in[p], in[p]
		}
	}
	return &svdOp{
		linOp: linOp{name: "colorize", in: shape[:], out: []int{1, shape[1], shape[2]}, fwd: fwd, adj: adj, pinv: pinv},
		v:     v, vt: vt, u: identityMap, ut: identityMap, s: s,
	}, nil
}

// DDNMGrayWeights are the gray weights of DDNM's SVD-based Colorization
// (functions/svd_operators.py): [0.3333, 0.3334, 0.3333]. DDNM's
// simplified (SVD-free) code uses 1/3 each, as NewColorize does; the two
// differ by up to 1.3e-4 on images in [−1, 1].
var DDNMGrayWeights = [3]float64{0.3333, 0.3334, 0.3333}

// NewColorizeWeights maps an RGB image to gray with per-channel weights w,
// y = w₀r + w₁g + w₂b (one output channel). Per pixel the SVD has the single
// singular value ‖w‖ with right vector w/‖w‖; the null space is spanned by
// two orthonormal vectors orthogonal to w. Spectral layout as NewColorize:
// H·W coordinates on w/‖w‖, then H·W on each null vector. A† y = w·y/‖w‖².
func NewColorizeWeights(shape [3]int, w [3]float64) (SVD, error) {
	if err := checkImageShape("op.NewColorizeWeights", shape); err != nil {
		return nil, err
	}
	if shape[0] != 3 {
		return nil, fmt.Errorf("op.NewColorizeWeights: image has %d channels, want 3", shape[0])
	}
	nw := math.Sqrt(w[0]*w[0] + w[1]*w[1] + w[2]*w[2])
	if !(nw > 0) || math.IsInf(nw, 0) {
		return nil, fmt.Errorf("op.NewColorizeWeights: weights %v, want finite and not all zero", w)
	}
	// Gram–Schmidt of w, e_a, e_b for the two axes where w is smallest.
	basis := [3][3]float64{{w[0] / nw, w[1] / nw, w[2] / nw}}
	k := 1
	for _, e := range [3][3]float64{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}} {
		if k == 3 {
			break
		}
		v := e
		for j := 0; j < k; j++ {
			d := v[0]*basis[j][0] + v[1]*basis[j][1] + v[2]*basis[j][2]
			for c := range v {
				v[c] -= d * basis[j][c]
			}
		}
		n := math.Sqrt(v[0]*v[0] + v[1]*v[1] + v[2]*v[2])
		if n < 1e-6 {
			continue
		}
		basis[k] = [3]float64{v[0] / n, v[1] / n, v[2] / n}
		k++
	}
	hw := shape[1] * shape[2]
	vt := func(in, out []float64) {
		for p := 0; p < hw; p++ {
			for k := 0; k < 3; k++ {
				out[k*hw+p] = basis[k][0]*in[p] + basis[k][1]*in[hw+p] + basis[k][2]*in[2*hw+p]
			}
		}
	}
	v := func(in, out []float64) {
		for p := 0; p < hw; p++ {
			for c := 0; c < 3; c++ {
				out[c*hw+p] = basis[0][c]*in[p] + basis[1][c]*in[hw+p] + basis[2][c]*in[2*hw+p]
			}
		}
	}
	s := make([]float64, hw)
	for i := range s {
		s[i] = nw
	}
	fwd := func(in, out []float64) {
		for p := 0; p < hw; p++ {
			out[p] = w[0]*in[p] + w[1]*in[hw+p] + w[2]*in[2*hw+p]
		}
	}
	adj := func(in, out []float64) {
		for p := 0; p < hw; p++ {
			out[p], out[hw+p], out[2*hw+p] = w[0]*in[p], w[1]*in[p], w[2]*in[p]
		}
	}
	n2 := nw * nw
	pinv := func(in, out []float64) {
		for p := 0; p < hw; p++ {
			out[p], out[hw+p], out[2*hw+p] = w[0]*in[p]/n2, w[1]*in[p]/n2, w[2]*in[p]/n2
		}
	}
	return &svdOp{
		linOp: linOp{name: fmt.Sprintf("colorize(%g,%g,%g)", w[0], w[1], w[2]), in: shape[:], out: []int{1, shape[1], shape[2]}, fwd: fwd, adj: adj, pinv: pinv},
		v:     v, vt: vt, u: identityMap, ut: identityMap, s: s,
	}, nil
}
