package metrics

import (
	"fmt"
	"math"
	"math/rand"
	"sort"
	"strings"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/internal/blas"
)

// FaceReport is the face quality gate's measurement of a set of samples
// (issue 17): distances between the samples' and real test faces'
// attribute-classifier features, the attribute statistics of both, and
// how close each sample and each test face comes to a training crop.
type FaceReport struct {
	N, RefN int
	FID     float64
	KID     KIDResult
	// Names are the attributes; Shares and RefShares the share of samples
	// and of test faces the classifier finds each in; Top the indices of
	// the most frequent attributes among test faces (most frequent first).
	Names             []string
	Shares, RefShares []float64
	Top               []int
	// NNMedian is the median over samples of the RMS pixel distance (on
	// [-1, 1]) to the nearest training crop; RefNNMedian the same for the
	// test faces, the level a model that does not copy reaches.
	NNMedian, RefNNMedian float64
	// Ref names the reference faces' split in messages ("" reads "test").
	Ref string
}

// refName is the reference split's name for messages.
func (r FaceReport) refName() string {
	if r.Ref == "" {
		return "test"
	}
	return r.Ref
}

// FaceGate holds the thresholds of the face quality gate.
type FaceGate struct {
	MaxFID      float64 // FID ≤ this (2× the train-vs-test reference)
	TopK        int     // the TopK most frequent attributes …
	ShareTol    float64 // … within ShareTol (absolute) of the test share
	MinNNFactor float64 // NNMedian ≥ MinNNFactor × RefNNMedian
}

// DefaultFaceGate is issue 17's gate: FID ≤ 2× the reference, the 10 most
// frequent attributes within 5 points, the median nearest-neighbour
// distance at least 0.8× the test faces'.
func DefaultFaceGate(refFID float64) FaceGate {
	return FaceGate{MaxFID: 2 * refFID, TopK: 10, ShareTol: 0.05, MinNNFactor: 0.8}
}

// NewFaceReport measures samples (N×3×64×64 in [-1, 1]; values are clamped)
// against test faces and the training crops.
func NewFaceReport(c *AttrClassifier, samples *tensor.Dense, test, train *data.Dataset, topK int, rng *rand.Rand) (FaceReport, error) {
	const op = "metrics.NewFaceReport"
	s := samples.Shape()
	if len(s) != 4 || s[0] < 2 {
		return FaceReport{}, fmt.Errorf("%s: samples %v, want N×3×64×64 with N ≥ 2", op, s)
	}
	src := samples.Data().([]float32)
	clamped := make([]float32, len(src))
	for i, v := range src {
		if math.IsNaN(float64(v)) {
			return FaceReport{}, fmt.Errorf("%s: sample value %d is NaN", op, i)
		}
		clamped[i] = min(max(v, -1), 1)
	}
	x := tensor.New(tensor.WithShape(s.Clone()...), tensor.WithBacking(clamped))
	so, err := c.Forward(x)
	if err != nil {
		return FaceReport{}, fmt.Errorf("%s: %w", op, err)
	}
	to, err := c.DatasetForward(test, inferChunk)
	if err != nil {
		return FaceReport{}, fmt.Errorf("%s: test faces: %w", op, err)
	}
	rep := FaceReport{N: s[0], RefN: test.Len(), Names: c.Names()}
	if rep.FID, err = FID(so.Features, to.Features); err != nil {
		return FaceReport{}, fmt.Errorf("%s: %w", op, err)
	}
	if rep.KID, err = KID(so.Features, to.Features, KIDOptions{}, rng); err != nil {
		return FaceReport{}, fmt.Errorf("%s: %w", op, err)
	}
	rep.Shares, rep.RefShares = AttrShares(so.Probs), AttrShares(to.Probs)
	rep.Top = make([]int, len(rep.RefShares))
	for i := range rep.Top {
		rep.Top[i] = i
	}
	sort.SliceStable(rep.Top, func(a, b int) bool { return rep.RefShares[rep.Top[a]] > rep.RefShares[rep.Top[b]] })
	rep.Top = rep.Top[:min(topK, len(rep.Top))]
	nn, err := NearestDistances(clamped, s[0], train)
	if err != nil {
		return FaceReport{}, fmt.Errorf("%s: %w", op, err)
	}
	tx, err := allPixels(test)
	if err != nil {
		return FaceReport{}, fmt.Errorf("%s: %w", op, err)
	}
	refNN, err := NearestDistances(tx, test.Len(), train)
	if err != nil {
		return FaceReport{}, fmt.Errorf("%s: %w", op, err)
	}
	rep.NNMedian, rep.RefNNMedian = median(nn), median(refNN)
	return rep, nil
}

// allPixels returns a dataset's images as one float32 slice in [-1, 1].
func allPixels(ds *data.Dataset) ([]float32, error) {
	idx := make([]int, ds.Len())
	for i := range idx {
		idx[i] = i
	}
	x, err := ds.Batch(idx)
	if err != nil {
		return nil, err
	}
	return x.Data().([]float32), nil
}

// NearestDistances returns, for each of the n images of x (n rows of D
// float32 values on [-1, 1]), the RMS distance √(‖x − t‖²/D) to its
// nearest image t of train (D values each), using ‖x‖² − 2⟨x, t⟩ + ‖t‖²
// with the inner products from a float32 GEMM, chunk by chunk.
func NearestDistances(x []float32, n int, train *data.Dataset) ([]float64, error) {
	c, h, w := train.Dims()
	d := c * h * w
	if n < 1 || len(x) != n*d {
		return nil, fmt.Errorf("metrics.NearestDistances: %d values for %d images of %d×%d×%d", len(x), n, c, h, w)
	}
	xn := make([]float64, n)
	for i := 0; i < n; i++ {
		for _, v := range x[i*d : (i+1)*d] {
			xn[i] += float64(v) * float64(v)
		}
	}
	best := make([]float64, n)
	for i := range best {
		best[i] = math.Inf(1)
	}
	const chunk = 512
	dots := make([]float32, n*chunk)
	for lo := 0; lo < train.Len(); lo += chunk {
		hi := min(lo+chunk, train.Len())
		idx := make([]int, hi-lo)
		for i := range idx {
			idx[i] = lo + i
		}
		tb, err := train.Batch(idx)
		if err != nil {
			return nil, err
		}
		t := tb.Data().([]float32)
		m := hi - lo
		// dots (n×m) = x (n×d) · tᵀ (d×m)
		blas.Sgemm(false, true, n, m, d, 1, x, d, t, d, 0, dots, m)
		for j := 0; j < m; j++ {
			tn := 0.0
			for _, v := range t[j*d : (j+1)*d] {
				tn += float64(v) * float64(v)
			}
			for i := 0; i < n; i++ {
				if dist := xn[i] - 2*float64(dots[i*m+j]) + tn; dist < best[i] {
					best[i] = dist
				}
			}
		}
	}
	for i, v := range best {
		best[i] = math.Sqrt(math.Max(v, 0) / float64(d))
	}
	return best, nil
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Check returns the failed conditions of g (none: the gate passes).
func (r FaceReport) Check(g FaceGate) []string {
	var fails []string
	if !(r.FID <= g.MaxFID) {
		fails = append(fails, fmt.Sprintf("FID %.3f > %.3f", r.FID, g.MaxFID))
	}
	for _, j := range r.Top[:min(g.TopK, len(r.Top))] {
		if d := r.Shares[j] - r.RefShares[j]; math.Abs(d) > g.ShareTol {
			fails = append(fails, fmt.Sprintf("%s in %.1f%% of samples vs %.1f%% of %s faces", r.Names[j], 100*r.Shares[j], 100*r.RefShares[j], r.refName()))
		}
	}
	if !(r.NNMedian >= g.MinNNFactor*r.RefNNMedian) {
		fails = append(fails, fmt.Sprintf("median distance to the nearest training crop %.4f < %.2f × the %s faces' %.4f (copies?)", r.NNMedian, g.MinNNFactor, r.refName(), r.RefNNMedian))
	}
	return fails
}

// String prints the report: distances, the top attributes' shares, and
// the nearest-neighbour medians.
func (r FaceReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "FID %.3f, KID %s; %d samples vs %d %s faces, attribute-classifier features\n", r.FID, r.KID, r.N, r.RefN, r.refName())
	fmt.Fprintf(&b, "attribute shares (samples vs %s faces):", r.refName())
	for _, j := range r.Top {
		fmt.Fprintf(&b, " %s %.1f/%.1f%%", r.Names[j], 100*r.Shares[j], 100*r.RefShares[j])
	}
	fmt.Fprintf(&b, "\nnearest training crop, median RMS distance: samples %.4f, %s faces %.4f", r.NNMedian, r.refName(), r.RefNNMedian)
	return b.String()
}
