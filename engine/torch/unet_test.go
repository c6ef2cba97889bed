//go:build torch

package torch

import (
	"fmt"
	"math"
	"math/rand"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/checkpoint"
	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/model"
)

// goldenDir holds PyTorch goldens written by bench/pytorch/unet_goldens.py.
const goldenDir = "../../model/testdata"

// relErr is max|got − want| / max|want|.
func relErr(got, want *tensor.Dense) (float64, error) {
	if err := tensors.SameShape("got", got, "want", want); err != nil {
		return 0, err
	}
	g, w := tensors.F32(got), tensors.F32(want)
	var diff, scale float64
	for i := range w {
		diff = math.Max(diff, math.Abs(float64(g[i])-float64(w[i])))
		scale = math.Max(scale, math.Abs(float64(w[i])))
	}
	if scale == 0 {
		return diff, nil
	}
	return diff / scale, nil
}

// loadGolden builds the engine from <name>.weights.safetensors and returns
// it with the goldens of <name>.golden.safetensors.
func loadGolden(t *testing.T, name string) (*UNet, map[string]*tensor.Dense, []int) {
	t.Helper()
	u, err := FromCheckpoint(filepath.Join(goldenDir, name+".weights.safetensors"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(u.Close)
	g, err := checkpoint.Load(filepath.Join(goldenDir, name+".golden.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	tf := tensors.F32(g.Tensors["t"])
	ts := make([]int, len(tf))
	for i, v := range tf {
		ts[i] = int(v)
	}
	return u, g.Tensors, ts
}

// TestParityPyTorch compares the engine with PyTorch's guided-diffusion
// UNet (float64 reference) on three small configs that together cover
// scale-shift and additive embeddings, conv and plain resampling, ResBlock
// up/down, attention heads by count and by width, learned sigma and RGB.
func TestParityPyTorch(t *testing.T) {
	const tol = 1e-5
	for _, name := range []string{"tiny_a", "tiny_b", "tiny_c"} {
		t.Run(name, func(t *testing.T) {
			u, g, steps := loadGolden(t, name)
			out, err := u.Forward(g["x"], steps)
			if err != nil {
				t.Fatal(err)
			}
			eps, err := u.Eps(g["x"], steps)
			if err != nil {
				t.Fatal(err)
			}
			eps2, vjp, err := u.EpsVJP(g["x"], steps, g["v"])
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				what      string
				got, want *tensor.Dense
			}{
				{"Forward", out, g["out"]},
				{"Eps", eps, g["eps"]},
				{"EpsVJP eps", eps2, g["eps"]},
				{"EpsVJP vjp", vjp, g["vjp"]},
			} {
				e, err := relErr(c.got, c.want)
				if err != nil {
					t.Fatalf("%s: %v", c.what, err)
				}
				if e > tol {
					t.Errorf("%s: relative error %.3g vs PyTorch, want ≤ %g", c.what, e, tol)
				} else {
					t.Logf("%s: relative error %.3g", c.what, e)
				}
			}
		})
	}
}

// TestParamsMatchGoldenStateDict checks the parameter list against the
// state dict PyTorch saved: same names, same shapes.
func TestParamsMatchGoldenStateDict(t *testing.T) {
	for _, name := range []string{"tiny_a", "tiny_b", "tiny_c"} {
		t.Run(name, func(t *testing.T) {
			f, err := checkpoint.Load(filepath.Join(goldenDir, name+".weights.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := ModelConfig(f.Metadata)
			if err != nil {
				t.Fatal(err)
			}
			u, err := New(cfg, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			if err := checkTensors(f.Tensors, u.Shapes()); err != nil {
				t.Fatal(err)
			}
			if len(u.Params()) != len(f.Tensors) {
				t.Fatalf("%d parameters, state dict has %d", len(u.Params()), len(f.Tensors))
			}
		})
	}
}

// TestStateRoundTrip loads a state dict and reads it back bit for bit.
func TestStateRoundTrip(t *testing.T) {
	f, err := checkpoint.Load(filepath.Join(goldenDir, "tiny_b.weights.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ModelConfig(f.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	u, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if err := u.Load(f.Tensors); err != nil {
		t.Fatal(err)
	}
	st, err := u.State()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range f.Tensors {
		got := tensors.F32(st[name])
		for i, w := range tensors.F32(want) {
			if got[i] != w {
				t.Fatalf("%s[%d] = %v after the round trip, want %v", name, i, got[i], w)
			}
		}
	}
}

// TestEpsVJPAdjoint checks the adjoint identity (vᵀ∂ε/∂x)·u = d/dh vᵀε(x+hu)
// against a central finite difference of the float32 network (step 1e-2,
// tolerance 2e-3 relative), independently of the PyTorch goldens.
func TestEpsVJPAdjoint(t *testing.T) {
	u, g, steps := loadGolden(t, "tiny_c")
	x, v := g["x"], g["v"]
	dir := tensors.Like(x)
	for i := range tensors.F32(dir) {
		dir.Data().([]float32)[i] = float32(math.Sin(float64(i)))
	}
	_, vjp, err := u.EpsVJP(x, steps, v)
	if err != nil {
		t.Fatal(err)
	}
	dot := func(a, b *tensor.Dense) float64 {
		s := 0.0
		for i, av := range tensors.F32(a) {
			s += float64(av) * float64(tensors.F32(b)[i])
		}
		return s
	}
	const h = 1e-2
	shift := func(sign float64) float64 {
		xs := tensors.Clone(x)
		d := tensors.F32(xs)
		for i, dv := range tensors.F32(dir) {
			d[i] += float32(sign * h * float64(dv))
		}
		e, err := u.Eps(xs, steps)
		if err != nil {
			t.Fatal(err)
		}
		return dot(v, e)
	}
	fd := (shift(1) - shift(-1)) / (2 * h)
	ad := dot(vjp, dir)
	if math.Abs(fd-ad) > 2e-3*math.Max(1, math.Abs(fd)) {
		t.Errorf("vjp·u = %.6g, finite difference %.6g", ad, fd)
	}
}

// TestBadInputs checks that wrong shapes, timesteps, devices and tensors
// give errors, not crashes.
func TestBadInputs(t *testing.T) {
	u, g, steps := loadGolden(t, "tiny_a")
	x := g["x"]
	n := x.Shape()[0]
	cases := []struct {
		name string
		run  func() error
	}{
		{"wrong channels", func() error {
			_, err := u.Eps(tensors.New(n, 3, 16, 16), steps)
			return err
		}},
		{"wrong size", func() error {
			_, err := u.Eps(tensors.New(n, 1, 8, 8), steps)
			return err
		}},
		{"timestep count", func() error {
			_, err := u.Eps(x, steps[:1])
			return err
		}},
		{"negative timestep", func() error {
			_, err := u.Eps(x, []int{-1, 3})
			return err
		}},
		{"v shape", func() error {
			_, _, err := u.EpsVJP(x, steps, tensors.New(n, 1, 16, 8))
			return err
		}},
		{"unknown device", func() error {
			_, err := New(u.Config(), Options{Device: "tpu"})
			return err
		}},
		{"bad CUDA index", func() error {
			_, err := New(u.Config(), Options{Device: "cuda:x"})
			return err
		}},
		{"CUDA device past the count", func() error {
			_, err := New(u.Config(), Options{Device: "cuda:99"})
			return err
		}},
		{"missing tensor", func() error {
			st, err := u.State()
			if err != nil {
				return fmt.Errorf("unexpected: %v", err)
			}
			delete(st, "out.2.bias")
			return u.Load(st)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.run(); err == nil {
				t.Fatal("no error")
			} else {
				t.Log(err)
			}
		})
	}
}

// TestMatchesNativeEngine checks, for several configs, that this engine's
// parameter list (names, shapes, order) and its config validation agree
// with the native engine's (package model).
func TestMatchesNativeEngine(t *testing.T) {
	base := config.Default().Model
	cases := []struct {
		name string
		edit func(m *config.Model)
	}{
		{"default", func(m *config.Model) {}},
		{"updown heads learn sigma", func(m *config.Model) {
			m.ImageSize, m.InChannels, m.ChannelMult = 32, 3, []int{1, 2, 2, 2}
			m.ResblockUpdown, m.NumHeadChannels, m.LearnSigma, m.AttentionResolutions = true, 16, true, []int{16, 8}
		}},
		{"no conv resample, additive", func(m *config.Model) {
			m.ConvResample, m.UseScaleShiftNorm, m.NumResBlocks = false, false, 3
		}},
		{"bad attention side", func(m *config.Model) { m.AttentionResolutions = []int{5} }},
		{"bad groups", func(m *config.Model) { m.NumGroups = 5 }},
		{"odd channels", func(m *config.Model) { m.NumChannels, m.NumGroups = 9, 3 }},
		{"bad size", func(m *config.Model) { m.ImageSize = 30 }},
		{"bad head channels", func(m *config.Model) { m.NumHeadChannels = 0 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := base
			m.ChannelMult = append([]int(nil), base.ChannelMult...)
			m.AttentionResolutions = append([]int(nil), base.AttentionResolutions...)
			c.edit(&m)
			ours, errOurs := ParamsFor(m)
			native, errNative := model.New(m, rand.New(rand.NewSource(1)))
			if (errOurs == nil) != (errNative == nil) {
				t.Fatalf("validation differs: torch engine %v, native %v", errOurs, errNative)
			}
			if errOurs != nil {
				return
			}
			specs := native.ParamSpecs()
			if len(specs) != len(ours) {
				t.Fatalf("%d parameters, native engine has %d", len(ours), len(specs))
			}
			for i, s := range specs {
				if s.Name != ours[i].Name || !slices.Equal(s.Shape, ours[i].Shape) {
					t.Fatalf("parameter %d: %s %v, native engine has %s %v", i, ours[i].Name, ours[i].Shape, s.Name, s.Shape)
				}
			}
		})
	}
}

// TestParityNativeEngine runs the same checkpoints on both engines: the
// output, ε and vᵀ∂ε/∂x agree within 1e-5 relative.
func TestParityNativeEngine(t *testing.T) {
	const tol = 1e-5
	for _, name := range []string{"tiny_a", "tiny_b", "tiny_c"} {
		t.Run(name, func(t *testing.T) {
			u, g, steps := loadGolden(t, name)
			nat, _, err := model.Load(filepath.Join(goldenDir, name+".weights.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			x, v := g["x"], g["v"]
			o1, err := u.Forward(x, steps)
			if err != nil {
				t.Fatal(err)
			}
			o2, err := nat.Forward(x, steps)
			if err != nil {
				t.Fatal(err)
			}
			e1, j1, err := u.EpsVJP(x, steps, v)
			if err != nil {
				t.Fatal(err)
			}
			e2, j2, err := nat.EpsVJP(x, steps, v)
			if err != nil {
				t.Fatal(err)
			}
			pairs := []struct {
				what        string
				torch, gorg *tensor.Dense
			}{{"Forward", o1, o2}, {"EpsVJP eps", e1, e2}, {"EpsVJP vjp", j1, j2}}
			if nat.Config().LearnSigma {
				te, tv, err := u.EpsVar(x, steps)
				if err != nil {
					t.Fatal(err)
				}
				ne, nv, err := nat.EpsVar(x, steps)
				if err != nil {
					t.Fatal(err)
				}
				pairs = append(pairs, struct {
					what        string
					torch, gorg *tensor.Dense
				}{"EpsVar eps", te, ne}, struct {
					what        string
					torch, gorg *tensor.Dense
				}{"EpsVar var", tv, nv})
			} else if _, _, err := u.EpsVar(x, steps); err == nil || !strings.Contains(err.Error(), "learn_sigma false") {
				t.Errorf("EpsVar without learn_sigma: %v, want an error naming learn_sigma", err)
			}
			for _, c := range pairs {
				e, err := relErr(c.torch, c.gorg)
				if err != nil {
					t.Fatalf("%s: %v", c.what, err)
				}
				if e > tol {
					t.Errorf("%s: torch vs native engine relative error %.3g, want ≤ %g", c.what, e, tol)
				}
				t.Logf("%s: torch vs native engine relative error %.3g", c.what, e)
			}
		})
	}
}

// TestThreads checks that Options.Threads sets libtorch's thread count on
// the OS thread of each call, whatever thread ran before.
func TestThreads(t *testing.T) {
	f, err := checkpoint.Load(filepath.Join(goldenDir, "tiny_c.weights.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ModelConfig(f.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2, 3} {
		u, err := New(cfg, Options{Threads: n})
		if err != nil {
			t.Fatal(err)
		}
		unlock, err := u.lock()
		if err != nil {
			t.Fatal(err)
		}
		got := numThreads()
		unlock()
		u.Close()
		if got != n {
			t.Errorf("Threads %d: at::get_num_threads() = %d on the call's OS thread", n, got)
		}
	}
	if _, err := New(cfg, Options{Threads: -1}); err == nil {
		t.Error("Threads -1: no error")
	}
}
