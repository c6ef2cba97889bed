package metrics

import (
	"fmt"
	"math"
	"math/rand"
	"runtime"
	"sync"

	"gonum.org/v1/gonum/mat"

	"github.com/diffinv/diffinv/internal/blas"
)

// Gaussian is a Gaussian fit of a feature set: the sample mean and the
// unbiased (N−1) sample covariance, numpy.cov's default and what
// pytorch-fid uses.
type Gaussian struct {
	Mean []float64
	Cov  *mat.SymDense
	N    int // number of samples fitted
}

// FitGaussian fits a Gaussian to the rows of feat (N×D, N ≥ 2).
func FitGaussian(feat *mat.Dense) (Gaussian, error) {
	if feat == nil {
		return Gaussian{}, fmt.Errorf("metrics.FitGaussian: nil feature matrix")
	}
	n, d := feat.Dims()
	if n < 2 || d < 1 {
		return Gaussian{}, fmt.Errorf("metrics.FitGaussian: %d×%d features, want at least 2 rows and 1 column", n, d)
	}
	mean := make([]float64, d)
	for i := 0; i < n; i++ {
		for j, v := range feat.RawRowView(i) {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return Gaussian{}, fmt.Errorf("metrics.FitGaussian: feature (%d, %d) is %v, want finite", i, j, v)
			}
			mean[j] += v
		}
	}
	for j := range mean {
		mean[j] /= float64(n)
	}
	centred := mat.NewDense(n, d, nil)
	for i := 0; i < n; i++ {
		row, src := centred.RawRowView(i), feat.RawRowView(i)
		for j := range row {
			row[j] = src[j] - mean[j]
		}
	}
	cov := mat.NewSymDense(d, nil)
	cov.SymOuterK(1/float64(n-1), centred.T())
	return Gaussian{Mean: mean, Cov: cov, N: n}, nil
}

// sqrtPSD returns the symmetric square root V·diag(√max(λ, 0))·Vᵀ of a
// symmetric positive semi-definite matrix (negative eigenvalues, which
// appear only through rounding, are clipped to 0).
func sqrtPSD(a mat.Symmetric) (*mat.SymDense, error) {
	var eig mat.EigenSym
	if !eig.Factorize(a, true) {
		return nil, fmt.Errorf("eigendecomposition did not converge")
	}
	vals := eig.Values(nil)
	var v mat.Dense
	eig.VectorsTo(&v)
	// (V·diag(λ^¼))(V·diag(λ^¼))ᵀ = V·diag(√λ)·Vᵀ, symmetric by construction.
	d := len(vals)
	scaled := mat.NewDense(d, d, nil)
	for i := 0; i < d; i++ {
		for j := 0; j < d; j++ {
			scaled.Set(i, j, v.At(i, j)*math.Sqrt(math.Sqrt(math.Max(vals[j], 0))))
		}
	}
	out := mat.NewSymDense(d, nil)
	out.SymOuterK(1, scaled)
	return out, nil
}

// traceSqrtProduct returns Tr((Σ1Σ2)^{1/2}) computed in the symmetric form
// Tr((√Σ1 Σ2 √Σ1)^{1/2}): √Σ1 Σ2 √Σ1 is similar to Σ1Σ2, symmetric and
// positive semi-definite, so its eigenvalues are real and ≥ 0 and the trace
// of its square root is Σ √λ.
func traceSqrtProduct(s1, s2 mat.Symmetric) (float64, error) {
	r1, err := sqrtPSD(s1)
	if err != nil {
		return 0, fmt.Errorf("square root of the first covariance: %w", err)
	}
	var tmp, prod mat.Dense
	tmp.Mul(r1, s2)
	prod.Mul(&tmp, r1)
	d, _ := prod.Dims()
	sym := mat.NewSymDense(d, nil)
	for i := 0; i < d; i++ {
		for j := i; j < d; j++ {
			sym.SetSym(i, j, 0.5*(prod.At(i, j)+prod.At(j, i)))
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(sym, false) {
		return 0, fmt.Errorf("eigendecomposition of √Σ1 Σ2 √Σ1 did not converge")
	}
	var tr float64
	for _, l := range eig.Values(nil) {
		tr += math.Sqrt(math.Max(l, 0))
	}
	return tr, nil
}

// FrechetDistance returns the squared Fréchet (2-Wasserstein) distance
// between two Gaussians: ‖μ1−μ2‖² + Tr(Σ1 + Σ2 − 2(Σ1Σ2)^{1/2}).
func FrechetDistance(a, b Gaussian) (float64, error) {
	if len(a.Mean) != len(b.Mean) || a.Cov == nil || b.Cov == nil || a.Cov.SymmetricDim() != len(a.Mean) || b.Cov.SymmetricDim() != len(b.Mean) {
		return 0, fmt.Errorf("metrics.FrechetDistance: Gaussians of dimensions %d and %d (or missing covariances), want equal", len(a.Mean), len(b.Mean))
	}
	var d2 float64
	for i := range a.Mean {
		d := a.Mean[i] - b.Mean[i]
		d2 += d * d
	}
	tr := mat.Trace(a.Cov) + mat.Trace(b.Cov)
	ts, err := traceSqrtProduct(a.Cov, b.Cov)
	if err != nil {
		return 0, fmt.Errorf("metrics.FrechetDistance: %w", err)
	}
	// Rounding can push an exact 0 slightly negative; it is a squared distance.
	return math.Max(d2+tr-2*ts, 0), nil
}

// FID returns the Fréchet distance between Gaussian fits of two feature
// sets (rows are samples, N×D with equal D). On MNIST the features are
// the evaluation classifier's penultimate features (Classifier.Features).
// FID is biased upward at small N: always report the sample counts.
func FID(featA, featB *mat.Dense) (float64, error) {
	ga, err := FitGaussian(featA)
	if err != nil {
		return 0, fmt.Errorf("metrics.FID: first set: %w", err)
	}
	gb, err := FitGaussian(featB)
	if err != nil {
		return 0, fmt.Errorf("metrics.FID: second set: %w", err)
	}
	return FrechetDistance(ga, gb)
}

// KIDOptions configures KID. Zero fields take the defaults of Bińkowski et
// al. and torch-fidelity: 100 subsets of 1000 samples.
type KIDOptions struct {
	// Subsets is the number of random subset pairs averaged.
	Subsets int
	// SubsetSize is the size m of each subset, capped at the smaller set.
	SubsetSize int
}

// KIDResult is the KID estimate over subsets: mean and (population)
// standard deviation of the per-subset unbiased MMD² estimates.
type KIDResult struct {
	Mean, Std  float64
	Subsets    int
	SubsetSize int
	// Whole is true when every subset is the whole of both sets (the
	// subset size reached both set sizes, as with 1000 samples against
	// 1000 references at the default size): the estimate does not depend
	// on the order of the rows, so all subsets agree: KID computes it once
	// (Subsets 1, Std 0), and the zero is not a measured spread.
	Whole bool
}

// String formats the estimate as "mean ± std (over S subsets of m)", or
// "mean (whole sets: no subset spread)" when Whole, so that a zero spread
// is never printed as if it were an uncertainty.
func (k KIDResult) String() string {
	if k.Whole {
		return fmt.Sprintf("%.5f (whole sets: no subset spread)", k.Mean)
	}
	return fmt.Sprintf("%.5f ± %.5f (over %d subsets of %d)", k.Mean, k.Std, k.Subsets, k.SubsetSize)
}

// KID returns the kernel inception distance (Bińkowski et al., 2018)
// between two feature sets (N×D rows, equal D): the unbiased estimate of
// MMD² with the cubic polynomial kernel k(x, y) = (xᵀy/D + 1)³, computed on
// opts.Subsets pairs of random subsets of size m (drawn without
// replacement from each set, independently per subset, from rng) and
// reported as mean ± std over the subsets. Unbiased, so it can be slightly
// negative when the distributions agree.
func KID(featA, featB *mat.Dense, opts KIDOptions, rng *rand.Rand) (KIDResult, error) {
	const op = "metrics.KID"
	if featA == nil || featB == nil {
		return KIDResult{}, fmt.Errorf("%s: nil feature matrix", op)
	}
	if rng == nil {
		return KIDResult{}, fmt.Errorf("%s: nil *rand.Rand, want a seeded generator", op)
	}
	na, da := featA.Dims()
	nb, db := featB.Dims()
	if da != db {
		return KIDResult{}, fmt.Errorf("%s: feature dimensions %d and %d, want equal", op, da, db)
	}
	if opts.Subsets == 0 {
		opts.Subsets = 100
	}
	if opts.SubsetSize == 0 {
		opts.SubsetSize = 1000
	}
	if opts.Subsets < 1 || opts.SubsetSize < 2 {
		return KIDResult{}, fmt.Errorf("%s: %d subsets of size %d, want ≥ 1 subset of size ≥ 2", op, opts.Subsets, opts.SubsetSize)
	}
	m := min(opts.SubsetSize, na, nb)
	if m < 2 {
		return KIDResult{}, fmt.Errorf("%s: sets of %d and %d samples, want at least 2 each", op, na, nb)
	}
	// When a subset is the whole of both sets every subset gives the same
	// estimate (up to summation order): compute it once.
	whole := m == na && m == nb
	if whole {
		opts.Subsets = 1
	}
	// Draw every subset first, in order, so the result does not depend on
	// how the subsets are then spread over goroutines.
	ia, ib := make([][]int, opts.Subsets), make([][]int, opts.Subsets)
	for s := range ia {
		ia[s] = rng.Perm(na)[:m]
		ib[s] = rng.Perm(nb)[:m]
	}
	vals := make([]float64, opts.Subsets)
	workers := min(runtime.GOMAXPROCS(0), opts.Subsets)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			x, y := make([]float64, m*da), make([]float64, m*da)
			k := make([]float64, m*m)
			for s := w; s < opts.Subsets; s += workers {
				pickRows(x, featA, ia[s])
				pickRows(y, featB, ib[s])
				vals[s] = mmdPoly3(x, y, k, m, da)
			}
		}(w)
	}
	wg.Wait()
	var mean float64
	for _, v := range vals {
		mean += v
	}
	mean /= float64(len(vals))
	var vr float64
	for _, v := range vals {
		vr += (v - mean) * (v - mean)
	}
	return KIDResult{Mean: mean, Std: math.Sqrt(vr / float64(len(vals))), Subsets: opts.Subsets, SubsetSize: m,
		Whole: whole}, nil
}

// poly3 is the cubic polynomial kernel on an inner product: (ip/d + 1)³.
func poly3(ip float64, d int) float64 {
	v := ip/float64(d) + 1
	return v * v * v
}

// pickRows copies rows idx of src into the row-major dst.
func pickRows(dst []float64, src *mat.Dense, idx []int) {
	_, d := src.Dims()
	for i, r := range idx {
		copy(dst[i*d:(i+1)*d], src.RawRowView(r))
	}
}

// mmdPoly3 is the unbiased MMD² estimate between the m×d row-major sets x
// and y with the cubic kernel, using k (m×m) as scratch for the Gram
// matrices (computed by GEMM on the blas package).
func mmdPoly3(x, y, k []float64, m, d int) float64 {
	sum := func(a, b []float64, offDiag bool) float64 {
		blas.Dgemm(false, true, m, m, d, 1, a, d, b, d, 0, k, m)
		var s float64
		for i := 0; i < m; i++ {
			row := k[i*m : (i+1)*m]
			for j, ip := range row {
				if !offDiag || i != j {
					s += poly3(ip, d)
				}
			}
		}
		return s
	}
	mf := float64(m)
	sxx, syy, sxy := sum(x, x, true), sum(y, y, true), sum(x, y, false)
	return (sxx+syy)/(mf*(mf-1)) - 2*sxy/(mf*mf)
}
