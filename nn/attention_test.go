package nn

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// naiveAttention follows guided-diffusion's QKVAttention(Legacy) forward
// literally, in float64.
func naiveAttention(qkv *tensor.Dense, heads int, legacy bool) []float64 {
	s := qkv.Shape()
	n, c3 := s[0], s[1]
	T := s.TotalSize() / (n * c3)
	ch := c3 / (3 * heads)
	x := f64(qkv)
	at := func(b, c, t int) float64 { return x[(b*c3+c)*T+t] }
	out := make([]float64, n*heads*ch*T)
	scale := 1 / math.Sqrt(math.Sqrt(float64(ch)))
	for b := 0; b < n; b++ {
		for h := 0; h < heads; h++ {
			qo, ko, vo := 3*h*ch, 3*h*ch+ch, 3*h*ch+2*ch
			if !legacy {
				qo, ko, vo = h*ch, heads*ch+h*ch, 2*heads*ch+h*ch
			}
			for t := 0; t < T; t++ {
				w := make([]float64, T)
				mx := math.Inf(-1)
				for u := 0; u < T; u++ {
					for c := 0; c < ch; c++ {
						w[u] += at(b, qo+c, t) * scale * at(b, ko+c, u) * scale
					}
					mx = math.Max(mx, w[u])
				}
				sum := 0.0
				for u := range w {
					w[u] = math.Exp(w[u] - mx)
					sum += w[u]
				}
				for c := 0; c < ch; c++ {
					a := 0.0
					for u := 0; u < T; u++ {
						a += w[u] / sum * at(b, vo+c, u)
					}
					out[((b*heads+h)*ch+c)*T+t] = a
				}
			}
		}
	}
	return out
}

func naiveLinear(ins []*tensor.Dense) []float64 {
	xs, ws := ins[0].Shape(), ins[1].Shape()
	x, w := f64(ins[0]), f64(ins[1])
	out := make([]float64, xs[0]*ws[0])
	for i := 0; i < xs[0]; i++ {
		for o := 0; o < ws[0]; o++ {
			s := 0.0
			if len(ins) == 3 {
				s = f64(ins[2])[o]
			}
			for k := 0; k < xs[1]; k++ {
				s += x[i*xs[1]+k] * w[o*xs[1]+k]
			}
			out[i*ws[0]+o] = s
		}
	}
	return out
}

func TestLinearAndAttention(t *testing.T) {
	cases := []opCase{
		{"Linear", [][]int{{3, 5}, {4, 5}, {4}}, func(ns []*G.Node) (*G.Node, error) { return Linear(ns[0], ns[1], ns[2]) }, naiveLinear},
		{"LinearNoBias", [][]int{{2, 3}, {6, 3}}, func(ns []*G.Node) (*G.Node, error) { return Linear(ns[0], ns[1], nil) }, naiveLinear},
	}
	for _, tc := range []struct {
		shape  []int
		heads  int
		legacy bool
	}{
		{[]int{2, 12, 5}, 2, true},
		{[]int{2, 12, 5}, 2, false},
		{[]int{2, 6, 2, 3}, 1, true},
		{[]int{1, 18, 2, 2}, 3, false},
	} {
		tc := tc
		cases = append(cases, opCase{fmt.Sprintf("QKVAttention%v_h%d_legacy%v", tc.shape, tc.heads, tc.legacy), [][]int{tc.shape},
			func(ns []*G.Node) (*G.Node, error) { return QKVAttention(ns[0], tc.heads, tc.legacy) },
			func(ins []*tensor.Dense) []float64 { return naiveAttention(ins[0], tc.heads, tc.legacy) }})
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(200 + i)))
			ins := make([]*tensor.Dense, len(tc.shapes))
			for j, s := range tc.shapes {
				ins[j] = randDense(rng, 1, s...)
			}
			forwardCheck32(t, ins, tc.build, tc.ref(ins))
			gradCheck(t, rng, ins, tc.build)
		})
	}
}

func TestTimestepEmbedding(t *testing.T) {
	cases := []struct {
		ts  []float64
		dim int
	}{
		{[]float64{0, 1, 17, 999}, 8},
		{[]float64{3, 250}, 7},
		{[]float64{42}, 128},
	}
	for _, tc := range cases {
		e, err := TimestepEmbedding(tc.ts, tc.dim, 10000)
		if err != nil {
			t.Fatal(err)
		}
		d := e.Data().([]float32)
		half := tc.dim / 2
		for n, tv := range tc.ts {
			for i := 0; i < half; i++ {
				arg := tv * math.Exp(-math.Log(10000)*float64(i)/float64(half))
				// float32 arguments: error up to |arg|·2⁻²⁴ in the phase.
				tol := 1e-6 + 2*arg*math.Pow(2, -24)
				if got := float64(d[n*tc.dim+i]); math.Abs(got-math.Cos(arg)) > tol {
					t.Errorf("t=%g dim=%d: cos[%d] = %g, want %g", tv, tc.dim, i, got, math.Cos(arg))
				}
				if got := float64(d[n*tc.dim+half+i]); math.Abs(got-math.Sin(arg)) > tol {
					t.Errorf("t=%g dim=%d: sin[%d] = %g, want %g", tv, tc.dim, i, got, math.Sin(arg))
				}
			}
			if tc.dim%2 == 1 && d[n*tc.dim+tc.dim-1] != 0 {
				t.Errorf("dim %d: last column %g, want 0", tc.dim, d[n*tc.dim+tc.dim-1])
			}
		}
	}
	if _, err := TimestepEmbedding([]float64{1}, 0, 10000); err == nil {
		t.Error("dim 0: no error")
	}
	if err := TimestepEmbeddingInto(tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(2, 4)), []float64{1}, 10000); err == nil {
		t.Error("wrong rows: no error")
	}
}

func TestDropout(t *testing.T) {
	const p = 0.3
	shape := []int{4, 8, 16, 16}
	run := func(seed int64, training bool) (x, y, dx, r []float64) {
		d, err := NewDropout(p, rand.New(rand.NewSource(seed)))
		if err != nil {
			t.Fatal(err)
		}
		d.SetTraining(training)
		rng := rand.New(rand.NewSource(1))
		xt, rt := randDense(rng, 1, shape...), randDense(rng, 1, shape...)
		g := G.NewGraph()
		xn := G.NewTensor(g, tensor.Float64, 4, G.WithShape(shape...), G.WithName("x"), G.WithValue(xt))
		rn := G.NewTensor(g, tensor.Float64, 4, G.WithShape(shape...), G.WithName("r"), G.WithValue(rt))
		yn, err := d.Apply(xn)
		if err != nil {
			t.Fatal(err)
		}
		loss := G.Must(G.Sum(G.Must(G.HadamardProd(yn, rn))))
		gr, err := G.Grad(loss, xn)
		if err != nil {
			t.Fatal(err)
		}
		vm := G.NewTapeMachine(g)
		defer vm.Close()
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		return f64(xt), asF64(yn.Value()), asF64(gr[0].Value()), f64(rt)
	}
	// evaluation: identity, gradient r
	x, y, dx, r := run(5, false)
	for i := range x {
		if y[i] != x[i] || dx[i] != r[i] {
			t.Fatalf("eval: y[%d]=%g dx=%g, want %g and %g", i, y[i], dx[i], x[i], r[i])
		}
	}
	// training: a fraction p dropped, survivors scaled, gradient follows the mask
	x, y, dx, r = run(5, true)
	dropped := 0
	for i := range x {
		if y[i] == 0 {
			dropped++
			if dx[i] != 0 {
				t.Fatalf("dropped element %d has gradient %g", i, dx[i])
			}
			continue
		}
		if math.Abs(y[i]-x[i]/(1-p)) > 1e-12 || math.Abs(dx[i]-r[i]/(1-p)) > 1e-12 {
			t.Fatalf("kept element %d: y=%g dx=%g, want %g and %g", i, y[i], dx[i], x[i]/(1-p), r[i]/(1-p))
		}
	}
	frac := float64(dropped) / float64(len(x))
	if sd := math.Sqrt(p * (1 - p) / float64(len(x))); math.Abs(frac-p) > 5*sd {
		t.Errorf("dropped fraction %g, want %g ± %g", frac, p, 5*sd)
	}
	// same seed, same mask; other seed, other mask
	_, y2, _, _ := run(5, true)
	_, y3, _, _ := run(6, true)
	same, diff := true, false
	for i := range y {
		same = same && y[i] == y2[i]
		diff = diff || y[i] != y3[i]
	}
	if !same || !diff {
		t.Errorf("seeded masks: same seed equal %v (want true), other seed differs %v (want true)", same, diff)
	}
	if _, err := NewDropout(1, rand.New(rand.NewSource(1))); err == nil {
		t.Error("p = 1: no error")
	}
}

// TestQKVAttentionNHWC: the channels-last attention equals ToNCHW →
// QKVAttention → ToNHWC, output and input gradient, to 1e-12 in float64
// and 1e-5 in float32, and its gradient passes the finite-difference check.
func TestQKVAttentionNHWC(t *testing.T) {
	for i, tc := range []struct {
		shape  []int // NHWC
		heads  int
		legacy bool
	}{
		{[]int{2, 5, 12}, 2, true},
		{[]int{2, 5, 12}, 2, false},
		{[]int{2, 2, 3, 6}, 1, true},
		{[]int{1, 2, 2, 18}, 3, false},
		{[]int{3, 4, 4, 24}, 4, true},
	} {
		for _, f32 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v_h%d_legacy%v_f32%v", tc.shape, tc.heads, tc.legacy, f32), func(t *testing.T) {
				rng := rand.New(rand.NewSource(int64(300 + i)))
				ins := []*tensor.Dense{randDense(rng, 1, tc.shape...)}
				direct := func(ns []*G.Node) (*G.Node, error) { return QKVAttentionNHWC(ns[0], tc.heads, tc.legacy) }
				via := func(ns []*G.Node) (*G.Node, error) {
					x := ns[0]
					if len(tc.shape) == 3 { // N×T×C: as N×T×1×C
						x = G.Must(G.Reshape(x, tensor.Shape{tc.shape[0], tc.shape[1], 1, tc.shape[2]}))
					}
					a := G.Must(QKVAttention(G.Must(ToNCHW(x)), tc.heads, tc.legacy))
					y := G.Must(ToNHWC(a))
					if len(tc.shape) == 3 {
						return G.Reshape(y, tensor.Shape{tc.shape[0], tc.shape[1], y.Shape()[3]})
					}
					return y, nil
				}
				r := randDense(rng, 1, outShapeOf(t, ins, direct)...)
				tol := 1e-12
				if f32 {
					ins, r, tol = []*tensor.Dense{toF32(ins[0])}, toF32(r), 1e-5
				}
				runD, _ := graphRun(t, ins, r, direct)
				runV, _ := graphRun(t, ins, r, via)
				outD, _, gD := runD()
				outV, _, gV := runV()
				if e := relErr(outD, outV); !(e <= tol) {
					t.Errorf("output: relative error %.3g to the NCHW path, want ≤ %g", e, tol)
				}
				if e := relErr(gD[0], gV[0]); !(e <= tol) {
					t.Errorf("gradient: relative error %.3g to the NCHW path, want ≤ %g", e, tol)
				}
				if !f32 {
					gradCheck(t, rng, ins, direct)
				}
			})
		}
	}
}

// TestQKVAttentionNHWCBF16: the bf16 attention (products on oneDNN's bf16
// matmul) equals the float32 one within bf16 rounding (relative error
// ≤ 2e-2, as for the convolutions; the softmax stays float32), output and
// input gradient, for both channel orders, and repeats bit for bit.
func TestQKVAttentionNHWCBF16(t *testing.T) {
	if ok, why := BF16Available(); !ok {
		t.Skip(why)
	}
	for i, tc := range []struct {
		shape  []int
		heads  int
		legacy bool
	}{
		{[]int{2, 4, 4, 24}, 2, true},
		{[]int{3, 7, 7, 12}, 1, true},
		{[]int{2, 16, 48}, 4, false},
	} {
		t.Run(fmt.Sprintf("%v_h%d_legacy%v", tc.shape, tc.heads, tc.legacy), func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(400 + i)))
			ins := []*tensor.Dense{toF32(randDense(rng, 1, tc.shape...))}
			build := func(p Precision) builder {
				return func(ns []*G.Node) (*G.Node, error) { return QKVAttentionNHWCPrec(ns[0], tc.heads, tc.legacy, p) }
			}
			r := toF32(randDense(rng, 1, outShapeOf(t, ins, build(FP32))...))
			run32, _ := graphRun(t, ins, r, build(FP32))
			run16, _ := graphRun(t, ins, r, build(BF16))
			out32, _, g32 := run32()
			out16, _, g16 := run16()
			if e := relErr(out16, out32); !(e <= 2e-2) {
				t.Errorf("output: relative error %.3g to float32, want ≤ 2e-2", e)
			}
			if e := relErr(g16[0], g32[0]); !(e <= 2e-2) {
				t.Errorf("gradient: relative error %.3g to float32, want ≤ 2e-2", e)
			}
			again, _, gAgain := run16()
			for j := range out16 {
				if again[j] != out16[j] {
					t.Fatalf("second run: output %d %g, first %g", j, again[j], out16[j])
				}
			}
			for j := range g16[0] {
				if gAgain[0][j] != g16[0][j] {
					t.Fatalf("second run: gradient %d %g, first %g", j, gAgain[0][j], g16[0][j])
				}
			}
			if e := relErr(out16, out32); e == 0 {
				t.Error("bf16 output equals float32 exactly: the bf16 path did not run")
			}
		})
	}
}

// TestLinearBF16: the bf16 linear layer equals the float32 one within bf16
// rounding (relative error ≤ 2e-2), output and the gradients of x, w and b.
func TestLinearBF16(t *testing.T) {
	if ok, why := BF16Available(); !ok {
		t.Skip(why)
	}
	for i, bias := range []bool{true, false} {
		rng := rand.New(rand.NewSource(int64(500 + i)))
		ins := []*tensor.Dense{toF32(randDense(rng, 1, 6, 40)), toF32(randDense(rng, 1, 24, 40))}
		if bias {
			ins = append(ins, toF32(randDense(rng, 1, 24)))
		}
		build := func(p Precision) builder {
			return func(ns []*G.Node) (*G.Node, error) {
				var b *G.Node
				if len(ns) == 3 {
					b = ns[2]
				}
				return LinearPrec(ns[0], ns[1], b, p)
			}
		}
		r := toF32(randDense(rng, 1, 6, 24))
		run32, _ := graphRun(t, ins, r, build(FP32))
		run16, _ := graphRun(t, ins, r, build(BF16))
		out32, _, g32 := run32()
		out16, _, g16 := run16()
		if e := relErr(out16, out32); !(e <= 2e-2) || e == 0 {
			t.Errorf("bias %v: output relative error %.3g to float32, want in (0, 2e-2]", bias, e)
		}
		for k := range g32 {
			if e := relErr(g16[k], g32[k]); !(e <= 2e-2) {
				t.Errorf("bias %v: gradient %d relative error %.3g to float32, want ≤ 2e-2", bias, k, e)
			}
		}
	}
}
