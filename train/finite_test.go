package train

import (
	"math"
	"math/rand"
	"testing"
)

// TestFirstNonFinite puts one bad value (and finite extremes) at every
// position of slices around the eight-value blocks and checks that the
// first bad index is found, against math.IsNaN/IsInf.
func TestFirstNonFinite(t *testing.T) {
	finite := []float32{0, float32(math.Copysign(0, -1)), math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32, 1e-38, -3.5}
	bad := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), math.Float32frombits(0x7fc00001), math.Float32frombits(0xff800001)}
	rng := rand.New(rand.NewSource(1))
	for _, n := range []int{0, 1, 7, 8, 9, 16, 17, 30} {
		v := make([]float32, n)
		for i := range v {
			v[i] = finite[rng.Intn(len(finite))]
		}
		if got := firstNonFinite(v); got != -1 {
			t.Fatalf("n %d, all finite: got %d, want -1", n, got)
		}
		for at := 0; at < n; at++ {
			for _, b := range bad {
				w := append([]float32(nil), v...)
				w[at] = b
				if at+2 < n {
					w[at+2] = float32(math.NaN()) // a later one must not win
				}
				if got := firstNonFinite(w); got != at {
					t.Fatalf("n %d, %v at %d: got %d", n, b, at, got)
				}
			}
		}
	}
}

func BenchmarkFirstNonFinite(b *testing.B) {
	v := make([]float32, 1<<20)
	for i := range v {
		v[i] = float32(i) * 1e-3
	}
	b.SetBytes(4 << 20)
	for i := 0; i < b.N; i++ {
		if firstNonFinite(v) != -1 {
			b.Fatal("finite slice reported bad")
		}
	}
}
