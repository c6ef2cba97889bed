package nn

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// naiveConv is the textbook definition of Conv2d, in float64.
func naiveConv(x, w, b *tensor.Dense, stride, pad int) []float64 {
	xs, ws := x.Shape(), w.Shape()
	n, c, h, wd := xs[0], xs[1], xs[2], xs[3]
	o, kh, kw := ws[0], ws[2], ws[3]
	oh, ow := (h+2*pad-kh)/stride+1, (wd+2*pad-kw)/stride+1
	xv, wv := x.Data().([]float64), w.Data().([]float64)
	out := make([]float64, n*o*oh*ow)
	for in := 0; in < n; in++ {
		for oc := 0; oc < o; oc++ {
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					s := 0.0
					if b != nil {
						s = b.Data().([]float64)[oc]
					}
					for ic := 0; ic < c; ic++ {
						for ki := 0; ki < kh; ki++ {
							for kj := 0; kj < kw; kj++ {
								y, xx := i*stride-pad+ki, j*stride-pad+kj
								if y < 0 || y >= h || xx < 0 || xx >= wd {
									continue
								}
								s += xv[((in*c+ic)*h+y)*wd+xx] * wv[((oc*c+ic)*kh+ki)*kw+kj]
							}
						}
					}
					out[((in*o+oc)*oh+i)*ow+j] = s
				}
			}
		}
	}
	return out
}

var convCases = []struct {
	n, c, h, w, o, k, stride, pad int
	bias                          bool
}{
	{2, 3, 5, 6, 4, 3, 1, 1, true},
	{2, 2, 7, 7, 3, 3, 2, 1, true},
	{3, 3, 4, 4, 5, 1, 1, 0, false},
	{3, 2, 6, 5, 2, 2, 2, 0, true},
	{2, 3, 5, 5, 2, 3, 1, 0, false},
	{1, 2, 4, 5, 3, 3, 3, 2, true},
	{1, 3, 6, 6, 4, 3, 1, 1, true},
	{2, 9, 5, 4, 3, 3, 1, 1, true},
	{3, 8, 4, 6, 5, 3, 1, 2, false},
	{1, 10, 5, 5, 4, 3, 1, 1, true},
	{1, 4, 5, 5, 6, 1, 1, 0, true},
}

func TestConv2d(t *testing.T) {
	for i, tc := range convCases {
		t.Run(fmt.Sprintf("%d_%+v", i, tc), func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(i)))
			x := randDense(rng, 1, tc.n, tc.c, tc.h, tc.w)
			w := randDense(rng, 0.5, tc.o, tc.c, tc.k, tc.k)
			ins := []*tensor.Dense{x, w}
			var b *tensor.Dense
			if tc.bias {
				b = randDense(rng, 1, tc.o)
				ins = append(ins, b)
			}
			for _, mode := range []string{"default", "im2col", "im2col-blocked", "1worker", "3workers"} {
				build := func(ns []*G.Node) (*G.Node, error) {
					var bn *G.Node
					if tc.bias {
						bn = ns[2]
					}
					y, err := Conv2d(ns[0], ns[1], bn, tc.stride, tc.pad)
					switch {
					case err != nil:
					case mode == "1worker":
						y.Op().(*convOp).geom.maxWorkers = 1
					case mode == "3workers":
						// more workers than images when n < 3: each image's
						// GEMMs split across workers
						y.Op().(*convOp).geom.maxWorkers = 3
					case mode != "default":
						// the im2col path even where shifted GEMMs apply,
						// and with one output row per column block (the
						// blocked path of large images)
						y.Op().(*convOp).geom.noShift = true
						if mode == "im2col-blocked" {
							y.Op().(*convOp).geom.colBlock = 1
						}
					}
					return y, err
				}
				forwardCheck32(t, ins, build, naiveConv(x, w, b, tc.stride, tc.pad))
				gradCheck(t, rng, ins, build)
			}
		})
	}
}

func TestConv2dErrors(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 3, 8, 8), G.WithName("x"))
	w := G.NewTensor(g, tensor.Float32, 4, G.WithShape(4, 2, 3, 3), G.WithName("w"))
	w3 := G.NewTensor(g, tensor.Float32, 4, G.WithShape(4, 3, 3, 3), G.WithName("w3"))
	b := G.NewTensor(g, tensor.Float32, 1, G.WithShape(5), G.WithName("b"))
	w64 := G.NewTensor(g, tensor.Float64, 4, G.WithShape(4, 3, 3, 3), G.WithName("w64"))
	cases := []struct {
		name        string
		x, w, b     *G.Node
		stride, pad int
	}{
		{"channels", x, w, nil, 1, 1},
		{"bias size", x, w3, b, 1, 1},
		{"stride", x, w3, nil, 0, 1},
		{"dtype", x, w64, nil, 1, 1},
		{"nil weight", x, nil, nil, 1, 1},
	}
	for _, tc := range cases {
		if _, err := Conv2d(tc.x, tc.w, tc.b, tc.stride, tc.pad); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestConvStats(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(2, 3, 8, 8), G.WithName("x"), G.WithValue(randF32(rng, 2, 3, 8, 8)))
	w := G.NewTensor(g, tensor.Float32, 4, G.WithShape(4, 3, 3, 3), G.WithName("w"), G.WithValue(randF32(rng, 4, 3, 3, 3)))
	y := G.Must(Conv2d(x, w, nil, 1, 1))
	if _, err := G.Grad(G.Must(G.Sum(y)), x, w); err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	for i := 0; i < 2; i++ {
		vm.Reset()
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
	}
	// forward, input gradient and weight gradient, twice
	want := 2 * 3 * 2 * float64(2*4*3*3*3*8*8)
	flop, el := ConvStats(g)
	if flop != want || el <= 0 {
		t.Errorf("ConvStats = %g flop in %v, want %g flop in > 0", flop, el, want)
	}
	ResetConvStats(g)
	if flop, el := ConvStats(g); flop != 0 || el != 0 {
		t.Errorf("after reset: %g flop, %v", flop, el)
	}
}

func TestConvStatsByPass(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(2, 3, 8, 8), G.WithName("x"), G.WithValue(randF32(rng, 2, 3, 8, 8)))
	w1 := G.NewTensor(g, tensor.Float32, 4, G.WithShape(4, 3, 3, 3), G.WithName("w1"), G.WithValue(randF32(rng, 4, 3, 3, 3)))
	w2 := G.NewTensor(g, tensor.Float32, 4, G.WithShape(5, 4, 1, 1), G.WithName("w2"), G.WithValue(randF32(rng, 5, 4, 1, 1)))
	fwdOnly := G.NewTensor(g, tensor.Float32, 4, G.WithShape(6, 3, 3, 3), G.WithName("w3"), G.WithValue(randF32(rng, 6, 3, 3, 3)))
	h := G.Must(Conv2d(x, w1, nil, 1, 1)) // 2×4×8×8
	y := G.Must(Conv2d(h, w2, nil, 2, 0)) // 1×1 stride 2: 2×5×4×4
	z := G.Must(Conv2d(x, fwdOnly, nil, 2, 1))
	if _, err := G.Grad(G.Must(G.Sum(y)), x, w1, w2); err != nil {
		t.Fatal(err)
	}
	_ = z
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	const runs = 3
	for i := 0; i < runs; i++ {
		vm.Reset()
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
	}
	// 2·N·O·C·KH·KW·OH·OW per pass of each conv
	c1 := float64(2 * 2 * 4 * 3 * 3 * 3 * 8 * 8)
	c2 := float64(2 * 2 * 5 * 4 * 1 * 1 * 4 * 4)
	c3 := float64(2 * 2 * 6 * 3 * 3 * 3 * 4 * 4)
	want := [3]struct {
		flop float64
		runs int
	}{
		{runs * (c1 + c2 + c3), 3 * runs}, // every conv runs forward
		{runs * (c1 + c2), 2 * runs},      // input gradients of the two convs in the loss
		{runs * (c1 + c2), 2 * runs},      // weight gradients of the same
	}
	st := ConvStatsByPass(g)
	var sum float64
	var el time.Duration
	for _, p := range ConvPasses {
		s := st[p]
		if s.Flop != want[p].flop || s.Runs != want[p].runs || s.Elapsed <= 0 || s.GFLOPS() <= 0 {
			t.Errorf("%v: %g flop in %d runs, %v; want %g flop in %d runs, > 0", p, s.Flop, s.Runs, s.Elapsed, want[p].flop, want[p].runs)
		}
		sum += s.Flop
		el += s.Elapsed
	}
	if flop, e := ConvStats(g); flop != sum || e != el {
		t.Errorf("ConvStats = %g flop, %v; the passes sum to %g, %v", flop, e, sum, el)
	}
	if got := []string{ConvForward.String(), ConvBackwardData.String(), ConvBackwardWeights.String()}; strings.Join(got, ",") != "forward,backward-data,backward-weights" {
		t.Errorf("pass names %v", got)
	}
	ResetConvStats(g)
	for _, p := range ConvPasses {
		if s := ConvStatsByPass(g)[p]; s != (ConvStat{}) || s.GFLOPS() != 0 {
			t.Errorf("%v after reset: %+v", p, s)
		}
	}
}
