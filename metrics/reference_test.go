package metrics

import (
	"bytes"
	"math"
	"math/rand"
	"strconv"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/data"
)

// syntheticDigits returns n random 1×28×28 images: a bright square at a
// random place on noise, so the classifier's features vary between images.
func syntheticDigits(t *testing.T, n int, seed int64) *data.Dataset {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	pix := make([]uint8, n*28*28)
	labels := make([]int, n)
	for i := 0; i < n; i++ {
		img := pix[i*28*28 : (i+1)*28*28]
		for j := range img {
			img[j] = uint8(rng.Intn(64))
		}
		r, c, s := rng.Intn(16), rng.Intn(16), 4+rng.Intn(8)
		for y := r; y < r+s; y++ {
			for x := c; x < c+s; x++ {
				img[y*28+x] = 255
			}
		}
		labels[i] = i % NumClasses
	}
	ds, err := data.NewDataset(pix, labels, n, 1, 28, 28)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// TestReferenceFIDs runs the reference computation on a randomly
// initialised classifier and synthetic data: both metadata keys present,
// finite and non-negative, the printed numbers matching the returned ones,
// identical for a repeated seed and different for another seed.
func TestReferenceFIDs(t *testing.T) {
	clf, err := NewClassifier(rand.New(rand.NewSource(3)))
	if err != nil {
		t.Fatal(err)
	}
	train, test := syntheticDigits(t, 48, 1), syntheticDigits(t, 20, 2)
	compute := func(seed int64) (map[string]string, string) {
		t.Helper()
		var buf bytes.Buffer
		md, err := ReferenceFIDs(clf, train, test, seed, &buf)
		if err != nil {
			t.Fatal(err)
		}
		return md, buf.String()
	}
	first, out := compute(7)
	t.Logf("seed 7:\n%s", out)
	if len(first) != 2 {
		t.Errorf("metadata %v, want exactly %s and %s", first, MetaRefFIDHalves, MetaRefFID1000)
	}
	for _, tc := range []struct {
		key, line string // metadata key, start of the printed line holding it
	}{
		{MetaRefFIDHalves, "train halves 24 vs 24"},
		{MetaRefFID1000, "mean FID of 24 train vs test over 5 draws:"},
	} {
		v, ok := first[tc.key]
		if !ok {
			t.Errorf("no %q in %v", tc.key, first)
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
			t.Errorf("%s = %q, want a finite non-negative number", tc.key, v)
		}
		var printed string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, tc.line) {
				printed = l
			}
		}
		if !strings.Contains(printed, v) {
			t.Errorf("%s = %s, but the printed line is %q in:\n%s", tc.key, v, printed, out)
		}
	}
	// One features line, three comparisons, five draws, the mean.
	if n := strings.Count(out, "\n"); n != 10 {
		t.Errorf("%d lines printed, want 10:\n%s", n, out)
	}
	for _, want := range []string{"train 12 vs 12 (disjoint)", "train all 48 vs test 20", "train 24 (draw 4) vs test 20"} {
		if !strings.Contains(out, want) {
			t.Errorf("output misses %q:\n%s", want, out)
		}
	}
	again, outAgain := compute(7)
	for k, v := range first {
		if again[k] != v {
			t.Errorf("seed 7 twice: %s = %s then %s", k, v, again[k])
		}
	}
	// Everything but the timing line repeats exactly.
	if a, b := out[strings.Index(out, "\n"):], outAgain[strings.Index(outAgain, "\n"):]; a != b {
		t.Errorf("seed 7 twice printed\n%s\nthen\n%s", a, b)
	}
	if other, _ := compute(8); other[MetaRefFIDHalves] == first[MetaRefFIDHalves] {
		t.Errorf("seeds 7 and 8 give the same halves FID %s: the seed is not used", first[MetaRefFIDHalves])
	}
}

func TestReferenceFIDsBadInput(t *testing.T) {
	clf, err := NewClassifier(rand.New(rand.NewSource(3)))
	if err != nil {
		t.Fatal(err)
	}
	ok := syntheticDigits(t, 8, 1)
	rgb, err := data.NewDataset(make([]uint8, 8*3*28*28), nil, 8, 3, 28, 28)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		clf         *Classifier
		train, test *data.Dataset
		want        string
	}{
		{"nil classifier", nil, ok, ok, "nil classifier"},
		{"nil train", clf, nil, ok, "training set of 0 images"},
		{"tiny train", clf, syntheticDigits(t, 7, 1), ok, "training set of 7 images"},
		{"tiny test", clf, ok, syntheticDigits(t, 1, 1), "test set of 1 images"},
		{"rgb train", clf, rgb, ok, "training set"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReferenceFIDs(tc.clf, tc.train, tc.test, 7, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}
