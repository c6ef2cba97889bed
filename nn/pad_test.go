package nn

import (
	"math/rand"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// padCase is one Pad2d configuration: input shape and the four pads.
type padCase struct {
	name                     string
	shape                    []int
	top, bottom, left, right int
}

var padCases = []padCase{
	{"DDPM", []int{2, 3, 4, 5}, 0, 1, 0, 1},
	{"Zero", []int{2, 2, 3, 3}, 0, 0, 0, 0},
	{"Symmetric", []int{1, 2, 3, 4}, 2, 2, 2, 2},
	{"Asymmetric", []int{2, 3, 3, 2}, 1, 0, 3, 2},
	{"RowsOnly", []int{1, 3, 2, 5}, 3, 1, 0, 0},
	{"ColsOnly", []int{3, 1, 4, 1}, 0, 0, 2, 1},
	{"TopLeft", []int{2, 2, 1, 1}, 1, 0, 1, 0},
}

// padRef is the padding written out element by element: out[n,c,i,j] is
// x[n,c,i−top,j−left] inside the original plane, 0 elsewhere.
func padRef(x []float64, shape []int, top, bottom, left, right int) []float64 {
	nc, h, w := shape[0]*shape[1], shape[2], shape[3]
	bh, bw := top+h+bottom, left+w+right
	out := make([]float64, nc*bh*bw)
	for p := 0; p < nc; p++ {
		for i := 0; i < bh; i++ {
			for j := 0; j < bw; j++ {
				si, sj := i-top, j-left
				if si >= 0 && si < h && sj >= 0 && sj < w {
					out[(p*bh+i)*bw+j] = x[(p*h+si)*w+sj]
				}
			}
		}
	}
	return out
}

func (c padCase) build(ns []*G.Node) (*G.Node, error) {
	return Pad2d(ns[0], c.top, c.bottom, c.left, c.right)
}

// TestPad2dForward checks Pad2d's values and shape against padRef, exactly,
// in float32 and float64, on two runs of the same machine (the output buffer
// is reused, so stale values in the padding would show up on the second).
func TestPad2dForward(t *testing.T) {
	for i, tc := range padCases {
		t.Run(tc.name, func(t *testing.T) {
			x64 := randDense(rand.New(rand.NewSource(int64(200+i))), 1, tc.shape...)
			want := padRef(f64(x64), tc.shape, tc.top, tc.bottom, tc.left, tc.right)
			wantShape := tensor.Shape{tc.shape[0], tc.shape[1], tc.top + tc.shape[2] + tc.bottom, tc.left + tc.shape[3] + tc.right}
			for _, x := range []*tensor.Dense{x64, toF32(x64)} {
				g := G.NewGraph()
				n := G.NewTensor(g, x.Dtype(), 4, G.WithShape(x.Shape().Clone()...), G.WithName("x"), G.WithValue(x))
				out, err := tc.build([]*G.Node{n})
				if err != nil {
					t.Fatal(err)
				}
				if !out.Shape().Eq(wantShape) {
					t.Fatalf("%v: shape %v, want %v", x.Dtype(), out.Shape(), wantShape)
				}
				if out.Dtype() != x.Dtype() {
					t.Fatalf("dtype %v, want %v", out.Dtype(), x.Dtype())
				}
				vm := G.NewTapeMachine(g)
				for run := 0; run < 2; run++ {
					vm.Reset()
					if err := vm.RunAll(); err != nil {
						t.Fatal(err)
					}
					if out.Value().Dtype() != x.Dtype() || !out.Value().Shape().Eq(wantShape) {
						t.Fatalf("%v run %d: value %v %v, want %v %v", x.Dtype(), run, out.Value().Dtype(), out.Value().Shape(), x.Dtype(), wantShape)
					}
					got := asF64(out.Value())
					for k := range want {
						w := want[k]
						if x.Dtype() == tensor.Float32 {
							w = float64(float32(w))
						}
						if got[k] != w {
							t.Fatalf("%v run %d: out[%d] = %g, want %g", x.Dtype(), run, k, got[k], w)
						}
					}
					// dirty the buffer: the next run must rewrite the zeros
					if d, ok := out.Value().Data().([]float64); ok {
						for k := range d {
							d[k] = 7
						}
					} else {
						for k, d := 0, out.Value().Data().([]float32); k < len(d); k++ {
							d[k] = 7
						}
					}
				}
				vm.Close()
			}
		})
	}
}

// TestPad2dLiteral checks one small padding against values written by hand.
func TestPad2dLiteral(t *testing.T) {
	x := tensor.New(tensor.WithShape(1, 1, 2, 2), tensor.WithBacking([]float64{1, 2, 3, 4}))
	// top 1, bottom 0, left 0, right 2
	want := []float64{
		0, 0, 0, 0,
		1, 2, 0, 0,
		3, 4, 0, 0,
	}
	got := runForward(t, []*tensor.Dense{x}, func(ns []*G.Node) (*G.Node, error) { return Pad2d(ns[0], 1, 0, 0, 2) })
	if len(got) != len(want) {
		t.Fatalf("%d elements, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("out = %v, want %v", got, want)
		}
	}
}

// TestPad2dGrad checks the gradient against finite differences (gradCheck),
// checks that it is exactly the crop of the output gradient r, and that the
// LispMachine (DoDiff) gives the same.
func TestPad2dGrad(t *testing.T) {
	for i, tc := range padCases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(300 + i)))
			x := randDense(rng, 1, tc.shape...)
			gradCheck(t, rng, []*tensor.Dense{x}, tc.build)

			// ∂Σ(pad(x)⊙r)/∂x = crop(r)
			rs := outShapeOf(t, []*tensor.Dense{x}, tc.build)
			r := randDense(rng, 1, rs...)
			h, w := tc.shape[2], tc.shape[3]
			bw := tc.left + w + tc.right
			bh := tc.top + h + tc.bottom
			want := make([]float64, 0, x.Shape().TotalSize())
			for p := 0; p < tc.shape[0]*tc.shape[1]; p++ {
				for i := 0; i < h; i++ {
					off := (p*bh+tc.top+i)*bw + tc.left
					want = append(want, f64(r)[off:off+w]...)
				}
			}
			run, _ := graphRun(t, []*tensor.Dense{x}, r, tc.build)
			_, _, grads := run()
			for k := range want {
				if grads[0][k] != want[k] {
					t.Fatalf("TapeMachine grad[%d] = %g, want crop of r %g", k, grads[0][k], want[k])
				}
			}

			g := G.NewGraph()
			xn := G.NewTensor(g, tensor.Float64, 4, G.WithShape(tc.shape...), G.WithName("x"), G.WithValue(x))
			rn := G.NewTensor(g, tensor.Float64, 4, G.WithShape(rs...), G.WithName("r"), G.WithValue(r))
			out, err := tc.build([]*G.Node{xn})
			if err != nil {
				t.Fatal(err)
			}
			G.Must(G.Sum(G.Must(G.HadamardProd(out, rn))))
			vm := G.NewLispMachine(g)
			defer vm.Close()
			if err := vm.RunAll(); err != nil {
				t.Fatal(err)
			}
			gv, err := xn.Grad()
			if err != nil {
				t.Fatal(err)
			}
			lg := asF64(gv)
			for k := range want {
				if lg[k] != want[k] {
					t.Fatalf("LispMachine grad[%d] = %g, want crop of r %g", k, lg[k], want[k])
				}
			}
		})
	}
}

// TestPad2dErrors checks that bad arguments give an error naming the
// problem, not a panic.
func TestPad2dErrors(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(2, 3, 4, 4), G.WithName("x"))
	v := G.NewTensor(g, tensor.Float32, 3, G.WithShape(3, 4, 4), G.WithName("v"))
	xi := G.NewTensor(g, tensor.Int, 4, G.WithShape(2, 3, 4, 4), G.WithName("xi"))
	cases := []struct {
		name string
		f    func() (*G.Node, error)
		want []string // substrings of the error
	}{
		{"top", func() (*G.Node, error) { return Pad2d(x, -1, 0, 0, 0) }, []string{"nn.Pad2d", "top", "-1"}},
		{"bottom", func() (*G.Node, error) { return Pad2d(x, 0, -2, 0, 0) }, []string{"nn.Pad2d", "bottom", "-2"}},
		{"left", func() (*G.Node, error) { return Pad2d(x, 1, 1, -3, 1) }, []string{"nn.Pad2d", "left", "-3"}},
		{"right", func() (*G.Node, error) { return Pad2d(x, 0, 1, 0, -4) }, []string{"nn.Pad2d", "right", "-4"}},
		{"rank", func() (*G.Node, error) { return Pad2d(v, 0, 1, 0, 1) }, []string{"nn.Pad2d", "v", "(3, 4, 4)", "4 dimensions"}},
		{"nil", func() (*G.Node, error) { return Pad2d(nil, 0, 1, 0, 1) }, []string{"nn.Pad2d", "nil"}},
		{"dtype", func() (*G.Node, error) { return Pad2d(xi, 0, 1, 0, 1) }, []string{"nn.Pad2d", "xi", "float32 or float64"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, err := tc.f()
			if err == nil {
				t.Fatalf("no error, got node %v", n)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}
