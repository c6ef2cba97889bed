package tensors

import (
	"math"
	"math/rand"
	"strings"
	"testing"
)

func TestRandnMoments(t *testing.T) {
	x := F32(Randn(rand.New(rand.NewSource(1)), 200000))
	var m, v float64
	for _, f := range x {
		m += float64(f)
	}
	m /= float64(len(x))
	for _, f := range x {
		v += (float64(f) - m) * (float64(f) - m)
	}
	v /= float64(len(x))
	// Standard errors: 1/sqrt(n) ≈ 0.0022 for the mean, sqrt(2/n) ≈ 0.0032 for the variance.
	if math.Abs(m) > 0.01 || math.Abs(v-1) > 0.015 {
		t.Errorf("mean %v var %v, want 0 and 1", m, v)
	}
}

func TestCloneIsDeep(t *testing.T) {
	a := FromSlice([]float32{1, 2, 3, 4}, 1, 1, 2, 2)
	b := Clone(a)
	F32(b)[0] = 9
	if F32(a)[0] != 1 {
		t.Error("Clone shares memory")
	}
}

func TestShapeErrors(t *testing.T) {
	if _, _, _, _, err := NCHW("x", New(2, 3)); err == nil || !strings.Contains(err.Error(), "x: shape [2 3]") {
		t.Errorf("NCHW error %v", err)
	}
	if n, c, h, w, err := NCHW("x", New(2, 3, 4, 5)); err != nil || n != 2 || c != 3 || h != 4 || w != 5 {
		t.Errorf("NCHW = %d %d %d %d %v", n, c, h, w, err)
	}
	if err := SameShape("a", New(1, 2), "b", New(2, 1)); err == nil || !strings.Contains(err.Error(), "a has shape [1 2] but b has shape [2 1]") {
		t.Errorf("SameShape error %v", err)
	}
}
