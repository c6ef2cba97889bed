package op

import (
	"math"
	"math/cmplx"
	"math/rand"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/internal/tensors"
	"gorgonia.org/tensor"
)

func TestFFT2MatchesDirectDFT(t *testing.T) {
	for _, sz := range [][2]int{{6, 10}, {7, 5}, {8, 8}, {1, 3}} {
		h, w := sz[0], sz[1]
		rng := rand.New(rand.NewSource(1))
		a := make([]complex128, h*w)
		for i := range a {
			a[i] = complex(rng.NormFloat64(), rng.NormFloat64())
		}
		want := make([]complex128, h*w)
		for k := 0; k < h; k++ {
			for l := 0; l < w; l++ {
				var s complex128
				for i := 0; i < h; i++ {
					for j := 0; j < w; j++ {
						s += a[i*w+j] * cmplx.Exp(complex(0, -2*math.Pi*(float64(k*i)/float64(h)+float64(l*j)/float64(w))))
					}
				}
				want[k*w+l] = s
			}
		}
		got := append([]complex128(nil), a...)
		f := NewFFT2(h, w)
		f.Forward(got)
		for i := range got {
			if cmplx.Abs(got[i]-want[i]) > 1e-9 {
				t.Fatalf("%d×%d: coefficient %d is %v, want %v", h, w, i, got[i], want[i])
			}
		}
		f.Inverse(got)
		for i := range got {
			if cmplx.Abs(got[i]-a[i]) > 1e-12 {
				t.Fatalf("%d×%d: inverse(forward) at %d is %v, want %v", h, w, i, got[i], a[i])
			}
		}
	}
}

func TestFWHTMatchesSylvesterHadamard(t *testing.T) {
	for _, n := range []int{1, 2, 8, 32} {
		// Sylvester: H[i][j] = (−1)^popcount(i&j) / √n
		rng := rand.New(rand.NewSource(2))
		x := make([]float64, n)
		for i := range x {
			x[i] = rng.NormFloat64()
		}
		got := append([]float64(nil), x...)
		fwht(got)
		for i := 0; i < n; i++ {
			s := 0.0
			for j := 0; j < n; j++ {
				sign := 1.0
				for b := i & j; b != 0; b &= b - 1 {
					sign = -sign
				}
				s += sign * x[j]
			}
			s /= math.Sqrt(float64(n))
			if math.Abs(s-got[i]) > 1e-12 {
				t.Fatalf("n=%d: coefficient %d is %v, want %v", n, i, got[i], s)
			}
		}
	}
}

func TestBicubicMatrixReproducesRampsInTheInterior(t *testing.T) {
	for _, k := range []int{2, 4} {
		n := 64
		a, err := BicubicMatrix(n, k)
		if err != nil {
			t.Fatal(err)
		}
		for o := 0; o < n/k; o++ {
			sum, ramp := 0.0, 0.0
			for j := 0; j < n; j++ {
				sum += a.At(o, j)
				ramp += a.At(o, j) * float64(j)
			}
			if math.Abs(sum-1) > 1e-12 {
				t.Errorf("k=%d: row %d sums to %v, want 1", k, o, sum)
			}
			// output pixel o sits at input coordinate (o+½)k − ½; a symmetric
			// kernel reproduces linear functions away from the borders.
			if o >= 2 && o < n/k-2 {
				if want := (float64(o)+0.5)*float64(k) - 0.5; math.Abs(ramp-want) > 1e-9 {
					t.Errorf("k=%d: ramp at output %d is %v, want %v", k, o, ramp, want)
				}
			}
		}
	}
	if _, err := BicubicMatrix(30, 4); err == nil {
		t.Error("BicubicMatrix(30, 4) accepted a size not divisible by the factor")
	}
}

func TestClosedFormForwards(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	shape := [3]int{3, 8, 12}
	x := tensors.Randn(rng, 2, 3, 8, 12)
	xd := tensors.F32(x)
	at := func(n, c, i, j int) float64 { return float64(xd[((n*3+c)*8+i)*12+j]) }

	t.Run("avgpool", func(t *testing.T) {
		o, _ := NewSRAvgPool(shape, 4)
		y, err := o.Forward(x)
		if err != nil {
			t.Fatal(err)
		}
		yd := tensors.F32(y)
		for n := 0; n < 2; n++ {
			for c := 0; c < 3; c++ {
				for i := 0; i < 2; i++ {
					for j := 0; j < 3; j++ {
						s := 0.0
						for a := 0; a < 4; a++ {
							for b := 0; b < 4; b++ {
								s += at(n, c, 4*i+a, 4*j+b)
							}
						}
						if got := float64(yd[((n*3+c)*2+i)*3+j]); math.Abs(got-s/16) > 1e-6 {
							t.Fatalf("block (%d,%d,%d,%d) is %v, want %v", n, c, i, j, got, s/16)
						}
					}
				}
			}
		}
		if sv := o.Singulars(); math.Abs(float64(sv[0])-0.25) > 1e-6 {
			t.Errorf("singular value %v, want 1/k = 0.25", sv[0])
		}
	})
	t.Run("gaussian blur = direct zero-padded 2-D correlation", func(t *testing.T) {
		o, err := NewGaussianBlur(shape, 5, 1.2, 0)
		if err != nil {
			t.Fatal(err)
		}
		g, _ := Gaussian1D(5, 1.2)
		y, err := o.Forward(x)
		if err != nil {
			t.Fatal(err)
		}
		yd := tensors.F32(y)
		for n := 0; n < 2; n++ {
			for c := 0; c < 3; c++ {
				for i := 0; i < 8; i++ {
					for j := 0; j < 12; j++ {
						s := 0.0
						for a := -2; a <= 2; a++ {
							for b := -2; b <= 2; b++ {
								if i+a >= 0 && i+a < 8 && j+b >= 0 && j+b < 12 {
									s += g[a+2] * g[b+2] * at(n, c, i+a, j+b)
								}
							}
						}
						if got := float64(yd[((n*3+c)*8+i)*12+j]); math.Abs(got-s) > 1e-5 {
							t.Fatalf("pixel (%d,%d,%d,%d) is %v, want %v", n, c, i, j, got, s)
						}
					}
				}
			}
		}
	})
	t.Run("colorize", func(t *testing.T) {
		o, _ := NewColorize(shape)
		y, _ := o.Forward(x)
		yd := tensors.F32(y)
		for n := 0; n < 2; n++ {
			for i := 0; i < 8; i++ {
				for j := 0; j < 12; j++ {
					want := (at(n, 0, i, j) + at(n, 1, i, j) + at(n, 2, i, j)) / 3
					if got := float64(yd[(n*8+i)*12+j]); math.Abs(got-want) > 1e-6 {
						t.Fatalf("gray (%d,%d,%d) is %v, want %v", n, i, j, got, want)
					}
				}
			}
		}
		p, _ := o.Pinv(y)
		pd := tensors.F32(p)
		for n := 0; n < 2; n++ {
			for c := 0; c < 3; c++ {
				if pd[(n*3+c)*96+17] != yd[n*96+17] {
					t.Fatalf("A†y channel %d is %v, want the gray value %v", c, pd[(n*3+c)*96+17], yd[n*96+17])
				}
			}
		}
	})
	t.Run("circular convolution = direct sum", func(t *testing.T) {
		k := []float64{0.1, 0.2, 0, 0.05, 0.3, 0.1, 0, 0.15, 0.1, 0, 0, 0} // 3×4, not symmetric
		o, err := NewCircConv("test", shape, k, 3, 4, 0)
		if err != nil {
			t.Fatal(err)
		}
		y, _ := o.Forward(x)
		yd := tensors.F32(y)
		for n := 0; n < 2; n++ {
			for c := 0; c < 3; c++ {
				for i := 0; i < 8; i++ {
					for j := 0; j < 12; j++ {
						s := 0.0
						for a := 0; a < 3; a++ {
							for b := 0; b < 4; b++ {
								ii := ((i-(a-1))%8 + 8) % 8
								jj := ((j-(b-2))%12 + 12) % 12
								s += k[a*4+b] * at(n, c, ii, jj)
							}
						}
						if got := float64(yd[((n*3+c)*8+i)*12+j]); math.Abs(got-s) > 1e-5 {
							t.Fatalf("pixel (%d,%d,%d,%d) is %v, want %v", n, c, i, j, got, s)
						}
					}
				}
			}
		}
	})
	t.Run("well-conditioned circular convolution is inverted exactly", func(t *testing.T) {
		k := []float64{0.05, 0.1, 0.05, 0.1, 0.6, 0.05, 0, 0.05, 0} // |K̂| ≥ 0.6−0.4 > 0
		o, err := NewCircConv("test", shape, k, 3, 3, 0)
		if err != nil {
			t.Fatal(err)
		}
		y := tensors.Randn(rng, 2, 3, 8, 12)
		p, _ := o.Pinv(y)
		back, _ := o.Forward(p)
		if d := relDiff(back, y); d > 1e-5 {
			t.Errorf("A A† y differs from y by %g for an invertible kernel", d)
		}
	})
}

func TestInpaintingMasks(t *testing.T) {
	shape := [3]int{3, 32, 32}
	r, err := NewInpaintRandom(shape, 0.92, rand.New(rand.NewSource(4)))
	if err != nil {
		t.Fatal(err)
	}
	miss := 0
	for _, v := range r.Mask() {
		if v == 0 {
			miss++
		}
	}
	if want := int(math.Round(0.92 * 1024)); miss != want {
		t.Errorf("random mask misses %d pixels, want %d", miss, want)
	}
	b, err := NewInpaintBox(shape, 10, 3, 20)
	if err != nil {
		t.Fatal(err)
	}
	x := tensors.New(1, 3, 32, 32)
	for i := range tensors.F32(x) {
		tensors.F32(x)[i] = 0.5
	}
	y, _ := b.Forward(x)
	yd := tensors.F32(y)
	for c := 0; c < 3; c++ {
		for i := 0; i < 32; i++ {
			for j := 0; j < 32; j++ {
				in := i >= 3 && i < 13 && j >= 20 && j < 30
				v := yd[(c*32+i)*32+j]
				if in && v != 0 || !in && v != 0.5 {
					t.Fatalf("pixel (%d,%d,%d) = %v, box covers rows 3–12, cols 20–29", c, i, j, v)
				}
			}
		}
	}
	if _, err := NewInpaintBox(shape, 10, 25, 0); err == nil {
		t.Error("a box past the border was accepted")
	}
	if _, err := NewInpaintRandom(shape, 1.5, rand.New(rand.NewSource(1))); err == nil {
		t.Error("missing fraction 1.5 was accepted")
	}
}

func TestScaledOddSize(t *testing.T) {
	for _, c := range []struct{ ref, n, want int }{{61, 256, 61}, {61, 64, 17}, {61, 32, 9}, {61, 28, 7}, {9, 32, 3}, {9, 256, 9}} {
		if got := ScaledOddSize(c.ref, c.n); got != c.want {
			t.Errorf("ScaledOddSize(%d, %d) = %d, want %d", c.ref, c.n, got, c.want)
		}
	}
}

func TestMotionKernel(t *testing.T) {
	distinct := 0
	var prev []float64
	for seed := int64(0); seed < 6; seed++ {
		k, err := MotionKernel(17, 0.5, rand.New(rand.NewSource(seed)))
		if err != nil {
			t.Fatal(err)
		}
		again, _ := MotionKernel(17, 0.5, rand.New(rand.NewSource(seed)))
		sum, nz := 0.0, 0
		for i, v := range k {
			if v < 0 {
				t.Fatalf("seed %d: negative weight %v", seed, v)
			}
			if v != again[i] {
				t.Fatalf("seed %d: not reproducible at %d", seed, i)
			}
			sum += v
			if v > 1e-3 {
				nz++
			}
		}
		if math.Abs(sum-1) > 1e-9 {
			t.Errorf("seed %d: kernel sums to %v", seed, sum)
		}
		if nz < 3 {
			t.Errorf("seed %d: only %d pixels above 1e-3: not a blur", seed, nz)
		}
		if prev != nil {
			for i := range k {
				if k[i] != prev[i] {
					distinct++
					break
				}
			}
		}
		prev = k
	}
	if distinct < 5 {
		t.Errorf("only %d of 5 consecutive seed pairs gave different kernels", distinct)
	}
	if _, err := MotionKernel(9, 1.5, rand.New(rand.NewSource(1))); err == nil {
		t.Error("intensity 1.5 was accepted")
	}
}

// fdCheck compares VJP(x, g) with central finite differences of
// <g, A(x)> along random directions.
func fdCheck(t *testing.T, o Operator, x *tensor.Dense, rng *rand.Rand, h, tol float64) {
	t.Helper()
	y, err := o.Forward(x)
	if err != nil {
		t.Fatal(err)
	}
	g := tensors.Randn(rng, y.Shape().Clone()...)
	v, err := o.VJP(x, g)
	if err != nil {
		t.Fatal(err)
	}
	for trial := 0; trial < 3; trial++ {
		dir := tensors.Randn(rng, x.Shape().Clone()...)
		xp, xm := tensors.Clone(x), tensors.Clone(x)
		for i, d := range tensors.F32(dir) {
			tensors.F32(xp)[i] += float32(h) * d
			tensors.F32(xm)[i] -= float32(h) * d
		}
		yp, _ := o.Forward(xp)
		ym, _ := o.Forward(xm)
		fd := (dot(g, yp) - dot(g, ym)) / (2 * h)
		an := dot(v, dir)
		if math.Abs(fd-an) > tol*(math.Abs(fd)+math.Abs(an)+1e-3) {
			t.Errorf("trial %d: finite difference %v, VJP %v", trial, fd, an)
		}
	}
}

func TestPhaseRetrieval(t *testing.T) {
	o, err := NewPhaseRetrieval([3]int{2, 12, 12}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if o.Pad() != 3 || o.OutShape()[1] != 18 {
		t.Fatalf("pad %d, out %v; want a quarter of the side (3) each way", o.Pad(), o.OutShape())
	}
	rng := rand.New(rand.NewSource(5))
	x := tensors.Randn(rng, 2, 2, 12, 12)
	for i, v := range tensors.F32(x) {
		tensors.F32(x)[i] = float32(math.Tanh(float64(v)))
	}
	y, err := o.Forward(x)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("Parseval", func(t *testing.T) {
		for n := 0; n < 2; n++ {
			for c := 0; c < 2; c++ {
				ex, ey := 0.0, 0.0
				for i := 0; i < 144; i++ {
					u := (float64(tensors.F32(x)[(n*2+c)*144+i]) + 1) / 2
					ex += u * u
				}
				for i := 0; i < 324; i++ {
					v := float64(tensors.F32(y)[(n*2+c)*324+i])
					ey += v * v
				}
				if math.Abs(ex-ey) > 1e-4*ex {
					t.Errorf("image %d channel %d: Σ|y|² = %v, Σ u² = %v", n, c, ey, ex)
				}
			}
		}
	})
	t.Run("translation invariance", func(t *testing.T) {
		a, b := tensors.New(1, 2, 12, 12), tensors.New(1, 2, 12, 12)
		for i := range tensors.F32(a) {
			tensors.F32(a)[i], tensors.F32(b)[i] = -1, -1 // background 0 on the [0,1] scale
		}
		for c := 0; c < 2; c++ {
			for i := 2; i < 7; i++ {
				for j := 3; j < 9; j++ {
					v := float32(rng.Float64())
					tensors.F32(a)[(c*12+i)*12+j] = v
					tensors.F32(b)[(c*12+i+3)*12+j-2] = v // shifted object
				}
			}
		}
		ya, _ := o.Forward(a)
		yb, _ := o.Forward(b)
		if d := relDiff(ya, yb); d > 1e-5 {
			t.Errorf("|F| changed by %g under translation", d)
		}
	})
	t.Run("VJP matches finite differences", func(t *testing.T) {
		fdCheck(t, o, x, rng, 1e-3, 1e-3)
	})
	t.Run("shape errors", func(t *testing.T) {
		if _, err := o.VJP(x, x); err == nil || !strings.Contains(err.Error(), "g") {
			t.Errorf("VJP with an image-shaped cotangent: error %v", err)
		}
		if _, err := NewPhaseRetrieval([3]int{1, 8, 10}, 2); err == nil {
			t.Error("non-square image accepted")
		}
	})
}

func TestNonUniformBlur(t *testing.T) {
	rng := rand.New(rand.NewSource(6))
	var ks [][]float64
	for i := 0; i < 3; i++ {
		k, _ := MotionKernel(5, 0.5, rng)
		ks = append(ks, k)
	}
	o, err := NewNonUniformBlur([3]int{3, 16, 16}, ks, 5, 5)
	if err != nil {
		t.Fatal(err)
	}
	for p := 0; p < 256; p += 37 {
		s := 0.0
		for k := 0; k < 3; k++ {
			s += o.Weights(k)[p]
		}
		if math.Abs(s-1) > 1e-12 {
			t.Fatalf("weights at pixel %d sum to %v", p, s)
		}
	}
	c := tensors.New(1, 3, 16, 16)
	for i := range tensors.F32(c) {
		tensors.F32(c)[i] = 0.3
	}
	yc, _ := o.Forward(c)
	for i, v := range tensors.F32(yc) {
		if math.Abs(float64(v)-0.3) > 1e-5 {
			t.Fatalf("constant image not preserved at %d: %v", i, v)
		}
	}
	x := tensors.Randn(rng, 2, 3, 16, 16)
	fdCheck(t, o, x, rng, 1e-2, 1e-4)
	y := tensors.Randn(rng, 2, 3, 16, 16)
	ax, _ := o.Forward(x)
	aty, _ := o.Adjoint(y)
	if l, r := dot(ax, y), dot(x, aty); math.Abs(l-r) > 1e-5*norm(ax)*norm(y) {
		t.Errorf("<Ax,y> = %v, <x,Aᵀy> = %v", l, r)
	}
	// the blur really varies: the same local pattern blurs differently in two corners
	w0, w1 := o.Weights(0), o.Weights(1)
	if math.Abs(w0[0]-w0[255]) < 0.05 && math.Abs(w1[0]-w1[255]) < 0.05 {
		t.Error("weight maps are nearly constant across the image")
	}
}

func TestNoiseStatistics(t *testing.T) {
	const n = 200000
	base := tensors.New(1, 1, 1, n)
	for i := range tensors.F32(base) {
		tensors.F32(base)[i] = 0.2
	}
	rng := rand.New(rand.NewSource(8))
	cases := []struct {
		name           string
		noise          Noise
		mean, variance float64
	}{
		{"gaussian", &Gaussian{Sigma: 0.05}, 0.2, 0.0025},
		{"poisson", &Poisson{Rate: 1}, 0.2, 2 * 1.2 / 255},
		{"poisson rate 0.1", &Poisson{Rate: 0.1}, 0.2, 2 * 1.2 / 25.5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			y, err := c.noise.Sample(base, rng)
			if err != nil {
				t.Fatal(err)
			}
			s, s2 := 0.0, 0.0
			for _, v := range tensors.F32(y) {
				s += float64(v)
				s2 += float64(v) * float64(v)
			}
			mean := s / n
			vr := s2/n - mean*mean
			if math.Abs(mean-c.mean) > 5*math.Sqrt(c.variance/n) {
				t.Errorf("mean %v, want %v", mean, c.mean)
			}
			if math.Abs(vr-c.variance) > 0.03*c.variance {
				t.Errorf("variance %v, want %v", vr, c.variance)
			}
		})
	}
}

func TestNoiseGradients(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	ax := tensors.Randn(rng, 2, 1, 4, 4)
	for i, v := range tensors.F32(ax) {
		tensors.F32(ax)[i] = 0.5 * float32(math.Tanh(float64(v)))
	}
	for _, nz := range []Noise{&Gaussian{Sigma: 0.1}, &Gaussian{}, &Poisson{Rate: 0.5}} {
		t.Run(nz.Name(), func(t *testing.T) {
			y, _ := nz.Sample(ax, rng)
			g, err := nz.Grad(ax, y)
			if err != nil {
				t.Fatal(err)
			}
			for _, idx := range []int{0, 5, 17, 31} {
				const h = 1e-3
				p, m := tensors.Clone(ax), tensors.Clone(ax)
				tensors.F32(p)[idx] += h
				tensors.F32(m)[idx] -= h
				lp, _ := nz.NegLogLik(p, y)
				lm, _ := nz.NegLogLik(m, y)
				img := idx / 16
				fd := (lp[img] - lm[img]) / (float64(tensors.F32(p)[idx]) - float64(tensors.F32(m)[idx]))
				an := float64(tensors.F32(g)[idx])
				if math.Abs(fd-an) > 1e-2*(math.Abs(an)+1) {
					t.Errorf("index %d: finite difference %v, gradient %v", idx, fd, an)
				}
			}
			if _, err := nz.Grad(ax, tensors.New(2, 1, 4, 5)); err == nil {
				t.Error("shape mismatch accepted")
			}
		})
	}
}

func TestRegistryErrors(t *testing.T) {
	s := [3]int{3, 16, 16}
	rng := rand.New(rand.NewSource(1))
	cases := []struct {
		name   string
		params map[string]any
		rng    *rand.Rand
		want   []string
	}{
		{"sr_bilinear", nil, rng, []string{`unknown operator "sr_bilinear"`, "sr_bicubic", "inpaint_box", "phase_retrieval"}},
		{"blur_gauss", map[string]any{"sigm": 1.0}, rng, []string{`"sigm"`, "sigma", "size", "svd_tol"}},
		{"blur_gauss", map[string]any{"sigma": "wide"}, rng, []string{`"sigma"`, "want a number"}},
		{"sr_avgpool", map[string]any{"factor": 2.5}, rng, []string{`"factor"`, "integer"}},
		{"sr_avgpool", map[string]any{"factor": 3}, rng, []string{"not divisible"}},
		{"inpaint_random", nil, nil, []string{"rand.Rand"}},
		{"inpaint_box", map[string]any{"top": 3}, rng, []string{"top and left"}},
		{"inpaint_file", nil, rng, []string{`"path" is required`}},
		{"cs_walsh", nil, rng, []string{"power of two"}}, // 16·16 is fine; see below
		{"colorize", nil, rng, nil},
	}
	cases[8].params = map[string]any{"ratio": 0.0}
	cases[8].want = []string{"ratio 0"}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(c.name, c.params, s, c.rng)
			if c.want == nil {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want one mentioning %v", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := New("cs_walsh", nil, [3]int{1, 28, 28}, rng); err == nil || !strings.Contains(err.Error(), "power of two") {
		t.Errorf("cs_walsh on 28×28: error %v, want a power-of-two complaint", err)
	}
	if _, err := NewNoise("laplace", 0.1, 1); err == nil || !strings.Contains(err.Error(), "gaussian") {
		t.Errorf("unknown noise: error %v", err)
	}
	for _, name := range Names() {
		if strings.HasPrefix(name, "inpaint_file") || name == "blur_file" {
			continue
		}
		o, err := New(name, nil, [3]int{3, 32, 32}, rand.New(rand.NewSource(2)))
		if err != nil {
			t.Errorf("%s with defaults at 32 px: %v", name, err)
			continue
		}
		if _, ok := o.(Shaped); !ok {
			t.Errorf("%s does not report its shapes", name)
		}
	}
}

func TestDataFiles(t *testing.T) {
	if !fileExists(maskDir+"inp_mask.npy") || !fileExists(kernelDir+"kernels_12.npy") {
		t.Skip("shared test data not present")
	}
	mn, err := LoadMask(maskDir+"inp_mask.npy", 64, 64)
	if err != nil {
		t.Fatal(err)
	}
	mp, err := LoadMask(maskDir+"inp_mask.png", 64, 64)
	if err != nil {
		t.Fatal(err)
	}
	agree, ones := 0, 0
	for i := range mn {
		if mn[i] != 0 && mn[i] != 1 {
			t.Fatalf("mask value %v", mn[i])
		}
		if mn[i] == mp[i] {
			agree++
		}
		if mn[i] == 1 {
			ones++
		}
	}
	if agree < len(mn)*99/100 {
		t.Errorf("PNG and NPY masks agree on %d of %d pixels", agree, len(mn))
	}
	if ones == 0 || ones == len(mn) {
		t.Errorf("mask is constant (%d observed of %d)", ones, len(mn))
	}
	if _, err := New("inpaint_file", map[string]any{"path": maskDir + "inp_mask.png"}, [3]int{3, 64, 64}, nil); err != nil {
		t.Error(err)
	}
	k, kh, kw, err := LoadKernel(kernelDir+"kernels_12.npy", 11)
	if err != nil {
		t.Fatal(err)
	}
	if kh != 25 || kw != 25 {
		t.Errorf("kernel size %d×%d, want 25×25", kh, kw)
	}
	sum := 0.0
	for _, v := range k {
		sum += v
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Errorf("kernel sums to %v", sum)
	}
	if _, _, _, err := LoadKernel(kernelDir+"kernels_12.npy", 12); err == nil || !strings.Contains(err.Error(), "12") {
		t.Errorf("index 12 of 12 kernels: error %v", err)
	}
	for i := 1; i <= 8; i++ {
		p := kernelDir + "levin09_k" + string(rune('0'+i)) + ".npy"
		if _, _, _, err := LoadKernel(p, 0); err != nil {
			t.Errorf("Levin kernel %d: %v", i, err)
		}
	}
}

func TestRandomBoxCornerRange(t *testing.T) {
	rng := rand.New(rand.NewSource(12))
	lo, hi := 1<<30, -1
	for i := 0; i < 2000; i++ {
		top, left, err := RandomBoxCorner(32, 32, 16, 2, rng)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []int{top, left} {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	// DPS: randint(margin, size − margin − box) excludes the upper end: [2, 14)
	if lo != 2 || hi != 13 {
		t.Errorf("corners range over [%d, %d], want [2, 13]", lo, hi)
	}
	if _, _, err := RandomBoxCorner(32, 32, 30, 2, rng); err == nil {
		t.Error("a box that cannot fit inside the margins was accepted")
	}
}

func TestGaussian1D(t *testing.T) {
	k, err := Gaussian1D(9, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	// truncation at ⌊4σ+½⌋ = 2 taps from the centre
	for _, i := range []int{0, 1, 7, 8} {
		if k[i] != 0 {
			t.Errorf("tap %d = %v beyond 4σ, want 0", i, k[i])
		}
	}
	if r := k[5] / k[4]; math.Abs(r-math.Exp(-2)) > 1e-12 {
		t.Errorf("ratio of neighbouring taps %v, want exp(−1/(2σ²)) = %v", r, math.Exp(-2))
	}
	if s := k[2] + k[3] + k[4] + k[5] + k[6]; math.Abs(s-1) > 1e-12 {
		t.Errorf("kernel sums to %v", s)
	}
	for _, bad := range []struct {
		size  int
		sigma float64
	}{{8, 1}, {9, 0}, {-1, 1}} {
		if _, err := Gaussian1D(bad.size, bad.sigma); err == nil {
			t.Errorf("Gaussian1D(%d, %v) accepted", bad.size, bad.sigma)
		}
	}
}
