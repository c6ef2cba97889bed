//go:build torch

package torch

import (
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// TestCompatHeader checks scripts/torch/compat.h through gotch's Go API:
// the restored 1.11 overloads compute what their 1.11 versions did, and a
// removed op returns the header's error instead of crashing.
func TestCompatHeader(t *testing.T) {
	runtime.LockOSThread() // gotch's last-error slot is per OS thread: no subtests
	defer runtime.UnlockOSThread()
	must := func(x *ts.Tensor, err error) *ts.Tensor {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	vals := func(x *ts.Tensor) []float64 {
		t.Helper()
		d, err := fromTorch(must(x.Totype(gotch.Float, false)))
		if err != nil {
			t.Fatal(err)
		}
		switch v := d.Data().(type) {
		case float32:
			return []float64{float64(v)}
		case []float32:
			out := make([]float64, len(v))
			for i, x := range v {
				out[i] = float64(x)
			}
			return out
		}
		t.Fatalf("unexpected data %T", d.Data())
		return nil
	}

	{ // arange_out(start, end)
		out := must(ts.Zeros([]int64{4}, gotch.Float, gotch.CPU))
		start, end := ts.FloatScalar(2), ts.FloatScalar(6)
		defer start.MustDrop()
		defer end.MustDrop()
		got := vals(must(ts.ArangeStartOut(out, start, end)))
		if want := []float64{2, 3, 4, 5}; !equalFloats(got, want) {
			t.Errorf("arange_out(2, 6) = %v, want %v", got, want)
		}
	}
	{ // nansum(self, dtype)
		x := must(ts.OfSlice([]float32{1, float32(math.NaN()), 2.5}))
		got := vals(must(x.Nansum(gotch.Double, false)))
		if len(got) != 1 || got[0] != 3.5 {
			t.Errorf("nansum([1, NaN, 2.5]) = %v, want [3.5]", got)
		}
	}
	{ // bernoulli_out(out, p)
		p := must(ts.OfSlice([]float32{0, 1, 1, 0}))
		out := must(ts.Zeros([]int64{4}, gotch.Float, gotch.CPU))
		got := vals(must(p.BernoulliOut(out, false)))
		if want := []float64{0, 1, 1, 0}; !equalFloats(got, want) {
			t.Errorf("bernoulli(p = [0 1 1 0]) = %v, want %v", got, want)
		}
	}
	{ // normal_out(out, mean, std)
		mean := must(ts.OfSlice([]float32{-3, 7}))
		out := must(ts.Zeros([]int64{2}, gotch.Float, gotch.CPU))
		got := vals(must(ts.Normal(out, mean, 0)))
		if want := []float64{-3, 7}; !equalFloats(got, want) {
			t.Errorf("normal(mean = [-3 7], std = 0) = %v, want %v", got, want)
		}
	}
	{ // removed op
		x := must(ts.OfSlice([]float32{1, 0, 0, 1}))
		x = must(x.View([]int64{2, 2}, true))
		_, err := x.MatrixRank(false, false)
		if err == nil || !strings.Contains(err.Error(), "removed in libtorch 1.13") {
			t.Errorf("matrix_rank: error %v, want the compat header's", err)
		}
	}
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
