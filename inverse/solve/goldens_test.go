package solve

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/inverse/op"
	"gorgonia.org/tensor"
)

// solverGoldens is testdata/solver_goldens.json, written by
// bench/pytorch/inverse_solver_goldens.py (see its doc for the formulas and
// the official code each case follows).
type solverGoldens struct {
	Format   string `json:"format"`
	Schedule struct {
		T         int     `json:"T"`
		BetaStart float64 `json:"beta_start"`
		BetaEnd   float64 `json:"beta_end"`
	} `json:"schedule"`
	Shape     []int                     `json:"shape"`
	C         []float64                 `json:"c"`
	Operators map[string]goldenOperator `json:"operators"`
	Cases     []goldenCase              `json:"cases"`
}

type goldenOperator struct {
	Name string    `json:"name"`
	M    int       `json:"m"`
	A    []float64 `json:"a"` // M×D, row-major
	U    []float64 `json:"u"` // M×M
	S    []float64 `json:"s"` // M
	V    []float64 `json:"v"` // D×D, column j the j-th right singular vector
}

type goldenCase struct {
	Name        string         `json:"name"`
	Method      string         `json:"method"`
	Operator    string         `json:"operator"`
	SigmaY      float64        `json:"sigma_y"`
	NoiseModel  string         `json:"noise_model"` // gaussian, clean or poisson
	Rate        float64        `json:"rate"`        // the Poisson rate
	Options     map[string]any `json:"options"`
	Variance    string         `json:"variance"`
	DiffersFrom string         `json:"differs_from"`
	Y           []float64      `json:"y"`
	Noise       [][]float64    `json:"noise"`
	Final       []float64      `json:"final"`
}

// goldenTol bounds |diffinv − golden| ≤ goldenTol·(1 + |golden|) on every
// pixel: the golden is float64, diffinv rounds to float32 at every
// denoiser and operator call.
const goldenTol = 1e-5

// TestSolverGoldens replays the PyTorch goldens: for each case the same
// schedule, stub denoiser, operator (as explicit matrices with the
// golden's SVD), measurement, noise model and normal draws (through
// replayNoise), run by diffinv's solver with the case's options, must give
// the golden's final images to goldenTol; every draw must be consumed; and
// a case that runs a named option must differ from the case it varies
// (which drew the same noise) by far more than the tolerance, so the
// option is seen to matter. Not parallel: replayNoise is package state.
func TestSolverGoldens(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "solver_goldens.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g solverGoldens
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	if g.Format != "diffinv inverse solver goldens v1" || len(g.Shape) != 4 || len(g.Cases) == 0 {
		t.Fatalf("golden file: format %q, shape %v, %d cases", g.Format, g.Shape, len(g.Cases))
	}
	sched, err := diffusion.NewSchedule(diffusion.Linear, g.Schedule.T, g.Schedule.BetaStart, g.Schedule.BetaEnd)
	if err != nil {
		t.Fatal(err)
	}
	n, shape := g.Shape[0], [3]int{g.Shape[1], g.Shape[2], g.Shape[3]}
	d := shape[0] * shape[1] * shape[2]
	for j, v := range g.C {
		g.C[j] = float64(float32(v)) // stored as float32 decimals
	}
	den := &stubDenoiser{c: g.C, T: g.Schedule.T}
	finals := map[string][]float64{}
	worst := 0.0
	for _, c := range g.Cases {
		gop, ok := g.Operators[c.Operator]
		if !ok {
			t.Fatalf("%s: operator %q not in the golden", c.Name, c.Operator)
		}
		A := newMatOp(gop, shape)
		noise, err := op.NewNoise(c.NoiseModel, c.SigmaY, c.Rate)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		opts, err := DecodeOptions(c.Method, c.Options)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		y := f32(c.Y, n, 1, 1, gop.M)
		next := 0
		replayNoise = func(z []float64) {
			if next >= len(c.Noise) {
				t.Fatalf("%s: draw %d, the golden has %d", c.Name, next+1, len(c.Noise))
			}
			if len(c.Noise[next]) != len(z) {
				t.Fatalf("%s: draw %d of %d values, the golden's has %d", c.Name, next+1, len(z), len(c.Noise[next]))
			}
			for j, v := range c.Noise[next] {
				z[j] = float64(float32(v)) // the script's float32 draw, exactly
			}
			next++
		}
		x, err := Solve(c.Method, Prior{Den: den, Sched: sched, Variance: c.Variance}, Measurement{A: A, Noise: noise, Y: y}, opts, diffusion.ImageRNGs(1, 0, n), nil)
		replayNoise = nil
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if next != len(c.Noise) {
			t.Errorf("%s: %d draws used, the golden made %d", c.Name, next, len(c.Noise))
		}
		got := f64(x)
		if len(got) != n*d || len(c.Final) != n*d {
			t.Fatalf("%s: %d values, golden %d, want %d", c.Name, len(got), len(c.Final), n*d)
		}
		maxAbs, maxRel := 0.0, 0.0
		for j, v := range got {
			e := math.Abs(v - c.Final[j])
			maxAbs = math.Max(maxAbs, e)
			maxRel = math.Max(maxRel, e/(1+math.Abs(c.Final[j])))
		}
		worst = math.Max(worst, maxRel)
		t.Logf("%-30s max |diffinv − golden| = %.2e (relative to 1+|x| %.2e)", c.Name, maxAbs, maxRel)
		if maxRel > goldenTol {
			t.Errorf("%s: max |diffinv − golden|/(1+|golden|) = %.3g, want ≤ %g", c.Name, maxRel, goldenTol)
		}
		finals[c.Name] = c.Final
		if c.DiffersFrom != "" {
			other, ok := finals[c.DiffersFrom]
			if !ok {
				t.Fatalf("%s: differs_from %q is not an earlier case", c.Name, c.DiffersFrom)
			}
			diff := 0.0
			for j := range other {
				diff = math.Max(diff, math.Abs(other[j]-c.Final[j]))
			}
			if diff < 100*goldenTol {
				t.Errorf("%s: differs from %s by %.3g only, want the option to matter (> %g)", c.Name, c.DiffersFrom, diff, 100*goldenTol)
			}
		}
	}
	t.Logf("worst relative difference over %d cases: %.2e", len(g.Cases), worst)
}

// stubDenoiser is the goldens' closed-form network: ε(x, t) = 0.5 x +
// 0.2 tanh(x) + c (1 + t/T) per pixel, and a learned-variance output
// v(x, t) = 0.9 tanh(x) − 0.1 (diffusion.VarianceDenoiser).
type stubDenoiser struct {
	c []float64 // one image, C·H·W values
	T int
}

func (s *stubDenoiser) Eps(xt *tensor.Dense, t []int) (*tensor.Dense, error) {
	x := tensors.F32(xt)
	d := len(s.c)
	if len(x)%d != 0 || len(x)/d != len(t) {
		return nil, fmt.Errorf("stub: %d values for %d timesteps of %d", len(x), len(t), d)
	}
	out := tensors.New(xt.Shape()...)
	o := tensors.F32(out)
	for j, v := range x {
		xv := float64(v)
		o[j] = float32(0.5*xv + 0.2*math.Tanh(xv) + s.c[j%d]*(1+float64(t[j/d])/float64(s.T)))
	}
	return out, nil
}

func (s *stubDenoiser) EpsVJP(xt *tensor.Dense, t []int, v *tensor.Dense) (*tensor.Dense, *tensor.Dense, error) {
	eps, err := s.Eps(xt, t)
	if err != nil {
		return nil, nil, err
	}
	x, vv := tensors.F32(xt), tensors.F32(v)
	out := tensors.New(xt.Shape()...)
	o := tensors.F32(out)
	for j, xv := range x {
		th := math.Tanh(float64(xv))
		o[j] = float32(float64(vv[j]) * (0.5 + 0.2*(1-th*th)))
	}
	return eps, out, nil
}

func (s *stubDenoiser) EpsVar(xt *tensor.Dense, t []int) (*tensor.Dense, *tensor.Dense, error) {
	eps, err := s.Eps(xt, t)
	if err != nil {
		return nil, nil, err
	}
	out := tensors.New(xt.Shape()...)
	o := tensors.F32(out)
	for j, xv := range tensors.F32(xt) {
		o[j] = float32(0.9*math.Tanh(float64(xv)) - 0.1)
	}
	return eps, out, nil
}

// matOp is an op.SVD given by explicit matrices: A (M×D), and its SVD
// A = U diag(s) V[:, :M]ᵀ; y batches are N×1×1×M.
type matOp struct {
	in   [3]int
	m, d int
	a    []float64
	u    []float64
	s    []float64
	v    []float64
}

func newMatOp(g goldenOperator, in [3]int) *matOp {
	return &matOp{in: in, m: g.M, d: in[0] * in[1] * in[2], a: g.A, u: g.U, s: g.S, v: g.V}
}

func (o *matOp) Name() string    { return "golden-matrix" }
func (o *matOp) InShape() []int  { return o.in[:] }
func (o *matOp) OutShape() []int { return []int{1, 1, o.m} }
func (o *matOp) Singulars() []float32 {
	r := make([]float32, len(o.s))
	for i, v := range o.s {
		r[i] = float32(v)
	}
	return r
}

// mul applies the rows×cols matrix mat (or its transpose) to each of the
// batch's vectors in x and returns the batch with the given per-item shape.
func (o *matOp) mul(mat []float64, rows, cols int, transpose bool, x *tensor.Dense, shape ...int) (*tensor.Dense, error) {
	src := tensors.F32(x)
	inLen, outLen := cols, rows
	if transpose {
		inLen, outLen = rows, cols
	}
	if len(src)%inLen != 0 {
		return nil, fmt.Errorf("matOp: %d values, want a multiple of %d", len(src), inLen)
	}
	n := len(src) / inLen
	out := tensors.New(append([]int{n}, shape...)...)
	dst := tensors.F32(out)
	for k := 0; k < n; k++ {
		for r := 0; r < outLen; r++ {
			acc := 0.0
			for c := 0; c < inLen; c++ {
				var m float64
				if transpose {
					m = mat[c*cols+r]
				} else {
					m = mat[r*cols+c]
				}
				acc += m * float64(src[k*inLen+c])
			}
			dst[k*outLen+r] = float32(acc)
		}
	}
	return out, nil
}

func (o *matOp) Forward(x *tensor.Dense) (*tensor.Dense, error) {
	return o.mul(o.a, o.m, o.d, false, x, 1, 1, o.m)
}
func (o *matOp) Adjoint(y *tensor.Dense) (*tensor.Dense, error) {
	return o.mul(o.a, o.m, o.d, true, y, o.in[:]...)
}
func (o *matOp) VJP(_, g *tensor.Dense) (*tensor.Dense, error) { return o.Adjoint(g) }
func (o *matOp) V(z *tensor.Dense) (*tensor.Dense, error) {
	return o.mul(o.v, o.d, o.d, false, z, o.in[:]...)
}
func (o *matOp) Vt(x *tensor.Dense) (*tensor.Dense, error) {
	return o.mul(o.v, o.d, o.d, true, x, o.d)
}
func (o *matOp) U(z *tensor.Dense) (*tensor.Dense, error) {
	return o.mul(o.u, o.m, o.m, false, z, 1, 1, o.m)
}
func (o *matOp) Ut(y *tensor.Dense) (*tensor.Dense, error) {
	return o.mul(o.u, o.m, o.m, true, y, o.m)
}

// Pinv returns V diag(1/s) Uᵀ y, in float64 throughout.
func (o *matOp) Pinv(y *tensor.Dense) (*tensor.Dense, error) {
	src := tensors.F32(y)
	n := len(src) / o.m
	out := tensors.New(append([]int{n}, o.in[:]...)...)
	dst := tensors.F32(out)
	z := make([]float64, o.m)
	for k := 0; k < n; k++ {
		for j := 0; j < o.m; j++ {
			acc := 0.0
			for r := 0; r < o.m; r++ {
				acc += o.u[r*o.m+j] * float64(src[k*o.m+r])
			}
			if o.s[j] > 0 {
				z[j] = acc / o.s[j]
			} else {
				z[j] = 0
			}
		}
		for r := 0; r < o.d; r++ {
			acc := 0.0
			for j := 0; j < o.m; j++ {
				acc += o.v[r*o.d+j] * z[j]
			}
			dst[k*o.d+r] = float32(acc)
		}
	}
	return out, nil
}

var _ op.SVD = (*matOp)(nil)
var _ diffusion.VarianceDenoiser = (*stubDenoiser)(nil)

// plainDenoiser hides the stub's EpsVar: a network without a variance
// output.
type plainDenoiser struct{ s *stubDenoiser }

func (p plainDenoiser) Eps(xt *tensor.Dense, t []int) (*tensor.Dense, error) { return p.s.Eps(xt, t) }
func (p plainDenoiser) EpsVJP(xt *tensor.Dense, t []int, v *tensor.Dense) (*tensor.Dense, *tensor.Dense, error) {
	return p.s.EpsVJP(xt, t, v)
}

// TestAncestralVariance: the ancestral step's noise scale per element is
// the closed form of each variance (fixed_small: exp(½ log β̃_i) with the
// clipped log; fixed_large: √β_i; learned_range: exp(½((v+1)/2 log β_i +
// (1−v)/2 log β̃_i)) with v the stub's variance output at x_t), on a
// respaced schedule; no noise at index 0; learned_range with a denoiser
// that has no variance output, and an unknown variance, are errors naming
// the problem.
func TestAncestralVariance(t *testing.T) {
	full, err := diffusion.NewSchedule(diffusion.Linear, 1000, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	sched, err := respaced("dps", full, 10)
	if err != nil {
		t.Fatal(err)
	}
	stub := &stubDenoiser{c: make([]float64, dim), T: 1000}
	A := boxInpaint(t)
	y := tensors.New(1, imgShape[0], imgShape[1], imgShape[2])
	clean, err := op.NewNoise("clean", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float64, dim)
	x0 := make([]float64, dim)
	for j := range x {
		x[j] = 1.5 * math.Sin(float64(j)+0.3)
		x0[j] = 0.7 * math.Cos(float64(j))
	}
	const i = 6
	b := sched.Beta(i)
	small := sched.PosteriorLogVarianceClipped(i)
	cases := []struct {
		variance string
		sd       func(j int) float64
	}{
		{"", func(int) float64 { return math.Exp(0.5 * small) }},
		{diffusion.VarianceFixedSmall, func(int) float64 { return math.Exp(0.5 * small) }},
		{diffusion.VarianceFixedLarge, func(int) float64 { return math.Sqrt(b) }},
		{diffusion.VarianceLearnedRange, func(j int) float64 {
			v := 0.9*math.Tanh(float64(float32(x[j]))) - 0.1
			return math.Exp(0.5 * ((v+1)/2*math.Log(b) + (1-v)/2*small))
		}},
	}
	defer func() { replayNoise = nil }()
	replayNoise = func(z []float64) {
		for j := range z {
			z[j] = 1
		}
	}
	for _, c := range cases {
		p, err := newProblem(dpsEntry(t), Prior{Den: stub, Sched: sched, Variance: c.variance}, Measurement{A: A, Noise: clean, Y: y}, diffusion.ImageRNGs(1, 0, 1), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.useVariance(); err != nil {
			t.Fatalf("%q: %v", c.variance, err)
		}
		c0, ct := sched.PosteriorMeanCoefs(i)
		for _, idx := range []int{i, 0} {
			v, err := p.varOut(sched, x, idx)
			if err != nil {
				t.Fatal(err)
			}
			if (v != nil) != (c.variance == diffusion.VarianceLearnedRange && idx > 0) {
				t.Errorf("%q at index %d: variance output %v", c.variance, idx, v != nil)
			}
			out := p.ancestral(sched, idx, x, x0, v, false)
			if idx == i {
				for j := range out {
					got := out[j] - (c0*x0[j] + ct*x[j])
					if want := c.sd(j); math.Abs(got-want) > 1e-6*want {
						t.Errorf("%q: noise scale of element %d = %.9g, want %.9g", c.variance, j, got, want)
					}
				}
				continue
			}
			a0, b0 := sched.PosteriorMeanCoefs(0)
			for j := range out {
				if out[j] != a0*x0[j]+b0*x[j] {
					t.Errorf("%q: index 0 element %d = %g, want the mean %g (no noise)", c.variance, j, out[j], a0*x0[j]+b0*x[j])
				}
			}
		}
	}
	for _, c := range []struct {
		den      diffusion.Denoiser
		variance string
		want     string
	}{
		{plainDenoiser{stub}, diffusion.VarianceLearnedRange, "learned variance output"},
		{stub, "learned-range", `variance "learned-range"`},
	} {
		p, err := newProblem(dpsEntry(t), Prior{Den: c.den, Sched: sched, Variance: c.variance}, Measurement{A: A, Noise: clean, Y: y}, diffusion.ImageRNGs(1, 0, 1), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.useVariance(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("useVariance(%q) with %T: error %v, want one containing %q", c.variance, c.den, err, c.want)
		}
	}
}

// TestPoissonScalarNeedsNonzeroY: poisson_weight scalar divides by |y_j|
// as the DPS code does, so a zero y_j is an error naming the image and
// element (not a NaN step); the default shot weights accept it.
func TestPoissonScalarNeedsNonzeroY(t *testing.T) {
	full, err := diffusion.NewSchedule(diffusion.Linear, 100, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	stub := &stubDenoiser{c: make([]float64, dim), T: 100}
	A := boxInpaint(t)
	y := tensors.New(1, imgShape[0], imgShape[1], imgShape[2])
	for j := range tensors.F32(y) {
		tensors.F32(y)[j] = 0.25
	}
	tensors.F32(y)[3] = 0
	noise, err := op.NewNoise("poisson", 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		weight string
		want   string // "" for no error
	}{
		{PoissonScalar, "image 0 is 0 at element 3"},
		{PoissonShot, ""},
	} {
		o, err := DecodeOptions("dps", map[string]any{"poisson_weight": c.weight, "steps": 2})
		if err != nil {
			t.Fatal(err)
		}
		_, err = Solve("dps", Prior{Den: stub, Sched: full}, Measurement{A: A, Noise: noise, Y: y}, o, diffusion.ImageRNGs(1, 0, 1), nil)
		if c.want == "" && err != nil {
			t.Errorf("%s: %v", c.weight, err)
		}
		if c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: error %v, want one containing %q", c.weight, err, c.want)
		}
	}
	// Set for Gaussian noise it would weigh nothing: an error, not a no-op.
	gauss, err := op.NewNoise("gaussian", 0.05, 0)
	if err != nil {
		t.Fatal(err)
	}
	o, err := DecodeOptions("dps", map[string]any{"poisson_weight": PoissonScalar, "steps": 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Solve("dps", Prior{Den: stub, Sched: full}, Measurement{A: A, Noise: gauss, Y: y}, o, diffusion.ImageRNGs(1, 0, 1), nil); err == nil || !strings.Contains(err.Error(), "weights Poisson noise only") {
		t.Errorf("poisson_weight with Gaussian noise: %v, want an error", err)
	}
}

func dpsEntry(t *testing.T) entry {
	t.Helper()
	e, err := lookupEntry("dps")
	if err != nil {
		t.Fatal(err)
	}
	return e
}
