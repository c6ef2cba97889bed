package nn

import (
	"fmt"
	"math"
	"math/rand"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// transposeSamples returns src (n samples, each an a×b matrix, row-major)
// with every sample transposed to b×a: NHWC → NCHW with a = H·W, b = C, and
// back with a = C, b = H·W.
func transposeSamples[T float](src []T, n, a, b int) []T {
	dst := make([]T, len(src))
	for s := 0; s < n; s++ {
		in, out := src[s*a*b:(s+1)*a*b], dst[s*a*b:(s+1)*a*b]
		for i := 0; i < a; i++ {
			for j := 0; j < b; j++ {
				out[j*a+i] = in[i*b+j]
			}
		}
	}
	return dst
}

// nhwcToNCHW returns a new tensor holding t (N×…×C) as N×C×….
func nhwcToNCHW(t *tensor.Dense) *tensor.Dense {
	s := t.Shape()
	n, c := s[0], s[len(s)-1]
	shape := append([]int{n, c}, s[1:len(s)-1]...)
	var back any
	switch d := t.Data().(type) {
	case []float32:
		back = transposeSamples(d, n, len(d)/(n*c), c)
	case []float64:
		back = transposeSamples(d, n, len(d)/(n*c), c)
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(back))
}

// nchwToNHWC transposes the values of an N×C×… tensor, given the shape of
// its NHWC form (N×…×C), back to NHWC order.
func nchwToNHWC(v []float64, nhwc []int) []float64 {
	n, c := nhwc[0], nhwc[len(nhwc)-1]
	return transposeSamples(v, n, c, len(v)/(n*c))
}

// relErr is max|got − want| / max|want|: the error relative to the scale of
// the tensor (an elementwise ratio is meaningless where want crosses zero).
func relErr(got, want []float64) float64 {
	var d, s float64
	for i := range want {
		d = math.Max(d, math.Abs(got[i]-want[i]))
		s = math.Max(s, math.Abs(want[i]))
	}
	if s == 0 {
		return d
	}
	return d / s
}

func buildGN(nhwc, silu bool, groups int) builder {
	return func(ns []*G.Node) (*G.Node, error) {
		switch {
		case nhwc && silu:
			return GroupNormSiLUNHWC(ns[0], ns[1], ns[2], groups, 1e-5)
		case nhwc:
			return GroupNormNHWC(ns[0], ns[1], ns[2], groups, 1e-5)
		case silu:
			return GroupNormSiLU(ns[0], ns[1], ns[2], groups, 1e-5)
		}
		return GroupNorm(ns[0], ns[1], ns[2], groups, 1e-5)
	}
}

var gnNHWCCases = []struct {
	shape  []int // NHWC
	groups int
}{
	{[]int{2, 3, 3, 4}, 2},
	{[]int{3, 2, 5, 6}, 3},
	{[]int{2, 5, 4}, 1}, // rank 3: N×L×C
	{[]int{4, 6}, 2},    // rank 2: one position
	{[]int{2, 2, 2, 8}, 8},
	{[]int{3, 7, 5, 40}, 8},   // C not a multiple of the vector width
	{[]int{2, 9, 9, 64}, 32},  // the UNet's 32 groups; S % repeats ≠ 0
	{[]int{5, 3, 3, 32}, 32},  // one channel per group
	{[]int{2, 3, 4, 320}, 32}, // C > the period's 256: one repeat
	{[]int{3, 1, 1, 16}, 4},   // a single position
}

// TestGroupNormNHWCMatchesNCHW checks, in float64 and float32, that the
// NHWC ops' output and gradients (w.r.t. x, gamma and beta, of Σ out⊙r for
// a random cotangent r, through G.Grad and a TapeMachine) equal the NCHW
// ops' on the transposed input and cotangent, transposed back: relative
// error (to the tensor's largest magnitude) below 1e-12 in float64 and 1e-5
// in float32.
func TestGroupNormNHWCMatchesNCHW(t *testing.T) {
	for i, tc := range gnNHWCCases {
		for _, silu := range []bool{false, true} {
			for _, f32 := range []bool{false, true} {
				t.Run(fmt.Sprintf("%v_g%d_silu%v_f32%v", tc.shape, tc.groups, silu, f32), func(t *testing.T) {
					rng := rand.New(rand.NewSource(int64(i)))
					x := randDense(rng, 2, tc.shape...)
					for j, d := 0, x.Data().([]float64); j < len(d); j++ {
						d[j] += 1 // a non-zero mean
					}
					c := tc.shape[len(tc.shape)-1]
					gamma, beta := randDense(rng, 1, c), randDense(rng, 1, c)
					r := randDense(rng, 1, tc.shape...)
					tol := 1e-12
					if f32 {
						x, gamma, beta, r = toF32(x), toF32(gamma), toF32(beta), toF32(r)
						tol = 1e-5
					}
					compareGNNHWC(t, x, gamma, beta, r, tc.groups, silu, tol)
				})
			}
		}
	}
}

// TestGroupNormNHWCLargeMean: a mean 10⁴ times the spread (float64), where
// sums of squares without the per-channel shift would lose the variance.
func TestGroupNormNHWCLargeMean(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	shape := []int{2, 6, 6, 16}
	x := randDense(rng, 1, shape...)
	for j, d := 0, x.Data().([]float64); j < len(d); j++ {
		d[j] += 1e4
	}
	gamma, beta, r := randDense(rng, 1, 16), randDense(rng, 1, 16), randDense(rng, 1, shape...)
	for _, silu := range []bool{false, true} {
		compareGNNHWC(t, x, gamma, beta, r, 4, silu, 1e-9)
	}
}

// compareGNNHWC runs the NHWC op on x and the NCHW op on its transpose (loss
// Σ out⊙r) and compares the outputs and the gradients.
func compareGNNHWC(t *testing.T, x, gamma, beta, r *tensor.Dense, groups int, silu bool, tol float64) {
	t.Helper()
	shape := x.Shape().Clone()
	runH, _ := graphRun(t, []*tensor.Dense{x, gamma, beta}, r, buildGN(true, silu, groups))
	runC, _ := graphRun(t, []*tensor.Dense{nhwcToNCHW(x), gamma, beta}, nhwcToNCHW(r), buildGN(false, silu, groups))
	outH, _, gH := runH()
	outC, _, gC := runC()
	for _, p := range []struct {
		what      string
		got, want []float64
	}{
		{"output", outH, nchwToNHWC(outC, shape)},
		{"dx", gH[0], nchwToNHWC(gC[0], shape)},
		{"dgamma", gH[1], gC[1]},
		{"dbeta", gH[2], gC[2]},
	} {
		if len(p.got) != len(p.want) {
			t.Fatalf("%s: %d elements, NCHW %d", p.what, len(p.got), len(p.want))
		}
		e := relErr(p.got, p.want)
		t.Logf("%s (silu %v): relative error %.3g", p.what, silu, e)
		if !(e <= tol) {
			t.Errorf("%s (silu %v): relative error %.3g to the NCHW op, want ≤ %g", p.what, silu, e, tol)
		}
	}
}

// TestGroupNormNHWCGradCheck compares the float64 reverse-mode gradients
// with central finite differences (gradCheck, which also checks that a
// second run of the machine repeats the first).
func TestGroupNormNHWCGradCheck(t *testing.T) {
	for i, tc := range []struct {
		shape  []int
		groups int
	}{
		{[]int{2, 3, 3, 4}, 2},
		{[]int{3, 2, 5, 6}, 3},
		{[]int{2, 5, 4}, 1},
		{[]int{2, 3, 4, 40}, 8},
	} {
		for _, silu := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v_g%d_silu%v", tc.shape, tc.groups, silu), func(t *testing.T) {
				rng := rand.New(rand.NewSource(int64(100 + i)))
				x := randDense(rng, 2, tc.shape...)
				for j, d := 0, x.Data().([]float64); j < len(d); j++ {
					d[j] += 1
				}
				c := tc.shape[len(tc.shape)-1]
				gradCheck(t, rng, []*tensor.Dense{x, randDense(rng, 1, c), randDense(rng, 1, c)}, buildGN(true, silu, tc.groups))
			})
		}
	}
}

// TestGroupNormNHWCLispMachine checks the ADOp path (DoDiff): a
// LispMachine's gradients equal the TapeMachine's.
func TestGroupNormNHWCLispMachine(t *testing.T) {
	shapes := [][]int{{2, 3, 3, 8}, {8}, {8}}
	build := func(ns []*G.Node) (*G.Node, error) {
		h := G.Must(GroupNormSiLUNHWC(ns[0], ns[1], ns[2], 4, 1e-5))
		return GroupNormNHWC(h, ns[1], ns[2], 2, 1e-5)
	}
	tape, lisp := lispAndTapeGrads(t, shapes, 5, build)
	for i := range tape {
		if e := relErr(lisp[i], tape[i]); !(e <= 1e-12) {
			t.Errorf("input %d: LispMachine gradient relative error %.3g to the TapeMachine's", i, e)
		}
	}
}

// TestGroupNormNHWCGoMatchesC checks the pure-Go float32 loops (what runs
// without cgo) against the C kernels on one sample: output, statistics, dx
// and the dgamma/dbeta sums.
func TestGroupNormNHWCGoMatchesC(t *testing.T) {
	if !haveCKernels {
		t.Skip("built without cgo")
	}
	for _, tc := range []struct{ pix, c, groups int }{{9, 4, 2}, {35, 40, 8}, {81, 64, 32}, {12, 320, 32}, {1, 16, 4}} {
		for _, silu := range []bool{false, true} {
			t.Run(fmt.Sprintf("pix%d_c%d_g%d_silu%v", tc.pix, tc.c, tc.groups, silu), func(t *testing.T) {
				rng := rand.New(rand.NewSource(int64(tc.pix * tc.c)))
				n := tc.pix * tc.c
				x := toF32(randDense(rng, 2, n)).Data().([]float32)
				for j := range x {
					x[j] += 1
				}
				gamma := toF32(randDense(rng, 1, tc.c)).Data().([]float32)
				beta := toF32(randDense(rng, 1, tc.c)).Data().([]float32)
				dy := toF32(randDense(rng, 1, n)).Data().([]float32)
				p, reps := gnNHWCPeriod(tc.c)
				type res struct {
					y, dx            []float32
					mean, rstd, accs []float64
				}
				run := func(useC bool) res {
					r := res{y: make([]float32, n), dx: make([]float32, n), mean: make([]float64, tc.groups), rstd: make([]float64, tc.groups), accs: make([]float64, 2*tc.c)}
					ag, ab := r.accs[:tc.c], r.accs[tc.c:]
					if useC {
						gnNHWCFwdF32(x, r.y, gamma, beta, tc.pix, tc.c, tc.groups, reps, 1e-5, silu, r.mean, r.rstd, make([]float64, 3*p), make([]float32, 2*p))
						gnNHWCBwdF32(x, gamma, beta, dy, r.dx, tc.pix, tc.c, tc.groups, reps, silu, r.mean, r.rstd, ag, ab, make([]float64, 2*p), make([]float32, 4*p))
					} else {
						gnNHWCFwdGo(x, r.y, gamma, beta, tc.pix, tc.c, tc.groups, 1e-5, silu, r.mean, r.rstd, make([]float64, 3*tc.c), make([]float32, 2*tc.c))
						gnNHWCBwdGo(x, gamma, beta, dy, r.dx, tc.pix, tc.c, tc.groups, silu, r.mean, r.rstd, ag, ab, make([]float64, 2*tc.c), make([]float32, 4*tc.c))
					}
					return r
				}
				c, g := run(true), run(false)
				f := func(v []float32) []float64 {
					o := make([]float64, len(v))
					for i, e := range v {
						o[i] = float64(e)
					}
					return o
				}
				for _, q := range []struct {
					what      string
					got, want []float64
					tol       float64
				}{
					{"y", f(g.y), f(c.y), 1e-5},
					{"mean", g.mean, c.mean, 1e-12},
					{"rstd", g.rstd, c.rstd, 1e-12},
					{"dx", f(g.dx), f(c.dx), 1e-5},
					{"dgamma, dbeta", g.accs, c.accs, 1e-5},
				} {
					if e := relErr(q.got, q.want); !(e <= q.tol) {
						t.Errorf("%s: Go relative error %.3g to C, want ≤ %g", q.what, e, q.tol)
					}
				}
			})
		}
	}
}

func TestGroupNormNHWCErrors(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(2, 4, 4, 6), G.WithName("x"))
	x1 := G.NewTensor(g, tensor.Float32, 1, G.WithShape(6), G.WithName("x1"))
	c6 := G.NewTensor(g, tensor.Float32, 1, G.WithShape(6), G.WithName("c6"))
	c5 := G.NewTensor(g, tensor.Float32, 1, G.WithShape(5), G.WithName("c5"))
	c66 := G.NewTensor(g, tensor.Float32, 2, G.WithShape(6, 1), G.WithName("c66"))
	d6 := G.NewTensor(g, tensor.Float64, 1, G.WithShape(6), G.WithName("d6"))
	cases := []struct {
		name        string
		x           *G.Node
		gamma, beta *G.Node
		groups      int
		eps         float64
		want        string // in the message
	}{
		{"groups", x, c6, c6, 4, 1e-5, "4 groups do not divide 6 channels"},
		{"zero groups", x, c6, c6, 0, 1e-5, "0 groups do not divide 6 channels"},
		{"gamma size", x, c5, c6, 2, 1e-5, "gamma c5 has 5 elements, want 6 channels"},
		{"beta size", x, c6, c5, 2, 1e-5, "beta c5 has 5 elements, want 6 channels"},
		{"gamma rank", x, c66, c6, 2, 1e-5, "gamma c66 has shape (6, 1), want 1 dimensions"},
		{"eps", x, c6, c6, 2, 0, "eps 0, want > 0"},
		{"nil beta", x, c6, nil, 2, 1e-5, "beta is nil"},
		{"nil x", nil, c6, c6, 2, 1e-5, "input is nil"},
		{"rank 1", x1, c6, c6, 2, 1e-5, "want N×…×C"},
		{"dtype", x, d6, c6, 2, 1e-5, "dtype float64"},
	}
	for _, tc := range cases {
		for _, f := range []struct {
			op string
			fn func(x, gamma, beta *G.Node, groups int, eps float64) (*G.Node, error)
		}{{"nn.GroupNormNHWC", GroupNormNHWC}, {"nn.GroupNormSiLUNHWC", GroupNormSiLUNHWC}} {
			_, err := f.fn(tc.x, tc.gamma, tc.beta, tc.groups, tc.eps)
			if err == nil {
				t.Errorf("%s %s: no error", f.op, tc.name)
				continue
			}
			if !strings.HasPrefix(err.Error(), f.op+": ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s %s: error %q, want %q naming the op", f.op, tc.name, err, tc.want)
			}
		}
	}
}

// BenchmarkGroupNormSiLUNHWC times GroupNormSiLUNHWC forward and
// forward+backward (x, gamma, beta) next to GroupNormSiLU on the same data
// in NCHW (32 groups), at the MNIST UNet's largest activation and at a
// 64×64 one.
func BenchmarkGroupNormSiLUNHWC(b *testing.B) {
	for _, s := range []struct{ n, hw, c int }{{64, 28, 64}, {16, 64, 128}} {
		cs := []int{s.c}
		size := fmt.Sprintf("N%d_%dx%d_C%d", s.n, s.hw, s.hw, s.c)
		benchOp(b, "NHWC_"+size, [][]int{{s.n, s.hw, s.hw, s.c}, cs, cs}, buildGN(true, true, 32))
		benchOp(b, "NCHW_"+size, [][]int{{s.n, s.c, s.hw, s.hw}, cs, cs}, buildGN(false, true, 32))
	}
}
