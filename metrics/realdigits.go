package metrics

import (
	"fmt"
	"math/rand"

	"github.com/diffinv/diffinv/data"
)

// RealDigits is what real MNIST digits score under the classifier at a
// given sample count: the reference of issue 17's "real-digit level" for a
// model's samples. n random test digits give the confident share a model's
// n samples should reach; n random training digits scored like samples
// against the test set give the real-versus-real FID at that n (FID is
// biased at small n, so the comparison must be at equal n).
type RealDigits struct {
	N int
	// TestConfident is the share of n test digits labelled with
	// confidence ≥ ConfidenceThreshold.
	TestConfident float64
	// Train is n training digits scored as samples against the reference
	// (the whole test set): their FID, KID and confident share.
	Train SampleReport
}

// RealLevel is the real-digit level: samples at most MaxConfidentGap below
// the real test digits' confident share and an FID at most MaxFIDRatio
// times the real-versus-real FID at the same n (issue 17: 2 points, 1.5×).
type RealLevel struct {
	MaxConfidentGap float64
	MaxFIDRatio     float64
}

// DefaultRealLevel is issue 17's real-digit level.
var DefaultRealLevel = RealLevel{MaxConfidentGap: 0.02, MaxFIDRatio: 1.5}

// NewRealDigits scores n real digits (drawn with seed, without replacement)
// of each split against ref, the test set's reference features.
func NewRealDigits(c *Classifier, train, test *data.Dataset, ref *Reference, n int, seed int64) (RealDigits, error) {
	const op = "metrics.NewRealDigits"
	if c == nil || train == nil || test == nil || ref == nil {
		return RealDigits{}, fmt.Errorf("%s: nil classifier, dataset or reference", op)
	}
	if n < 2 || n > train.Len() || n > test.Len() {
		return RealDigits{}, fmt.Errorf("%s: %d digits, want 2 to %d (the smaller split)", op, n, min(train.Len(), test.Len()))
	}
	rng := rand.New(rand.NewSource(seed))
	tr, te := rng.Perm(train.Len())[:n], rng.Perm(test.Len())[:n]
	trX, err := train.Batch(tr)
	if err != nil {
		return RealDigits{}, fmt.Errorf("%s: %w", op, err)
	}
	teX, err := test.Batch(te)
	if err != nil {
		return RealDigits{}, fmt.Errorf("%s: %w", op, err)
	}
	r := RealDigits{N: n}
	kid := KIDOptions{Subsets: 100, SubsetSize: 1000}
	if r.Train, err = NewSampleReport(c, trX, ref, kid, rng); err != nil {
		return RealDigits{}, fmt.Errorf("%s: training digits: %w", op, err)
	}
	tst, err := c.Forward(teX) // only their confident share is needed
	if err != nil {
		return RealDigits{}, fmt.Errorf("%s: test digits: %w", op, err)
	}
	_, r.TestConfident = classShares(tst.Probs)
	return r, nil
}

// CheckReal returns one line per criterion of level l that the samples'
// report fails against the real digits (none when it passes). The reports
// must be at the same n.
func (r SampleReport) CheckReal(real RealDigits, l RealLevel) []string {
	var fails []string
	if r.N != real.N {
		fails = append(fails, fmt.Sprintf("%d samples against %d real digits: compare at equal n", r.N, real.N))
	}
	if r.Confident < real.TestConfident-l.MaxConfidentGap {
		fails = append(fails, fmt.Sprintf("%.1f%% of samples confident, real test digits %.1f%%: more than %.0f points below", 100*r.Confident, 100*real.TestConfident, 100*l.MaxConfidentGap))
	}
	if limit := l.MaxFIDRatio * real.Train.FID; !(r.FID <= limit) {
		fails = append(fails, fmt.Sprintf("FID %.3f above %.2f× the real-vs-real %.3f", r.FID, l.MaxFIDRatio, real.Train.FID))
	}
	return fails
}
