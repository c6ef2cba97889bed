package train

import (
	"fmt"
	"math"
	"math/rand"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/internal/tensors"
	"gorgonia.org/tensor"
)

// fakeNet is a tiny Trainable for tests: a per-pixel two-layer MLP
//
//	out(p) = W2·(drop ⊙ tanh(W1·[x(p); e(t)] + b1)) + b2
//
// with time features e(t) = (t/T, sin 2πt/T, cos 2πt/T) and inverted dropout
// on the hidden units, differentiated by hand (float64 inside).
type fakeNet struct {
	c, cout, hid, T int
	drop            float64
	p, g            map[string]*tensor.Dense
	calls           int // LossGrad calls so far
	nanLossAt       int // 1-based call that returns a NaN loss (0: never)
	nanGradAt       int // 1-based call whose gradient is infinite (0: never)
}

const fakeE = 3 // time features

var fakeNames = []string{"w1", "b1", "w2", "b2"}

func newFakeNet(c, cout, hid, T int, drop float64, rng *rand.Rand) *fakeNet {
	f := &fakeNet{c: c, cout: cout, hid: hid, T: T, drop: drop, p: map[string]*tensor.Dense{}, g: map[string]*tensor.Dense{}}
	shapes := map[string][]int{"w1": {hid, c + fakeE}, "b1": {hid}, "w2": {cout, hid}, "b2": {cout}}
	for _, n := range fakeNames {
		t := tensors.New(shapes[n]...)
		for i := range tensors.F32(t) {
			tensors.F32(t)[i] = float32(rng.NormFloat64() * 0.5)
		}
		f.p[n] = t
		f.g[n] = tensors.New(shapes[n]...)
	}
	return f
}

// fakeFactory returns a NewModel for Run that builds fakeNets and remembers them.
func fakeFactory(hid int, made *[]*fakeNet, tweak func(*fakeNet)) func(*config.Config, *rand.Rand) (Network, error) {
	return func(cfg *config.Config, rng *rand.Rand) (Network, error) {
		cout := cfg.Model.InChannels
		if cfg.Model.LearnSigma {
			cout *= 2
		}
		f := newFakeNet(cfg.Model.InChannels, cout, hid, cfg.Diffusion.Steps, cfg.Model.Dropout, rng)
		if tweak != nil {
			tweak(f)
		}
		if made != nil {
			*made = append(*made, f)
		}
		return f, nil
	}
}

func (f *fakeNet) ParamNames() []string            { return append([]string(nil), fakeNames...) }
func (f *fakeNet) Param(name string) *tensor.Dense { return f.p[name] }
func (f *fakeNet) Grad(name string) *tensor.Dense  { return f.g[name] }

func (f *fakeNet) features(x []float32, base, hw int, t int) []float64 {
	in := make([]float64, f.c+fakeE)
	for ch := 0; ch < f.c; ch++ {
		in[ch] = float64(x[base+ch*hw])
	}
	u := float64(t) / float64(f.T)
	in[f.c], in[f.c+1], in[f.c+2] = u, math.Sin(2*math.Pi*u), math.Cos(2*math.Pi*u)
	return in
}

// masks draws the dropout multipliers for n×hid×hw hidden units.
func (f *fakeNet) masks(seed int64, size int) []float64 {
	m := make([]float64, size)
	rng := rand.New(rand.NewSource(seed))
	for i := range m {
		if f.drop == 0 || rng.Float64() >= f.drop {
			m[i] = 1 / (1 - f.drop)
		}
	}
	return m
}

func (f *fakeNet) LossGrad(xt *tensor.Dense, t []int, dropoutSeed int64, loss LossFunc) (float64, error) {
	f.calls++
	n, c, h, w, err := tensors.NCHW("xt", xt)
	if err != nil {
		return 0, err
	}
	if c != f.c || len(t) != n {
		return 0, fmt.Errorf("fake: input %v with %d timesteps", xt.Shape(), len(t))
	}
	hw := h * w
	x := tensors.F32(xt)
	w1, b1, w2, b2 := tensors.F32(f.p["w1"]), tensors.F32(f.p["b1"]), tensors.F32(f.p["w2"]), tensors.F32(f.p["b2"])
	mask := f.masks(dropoutSeed, n*f.hid*hw)
	act := make([]float64, n*f.hid*hw) // tanh outputs
	out := tensors.New(n, f.cout, h, w)
	o := tensors.F32(out)
	nin := f.c + fakeE
	for k := 0; k < n; k++ {
		for p := 0; p < hw; p++ {
			in := f.features(x, k*c*hw+p, hw, t[k])
			for j := 0; j < f.hid; j++ {
				z := float64(b1[j])
				for i := 0; i < nin; i++ {
					z += float64(w1[j*nin+i]) * in[i]
				}
				act[(k*f.hid+j)*hw+p] = math.Tanh(z)
			}
			for q := 0; q < f.cout; q++ {
				y := float64(b2[q])
				for j := 0; j < f.hid; j++ {
					y += float64(w2[q*f.hid+j]) * act[(k*f.hid+j)*hw+p] * mask[(k*f.hid+j)*hw+p]
				}
				o[(k*f.cout+q)*hw+p] = float32(y)
			}
		}
	}
	l, dout, err := loss(out)
	if err != nil {
		return 0, err
	}
	if f.calls == f.nanLossAt {
		l = math.NaN()
	}
	d := tensors.F32(dout)
	gw1 := make([]float64, f.hid*nin)
	gb1 := make([]float64, f.hid)
	gw2 := make([]float64, f.cout*f.hid)
	gb2 := make([]float64, f.cout)
	for k := 0; k < n; k++ {
		for p := 0; p < hw; p++ {
			in := f.features(x, k*c*hw+p, hw, t[k])
			for j := 0; j < f.hid; j++ {
				a := act[(k*f.hid+j)*hw+p]
				m := mask[(k*f.hid+j)*hw+p]
				var da float64
				for q := 0; q < f.cout; q++ {
					dy := float64(d[(k*f.cout+q)*hw+p])
					gw2[q*f.hid+j] += dy * a * m
					da += dy * float64(w2[q*f.hid+j]) * m
				}
				dz := da * (1 - a*a)
				gb1[j] += dz
				for i := 0; i < nin; i++ {
					gw1[j*nin+i] += dz * in[i]
				}
			}
			for q := 0; q < f.cout; q++ {
				gb2[q] += float64(d[(k*f.cout+q)*hw+p])
			}
		}
	}
	for name, g := range map[string][]float64{"w1": gw1, "b1": gb1, "w2": gw2, "b2": gb2} {
		dst := tensors.F32(f.g[name])
		for i := range g {
			dst[i] = float32(g[i])
		}
	}
	if f.calls == f.nanGradAt {
		tensors.F32(f.g["w1"])[0] = float32(math.Inf(1))
	}
	return l, nil
}
