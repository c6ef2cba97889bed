package metrics

import (
	"math/rand"
	"strings"
	"testing"

	"gorgonia.org/tensor"
)

// TestRealDigits scores real digits with the shipped classifier: test
// digits are confident as its accuracy says, training digits sit near the
// test set, and "samples" that are real test digits reach the real-digit
// level while noise does not.
func TestRealDigits(t *testing.T) {
	clf, err := LoadClassifier(shippedClassifier)
	if err != nil {
		t.Fatal(err)
	}
	train, test := loadMNIST(t, "train").Head(5000), loadMNIST(t, "test")
	ref, err := NewReference(clf, test)
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	real, err := NewRealDigits(clf, train, test, ref, n, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("test confident %.3f; train FID %.3f, confident %.3f", real.TestConfident, real.Train.FID, real.Train.Confident)
	if real.N != n || real.TestConfident < 0.95 || real.Train.Confident < 0.95 || !(real.Train.FID > 0) {
		t.Errorf("real digits %+v: want n %d, ≥ 95%% confident, a positive FID", real, n)
	}
	again, err := NewRealDigits(clf, train, test, ref, n, 0)
	if err != nil || again.TestConfident != real.TestConfident || again.Train.FID != real.Train.FID {
		t.Errorf("same seed, another draw: %+v vs %+v (%v)", again, real, err)
	}
	// another random draw of test digits (the test set's halves differ:
	// a contiguous block would not be like the reference)
	digits, err := test.Batch(rand.New(rand.NewSource(5)).Perm(test.Len())[:n])
	if err != nil {
		t.Fatal(err)
	}
	kid := KIDOptions{Subsets: 10, SubsetSize: n}
	good, err := NewSampleReport(clf, digits, ref, kid, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	if fails := good.CheckReal(real, DefaultRealLevel); len(fails) > 0 {
		t.Errorf("real test digits as samples fail the real-digit level: %v", fails)
	}
	rng := rand.New(rand.NewSource(2))
	noise := tensor.New(tensor.WithShape(n, 1, 28, 28), tensor.WithBacking(randSigned(rng, n*784)))
	bad, err := NewSampleReport(clf, noise, ref, kid, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	if fails := bad.CheckReal(real, DefaultRealLevel); len(fails) != 2 {
		t.Errorf("noise: %d failed criteria %v, want 2 (confidence and FID)", len(fails), fails)
	}
	if _, err := NewRealDigits(clf, train, test, ref, test.Len()+1, 0); err == nil || !strings.Contains(err.Error(), "digits, want 2 to") {
		t.Errorf("too many digits: %v", err)
	}
}

// TestCheckReal checks the real-digit level's thresholds on made-up
// reports.
func TestCheckReal(t *testing.T) {
	real := RealDigits{N: 1000, TestConfident: 0.985, Train: SampleReport{N: 1000, FID: 8}}
	for _, tc := range []struct {
		name      string
		rep       SampleReport
		wantFails []string
	}{
		{"at the level", SampleReport{N: 1000, Confident: 0.966, FID: 11.9}, nil},
		{"more confident than real, lower FID", SampleReport{N: 1000, Confident: 0.99, FID: 7}, nil},
		{"2.1 points below", SampleReport{N: 1000, Confident: 0.964, FID: 9}, []string{"more than 2 points below"}},
		{"FID 1.6×", SampleReport{N: 1000, Confident: 0.97, FID: 12.8}, []string{"above 1.50× the real-vs-real"}},
		{"unequal n", SampleReport{N: 500, Confident: 0.99, FID: 7}, []string{"compare at equal n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fails := tc.rep.CheckReal(real, DefaultRealLevel)
			if len(fails) != len(tc.wantFails) {
				t.Fatalf("fails %v, want %v", fails, tc.wantFails)
			}
			for i, w := range tc.wantFails {
				if !strings.Contains(fails[i], w) {
					t.Errorf("fail %q, want it to say %q", fails[i], w)
				}
			}
		})
	}
}
