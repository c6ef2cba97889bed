package solve

import (
	"math"
	"math/rand"
	"testing"

	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/internal/analytic"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/inverse/op"
	"gonum.org/v1/gonum/mat"
	"gorgonia.org/tensor"
)

// shape of the test images: D = 16.
var imgShape = [3]int{1, 4, 4}

const dim = 16

func linearSchedule(t *testing.T) *diffusion.Schedule {
	t.Helper()
	s, err := diffusion.NewSchedule(diffusion.Linear, 1000, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// prior returns a Gaussian prior on 1×4×4 images: isotropic N(μ, I) or a
// correlated one, Σ_ij = 0.4·exp(−|p_i − p_j|²/2) + 0.05 δ_ij (pixel
// positions p), with a non-zero mean so that bias toward 0 shows.
func prior(correlated bool) ([]float64, *mat.SymDense) {
	mu := make([]float64, dim)
	for i := range mu {
		mu[i] = 0.3 * math.Sin(float64(i)+0.5)
	}
	cov := mat.NewSymDense(dim, nil)
	for i := 0; i < dim; i++ {
		for j := i; j < dim; j++ {
			v := 0.0
			if correlated {
				di, dj := float64(i/4-j/4), float64(i%4-j%4)
				v = 0.4 * math.Exp(-(di*di+dj*dj)/2)
			}
			if i == j {
				if correlated {
					v += 0.05
				} else {
					v = 1
				}
			}
			cov.SetSym(i, j, v)
		}
	}
	return mu, cov
}

// denseMatrix returns the m×D matrix of a linear operator by applying it to
// the basis images (one batch of D images).
func denseMatrix(t *testing.T, A op.Operator) *mat.Dense {
	t.Helper()
	basis := tensors.New(dim, imgShape[0], imgShape[1], imgShape[2])
	b := tensors.F32(basis)
	for i := 0; i < dim; i++ {
		b[i*dim+i] = 1
	}
	ax, err := A.Forward(basis)
	if err != nil {
		t.Fatal(err)
	}
	m := len(tensors.F32(ax)) / dim
	out := mat.NewDense(m, dim, nil)
	for i := 0; i < dim; i++ {
		for r := 0; r < m; r++ {
			out.Set(r, i, float64(tensors.F32(ax)[i*m+r]))
		}
	}
	return out
}

// nonzeroRows drops all-zero rows of A and the matching entries of y (an
// inpainting operator keeps masked pixels as zero rows, which make the
// noise-free posterior's A Σ Aᵀ singular).
func nonzeroRows(A *mat.Dense, y []float64) (*mat.Dense, []float64) {
	r, c := A.Dims()
	var rows [][]float64
	var ys []float64
	for i := 0; i < r; i++ {
		row := mat.Row(nil, i, A)
		nz := false
		for _, v := range row {
			nz = nz || v != 0
		}
		if nz {
			rows = append(rows, row)
			ys = append(ys, y[i])
		}
	}
	out := mat.NewDense(len(rows), c, nil)
	for i, row := range rows {
		out.SetRow(i, row)
	}
	return out, ys
}

// setup is one linear-Gaussian test problem.
type setup struct {
	den    *analytic.Mixture
	sched  *diffusion.Schedule
	A      op.Operator
	noise  op.Noise
	y      []float64 // one measurement, m values
	yshape []int     // per-image shape of y
	muPost []float64
	sdPost []float64 // posterior standard deviations
	muPri  []float64
}

func newSetup(t *testing.T, A op.Operator, sigmaY float64, correlated bool, seed int64) *setup {
	t.Helper()
	sched := linearSchedule(t)
	mu, cov := prior(correlated)
	den, err := analytic.NewGaussian(mu, cov, imgShape, sched)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(seed))
	x, err := den.Sample(rng, 1)
	if err != nil {
		t.Fatal(err)
	}
	ax, err := A.Forward(x)
	if err != nil {
		t.Fatal(err)
	}
	noise, err := op.NewGaussian(sigmaY)
	if err != nil {
		t.Fatal(err)
	}
	yt, err := noise.Sample(ax, rng)
	if err != nil {
		t.Fatal(err)
	}
	y := f64(yt)
	Am := denseMatrix(t, A)
	Ap, yp := Am, y
	if sigmaY == 0 {
		Ap, yp = nonzeroRows(Am, y)
	}
	muPost, covPost, err := analytic.GaussianPosterior(mu, cov, Ap, yp, sigmaY)
	if err != nil {
		t.Fatal(err)
	}
	sd := make([]float64, dim)
	for i := range sd {
		sd[i] = math.Sqrt(math.Max(covPost.At(i, i), 0))
	}
	return &setup{den: den, sched: sched, A: A, noise: noise, y: y, yshape: []int(yt.Shape()[1:]),
		muPost: muPost, sdPost: sd, muPri: mu}
}

// batchY repeats the measurement n times.
func (s *setup) batchY(n int) *tensor.Dense {
	m := len(s.y)
	v := make([]float64, n*m)
	for k := 0; k < n; k++ {
		copy(v[k*m:], s.y)
	}
	return f32(v, append([]int{n}, s.yshape...)...)
}

// meanOf returns the per-pixel mean and standard deviation over a batch.
func meanOf(x *tensor.Dense) (mean, sd []float64) {
	v := tensors.F32(x)
	n := len(v) / dim
	mean = make([]float64, dim)
	sd = make([]float64, dim)
	for k := 0; k < n; k++ {
		for j := 0; j < dim; j++ {
			mean[j] += float64(v[k*dim+j])
		}
	}
	for j := range mean {
		mean[j] /= float64(n)
	}
	for k := 0; k < n; k++ {
		for j := 0; j < dim; j++ {
			e := float64(v[k*dim+j]) - mean[j]
			sd[j] += e * e
		}
	}
	for j := range sd {
		sd[j] = math.Sqrt(sd[j] / float64(n-1))
	}
	return mean, sd
}

// boxInpaint observes all but a 2×2 box of the 4×4 image.
func boxInpaint(t *testing.T) op.SVD {
	t.Helper()
	o, err := op.NewInpaintBox(imgShape, 2, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	return o
}
