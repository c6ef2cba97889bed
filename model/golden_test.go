package model

import (
	"math"
	"math/rand"
	"path/filepath"
	"sort"
	"testing"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/checkpoint"
	"github.com/diffinv/diffinv/internal/tensors"
)

// goldenNames are the configs bench/pytorch/unet_goldens.py writes.
var goldenNames = []string{"tiny_a", "tiny_b", "tiny_c"}

// golden is one PyTorch golden: the model and its reference tensors.
type golden struct {
	u *UNet
	g map[string]*tensor.Dense
	t []int
}

func loadGolden(t *testing.T, name string) golden {
	t.Helper()
	u, _, err := Load(filepath.Join("testdata", name+".weights.safetensors"))
	if err != nil {
		t.Fatalf("loading %s weights: %v", name, err)
	}
	f, err := checkpoint.Load(filepath.Join("testdata", name+".golden.safetensors"))
	if err != nil {
		t.Fatalf("loading %s goldens: %v", name, err)
	}
	tv := tensors.F32(f.Tensors["t"])
	ts := make([]int, len(tv))
	for i, v := range tv {
		ts[i] = int(v)
	}
	return golden{u: u, g: f.Tensors, t: ts}
}

// relErr is ‖a − b‖∞ / max(‖b‖∞, tiny).
func relErr(a, b []float32) float64 {
	var num, den float64
	for i := range a {
		num = math.Max(num, math.Abs(float64(a[i])-float64(b[i])))
		den = math.Max(den, math.Abs(float64(b[i])))
	}
	return num / math.Max(den, 1e-30)
}

// TestParamNamesMatchPyTorch checks that the UNet built from each golden's
// config has exactly the PyTorch state dict's names, shapes and order.
func TestParamNamesMatchPyTorch(t *testing.T) {
	for _, name := range goldenNames {
		t.Run(name, func(t *testing.T) {
			f, err := checkpoint.Load(filepath.Join("testdata", name+".weights.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := DecodeConfig(f.Metadata[ConfigKey])
			if err != nil {
				t.Fatal(err)
			}
			a, err := newArch(cfg)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string][]int{}
			for _, p := range a.params {
				want[p.Name] = p.Shape
			}
			if err := checkpoint.Check(f.Tensors, want); err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, p := range a.params {
				n += p.Size()
			}
			var m int
			for _, tt := range f.Tensors {
				m += tt.Shape().TotalSize()
			}
			if n != m {
				t.Fatalf("%d parameters, PyTorch has %d", n, m)
			}
		})
	}
}

func TestForwardMatchesPyTorch(t *testing.T) {
	for _, name := range goldenNames {
		t.Run(name, func(t *testing.T) {
			g := loadGolden(t, name)
			out, err := g.u.Forward(g.g["x"], g.t)
			if err != nil {
				t.Fatal(err)
			}
			if !out.Shape().Eq(g.g["out"].Shape()) {
				t.Fatalf("output shape %v, want %v", out.Shape(), g.g["out"].Shape())
			}
			t.Logf("forward rel err %.3g", relErr(tensors.F32(out), tensors.F32(g.g["out"])))
			if e := relErr(tensors.F32(out), tensors.F32(g.g["out"])); e > 1e-4 {
				t.Errorf("forward output relative error %.3g, want ≤ 1e-4", e)
			}
			eps, err := g.u.Eps(g.g["x"], g.t)
			if err != nil {
				t.Fatal(err)
			}
			if e := relErr(tensors.F32(eps), tensors.F32(g.g["eps"])); e > 1e-4 {
				t.Errorf("Eps relative error %.3g, want ≤ 1e-4", e)
			}
			if g.u.Config().LearnSigma {
				e2, v, err := g.u.EpsVar(g.g["x"], g.t)
				if err != nil {
					t.Fatal(err)
				}
				if e := relErr(tensors.F32(e2), tensors.F32(g.g["eps"])); e > 1e-4 {
					t.Errorf("EpsVar ε relative error %.3g", e)
				}
				full := tensors.F32(g.g["out"])
				c := g.u.Config().InChannels
				hw := g.u.Config().ImageSize * g.u.Config().ImageSize
				vd := tensors.F32(v)
				for i := range vd {
					b, r := i/(c*hw), i%(c*hw)
					if d := math.Abs(float64(vd[i] - full[(b*2*c+c)*hw+r])); d > 1e-4*math.Max(1, math.Abs(float64(vd[i]))) {
						t.Fatalf("variance channel value %d: %v, want %v", i, vd[i], full[(b*2*c+c)*hw+r])
					}
				}
			} else if _, _, err := g.u.EpsVar(g.g["x"], g.t); err == nil {
				t.Error("EpsVar without learn_sigma returned no error")
			}
		})
	}
}

func TestEpsVJPMatchesPyTorch(t *testing.T) {
	for _, name := range goldenNames {
		t.Run(name, func(t *testing.T) {
			g := loadGolden(t, name)
			eps, vjp, err := g.u.EpsVJP(g.g["x"], g.t, g.g["v"])
			if err != nil {
				t.Fatal(err)
			}
			if e := relErr(tensors.F32(eps), tensors.F32(g.g["eps"])); e > 1e-4 {
				t.Errorf("EpsVJP ε relative error %.3g, want ≤ 1e-4", e)
			}
			t.Logf("vjp rel err %.3g", relErr(tensors.F32(vjp), tensors.F32(g.g["vjp"])))
			if e := relErr(tensors.F32(vjp), tensors.F32(g.g["vjp"])); e > 1e-4 {
				t.Errorf("vᵀ∂ε/∂x relative error %.3g, want ≤ 1e-4", e)
			}
		})
	}
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestTrainGradsMatchPyTorch(t *testing.T) {
	for _, name := range goldenNames {
		t.Run(name, func(t *testing.T) {
			g := loadGolden(t, name)
			tg, err := g.u.NewTrainGraph(len(g.t), rand.New(rand.NewSource(1)))
			if err != nil {
				t.Fatal(err)
			}
			tg.SetTraining(false) // the goldens are in eval mode
			loss, err := tg.Step(g.g["x"], g.t, g.g["target"])
			if err != nil {
				t.Fatal(err)
			}
			want := float64(tensors.F32(g.g["loss"])[0])
			if math.Abs(loss-want) > 1e-5*want {
				t.Errorf("loss %v, want %v", loss, want)
			}
			grads := tg.Grads()
			checked, worst := 0, 0.0
			for _, k := range sortedKeys(g.g) {
				if len(k) < 5 || k[:5] != "grad." {
					continue
				}
				pname := k[5:]
				got, ok := grads[pname]
				if !ok {
					t.Fatalf("no gradient for %s", pname)
				}
				e := relErr(tensors.F32(got), tensors.F32(g.g[k]))
				worst = math.Max(worst, e)
				if e > 1e-4 {
					t.Errorf("∂loss/∂%s relative error %.3g, want ≤ 1e-4", pname, e)
				}
				checked++
			}
			if checked < 10 {
				t.Fatalf("only %d parameter gradients in the golden", checked)
			}
			t.Logf("%d parameter gradients, worst relative error %.3g", checked, worst)
		})
	}
}
