package op

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/diffinv/diffinv/internal/tensors"
)

// TestCircConvDirectMatchesFFT: circular filtering through the spatial
// taps (small kernels) and through the FFT give the same Forward and
// Adjoint to float32 rounding, in both orientations, for kernels that wrap
// around a small image and for several channels.
func TestCircConvDirectMatchesFFT(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	cases := []struct {
		shape  [3]int
		kh, kw int
	}{
		{[3]int{1, 28, 28}, 7, 7},
		{[3]int{3, 8, 12}, 3, 4},
		{[3]int{2, 8, 12}, 11, 13}, // larger than the image: taps wrap onto one offset
		{[3]int{1, 5, 9}, 2, 6},    // even sizes
	}
	build := func(perLog2 float64, name string, shape [3]int, k []float64, kh, kw int, o Orientation) *CircConv {
		defer func(v float64) { directTapsPerLog2 = v }(directTapsPerLog2)
		directTapsPerLog2 = perLog2
		c, err := NewCircFilter(name, shape, k, kh, kw, o, 0)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, c := range cases {
		for _, orient := range []Orientation{Correlate, Convolve} {
			t.Run(fmt.Sprintf("%v %d×%d %s", c.shape, c.kh, c.kw, orient), func(t *testing.T) {
				k := make([]float64, c.kh*c.kw)
				for i := range k {
					k[i] = rng.Float64()
				}
				direct := build(math.Inf(1), "direct", c.shape, k, c.kh, c.kw, orient)
				fft := build(0, "fft", c.shape, k, c.kh, c.kw, orient)
				x := tensors.Randn(rng, 2, c.shape[0], c.shape[1], c.shape[2])
				for _, m := range []struct {
					name string
					d, f func() ([]float32, error)
				}{
					{"Forward", func() ([]float32, error) { y, err := direct.Forward(x); return f32(y, err) }, func() ([]float32, error) { y, err := fft.Forward(x); return f32(y, err) }},
					{"Adjoint", func() ([]float32, error) { y, err := direct.Adjoint(x); return f32(y, err) }, func() ([]float32, error) { y, err := fft.Adjoint(x); return f32(y, err) }},
				} {
					a, err := m.d()
					if err != nil {
						t.Fatal(err)
					}
					b, err := m.f()
					if err != nil {
						t.Fatal(err)
					}
					worst := 0.0
					for i := range a {
						worst = math.Max(worst, math.Abs(float64(a[i]-b[i]))/(1+math.Abs(float64(b[i]))))
					}
					if worst > 2e-6 {
						t.Errorf("%s: direct and FFT paths differ by %g (relative)", m.name, worst)
					}
				}
			})
		}
	}
	// The rule picks the direct path for the non-uniform blur's 7×7 kernels
	// at 28 px and the FFT for a 61×61 kernel at 64 px.
	if !directCheaper(49, 28, 28) || directCheaper(61*61, 64, 64) {
		t.Error("directCheaper: want direct for 49 taps at 28×28 and the FFT for 3721 at 64×64")
	}
}

// f32 is the float32 data of an operator's result.
func f32(y interface{ Data() any }, err error) ([]float32, error) {
	if err != nil {
		return nil, err
	}
	return y.Data().([]float32), nil
}

// BenchmarkCircConv times Forward on 8 one-channel images through the
// direct taps and through the FFT, for the kernel sizes that set
// directCheaper's bound:
//
//	go test ./inverse/op -run '^$' -bench CircConv
func BenchmarkCircConv(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	for _, side := range []int{28, 64} {
		for _, ks := range []int{7, 9, 11, 13, 15} {
			k := make([]float64, ks*ks)
			for i := range k {
				k[i] = rng.Float64()
			}
			x := tensors.Randn(rng, 8, 1, side, side)
			for _, path := range []struct {
				name    string
				perLog2 float64
			}{{"direct", math.Inf(1)}, {"fft", 0}} {
				saved := directTapsPerLog2
				directTapsPerLog2 = path.perLog2
				o, err := NewCircFilter("bench", [3]int{1, side, side}, k, ks, ks, Correlate, 0)
				directTapsPerLog2 = saved
				if err != nil {
					b.Fatal(err)
				}
				b.Run(fmt.Sprintf("%dpx/%dx%d/%s", side, ks, ks, path.name), func(b *testing.B) {
					for range b.N {
						if _, err := o.Forward(x); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}

// TestReflectConvDirectMatchesFFT: reflect-padded filtering through the
// kernel's taps and through the FFT agree in Forward and Adjoint, in both
// orientations, for odd and even kernels and kernels whose radius nearly
// reaches the image's side. (Pinv is CG on either; on these random,
// ill-conditioned kernels its early stop amplifies rounding, so the two
// are not compared; TestReflectConvPinv checks it on the default path.)
func TestReflectConvDirectMatchesFFT(t *testing.T) {
	rng := rand.New(rand.NewSource(11))
	cases := []struct {
		shape  [3]int
		kh, kw int
	}{
		{[3]int{1, 28, 28}, 7, 7},
		{[3]int{3, 9, 12}, 3, 4},
		{[3]int{2, 6, 7}, 11, 13}, // radius 5 and 6: padding nearly the whole side
		{[3]int{1, 10, 9}, 2, 6},
	}
	build := func(perLog2 float64, shape [3]int, k []float64, kh, kw int, o Orientation) *ReflectConv {
		defer func(v float64) { directTapsPerLog2 = v }(directTapsPerLog2)
		directTapsPerLog2 = perLog2
		c, err := NewReflectFilter("test", shape, k, kh, kw, o, 200)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, c := range cases {
		for _, orient := range []Orientation{Correlate, Convolve} {
			t.Run(fmt.Sprintf("%v %d×%d %s", c.shape, c.kh, c.kw, orient), func(t *testing.T) {
				k := make([]float64, c.kh*c.kw)
				for i := range k {
					k[i] = rng.Float64()
				}
				direct := build(math.Inf(1), c.shape, k, c.kh, c.kw, orient)
				fft := build(0, c.shape, k, c.kh, c.kw, orient)
				x := tensors.Randn(rng, 2, c.shape[0], c.shape[1], c.shape[2])
				for _, m := range []struct {
					name string
					tol  float64
					d, f func() ([]float32, error)
				}{
					{"Forward", 2e-6, func() ([]float32, error) { return f32(direct.Forward(x)) }, func() ([]float32, error) { return f32(fft.Forward(x)) }},
					{"Adjoint", 2e-6, func() ([]float32, error) { return f32(direct.Adjoint(x)) }, func() ([]float32, error) { return f32(fft.Adjoint(x)) }},
				} {
					a, err := m.d()
					if err != nil {
						t.Fatal(err)
					}
					b, err := m.f()
					if err != nil {
						t.Fatal(err)
					}
					worst := 0.0
					for i := range a {
						worst = math.Max(worst, math.Abs(float64(a[i]-b[i]))/(1+math.Abs(float64(b[i]))))
					}
					if worst > m.tol {
						t.Errorf("%s: direct and FFT paths differ by %g (relative)", m.name, worst)
					}
				}
			})
		}
	}
}

// BenchmarkReflectConv is BenchmarkCircConv for reflect-padded filtering:
//
//	go test ./inverse/op -run '^$' -bench ReflectConv
func BenchmarkReflectConv(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	for _, side := range []int{28, 64} {
		for _, ks := range []int{7, 9, 13, 15, 17} {
			k := make([]float64, ks*ks)
			for i := range k {
				k[i] = rng.Float64()
			}
			x := tensors.Randn(rng, 8, 1, side, side)
			for _, path := range []struct {
				name    string
				perLog2 float64
			}{{"direct", math.Inf(1)}, {"fft", 0}} {
				saved := directTapsPerLog2
				directTapsPerLog2 = path.perLog2
				o, err := NewReflectFilter("bench", [3]int{1, side, side}, k, ks, ks, Correlate, 10)
				directTapsPerLog2 = saved
				if err != nil {
					b.Fatal(err)
				}
				b.Run(fmt.Sprintf("%dpx/%dx%d/%s", side, ks, ks, path.name), func(b *testing.B) {
					for range b.N {
						if _, err := o.Forward(x); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}
