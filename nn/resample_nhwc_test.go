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

// moveChannels transposes src between N×C×inner (channels first) and
// N×inner×C (channels last): toLast maps the first to the second.
func moveChannels[T float](src []T, n, c, inner int, toLast bool) []T {
	dst := make([]T, len(src))
	for i := 0; i < n; i++ {
		for ch := 0; ch < c; ch++ {
			for p := 0; p < inner; p++ {
				first, last := (i*c+ch)*inner+p, (i*inner+p)*c+ch
				if toLast {
					dst[last] = src[first]
				} else {
					dst[first] = src[last]
				}
			}
		}
	}
	return dst
}

// toNHWC returns a new tensor holding t (N×C×…, float32 or float64) with the
// channel axis moved last: N×…×C. Test data only: the graph ops are
// nn.ToNHWC / nn.ToNCHW.
func toNHWC(t *tensor.Dense) *tensor.Dense {
	s := t.Shape()
	shape := append(append(tensor.Shape{s[0]}, s[2:]...), s[1])
	return relayout(t, shape, s[0], s[1], s.TotalSize()/(s[0]*s[1]), true)
}

// toNCHW is the inverse of toNHWC: N×…×C → N×C×….
func toNCHW(t *tensor.Dense) *tensor.Dense {
	s := t.Shape()
	last := len(s) - 1
	shape := append(tensor.Shape{s[0], s[last]}, s[1:last]...)
	return relayout(t, shape, s[0], s[last], s.TotalSize()/(s[0]*s[last]), false)
}

func relayout(t *tensor.Dense, shape tensor.Shape, n, c, inner int, toLast bool) *tensor.Dense {
	var backing any
	switch d := t.Data().(type) {
	case []float64:
		backing = moveChannels(d, n, c, inner, toLast)
	case []float32:
		backing = moveChannels(d, n, c, inner, toLast)
	default:
		panic(fmt.Sprintf("relayout: %T", d))
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(backing))
}

// TestNHWCTranspose checks the test helpers themselves on a literal.
func TestNHWCTranspose(t *testing.T) {
	// N=1, C=2, H=1, W=3
	x := tensor.New(tensor.WithShape(1, 2, 1, 3), tensor.WithBacking([]float64{1, 2, 3, 10, 20, 30}))
	y := toNHWC(x)
	if !y.Shape().Eq(tensor.Shape{1, 1, 3, 2}) {
		t.Fatalf("shape %v", y.Shape())
	}
	want := []float64{1, 10, 2, 20, 3, 30}
	for i, v := range f64(y) {
		if v != want[i] {
			t.Fatalf("toNHWC = %v, want %v", f64(y), want)
		}
	}
	z := toNCHW(y)
	if !z.Shape().Eq(x.Shape()) {
		t.Fatalf("round trip shape %v", z.Shape())
	}
	for i, v := range f64(z) {
		if v != f64(x)[i] {
			t.Fatalf("round trip = %v, want %v", f64(z), f64(x))
		}
	}
}

// nhwcCase is an NHWC op and its NCHW counterpart on the same data: inputs
// of rank ≥ 3 are images, given to the NHWC builder transposed (toNHWC); the
// rest (embeddings, scales) are passed as they are.
type nhwcCase struct {
	name       string
	shapes     [][]int // NCHW shapes of the inputs
	nchw, nhwc builder
	// exact: gradients bit-equal in both precisions (data movement, or sums
	// in the same order); else within 1e-12 (float64) / 1e-6 (float32)
	// relative. Forward outputs are always compared exactly.
	exact bool
}

func nhwcPadCase(c padCase) nhwcCase {
	return nhwcCase{"Pad2d" + c.name, [][]int{c.shape},
		func(ns []*G.Node) (*G.Node, error) { return Pad2d(ns[0], c.top, c.bottom, c.left, c.right) },
		func(ns []*G.Node) (*G.Node, error) { return Pad2dNHWC(ns[0], c.top, c.bottom, c.left, c.right) }, true}
}

func nhwcCases() []nhwcCase {
	up := func(ns []*G.Node) (*G.Node, error) { return Upsample2x(ns[0]) }
	upH := func(ns []*G.Node) (*G.Node, error) { return Upsample2xNHWC(ns[0]) }
	pool := func(ns []*G.Node) (*G.Node, error) { return AvgPool2x(ns[0]) }
	poolH := func(ns []*G.Node) (*G.Node, error) { return AvgPool2xNHWC(ns[0]) }
	cat := func(ns []*G.Node) (*G.Node, error) { return Concat(ns...) }
	catH := func(ns []*G.Node) (*G.Node, error) { return ConcatNHWC(ns...) }
	add := func(ns []*G.Node) (*G.Node, error) { return AddChannel(ns[0], ns[1]) }
	addH := func(ns []*G.Node) (*G.Node, error) { return AddChannelNHWC(ns[0], ns[1]) }
	ss := func(ns []*G.Node) (*G.Node, error) { return ScaleShift(ns[0], ns[1], ns[2]) }
	ssH := func(ns []*G.Node) (*G.Node, error) { return ScaleShiftNHWC(ns[0], ns[1], ns[2]) }
	// every op in one graph, inputs shared: pool → upsample → concat with
	// the input → pad → scale-shift → add the embedding
	piece := func(pool, up, cat func(...*G.Node) (*G.Node, error), pad func(*G.Node) (*G.Node, error), ss func(x, a, b *G.Node) (*G.Node, error), add func(x, e *G.Node) (*G.Node, error)) builder {
		return func(ns []*G.Node) (*G.Node, error) {
			h, err := pool(ns[0])
			if err != nil {
				return nil, err
			}
			if h, err = up(h); err != nil {
				return nil, err
			}
			if h, err = cat(h, ns[0]); err != nil {
				return nil, err
			}
			if h, err = pad(h); err != nil {
				return nil, err
			}
			if h, err = ss(h, ns[1], ns[2]); err != nil {
				return nil, err
			}
			return add(h, ns[1])
		}
	}
	one := func(f func(*G.Node) (*G.Node, error)) func(...*G.Node) (*G.Node, error) {
		return func(ns ...*G.Node) (*G.Node, error) { return f(ns[0]) }
	}
	cases := []nhwcCase{
		{"Upsample2x", [][]int{{2, 3, 3, 4}}, up, upH, true},
		{"Upsample2x1x1", [][]int{{1, 5, 1, 1}}, up, upH, true},
		{"Upsample2xC1", [][]int{{3, 1, 2, 2}}, up, upH, true},
		{"AvgPool2x", [][]int{{2, 3, 4, 6}}, pool, poolH, true},
		{"AvgPool2xOdd", [][]int{{2, 2, 5, 7}}, pool, poolH, true},
		{"AvgPool2xOddH", [][]int{{1, 4, 3, 2}}, pool, poolH, true},
		{"AvgPool2x2x2", [][]int{{2, 3, 2, 2}}, pool, poolH, true},
		{"Concat", [][]int{{2, 3, 2, 3}, {2, 1, 2, 3}, {2, 2, 2, 3}}, cat, catH, true},
		{"ConcatSameInput", [][]int{{2, 3, 2, 2}}, func(ns []*G.Node) (*G.Node, error) { return Concat(ns[0], ns[0]) },
			func(ns []*G.Node) (*G.Node, error) { return ConcatNHWC(ns[0], ns[0]) }, true},
		{"ConcatOne", [][]int{{2, 4, 3, 2}}, cat, catH, true},
		{"ConcatRank3", [][]int{{2, 3, 5}, {2, 2, 5}}, cat, catH, true},
		{"AddChannel", [][]int{{2, 3, 4, 5}, {2, 3}}, add, addH, false},
		{"AddChannelBig", [][]int{{3, 5, 8, 9}, {3, 5}}, add, addH, false},
		{"AddChannelRank3", [][]int{{2, 4, 7}, {2, 4}}, add, addH, false},
		{"ScaleShift", [][]int{{2, 3, 4, 5}, {2, 3}, {2, 3}}, ss, ssH, false},
		{"ScaleShiftBig", [][]int{{3, 5, 8, 9}, {3, 5}, {3, 5}}, ss, ssH, false},
		{"ScaleShiftRank3", [][]int{{2, 4, 7}, {2, 4}, {2, 4}}, ss, ssH, false},
		{"UNetPiece", [][]int{{2, 3, 6, 4}, {2, 6}, {2, 6}},
			piece(one(AvgPool2x), one(Upsample2x), Concat, func(x *G.Node) (*G.Node, error) { return Pad2d(x, 0, 2, 1, 0) }, ScaleShift, AddChannel),
			piece(one(AvgPool2xNHWC), one(Upsample2xNHWC), ConcatNHWC, func(x *G.Node) (*G.Node, error) { return Pad2dNHWC(x, 0, 2, 1, 0) }, ScaleShiftNHWC, AddChannelNHWC),
			false},
	}
	for _, c := range padCases {
		cases = append(cases, nhwcPadCase(c))
	}
	return cases
}

// vjp builds build on input nodes holding ins and its vector-Jacobian
// product for the output gradient dy (an input node, so only the ops'
// backward passes run), runs it twice on one TapeMachine, overwriting every
// op-owned output and gradient with junk between the runs, checks that both
// runs agree exactly and returns copies of the output and of the input
// gradients.
func vjp(t *testing.T, ins []*tensor.Dense, dy func(tensor.Shape) *tensor.Dense, build builder) (*tensor.Dense, []*tensor.Dense) {
	t.Helper()
	g := G.NewGraph()
	ns := make([]*G.Node, len(ins))
	for i, in := range ins {
		ns[i] = G.NewTensor(g, in.Dtype(), in.Dims(), G.WithShape(in.Shape().Clone()...), G.WithName(fmt.Sprintf("in%d", i)), G.WithValue(in))
	}
	out, err := build(ns)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	if out.Dtype() != ins[0].Dtype() {
		t.Fatalf("output dtype %v, want %v", out.Dtype(), ins[0].Dtype())
	}
	d := dy(out.Shape())
	dn := G.NewTensor(g, d.Dtype(), d.Dims(), G.WithShape(d.Shape().Clone()...), G.WithName("dy"), G.WithValue(d))
	grads, err := G.Backpropagate(G.Nodes{out}, G.Nodes{dn}, ns)
	if err != nil {
		t.Fatalf("backpropagate: %v", err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	var first [][]float64
	for run := 0; run < 2; run++ {
		vm.Reset()
		if err := vm.RunAll(); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		vals := append(G.Nodes{out}, grads...)
		cur := make([][]float64, len(vals))
		for i, n := range vals {
			cur[i] = asF64(n.Value())
		}
		if run == 1 {
			for i := range cur {
				for k := range cur[i] {
					if cur[i][k] != first[i][k] {
						t.Fatalf("second run: value %d [%d] = %g, first run %g", i, k, cur[i][k], first[i][k])
					}
				}
			}
			break
		}
		first = cur
		for _, n := range vals {
			if n.Op() == nil { // an input (dy itself is AddChannel's dx)
				continue
			}
			switch v := n.Value().Data().(type) {
			case []float64:
				for k := range v {
					v[k] = 7
				}
			case []float32:
				for k := range v {
					v[k] = 7
				}
			}
		}
	}
	gs := make([]*tensor.Dense, len(grads))
	for i, n := range grads {
		gs[i] = n.Value().(*tensor.Dense).Clone().(*tensor.Dense)
	}
	return out.Value().(*tensor.Dense).Clone().(*tensor.Dense), gs
}

// compareNHWC checks got (an NHWC result, transposed back when it is an
// image) against want (the NCHW result): exactly when tol is 0, else to
// tol·(1+|want|).
func compareNHWC(t *testing.T, what string, got, want *tensor.Dense, tol float64) {
	t.Helper()
	if got.Dtype() != want.Dtype() {
		t.Fatalf("%s: dtype %v, want %v", what, got.Dtype(), want.Dtype())
	}
	if got.Dims() >= 3 {
		if s := toNHWC(want).Shape(); !got.Shape().Eq(s) {
			t.Fatalf("%s: shape %v, want %v", what, got.Shape(), s)
		}
		got = toNCHW(got)
	} else if !got.Shape().Eq(want.Shape()) {
		t.Fatalf("%s: shape %v, want %v", what, got.Shape(), want.Shape())
	}
	g, w := asF64(got), asF64(want)
	worst := 0.0
	for i := range w {
		if e := math.Abs(g[i]-w[i]) / (1 + math.Abs(w[i])); e > worst {
			worst = e
		}
		if tol == 0 && g[i] != w[i] || math.Abs(g[i]-w[i]) > tol*(1+math.Abs(w[i])) {
			t.Fatalf("%s [%d] = %.17g, NCHW op %.17g (tolerance %g)", what, i, g[i], w[i], tol)
		}
	}
	if worst > 0 {
		t.Logf("%s: largest relative difference %.3g", what, worst)
	}
}

// TestNHWCMatchesNCHW checks every NHWC op against its NCHW counterpart in
// float32 and float64: the output on the transposed input is the NCHW output
// transposed, and the input gradients for a random output gradient are the
// NCHW ones (transposed for images). It then checks the NHWC op's float64
// gradients against finite differences (gradCheck).
func TestNHWCMatchesNCHW(t *testing.T) {
	for ci, tc := range nhwcCases() {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(500 + ci)))
			ins := make([]*tensor.Dense, len(tc.shapes))
			for j, s := range tc.shapes {
				ins[j] = randDense(rng, 1, s...)
			}
			dy64 := randDense(rng, 1, outShapeOf(t, ins, tc.nchw)...)
			for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
				conv := func(d *tensor.Dense) *tensor.Dense { return d }
				tol := 1e-12
				if dt == tensor.Float32 {
					conv, tol = toF32, 1e-6
				}
				if tc.exact {
					tol = 0
				}
				nchwIns := make([]*tensor.Dense, len(ins))
				nhwcIns := make([]*tensor.Dense, len(ins))
				for j, in := range ins {
					nchwIns[j] = conv(in)
					nhwcIns[j] = nchwIns[j]
					if in.Dims() >= 3 {
						nhwcIns[j] = toNHWC(nchwIns[j])
					}
				}
				dyNCHW := conv(dy64)
				dyNHWC := dyNCHW
				if dyNCHW.Dims() >= 3 {
					dyNHWC = toNHWC(dyNCHW)
				}
				wantOut, wantGrads := vjp(t, nchwIns, func(tensor.Shape) *tensor.Dense { return dyNCHW }, tc.nchw)
				gotOut, gotGrads := vjp(t, nhwcIns, func(s tensor.Shape) *tensor.Dense {
					if !s.Eq(dyNHWC.Shape()) {
						t.Fatalf("%v: NHWC output shape %v, want %v", dt, s, dyNHWC.Shape())
					}
					return dyNHWC
				}, tc.nhwc)
				compareNHWC(t, fmt.Sprintf("%v output", dt), gotOut, wantOut, 0)
				for j := range wantGrads {
					compareNHWC(t, fmt.Sprintf("%v gradient of input %d", dt, j), gotGrads[j], wantGrads[j], tol)
				}
			}
			nhwcIns := make([]*tensor.Dense, len(ins))
			for j, in := range ins {
				nhwcIns[j] = in
				if in.Dims() >= 3 {
					nhwcIns[j] = toNHWC(in)
				}
			}
			gradCheck(t, rng, nhwcIns, tc.nhwc)
		})
	}
}

// TestNHWCLiteral checks small cases against values written by hand
// (x is 1×1×2×2 channels-last: pixel (0,0) holds channels 1, 2; pixel
// (0,1) holds 3, 4).
func TestNHWCLiteral(t *testing.T) {
	x := func() *tensor.Dense {
		return tensor.New(tensor.WithShape(1, 1, 2, 2), tensor.WithBacking([]float64{1, 2, 3, 4}))
	}
	sq := func() *tensor.Dense {
		// 1×2×2×2: channel 0 is 1 2 / 3 4, channel 1 is 10 20 / 30 40
		return tensor.New(tensor.WithShape(1, 2, 2, 2), tensor.WithBacking([]float64{1, 10, 2, 20, 3, 30, 4, 40}))
	}
	e := func() *tensor.Dense {
		return tensor.New(tensor.WithShape(1, 2), tensor.WithBacking([]float64{100, 200}))
	}
	cases := []struct {
		name  string
		ins   []*tensor.Dense
		build builder
		want  []float64
	}{
		{"Upsample2x", []*tensor.Dense{x()}, func(ns []*G.Node) (*G.Node, error) { return Upsample2xNHWC(ns[0]) },
			[]float64{1, 2, 1, 2, 3, 4, 3, 4, 1, 2, 1, 2, 3, 4, 3, 4}},
		{"AvgPool2x", []*tensor.Dense{sq()}, func(ns []*G.Node) (*G.Node, error) { return AvgPool2xNHWC(ns[0]) },
			[]float64{2.5, 25}},
		{"Pad2d", []*tensor.Dense{x()}, func(ns []*G.Node) (*G.Node, error) { return Pad2dNHWC(ns[0], 1, 0, 0, 1) },
			[]float64{0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 0, 0}},
		{"Concat", []*tensor.Dense{x(), x()}, func(ns []*G.Node) (*G.Node, error) { return ConcatNHWC(ns[0], ns[1]) },
			[]float64{1, 2, 1, 2, 3, 4, 3, 4}},
		{"AddChannel", []*tensor.Dense{x(), e()}, func(ns []*G.Node) (*G.Node, error) { return AddChannelNHWC(ns[0], ns[1]) },
			[]float64{101, 202, 103, 204}},
		{"ScaleShift", []*tensor.Dense{x(), e(), e()}, func(ns []*G.Node) (*G.Node, error) { return ScaleShiftNHWC(ns[0], ns[1], ns[2]) },
			[]float64{1*101 + 100, 2*201 + 200, 3*101 + 100, 4*201 + 200}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := runForward(t, tc.ins, tc.build)
			if len(got) != len(tc.want) {
				t.Fatalf("%d elements, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("out = %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// TestNHWCLispMachine checks the ADOp path: a LispMachine (DoDiff) gives the
// TapeMachine's gradients for a graph of every NHWC op.
func TestNHWCLispMachine(t *testing.T) {
	shapes := [][]int{{2, 6, 4, 3}, {2, 6}, {2, 6}}
	build := func(ns []*G.Node) (*G.Node, error) {
		h := G.Must(AvgPool2xNHWC(ns[0]))
		h = G.Must(Upsample2xNHWC(h))
		h = G.Must(ConcatNHWC(h, ns[0]))
		h = G.Must(Pad2dNHWC(h, 1, 0, 0, 2))
		h = G.Must(ScaleShiftNHWC(h, ns[1], ns[2]))
		return AddChannelNHWC(h, ns[1])
	}
	tape, lisp := lispAndTapeGrads(t, shapes, 11, build)
	for i := range tape {
		for j := range tape[i] {
			if math.Abs(tape[i][j]-lisp[i][j]) > 1e-12*(1+math.Abs(tape[i][j])) {
				t.Fatalf("input %d [%d]: LispMachine %g, TapeMachine %g", i, j, lisp[i][j], tape[i][j])
			}
		}
	}
}

// TestNHWCErrors checks that bad arguments give an error naming the op and
// the problem, not a panic.
func TestNHWCErrors(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(2, 4, 4, 3), G.WithName("x"))
	y := G.NewTensor(g, tensor.Float32, 4, G.WithShape(2, 4, 5, 3), G.WithName("y"))
	v := G.NewTensor(g, tensor.Float32, 3, G.WithShape(4, 4, 3), G.WithName("v"))
	vec := G.NewTensor(g, tensor.Float32, 1, G.WithShape(3), G.WithName("vec"))
	e := G.NewTensor(g, tensor.Float32, 2, G.WithShape(2, 3), G.WithName("e"))
	eBad := G.NewTensor(g, tensor.Float32, 2, G.WithShape(2, 4), G.WithName("eBad"))
	e3 := G.NewTensor(g, tensor.Float32, 3, G.WithShape(2, 3, 1), G.WithName("e3"))
	e64 := G.NewTensor(g, tensor.Float64, 2, G.WithShape(2, 3), G.WithName("e64"))
	x64 := G.NewTensor(g, tensor.Float64, 4, G.WithShape(2, 4, 4, 3), G.WithName("x64"))
	xi := G.NewTensor(g, tensor.Int, 4, G.WithShape(2, 4, 4, 3), G.WithName("xi"))
	thin := G.NewTensor(g, tensor.Float32, 4, G.WithShape(2, 1, 4, 3), G.WithName("thin"))
	narrow := G.NewTensor(g, tensor.Float32, 4, G.WithShape(2, 4, 1, 3), G.WithName("narrow"))
	cases := []struct {
		name string
		f    func() (*G.Node, error)
		want []string // substrings of the error
	}{
		{"Upsample rank", func() (*G.Node, error) { return Upsample2xNHWC(v) }, []string{"nn.Upsample2xNHWC", "v", "(4, 4, 3)", "4 dimensions"}},
		{"Upsample nil", func() (*G.Node, error) { return Upsample2xNHWC(nil) }, []string{"nn.Upsample2xNHWC", "nil"}},
		{"Upsample dtype", func() (*G.Node, error) { return Upsample2xNHWC(xi) }, []string{"nn.Upsample2xNHWC", "xi", "float32 or float64"}},
		{"AvgPool rank", func() (*G.Node, error) { return AvgPool2xNHWC(v) }, []string{"nn.AvgPool2xNHWC", "v", "4 dimensions"}},
		{"AvgPool H", func() (*G.Node, error) { return AvgPool2xNHWC(thin) }, []string{"nn.AvgPool2xNHWC", "thin", "1×4", "at least 2×2"}},
		{"AvgPool W", func() (*G.Node, error) { return AvgPool2xNHWC(narrow) }, []string{"nn.AvgPool2xNHWC", "narrow", "4×1", "at least 2×2"}},
		{"AvgPool dtype", func() (*G.Node, error) { return AvgPool2xNHWC(xi) }, []string{"nn.AvgPool2xNHWC", "xi", "float32 or float64"}},
		{"Pad top", func() (*G.Node, error) { return Pad2dNHWC(x, -1, 0, 0, 0) }, []string{"nn.Pad2dNHWC", "top", "-1", "x"}},
		{"Pad bottom", func() (*G.Node, error) { return Pad2dNHWC(x, 0, -2, 0, 0) }, []string{"nn.Pad2dNHWC", "bottom", "-2"}},
		{"Pad left", func() (*G.Node, error) { return Pad2dNHWC(x, 0, 0, -3, 0) }, []string{"nn.Pad2dNHWC", "left", "-3"}},
		{"Pad right", func() (*G.Node, error) { return Pad2dNHWC(x, 0, 0, 0, -4) }, []string{"nn.Pad2dNHWC", "right", "-4"}},
		{"Pad rank", func() (*G.Node, error) { return Pad2dNHWC(v, 0, 1, 0, 1) }, []string{"nn.Pad2dNHWC", "v", "4 dimensions"}},
		{"Pad nil", func() (*G.Node, error) { return Pad2dNHWC(nil, 0, 1, 0, 1) }, []string{"nn.Pad2dNHWC", "nil"}},
		{"Pad dtype", func() (*G.Node, error) { return Pad2dNHWC(xi, 0, 1, 0, 1) }, []string{"nn.Pad2dNHWC", "xi", "float32 or float64"}},
		{"Concat empty", func() (*G.Node, error) { return ConcatNHWC() }, []string{"nn.ConcatNHWC", "no inputs"}},
		{"Concat nil", func() (*G.Node, error) { return ConcatNHWC(x, nil) }, []string{"nn.ConcatNHWC", "input 1", "nil"}},
		{"Concat shapes", func() (*G.Node, error) { return ConcatNHWC(x, y) }, []string{"nn.ConcatNHWC", "y", "(2, 4, 5, 3)", "last axis"}},
		{"Concat ranks", func() (*G.Node, error) { return ConcatNHWC(x, v) }, []string{"nn.ConcatNHWC", "v", "last axis"}},
		{"Concat rank 1", func() (*G.Node, error) { return ConcatNHWC(vec) }, []string{"nn.ConcatNHWC", "vec", "N×…×C"}},
		{"Concat dtypes", func() (*G.Node, error) { return ConcatNHWC(x, x64) }, []string{"nn.ConcatNHWC", "x64", "float64"}},
		{"AddChannel nil", func() (*G.Node, error) { return AddChannelNHWC(x, nil) }, []string{"nn.AddChannelNHWC", "nil"}},
		{"AddChannel rank", func() (*G.Node, error) { return AddChannelNHWC(vec, e) }, []string{"nn.AddChannelNHWC", "vec", "N×…×C"}},
		{"AddChannel shape", func() (*G.Node, error) { return AddChannelNHWC(x, eBad) }, []string{"nn.AddChannelNHWC", "eBad", "[2 3]"}},
		{"AddChannel e rank", func() (*G.Node, error) { return AddChannelNHWC(x, e3) }, []string{"nn.AddChannelNHWC", "embedding", "e3", "2 dimensions"}},
		{"AddChannel dtypes", func() (*G.Node, error) { return AddChannelNHWC(x, e64) }, []string{"nn.AddChannelNHWC", "e64", "float64"}},
		{"ScaleShift nil", func() (*G.Node, error) { return ScaleShiftNHWC(nil, e, e) }, []string{"nn.ScaleShiftNHWC", "nil"}},
		{"ScaleShift nil scale", func() (*G.Node, error) { return ScaleShiftNHWC(x, nil, e) }, []string{"nn.ScaleShiftNHWC", "scale", "nil"}},
		{"ScaleShift rank", func() (*G.Node, error) { return ScaleShiftNHWC(vec, e, e) }, []string{"nn.ScaleShiftNHWC", "vec", "N×…×C"}},
		{"ScaleShift scale", func() (*G.Node, error) { return ScaleShiftNHWC(x, eBad, e) }, []string{"nn.ScaleShiftNHWC", "scale", "eBad", "[2 3]"}},
		{"ScaleShift shift", func() (*G.Node, error) { return ScaleShiftNHWC(x, e, eBad) }, []string{"nn.ScaleShiftNHWC", "shift", "eBad", "[2 3]"}},
		{"ScaleShift dtypes", func() (*G.Node, error) { return ScaleShiftNHWC(x, e, e64) }, []string{"nn.ScaleShiftNHWC", "e64", "float64"}},
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

// BenchmarkOpsNHWC times every NHWC op, forward and forward+backward, at
// batch 64, 28×28, 64 channels (float32), next to its NCHW counterpart on
// the same sizes.
func BenchmarkOpsNHWC(b *testing.B) {
	const n, hw, c = 64, 28, 64
	xh, xc, e := []int{n, hw, hw, c}, []int{n, c, hw, hw}, []int{n, c}
	for _, layout := range []string{"NHWC", "NCHW"} {
		x := xh
		up, pool, cat, add, ss := Upsample2xNHWC, AvgPool2xNHWC, ConcatNHWC, AddChannelNHWC, ScaleShiftNHWC
		pad := Pad2dNHWC
		if layout == "NCHW" {
			x = xc
			up, pool, cat, add, ss, pad = Upsample2x, AvgPool2x, Concat, AddChannel, ScaleShift, Pad2d
		}
		benchOp(b, "Upsample2x/"+layout, [][]int{x}, func(ns []*G.Node) (*G.Node, error) { return up(ns[0]) })
		benchOp(b, "AvgPool2x/"+layout, [][]int{x}, func(ns []*G.Node) (*G.Node, error) { return pool(ns[0]) })
		benchOp(b, "Pad2d/"+layout, [][]int{x}, func(ns []*G.Node) (*G.Node, error) { return pad(ns[0], 0, 1, 0, 1) })
		benchOp(b, "Concat/"+layout, [][]int{x, x}, func(ns []*G.Node) (*G.Node, error) { return cat(ns[0], ns[1]) })
		benchOp(b, "AddChannel/"+layout, [][]int{x, e}, func(ns []*G.Node) (*G.Node, error) { return add(ns[0], ns[1]) })
		benchOp(b, "ScaleShift/"+layout, [][]int{x, e, e}, func(ns []*G.Node) (*G.Node, error) { return ss(ns[0], ns[1], ns[2]) })
	}
}
