package nn

import (
	"math"
	"testing"
)

func TestExpf32(t *testing.T) {
	worst := 0.0
	for x := -87.0; x <= 88.2; x += 0.00137 {
		got := float64(expf32(float32(x)))
		want := math.Exp(float64(float32(x)))
		rel := math.Abs(got-want) / want
		worst = math.Max(worst, rel)
	}
	if worst > 3e-7 {
		t.Errorf("expf32 relative error %g, want ≤ 3e-7", worst)
	}
	for _, tc := range []struct{ x, want float32 }{{0, 1}, {-100, 0}, {1, float32(math.E)}, {-0.5, float32(math.Exp(-0.5))}} {
		if got := expf32(tc.x); math.Abs(float64(got-tc.want)) > 1e-6 {
			t.Errorf("expf32(%g) = %g, want %g", tc.x, got, tc.want)
		}
	}
	if got := expf32(100); !(got > 1e38) {
		t.Errorf("expf32(100) = %g, want the clamp value ≈ 2e38", got)
	}
}

func BenchmarkExp(b *testing.B) {
	xs := make([]float32, 4096)
	for i := range xs {
		xs[i] = float32(i%200)/20 - 5
	}
	b.Run("expf32", func(b *testing.B) {
		var s float32
		for i := 0; i < b.N; i++ {
			for _, x := range xs {
				s += expf32(x)
			}
		}
		_ = s
	})
	b.Run("math.Exp", func(b *testing.B) {
		var s float32
		for i := 0; i < b.N; i++ {
			for _, x := range xs {
				s += float32(math.Exp(float64(x)))
			}
		}
		_ = s
	})
}

// TestActivationKernels compares the float32 SiLU, SiLU-gradient and
// exp-shift kernels (C with cgo, Go without) with float64 over a wide range.
func TestActivationKernels(t *testing.T) {
	n := 4001
	x32, dy32, y32, g32 := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
	x64, dy64, y64, g64 := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range x32 {
		x32[i] = float32(i-n/2) / 20 // [-100, 100]
		dy32[i] = float32(i%7) - 3
		x64[i], dy64[i] = float64(x32[i]), float64(dy32[i])
	}
	siluSlice(x32, y32)
	siluSlice(x64, y64)
	siluGradSlice(x32, dy32, g32)
	siluGradSlice(x64, dy64, g64)
	for i := range x32 {
		if d := math.Abs(float64(y32[i]) - y64[i]); d > 1e-6*(1+math.Abs(y64[i])) {
			t.Fatalf("silu(%g) = %g, float64 %g", x32[i], y32[i], y64[i])
		}
		if d := math.Abs(float64(g32[i]) - g64[i]); d > 1e-6*(1+math.Abs(g64[i])) {
			t.Fatalf("silu'(%g)·%g = %g, float64 %g", x32[i], dy32[i], g32[i], g64[i])
		}
	}
	row32, row64 := make([]float32, 37), make([]float64, 37)
	for i := range row32 {
		row32[i] = float32(i) / 3
		row64[i] = float64(row32[i])
	}
	s32, s64 := expShift(row32, 12), expShift(row64, 12)
	if math.Abs(float64(s32)-s64) > 1e-6*s64 {
		t.Fatalf("expShift sum %g, float64 %g", s32, s64)
	}
	for i := range row32 {
		if math.Abs(float64(row32[i])-row64[i]) > 1e-6*(row64[i]+1e-30) {
			t.Fatalf("expShift[%d] = %g, float64 %g", i, row32[i], row64[i])
		}
	}
}
