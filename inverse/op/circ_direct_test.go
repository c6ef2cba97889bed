package op

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/diffinv/diffinv/internal/tensors"
)

// filterPair is one filter built on both paths: through the kernel's
// taps and through the FFT.
type filterPair struct{ direct, fft Linear }

// withPath builds a filter with directTapsPerLog2 forced to perLog2 (+Inf:
// the direct path, 0: the FFT).
func withPath[T any](perLog2 float64, build func() (T, error)) (T, error) {
	defer func(v float64) { directTapsPerLog2 = v }(directTapsPerLog2)
	directTapsPerLog2 = perLog2
	return build()
}

// pairOf builds build's filter on both paths.
func pairOf[T Linear](t testing.TB, build func() (T, error)) filterPair {
	t.Helper()
	d, err := withPath(math.Inf(1), build)
	if err != nil {
		t.Fatal(err)
	}
	f, err := withPath(0, build)
	if err != nil {
		t.Fatal(err)
	}
	return filterPair{d, f}
}

// filterCases are the shapes and kernel sizes both path tests run: a
// digit's 7×7 blur, several channels, kernels reaching (or, for the
// circular filter, wrapping around) a small image, even sizes.
var filterCases = []struct {
	shape  [3]int
	kh, kw int
}{
	{[3]int{1, 28, 28}, 7, 7},
	{[3]int{3, 9, 12}, 3, 4},
	{[3]int{2, 6, 7}, 11, 13},
	{[3]int{1, 10, 9}, 2, 6},
}

// testPaths checks that the two paths of every filterCases filter give
// Forward and Adjoint equal to float32 rounding, in both orientations.
func testPaths(t *testing.T, seed int64, build func(shape [3]int, k []float64, kh, kw int, o Orientation) (Linear, error)) {
	rng := rand.New(rand.NewSource(seed))
	for _, c := range filterCases {
		for _, orient := range []Orientation{Correlate, Convolve} {
			t.Run(fmt.Sprintf("%v %d×%d %s", c.shape, c.kh, c.kw, orient), func(t *testing.T) {
				k := make([]float64, c.kh*c.kw)
				for i := range k {
					k[i] = rng.Float64()
				}
				p := pairOf(t, func() (Linear, error) { return build(c.shape, k, c.kh, c.kw, orient) })
				x := tensors.Randn(rng, 2, c.shape[0], c.shape[1], c.shape[2])
				for _, name := range []string{"Forward", "Adjoint"} {
					d, f := p.direct.Forward, p.fft.Forward
					if name == "Adjoint" {
						d, f = p.direct.Adjoint, p.fft.Adjoint
					}
					a, err := d(x)
					if err != nil {
						t.Fatal(err)
					}
					b, err := f(x)
					if err != nil {
						t.Fatal(err)
					}
					worst := 0.0
					for i, u := range tensors.F32(a) {
						v := tensors.F32(b)[i]
						worst = math.Max(worst, math.Abs(float64(u-v))/(1+math.Abs(float64(v))))
					}
					if worst > 2e-6 {
						t.Errorf("%s: direct and FFT paths differ by %g (relative)", name, worst)
					}
				}
			})
		}
	}
}

// TestCircConvDirectMatchesFFT: circular filtering through the spatial
// taps (small kernels) and through the FFT agree, including kernels larger
// than the image, whose taps wrap onto one offset.
func TestCircConvDirectMatchesFFT(t *testing.T) {
	testPaths(t, 9, func(shape [3]int, k []float64, kh, kw int, o Orientation) (Linear, error) {
		return NewCircFilter("test", shape, k, kh, kw, o, 0)
	})
	// The rule picks the direct path for the non-uniform blur's 7×7 kernels
	// at 28 px and the FFT for a 61×61 kernel at 64 px.
	if !directCheaper(49, 28, 28) || directCheaper(61*61, 64, 64) {
		t.Error("directCheaper: want direct for 49 taps at 28×28 and the FFT for 3721 at 64×64")
	}
}

// TestReflectConvDirectMatchesFFT: reflect-padded filtering through the
// kernel's taps and through the FFT agree, including radii that nearly
// reach the image's side. (Pinv is CG on either; on these random,
// ill-conditioned kernels its early stop amplifies rounding, so the two
// are not compared; TestReflectConvPinv checks it on the default path.)
func TestReflectConvDirectMatchesFFT(t *testing.T) {
	testPaths(t, 11, func(shape [3]int, k []float64, kh, kw int, o Orientation) (Linear, error) {
		return NewReflectFilter("test", shape, k, kh, kw, o, 200)
	})
}

// benchPaths times Forward on 8 one-channel images of each side through
// both paths of build's filter, for each kernel side.
func benchPaths(b *testing.B, sizes []int, build func(side int, k []float64, ks int) (Linear, error)) {
	rng := rand.New(rand.NewSource(1))
	for _, side := range []int{28, 64} {
		for _, ks := range sizes {
			k := make([]float64, ks*ks)
			for i := range k {
				k[i] = rng.Float64()
			}
			x := tensors.Randn(rng, 8, 1, side, side)
			p := pairOf(b, func() (Linear, error) { return build(side, k, ks) })
			for _, path := range []struct {
				name string
				op   Linear
			}{{"direct", p.direct}, {"fft", p.fft}} {
				b.Run(fmt.Sprintf("%dpx/%dx%d/%s", side, ks, ks, path.name), func(b *testing.B) {
					for range b.N {
						if _, err := path.op.Forward(x); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}

// BenchmarkCircConv times Forward on 8 one-channel images through the
// direct taps and through the FFT, for the kernel sizes that set
// directCheaper's bound (beside bench/pytorch/bench_ops.py):
//
//	go test ./inverse/op -run '^$' -bench CircConv
func BenchmarkCircConv(b *testing.B) {
	benchPaths(b, []int{7, 9, 11, 13, 15}, func(side int, k []float64, ks int) (Linear, error) {
		return NewCircFilter("bench", [3]int{1, side, side}, k, ks, ks, Correlate, 0)
	})
}

// BenchmarkReflectConv is BenchmarkCircConv for reflect-padded filtering:
//
//	go test ./inverse/op -run '^$' -bench ReflectConv
func BenchmarkReflectConv(b *testing.B) {
	benchPaths(b, []int{7, 9, 13, 15, 17}, func(side int, k []float64, ks int) (Linear, error) {
		return NewReflectFilter("bench", [3]int{1, side, side}, k, ks, ks, Correlate, 10)
	})
}
