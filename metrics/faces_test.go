package metrics

import (
	"math"
	"math/rand"
	"strings"
	"testing"

	"gorgonia.org/tensor"
)

// TestNearestDistances: the GEMM form equals a direct search.
func TestNearestDistances(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	train, _ := synthFaces(700, rng) // more than one 512-image chunk
	x := make([]float32, 3*3*AttrSide*AttrSide)
	for i := range x {
		x[i] = float32(2*rng.Float64() - 1)
	}
	got, err := NearestDistances(x, 3, train)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := allPixels(train)
	d := 3 * AttrSide * AttrSide
	for i := 0; i < 3; i++ {
		best := math.Inf(1)
		for j := 0; j < train.Len(); j++ {
			s := 0.0
			for k := 0; k < d; k++ {
				e := float64(x[i*d+k]) - float64(all[j*d+k])
				s += e * e
			}
			best = math.Min(best, s)
		}
		if want := math.Sqrt(best / float64(d)); math.Abs(got[i]-want) > 1e-4 {
			t.Errorf("image %d: %v, want %v", i, got[i], want)
		}
	}
	if _, err := NearestDistances(x[:10], 3, train); err == nil {
		t.Error("short input accepted")
	}
}

// TestFaceReportGate: test faces scored against themselves pass every
// condition; training crops passed off as samples fail as copies.
func TestFaceReportGate(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	train, _ := synthFaces(64, rng)
	test, _ := synthFaces(24, rng)
	clf, err := NewAttrClassifier([]string{"Bright", "Red"}, rng)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := allPixels(test)
	same, err := NewFaceReport(clf, test0(test.Len(), x), test, train, 2, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	if fails := same.Check(FaceGate{MaxFID: 1e-6, TopK: 2, ShareTol: 0.05, MinNNFactor: 0.8}); len(fails) > 0 || same.FID > 1e-6 {
		t.Errorf("test faces as samples: FID %v, fails %v", same.FID, fails)
	}
	tr, _ := allPixels(train)
	copies, err := NewFaceReport(clf, test0(16, tr[:16*3*AttrSide*AttrSide]), test, train, 2, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	fails := copies.Check(DefaultFaceGate(1e9))
	if copies.NNMedian > 1e-3 || len(fails) == 0 || !strings.Contains(strings.Join(fails, ";"), "copies?") {
		t.Errorf("training crops as samples: median distance %v, fails %v", copies.NNMedian, fails)
	}
	if !strings.Contains(copies.String(), "nearest training crop") {
		t.Errorf("report:\n%s", copies)
	}
}

// test0 wraps n images' pixels as an N×3×64×64 tensor.
func test0(n int, px []float32) *tensor.Dense {
	return tensor.New(tensor.WithShape(n, 3, AttrSide, AttrSide), tensor.WithBacking(append([]float32(nil), px...)))
}
