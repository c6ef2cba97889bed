package nn

import (
	"math"
	"math/rand"
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

// TestSoftmaxRowsF32 checks the float32 row softmax kernel against a
// float64 softmax for row lengths around its 16-lane blocks, with rows
// whose largest entry sits anywhere (first, last, inside a block or in the
// tail) and, with a second large entry, is large enough that exp overflows
// unless the true row max is subtracted.
func TestSoftmaxRowsF32(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for _, c := range []int{1, 5, 15, 16, 17, 31, 32, 33, 100, 256} {
		for _, at := range []int{0, c - 1, c / 2, (c / 16) * 16} {
			if at >= c {
				continue
			}
			const r = 3
			m := make([]float32, r*c)
			for i := range m {
				m[i] = float32(rng.NormFloat64() * 3)
			}
			for i := 0; i < r; i++ {
				// exp(200) overflows float32: with a wrong max the clamped
				// exps of the two large entries would come out equal.
				m[i*c+(at+1)%c] = 150
				m[i*c+at] = 200 + float32(i)
			}
			want := make([]float64, len(m))
			for i := 0; i < r; i++ {
				row := m[i*c : (i+1)*c]
				mx := math.Inf(-1)
				for _, v := range row {
					mx = math.Max(mx, float64(v))
				}
				s := 0.0
				for j, v := range row {
					want[i*c+j] = math.Exp(float64(v) - mx)
					s += want[i*c+j]
				}
				for j := range row {
					want[i*c+j] /= s
				}
			}
			softmaxRows(m, r, c)
			for i, v := range m {
				if d := math.Abs(float64(v) - want[i]); !(d <= 1e-6+1e-5*want[i]) {
					t.Fatalf("c %d, max at %d: element %d is %g, want %g", c, at, i, v, want[i])
				}
			}
		}
	}
}

// BenchmarkSoftmaxRows times the row softmax on the CelebA UNet's
// attention size (256 tokens; one head of one image).
func BenchmarkSoftmaxRows(b *testing.B) {
	const r, c = 256, 256
	rng := rand.New(rand.NewSource(1))
	src := make([]float32, r*c)
	for i := range src {
		src[i] = float32(rng.NormFloat64())
	}
	m := make([]float32, r*c)
	b.SetBytes(int64(4 * r * c))
	for i := 0; i < b.N; i++ {
		copy(m, src)
		softmaxRows(m, r, c)
	}
}
