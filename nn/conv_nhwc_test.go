package nn

import (
	"math"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// nhwcConv is ToNCHW(Conv2dNHWC(ToNHWC(x), w, b)): the channels-last
// convolution seen from NCHW, so that it can be compared with Conv2d.
func nhwcConv(stride, pad int, bias bool) builder {
	return func(ns []*G.Node) (*G.Node, error) {
		x, err := ToNHWC(ns[0])
		if err != nil {
			return nil, err
		}
		var b *G.Node
		if bias {
			b = ns[2]
		}
		y, err := Conv2dNHWC(x, ns[1], b, stride, pad)
		if err != nil {
			return nil, err
		}
		return ToNCHW(y)
	}
}

func nchwConv(stride, pad int, bias bool) builder {
	return func(ns []*G.Node) (*G.Node, error) {
		var b *G.Node
		if bias {
			b = ns[2]
		}
		return Conv2d(ns[0], ns[1], b, stride, pad)
	}
}

// relErr64 is ‖a − b‖ / ‖b‖.
func relErr64(a, b []float64) float64 {
	var num, den float64
	for i := range a {
		num += (a[i] - b[i]) * (a[i] - b[i])
		den += b[i] * b[i]
	}
	return math.Sqrt(num / den)
}

var nhwcConvCases = []struct {
	name                   string
	n, c, h, w, o, k, s, p int
	bias                   bool
}{
	{"3x3", 3, 8, 6, 6, 16, 3, 1, 1, true},
	{"3x3 stride 2 odd", 2, 8, 7, 7, 8, 3, 2, 1, true},
	{"1x1 no bias", 2, 16, 5, 5, 8, 1, 1, 0, false},
	{"one input channel", 2, 1, 6, 6, 8, 3, 1, 1, true},
}

// TestConv2dNHWC: through ToNHWC/ToNCHW the channels-last convolution equals
// Conv2d in float64 (output and every gradient to 1e-12: the same sums on
// transposed copies), agrees in float32/bf16 to bf16 rounding (2e-2), and
// its float64 gradients pass the finite-difference check.
func TestConv2dNHWC(t *testing.T) {
	if ok, why := BF16Available(); !ok {
		t.Skip("bf16 unavailable: " + why)
	}
	for _, tc := range nhwcConvCases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(5))
			ins := []*tensor.Dense{randDense(rng, 1, tc.n, tc.c, tc.h, tc.w), randDense(rng, 0.3, tc.o, tc.c, tc.k, tc.k)}
			if tc.bias {
				ins = append(ins, randDense(rng, 1, tc.o))
			}
			a, b := nhwcConv(tc.s, tc.p, tc.bias), nchwConv(tc.s, tc.p, tc.bias)
			r := randDense(rng, 1, outShapeOf(t, ins, b)...)
			runA, _ := graphRun(t, ins, r, a)
			runB, _ := graphRun(t, ins, r, b)
			outA, _, gA := runA()
			outB, _, gB := runB()
			if e := relErr64(outA, outB); e > 1e-12 {
				t.Errorf("float64 output: relative error %.2e", e)
			}
			for k := range gA {
				if e := relErr64(gA[k], gB[k]); e > 1e-12 {
					t.Errorf("float64 gradient of input %d: relative error %.2e", k, e)
				}
			}
			ins32 := make([]*tensor.Dense, len(ins))
			for i, in := range ins {
				ins32[i] = toF32(in)
			}
			r32 := toF32(r)
			runA32, _ := graphRun(t, ins32, r32, a)
			runB32, _ := graphRun(t, ins32, r32, b)
			oA, _, hA := runA32()
			oB, _, hB := runB32()
			if e := relErr64(oA, oB); e > 2e-2 {
				t.Errorf("bf16 output: relative error %.2e > 2e-2", e)
			}
			for k := range hA {
				if e := relErr64(hA[k], hB[k]); e > 2e-2 {
					t.Errorf("bf16 gradient of input %d: relative error %.2e > 2e-2", k, e)
				}
			}
			gradCheck(t, rng, ins, a)
		})
	}
}

// TestLayoutRoundTrip: ToNCHW(ToNHWC(x)) is x, and ToNHWC moves element
// (n, c, h, w) to (n, h, w, c).
func TestLayoutRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	x := randDense(rng, 1, 2, 3, 4, 5)
	got := runForward(t, []*tensor.Dense{x}, func(ns []*G.Node) (*G.Node, error) { return ToNHWC(ns[0]) })
	xd := x.Data().([]float64)
	for n := 0; n < 2; n++ {
		for c := 0; c < 3; c++ {
			for p := 0; p < 20; p++ {
				if got[(n*20+p)*3+c] != xd[(n*3+c)*20+p] {
					t.Fatalf("ToNHWC misplaces (n=%d, c=%d, pixel %d)", n, c, p)
				}
			}
		}
	}
	back := runForward(t, []*tensor.Dense{x}, func(ns []*G.Node) (*G.Node, error) {
		y, err := ToNHWC(ns[0])
		if err != nil {
			return nil, err
		}
		return ToNCHW(y)
	})
	for i := range xd {
		if back[i] != xd[i] {
			t.Fatalf("round trip changed element %d", i)
		}
	}
	gradCheck(t, rng, []*tensor.Dense{x}, func(ns []*G.Node) (*G.Node, error) { return ToNHWC(ns[0]) })
}

// TestCKernelsMatchGo: the C column sums and dropout loops give the Go
// loops' bits (resume and goldens rely on it).
func TestCKernelsMatchGo(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	const rows, c = 37, 45
	x := make([]float32, rows*c)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	a, b := make([]float64, c), make([]float64, c)
	colSumF32(x, rows, c, a)
	colSumGo(x, rows, c, b)
	for j := range a {
		if a[j] != b[j] {
			t.Fatalf("column %d: C %v, Go %v", j, a[j], b[j])
		}
	}
	m1, m2 := make([]uint8, 1000), make([]uint8, 1000)
	p := 0.3
	thr := uint64(p * (1 << 53))
	dropMask(m1, 3, 997, 12345, thr)
	dropMaskGo(m2, 3, 997, 12345, thr)
	kept := 0
	for i := range m1 {
		if m1[i] != m2[i] {
			t.Fatalf("mask %d: C %d, Go %d", i, m1[i], m2[i])
		}
		kept += int(m1[i])
	}
	if kept < 600 || kept > 790 {
		t.Errorf("%d of 994 kept at p = 0.3", kept)
	}
	y1, y2 := make([]float32, 1000), make([]float32, 1000)
	x = x[:1000]
	dropoutF32(x, y1, m1, 1/0.7)
	for i := range x {
		y2[i] = x[i] * float32(1/0.7) * float32(m1[i])
	}
	for i := range y1 {
		if y1[i] != y2[i] {
			t.Fatalf("dropout %d: C %v, Go %v", i, y1[i], y2[i])
		}
	}
}
