package op

import (
	"fmt"
	"math"
	"math/rand"

	"gonum.org/v1/gonum/mat"
)

// fwht is the orthonormal fast Walsh–Hadamard transform (its own inverse)
// of a power-of-two-length vector, in place.
func fwht(a []float64) {
	n := len(a)
	for h := 1; h < n; h *= 2 {
		for i := 0; i < n; i += 2 * h {
			for j := i; j < i+h; j++ {
				x, y := a[j], a[j+h]
				a[j], a[j+h] = x+y, x-y
			}
		}
	}
	sc := 1 / math.Sqrt(float64(n))
	for i := range a {
		a[i] *= sc
	}
}

// NewCSWalsh is compressed sensing by Walsh–Hadamard subsampling (DDRM's and
// DDNM's "cs_walshhadamard"): per channel, the orthonormal Walsh–Hadamard
// transform of the H·W pixels (H·W must be a power of two), of which
// m = round(ratio·H·W) coefficients chosen by a seeded random permutation
// are kept. y has per-image shape [C, m, 1]. The rows are orthonormal, so
// the SVD is exact with U = I and all singular values 1; A† = Aᵀ.
// Spectral layout: C·m kept coefficients (channel-major), then the C·(H·W−m)
// dropped ones.
func NewCSWalsh(shape [3]int, ratio float64, rng *rand.Rand) (SVD, error) {
	if err := checkImageShape("op.NewCSWalsh", shape); err != nil {
		return nil, err
	}
	c, n := shape[0], shape[1]*shape[2]
	if n&(n-1) != 0 {
		return nil, fmt.Errorf("op.NewCSWalsh: H·W = %d·%d = %d is not a power of two (use cs_block for other sizes)", shape[1], shape[2], n)
	}
	if !(ratio > 0 && ratio <= 1) {
		return nil, fmt.Errorf("op.NewCSWalsh: ratio %v, want in (0, 1]", ratio)
	}
	if rng == nil {
		return nil, fmt.Errorf("op.NewCSWalsh: nil rng")
	}
	m := int(math.Round(ratio * float64(n)))
	if m < 1 {
		m = 1
	}
	perm := rng.Perm(n)
	kept, dropped := perm[:m], perm[m:]
	vt := func(in, out []float64) {
		buf := make([]float64, n)
		for ch := 0; ch < c; ch++ {
			copy(buf, in[ch*n:(ch+1)*n])
			fwht(buf)
			for k, p := range kept {
				out[ch*m+k] = buf[p]
			}
			for k, p := range dropped {
				out[c*m+ch*(n-m)+k] = buf[p]
			}
		}
	}
	v := func(in, out []float64) {
		buf := make([]float64, n)
		for ch := 0; ch < c; ch++ {
			for k, p := range kept {
				buf[p] = in[ch*m+k]
			}
			for k, p := range dropped {
				buf[p] = in[c*m+ch*(n-m)+k]
			}
			fwht(buf)
			copy(out[ch*n:(ch+1)*n], buf)
		}
	}
	fwd := func(in, out []float64) {
		full := make([]float64, c*n)
		vt(in, full)
		copy(out, full[:c*m])
	}
	adj := func(in, out []float64) {
		full := make([]float64, c*n)
		copy(full, in)
		v(full, out)
	}
	s := make([]float64, c*m)
	for i := range s {
		s[i] = 1
	}
	return &svdOp{
		linOp: linOp{name: fmt.Sprintf("cs_walsh(%g)", ratio), in: shape[:], out: []int{c, m, 1}, fwd: fwd, adj: adj, pinv: adj},
		v:     v, vt: vt, u: identityMap, ut: identityMap, s: s,
	}, nil
}

// NewCSBlock is block-based compressed sensing: every channel is cut into
// b×b blocks (H and W divisible by b), and each block's b² pixels
// (row-major) are multiplied by the first m = round(ratio·b²) rows of one
// random orthogonal matrix Q (b²×b², QR of a seeded Gaussian matrix), the
// same for all blocks. y has per-image shape [C, m, nb] with nb = (H/b)(W/b)
// blocks in row-major order. Rows are orthonormal: U = I, singular values 1,
// A† = Aᵀ. Spectral layout: per channel and block the m measured
// coordinates (index (c·nb + blk)·m + k), then per channel and block the
// b²−m null coordinates.
func NewCSBlock(shape [3]int, ratio float64, b int, rng *rand.Rand) (SVD, error) {
	if err := checkImageShape("op.NewCSBlock", shape); err != nil {
		return nil, err
	}
	h, w := shape[1], shape[2]
	if b < 1 || h%b != 0 || w%b != 0 {
		return nil, fmt.Errorf("op.NewCSBlock: block size %d does not divide the image %d×%d", b, h, w)
	}
	if !(ratio > 0 && ratio <= 1) {
		return nil, fmt.Errorf("op.NewCSBlock: ratio %v, want in (0, 1]", ratio)
	}
	if rng == nil {
		return nil, fmt.Errorf("op.NewCSBlock: nil rng")
	}
	bb := b * b
	m := int(math.Round(ratio * float64(bb)))
	if m < 1 {
		m = 1
	}
	g := mat.NewDense(bb, bb, nil)
	for i := 0; i < bb; i++ {
		for j := 0; j < bb; j++ {
			g.Set(i, j, rng.NormFloat64())
		}
	}
	var qr mat.QR
	qr.Factorize(g)
	var q mat.Dense
	qr.QTo(&q) // orthogonal; its rows are the measurement vectors
	qd := make([]float64, bb*bb)
	for i := 0; i < bb; i++ {
		for j := 0; j < bb; j++ {
			qd[i*bb+j] = q.At(i, j)
		}
	}
	return newCSBlock(shape, qd, m, b, fmt.Sprintf("cs_block(%g,b=%d)", ratio, b))
}

// NewCSBlockQ is NewCSBlock with a given b²×b² orthogonal matrix q
// (row-major) of which the first m rows measure every block; DDNM's CS
// takes them from the SVD of a Gaussian matrix. q's orthogonality is
// checked (to 1e-6), since the SVD assumes it.
func NewCSBlockQ(shape [3]int, q []float64, m, b int) (SVD, error) {
	if err := checkImageShape("op.NewCSBlockQ", shape); err != nil {
		return nil, err
	}
	if b < 1 || shape[1]%b != 0 || shape[2]%b != 0 {
		return nil, fmt.Errorf("op.NewCSBlockQ: block size %d does not divide the image %d×%d", b, shape[1], shape[2])
	}
	bb := b * b
	if len(q) != bb*bb || m < 1 || m > bb {
		return nil, fmt.Errorf("op.NewCSBlockQ: matrix of %d values and m = %d, want %d×%d and 1 ≤ m ≤ %d", len(q), m, bb, bb, bb)
	}
	for i := 0; i < bb; i++ {
		for j := 0; j < bb; j++ {
			d := 0.0
			for t := 0; t < bb; t++ {
				d += q[i*bb+t] * q[j*bb+t]
			}
			if i == j {
				d--
			}
			if math.Abs(d) > 1e-6 {
				return nil, fmt.Errorf("op.NewCSBlockQ: rows %d and %d have inner product off by %g: q is not orthogonal", i, j, d)
			}
		}
	}
	return newCSBlock(shape, append([]float64(nil), q...), m, b, fmt.Sprintf("cs_block(m=%d,b=%d)", m, b))
}

func newCSBlock(shape [3]int, qd []float64, m, b int, name string) (SVD, error) {
	c, h, w := shape[0], shape[1], shape[2]
	bb := b * b
	nbw := w / b
	nb := (h / b) * nbw
	// pix returns the image index of pixel t of block blk in channel ch.
	pix := func(ch, blk, t int) int {
		bi, bj := blk/nbw, blk%nbw
		return ch*h*w + (bi*b+t/b)*w + bj*b + t%b
	}
	spec := func(ch, blk, k int) int {
		if k < m {
			return (ch*nb+blk)*m + k
		}
		return c*nb*m + (ch*nb+blk)*(bb-m) + k - m
	}
	vt := func(in, out []float64) {
		for ch := 0; ch < c; ch++ {
			for blk := 0; blk < nb; blk++ {
				for k := 0; k < bb; k++ {
					acc := 0.0
					row := qd[k*bb : (k+1)*bb]
					for t := 0; t < bb; t++ {
						acc += row[t] * in[pix(ch, blk, t)]
					}
					out[spec(ch, blk, k)] = acc
				}
			}
		}
	}
	v := func(in, out []float64) {
		for ch := 0; ch < c; ch++ {
			for blk := 0; blk < nb; blk++ {
				for k := 0; k < bb; k++ {
					z := in[spec(ch, blk, k)]
					row := qd[k*bb : (k+1)*bb]
					for t := 0; t < bb; t++ {
						out[pix(ch, blk, t)] += row[t] * z
					}
				}
			}
		}
	}
	// y layout [C, m, nb]: y[ch][k][blk]; ut maps it to spectral order (ch, blk, k).
	ut := func(in, out []float64) {
		for ch := 0; ch < c; ch++ {
			for k := 0; k < m; k++ {
				for blk := 0; blk < nb; blk++ {
					out[(ch*nb+blk)*m+k] = in[(ch*m+k)*nb+blk]
				}
			}
		}
	}
	u := func(in, out []float64) {
		for ch := 0; ch < c; ch++ {
			for k := 0; k < m; k++ {
				for blk := 0; blk < nb; blk++ {
					out[(ch*m+k)*nb+blk] = in[(ch*nb+blk)*m+k]
				}
			}
		}
	}
	d := c * h * w
	fwd := func(in, out []float64) {
		full := make([]float64, d)
		vt(in, full)
		u(full[:c*nb*m], out)
	}
	adj := func(in, out []float64) {
		full := make([]float64, d)
		ut(in, full[:c*nb*m])
		v(full, out)
	}
	s := make([]float64, c*nb*m)
	for i := range s {
		s[i] = 1
	}
	return &svdOp{
		linOp: linOp{name: name, in: shape[:], out: []int{c, m, nb}, fwd: fwd, adj: adj, pinv: adj},
		v:     v, vt: vt, u: u, ut: ut, s: s,
	}, nil
}
