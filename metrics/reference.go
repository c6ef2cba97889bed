package metrics

import (
	"fmt"
	"io"
	"math/rand"
	"strconv"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/diffinv/diffinv/data"
)

// DefaultRefSeed is the seed of the reference FID subsets of the shipped
// classifier (models/classifier/README.md).
const DefaultRefSeed = 7

// ReferenceFIDs computes the reference FID/KID numbers of a classifier on
// real data, the yardsticks for scoring samples (see
// models/classifier/README.md): the training set's two random halves
// against each other, two disjoint random 5000-image training subsets,
// the whole training set against the test set, and 1000 random training
// images against the test set (the quality gate's setting) over five
// draws. For a small training set of n images the subsets have
// min(5000, n/4) images and the draws min(1000, n/2), so that they stay
// random subsets; train needs at least 8 images and test at least 2.
//
// It prints one line per comparison (FID, KID mean ± std over subsets) and
// the mean FID of the five 1000-image draws to w (nil: discard), and
// returns the metadata entries to store in the classifier
// (MetaRefFIDHalves and MetaRefFID1000, formatted with 4 decimals).
// All subsets and KID's subset pairs are drawn from one generator seeded
// with seed, in a fixed order, so the numbers are reproducible for a seed.
func ReferenceFIDs(clf *Classifier, train, test *data.Dataset, seed int64, w io.Writer) (map[string]string, error) {
	const op = "metrics.ReferenceFIDs"
	if clf == nil {
		return nil, fmt.Errorf("%s: nil classifier", op)
	}
	if train == nil || train.Len() < 8 {
		return nil, fmt.Errorf("%s: training set of %d images, want at least 8", op, lenOf(train))
	}
	if test == nil || test.Len() < 2 {
		return nil, fmt.Errorf("%s: test set of %d images, want at least 2", op, lenOf(test))
	}
	if w == nil {
		w = io.Discard
	}
	t0 := time.Now()
	trOut, err := clf.DatasetForward(train, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: training set: %w", op, err)
	}
	ref, err := NewReference(clf, test)
	if err != nil {
		return nil, fmt.Errorf("%s: test set: %w", op, err)
	}
	fmt.Fprintf(w, "features of %d train + %d test images in %v\n", train.Len(), test.Len(), time.Since(t0).Round(time.Second))
	rng := rand.New(rand.NewSource(seed))
	rows := func(idx []int) *mat.Dense {
		m := mat.NewDense(len(idx), FeatureDim, nil)
		for i, r := range idx {
			m.SetRow(i, trOut.Features.RawRowView(r))
		}
		return m
	}
	n := train.Len()
	perm := rng.Perm(n)
	half := n / 2
	sub := min(5000, n/4)
	draw := min(1000, half)
	md := map[string]string{}
	var fids []float64
	pair := func(label string, a, b *mat.Dense) error {
		fid, err := FID(a, b)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", op, label, err)
		}
		kid, err := KID(a, b, KIDOptions{}, rng)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", op, label, err)
		}
		fmt.Fprintf(w, "%-40s FID %.4f  KID %.6f ± %.6f (%d×%d)\n", label, fid, kid.Mean, kid.Std, kid.Subsets, kid.SubsetSize)
		fids = append(fids, fid)
		return nil
	}
	if err := pair(fmt.Sprintf("train halves %d vs %d", half, n-half), rows(perm[:half]), rows(perm[half:])); err != nil {
		return nil, err
	}
	md[MetaRefFIDHalves] = strconv.FormatFloat(fids[0], 'f', 4, 64)
	if err := pair(fmt.Sprintf("train %d vs %d (disjoint)", sub, sub), rows(perm[:sub]), rows(perm[sub:2*sub])); err != nil {
		return nil, err
	}
	if err := pair(fmt.Sprintf("train all %d vs test %d", n, test.Len()), trOut.Features, ref.Features); err != nil {
		return nil, err
	}
	fids = fids[:0]
	const draws = 5
	for i := 0; i < draws; i++ {
		p := rng.Perm(n)[:draw]
		if err := pair(fmt.Sprintf("train %d (draw %d) vs test %d", draw, i, test.Len()), rows(p), ref.Features); err != nil {
			return nil, err
		}
	}
	var mean float64
	for _, f := range fids {
		mean += f / float64(len(fids))
	}
	fmt.Fprintf(w, "mean FID of %d train vs test over %d draws: %.4f\n", draw, len(fids), mean)
	md[MetaRefFID1000] = strconv.FormatFloat(mean, 'f', 4, 64)
	return md, nil
}

func lenOf(ds *data.Dataset) int {
	if ds == nil {
		return 0
	}
	return ds.Len()
}
