package dnnl

import (
	"math"
	"math/rand"
	"strings"
	"testing"
)

// refConv is a float64 cross-correlation of NCHW x with OIHW w (+b).
func refConv(s Shape, x, w, b []float32) []float64 {
	oh, ow := s.Out()
	y := make([]float64, s.N*s.O*oh*ow)
	for n := 0; n < s.N; n++ {
		for o := 0; o < s.O; o++ {
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					var acc float64
					if b != nil {
						acc = float64(b[o])
					}
					for c := 0; c < s.C; c++ {
						for ki := 0; ki < s.KH; ki++ {
							ih := i*s.Stride - s.Pad + ki
							if ih < 0 || ih >= s.H {
								continue
							}
							for kj := 0; kj < s.KW; kj++ {
								iw := j*s.Stride - s.Pad + kj
								if iw < 0 || iw >= s.W {
									continue
								}
								acc += float64(x[((n*s.C+c)*s.H+ih)*s.W+iw]) * float64(w[((o*s.C+c)*s.KH+ki)*s.KW+kj])
							}
						}
					}
					y[((n*s.O+o)*oh+i)*ow+j] = acc
				}
			}
		}
	}
	return y
}

// refBwd returns dx and dw of ⟨dy, conv(x, w)⟩ in float64.
func refBwd(s Shape, x, w, dy []float32) (dx, dw []float64) {
	oh, ow := s.Out()
	dx = make([]float64, len(x))
	dw = make([]float64, len(w))
	for n := 0; n < s.N; n++ {
		for o := 0; o < s.O; o++ {
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					g := float64(dy[((n*s.O+o)*oh+i)*ow+j])
					for c := 0; c < s.C; c++ {
						for ki := 0; ki < s.KH; ki++ {
							ih := i*s.Stride - s.Pad + ki
							if ih < 0 || ih >= s.H {
								continue
							}
							for kj := 0; kj < s.KW; kj++ {
								iw := j*s.Stride - s.Pad + kj
								if iw < 0 || iw >= s.W {
									continue
								}
								xi := ((n*s.C+c)*s.H+ih)*s.W + iw
								wi := ((o*s.C+c)*s.KH+ki)*s.KW + kj
								dx[xi] += g * float64(w[wi])
								dw[wi] += g * float64(x[xi])
							}
						}
					}
				}
			}
		}
	}
	return dx, dw
}

func randn(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

func rounded(v []float32) []float32 {
	r := make([]float32, len(v))
	RoundBF16(v, r)
	return r
}

// relErr is ‖got − want‖ / ‖want‖.
func relErr(got []float32, want []float64) float64 {
	var num, den float64
	for i := range want {
		d := float64(got[i]) - want[i]
		num += d * d
		den += want[i] * want[i]
	}
	return math.Sqrt(num / den)
}

var shapes = []struct {
	name string
	s    Shape
}{
	{"3x3 pad1", Shape{N: 3, C: 16, H: 9, W: 9, O: 32, KH: 3, KW: 3, Stride: 1, Pad: 1, Bias: true}},
	{"3x3 one input channel", Shape{N: 2, C: 1, H: 28, W: 28, O: 32, KH: 3, KW: 3, Stride: 1, Pad: 1, Bias: true}},
	{"3x3 stride2 pad1 odd", Shape{N: 2, C: 32, H: 7, W: 7, O: 32, KH: 3, KW: 3, Stride: 2, Pad: 1, Bias: true}},
	{"3x3 stride2 pad0 (DDPM downsample)", Shape{N: 2, C: 32, H: 15, W: 15, O: 32, KH: 3, KW: 3, Stride: 2, Pad: 0, Bias: true}},
	{"1x1 no bias", Shape{N: 2, C: 64, H: 7, W: 7, O: 96, KH: 1, KW: 1, Stride: 1, Pad: 0}},
	{"3x3 to one channel", Shape{N: 2, C: 32, H: 8, W: 8, O: 1, KH: 3, KW: 3, Stride: 1, Pad: 1, Bias: true}},
}

// TestConvMatchesFloat64: with inputs already rounded to bf16, every pass
// equals a float64 reference to float32 accumulation error (1e-5), and
// with raw float32 inputs to bf16's input rounding (2e-2: 8-bit
// mantissas, errors averaging out over the sums).
func TestConvMatchesFloat64(t *testing.T) {
	if ok, why := Available(); !ok {
		t.Skip("bf16 unavailable: " + why)
	}
	rng := rand.New(rand.NewSource(1))
	for _, tc := range shapesBothLayouts() {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s
			oh, ow := s.Out()
			x, w := randn(rng, s.N*s.C*s.H*s.W), randn(rng, s.O*s.C*s.KH*s.KW)
			dy := randn(rng, s.N*s.O*oh*ow)
			var b []float32
			if s.Bias {
				b = randn(rng, s.O)
			}
			c, err := NewConv(s, 1)
			if err != nil {
				t.Fatal(err)
			}
			y := make([]float32, len(dy))
			dx := make([]float32, len(x))
			dw := make([]float32, len(w))
			for _, exact := range []bool{true, false} {
				xi, wi, dyi := x, w, dy
				tol := 2e-2
				if exact {
					xi, wi, dyi, tol = rounded(x), rounded(w), rounded(dy), 1e-5
				}
				if err := c.Forward(0, lay(s, xi, s.C, s.H, s.W), wi, b, y); err != nil {
					t.Fatal(err)
				}
				y := unlay(s, y, s.O, oh, ow)
				if e := relErr(y, refConv(s, xi, wi, b)); e > tol {
					t.Errorf("exact=%v forward: relative error %.2e > %.0e", exact, e, tol)
				}
				if err := c.BackwardData(1, wi, lay(s, dyi, s.O, oh, ow), dx); err != nil {
					t.Fatal(err)
				}
				dx := unlay(s, dx, s.C, s.H, s.W)
				// backward weights from the forward's kept input, then from x
				if err := c.BackwardWeights(0, nil, lay(s, dyi, s.O, oh, ow), dw); err != nil {
					t.Fatal(err)
				}
				rdx, rdw := refBwd(s, xi, wi, dyi)
				if e := relErr(dx, rdx); e > tol {
					t.Errorf("exact=%v backward data: relative error %.2e > %.0e", exact, e, tol)
				}
				if e := relErr(dw, rdw); e > tol {
					t.Errorf("exact=%v backward weights (kept input): relative error %.2e > %.0e", exact, e, tol)
				}
				// a fresh convolution without a forward converts x itself
				c2, err := NewConv(s, 1)
				if err != nil {
					t.Fatal(err)
				}
				clear(dw)
				if err := c2.BackwardWeights(0, lay(s, xi, s.C, s.H, s.W), lay(s, dyi, s.O, oh, ow), dw); err != nil {
					t.Fatal(err)
				}
				if e := relErr(dw, rdw); e > tol {
					t.Errorf("exact=%v backward weights: relative error %.2e > %.0e", exact, e, tol)
				}
			}
			t.Logf("kernels: %s | %s | %s", c.Impl(Forward), c.Impl(BackwardData), c.Impl(BackwardWeights))
		})
	}
}

// TestConvErrors: short slices and bad shapes are errors naming the argument.
func TestConvErrors(t *testing.T) {
	if ok, why := Available(); !ok {
		t.Skip("bf16 unavailable: " + why)
	}
	if _, err := NewConv(Shape{N: 1, C: 1, H: 2, W: 2, O: 1, KH: 3, KW: 3, Stride: 1}, 1); err == nil {
		t.Error("a kernel larger than the input was accepted")
	}
	c, err := NewConv(Shape{N: 1, C: 2, H: 4, W: 4, O: 3, KH: 3, KW: 3, Stride: 1, Pad: 1}, 1)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Forward(0, make([]float32, 31), make([]float32, 54), nil, make([]float32, 48))
	if err == nil || err.Error() != "dnnl: x has 31 elements, want 32" {
		t.Errorf("short x: got %v", err)
	}
}

// TestRoundBF16: ties go to even, the top 16 bits survive, NaN stays NaN.
func TestRoundBF16(t *testing.T) {
	in := []float32{1, 1 + 1.0/256, 1 + 1.0/128 + 1.0/256, 3.14159, float32(math.NaN()), float32(math.Inf(-1))}
	want := []float32{1, 1, 1 + 2.0/128, 3.140625, float32(math.NaN()), float32(math.Inf(-1))}
	got := make([]float32, len(in))
	RoundBF16(in, got)
	for i := range in {
		if math.IsNaN(float64(want[i])) {
			if !math.IsNaN(float64(got[i])) {
				t.Errorf("RoundBF16(NaN) = %v", got[i])
			}
			continue
		}
		if got[i] != want[i] {
			t.Errorf("RoundBF16(%v) = %v, want %v", in[i], got[i], want[i])
		}
	}
}

// shapesBothLayouts is shapes in NCHW and again in NHWC.
func shapesBothLayouts() []struct {
	name string
	s    Shape
} {
	all := append([]struct {
		name string
		s    Shape
	}(nil), shapes...)
	for _, tc := range shapes {
		tc.name += " NHWC"
		tc.s.NHWC = true
		all = append(all, tc)
	}
	return all
}

// lay returns NCHW v (N×c×h×w) in the convolution's layout.
func lay(s Shape, v []float32, c, h, w int) []float32 { return relayout(s, v, c, h*w, true) }

// unlay returns v from the convolution's layout as NCHW.
func unlay(s Shape, v []float32, c, h, w int) []float32 { return relayout(s, v, c, h*w, false) }

// relayout moves v's channels last (toNHWC) or back to second place when
// the convolution is NHWC, and returns v itself otherwise.
func relayout(s Shape, v []float32, c, hw int, toNHWC bool) []float32 {
	if !s.NHWC {
		return v
	}
	r := make([]float32, len(v))
	for n := 0; n < s.N; n++ {
		for ch := 0; ch < c; ch++ {
			for p := 0; p < hw; p++ {
				nchw, nhwc := (n*c+ch)*hw+p, (n*hw+p)*c+ch
				if toNHWC {
					r[nhwc] = v[nchw]
				} else {
					r[nchw] = v[nhwc]
				}
			}
		}
	}
	return r
}

// TestSharedOutputGradient: the backward passes keep the bf16 output
// gradient in their slot's work area, not per convolution. Backward weights
// right after backward data of the same convolution reuses its conversion
// (shown by handing it a different dy, which it then ignores); with another
// convolution's backward pass in the slot between, it converts its own dy
// again and gets the same weight gradient as an uninterleaved run.
func TestSharedOutputGradient(t *testing.T) {
	if ok, why := Available(); !ok {
		t.Skip("bf16 unavailable: " + why)
	}
	rng := rand.New(rand.NewSource(2))
	s := Shape{N: 2, C: 8, H: 6, W: 6, O: 8, KH: 3, KW: 3, Stride: 1, Pad: 1, Bias: true, NHWC: true}
	oh, ow := s.Out()
	newConv := func() *Conv {
		c, err := NewConv(s, 1)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	x, w, b := randn(rng, s.N*s.C*s.H*s.W), randn(rng, s.O*s.C*9), randn(rng, s.O)
	dyA, dyB := randn(rng, s.N*s.O*oh*ow), randn(rng, s.N*s.O*oh*ow)
	y := make([]float32, len(dyA))
	dx := make([]float32, len(x))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// the reference: A alone, weights first (nothing to reuse)
	a := newConv()
	must(a.Forward(0, x, w, b, y))
	want := make([]float32, len(w))
	must(a.BackwardWeights(0, nil, dyA, want))

	same := func(what string, got []float32) {
		t.Helper()
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: dw[%d] = %g, want %g", what, i, got[i], want[i])
			}
		}
	}
	got := make([]float32, len(w))
	must(a.Forward(0, x, w, b, y))
	must(a.BackwardData(0, w, dyA, dx))
	must(a.BackwardWeights(0, nil, dyB, got)) // reuses dyA's conversion
	same("backward weights after backward data", got)

	bc := newConv()
	must(bc.Forward(0, x, w, b, y))
	must(a.Forward(0, x, w, b, y))
	must(a.BackwardData(0, w, dyA, dx))
	must(bc.BackwardData(0, w, dyB, dx)) // overwrites the slot's dy
	must(a.BackwardWeights(0, nil, dyA, got))
	same("backward weights with another convolution's pass between", got)

	must(a.Forward(0, x, w, b, y))
	must(a.BackwardData(0, w, dyB, dx))
	must(a.Forward(0, x, w, b, y)) // a new forward: the kept dy is stale
	must(a.BackwardWeights(0, nil, dyA, got))
	same("backward weights after a new forward", got)
}

// TestMatmul: the strided bf16 batched product equals a float64 reference
// on bf16-rounded inputs to float32 accumulation error, for dense,
// transposed and column-block operands and a strided output, whose other
// elements it leaves alone.
func TestMatmul(t *testing.T) {
	if ok, why := Available(); !ok {
		t.Skip("bf16 unavailable: " + why)
	}
	const B, M, K, N = 3, 5, 7, 4
	for _, tc := range []struct {
		name    string
		a, b, c [3]int // strides
		alpha   float32
	}{
		{"dense", [3]int{M * K, K, 1}, [3]int{K * N, N, 1}, [3]int{M * N, N, 1}, 1},
		{"B transposed", [3]int{M * K, K, 1}, [3]int{K * N, 1, K}, [3]int{M * N, N, 1}, 0.5},
		{"A transposed, column blocks", [3]int{K * M, 1, M}, [3]int{3 * N, 3 * N * B, 1}, [3]int{N, N * B, 1}, 2},
		{"interleaved heads", [3]int{3 * K, 3 * K * B, 1}, [3]int{3 * K, 1, 3 * K * B}, [3]int{M, 1, M * B}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "interleaved heads" {
				tc.b = [3]int{3 * K, 1, 3 * K * B} // K×N view of an N-row matrix
			}
			s := MatmulShape{Batch: B, M: M, K: K, N: N, A: tc.a, B: tc.b, C: tc.c, Alpha: tc.alpha}
			la, lb, lc := s.Lens()
			rng := rand.New(rand.NewSource(3))
			a, b := rounded(randn(rng, la+5)), rounded(randn(rng, lb+5))
			c := make([]float32, lc+5)
			for i := range c {
				c[i] = 99
			}
			mm, err := NewMatmul(s)
			if err != nil {
				t.Fatal(err)
			}
			if err := mm.Run(a, b, c); err != nil {
				t.Fatal(err)
			}
			written := map[int]bool{}
			for i := 0; i < B; i++ {
				for r := 0; r < M; r++ {
					for col := 0; col < N; col++ {
						var want float64
						for k := 0; k < K; k++ {
							want += float64(a[i*tc.a[0]+r*tc.a[1]+k*tc.a[2]]) * float64(b[i*tc.b[0]+k*tc.b[1]+col*tc.b[2]])
						}
						want *= float64(tc.alpha)
						at := i*tc.c[0] + r*tc.c[1] + col*tc.c[2]
						written[at] = true
						if got := float64(c[at]); math.Abs(got-want) > 1e-5*(1+math.Abs(want)) {
							t.Fatalf("C[%d][%d][%d] = %g, want %g", i, r, col, got, want)
						}
					}
				}
			}
			for i, v := range c {
				if !written[i] && v != 99 {
					t.Fatalf("C element %d outside the product changed to %g", i, v)
				}
			}
			t.Logf("kernel %s", mm.Impl())
		})
	}
	if _, err := NewMatmul(MatmulShape{Batch: 1, M: 0, K: 1, N: 1}); err == nil {
		t.Error("zero dimension: no error")
	}
	mm, _ := NewMatmul(MatmulShape{Batch: 1, M: 2, K: 2, N: 2, A: [3]int{4, 2, 1}, B: [3]int{4, 2, 1}, C: [3]int{4, 2, 1}, Alpha: 1})
	if err := mm.Run(make([]float32, 3), make([]float32, 4), make([]float32, 4)); err == nil || !strings.Contains(err.Error(), "A has 3 elements, want 4") {
		t.Errorf("short A: %v", err)
	}
}

// TestConvIsBF16Arithmetic: on raw float32 inputs every pass equals the
// float64 reference on the bf16-rounded inputs to float32 accumulation
// error, and stays measurably away from the reference on the raw inputs:
// the kernels multiply bf16 numbers, whether on the CPU's bf16 units or
// emulated on AVX-512 (Native false), so results computed either way are
// the same arithmetic and may share an experiment's bf16 cells.
func TestConvIsBF16Arithmetic(t *testing.T) {
	if ok, why := Available(); !ok {
		t.Skip("bf16 unavailable: " + why)
	}
	t.Logf("native %v, units %q", Native(), Units())
	rng := rand.New(rand.NewSource(2))
	s := Shape{N: 2, C: 32, H: 9, W: 9, O: 16, KH: 3, KW: 3, Stride: 1, Pad: 1, Bias: true, NHWC: true}
	oh, ow := s.Out()
	x, w, dy := randn(rng, s.N*s.C*s.H*s.W), randn(rng, s.O*s.C*s.KH*s.KW), randn(rng, s.N*s.O*oh*ow)
	b := randn(rng, s.O)
	c, err := NewConv(s, 1)
	if err != nil {
		t.Fatal(err)
	}
	y, dx, dw := make([]float32, len(dy)), make([]float32, len(x)), make([]float32, len(w))
	if err := c.Forward(0, lay(s, x, s.C, s.H, s.W), w, b, y); err != nil {
		t.Fatal(err)
	}
	if err := c.BackwardData(1, w, lay(s, dy, s.O, oh, ow), dx); err != nil {
		t.Fatal(err)
	}
	if err := c.BackwardWeights(0, nil, lay(s, dy, s.O, oh, ow), dw); err != nil {
		t.Fatal(err)
	}
	xr, wr, dyr := rounded(x), rounded(w), rounded(dy)
	rdx, rdw := refBwd(s, xr, wr, dyr)
	fdx, fdw := refBwd(s, x, w, dy)
	for _, p := range []struct {
		name      string
		got       []float32
		bf16, f32 []float64
	}{
		{"forward", unlay(s, y, s.O, oh, ow), refConv(s, xr, wr, b), refConv(s, x, w, b)},
		{"backward data", unlay(s, dx, s.C, s.H, s.W), rdx, fdx},
		{"backward weights", dw, rdw, fdw},
	} {
		eb, ef := relErr(p.got, p.bf16), relErr(p.got, p.f32)
		t.Logf("%s: relative error %.1e against bf16-rounded inputs, %.1e against raw float32", p.name, eb, ef)
		if eb > 1e-5 || ef < 1e-3 {
			t.Errorf("%s: relative error %.2e against bf16-rounded inputs (want ≤ 1e-5), %.2e against the raw float32 ones (want ≥ 1e-3: bf16 rounding)", p.name, eb, ef)
		}
	}
}

// TestMatmulIsBF16Arithmetic: the attention and linear layers' matmul
// likewise multiplies bf16-rounded operands (TestConvIsBF16Arithmetic).
func TestMatmulIsBF16Arithmetic(t *testing.T) {
	if ok, why := Available(); !ok {
		t.Skip("bf16 unavailable: " + why)
	}
	const M, K, N = 8, 64, 8
	s := MatmulShape{Batch: 1, M: M, K: K, N: N, A: [3]int{M * K, K, 1}, B: [3]int{K * N, N, 1}, C: [3]int{M * N, N, 1}, Alpha: 1}
	rng := rand.New(rand.NewSource(4))
	a, b := randn(rng, M*K), randn(rng, K*N)
	c := make([]float32, M*N)
	mm, err := NewMatmul(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := mm.Run(a, b, c); err != nil {
		t.Fatal(err)
	}
	ref := func(a, b []float32) []float64 {
		out := make([]float64, M*N)
		for r := range M {
			for col := range N {
				for k := range K {
					out[r*N+col] += float64(a[r*K+k]) * float64(b[k*N+col])
				}
			}
		}
		return out
	}
	eb, ef := relErr(c, ref(rounded(a), rounded(b))), relErr(c, ref(a, b))
	t.Logf("kernel %s: relative error %.1e against bf16-rounded operands, %.1e against raw float32", mm.Impl(), eb, ef)
	if eb > 1e-5 || ef < 1e-3 {
		t.Errorf("relative error %.2e against bf16-rounded operands (want ≤ 1e-5), %.2e against the raw float32 ones (want ≥ 1e-3)", eb, ef)
	}
}
