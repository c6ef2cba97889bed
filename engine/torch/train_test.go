//go:build torch

package torch

import (
	"math"
	"math/rand"
	"path/filepath"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/checkpoint"
	"github.com/diffinv/diffinv/model"
	"github.com/diffinv/diffinv/tensors"
	"github.com/diffinv/diffinv/train"
)

// goldenTrainer builds a Trainer on the weights of a golden, with dropout
// off (the goldens are computed in evaluation mode).
func goldenTrainer(t *testing.T, name string) (*Trainer, map[string]*tensor.Dense, []int) {
	t.Helper()
	f, err := checkpoint.Load(filepath.Join(goldenDir, name+".weights.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ModelConfig(f.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Dropout = 0
	tr, err := TrainerFrom(cfg, f.Tensors, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Close)
	g, err := checkpoint.Load(filepath.Join(goldenDir, name+".golden.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	var steps []int
	for _, v := range tensors.F32(g.Tensors["t"]) {
		steps = append(steps, int(v))
	}
	return tr, g.Tensors, steps
}

// TestMSEGradGoldens compares the loss and parameter gradients of a
// training pass with PyTorch's (float64 reference): 1e-5 relative per
// tensor, against the tensor's largest gradient.
func TestMSEGradGoldens(t *testing.T) {
	for _, name := range []string{"tiny_a", "tiny_b", "tiny_c"} {
		t.Run(name, func(t *testing.T) {
			tr, g, steps := goldenTrainer(t, name)
			loss, err := tr.MSEGrad(g["x"], steps, g["target"], 1)
			if err != nil {
				t.Fatal(err)
			}
			want := float64(tensors.F32(g["loss"])[0])
			if math.Abs(loss-want) > 1e-5*math.Abs(want) {
				t.Errorf("loss %.8g, PyTorch %.8g", loss, want)
			}
			n, worst := 0, 0.0
			for key, wantG := range g {
				pname, ok := strings.CutPrefix(key, "grad.")
				if !ok {
					continue
				}
				n++
				e, err := relErr(tr.Grad(pname), wantG)
				if err != nil {
					t.Fatalf("%s: %v", pname, err)
				}
				if e > 1e-5 {
					t.Errorf("grad %s: relative error %.3g vs PyTorch", pname, e)
				}
				worst = math.Max(worst, e)
			}
			if n == 0 {
				t.Fatal("the golden holds no gradients")
			}
			t.Logf("loss %.8g (PyTorch %.8g); %d gradients, worst relative error %.3g", loss, want, n, worst)
		})
	}
}

// TestLossGradMatchesMSEGrad checks that a Go-side MSE loss through
// LossGrad gives MSEGrad's loss and gradients, and that a second pass
// overwrites rather than accumulates.
func TestLossGradMatchesMSEGrad(t *testing.T) {
	tr, g, steps := goldenTrainer(t, "tiny_b")
	target := g["target"]
	c := tr.u.cfg.InChannels
	mse := func(out *tensor.Dense) (float64, *tensor.Dense, error) {
		s := out.Shape()
		o, tg := tensors.F32(out), tensors.F32(target)
		dout := tensors.New(s...)
		d := tensors.F32(dout)
		hw := s[2] * s[3]
		count := float64(s[0] * c * hw)
		var l float64
		for i := 0; i < s[0]; i++ {
			for k := 0; k < c*hw; k++ {
				diff := float64(o[i*s[1]*hw+k]) - float64(tg[i*c*hw+k])
				l += diff * diff
				d[i*s[1]*hw+k] = float32(2 * diff / count)
			}
		}
		return l / count, dout, nil
	}
	l1, err := tr.LossGrad(g["x"], steps, 1, mse)
	if err != nil {
		t.Fatal(err)
	}
	g1 := map[string]*tensor.Dense{}
	for _, n := range tr.ParamNames() {
		g1[n] = tensors.Clone(tr.Grad(n))
	}
	for pass := 0; pass < 2; pass++ {
		l2, err := tr.MSEGrad(g["x"], steps, target, 1)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(l1-l2) > 1e-6*math.Abs(l2) {
			t.Errorf("pass %d: LossGrad loss %.8g, MSEGrad %.8g", pass, l1, l2)
		}
		for _, n := range tr.ParamNames() {
			if e, _ := relErr(g1[n], tr.Grad(n)); e > 1e-5 {
				t.Fatalf("pass %d: grad %s: LossGrad vs MSEGrad relative error %.3g", pass, n, e)
			}
		}
	}
}

// TestDropoutSeeded checks that dropout masks depend only on the seed:
// equal seeds give equal gradients, another seed different ones, and
// evaluation (Eps) is unaffected.
func TestDropoutSeeded(t *testing.T) {
	f, err := checkpoint.Load(filepath.Join(goldenDir, "tiny_a.weights.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ModelConfig(f.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Dropout = 0.3
	tr, err := TrainerFrom(cfg, f.Tensors, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	rng := rand.New(rand.NewSource(4))
	x := tensors.Randn(rng, 2, 1, 16, 16)
	target := tensors.Randn(rng, 2, 1, 16, 16)
	steps := []int{5, 700}
	grad := func(seed int64) (float64, []float32) {
		l, err := tr.MSEGrad(x, steps, target, seed)
		if err != nil {
			t.Fatal(err)
		}
		return l, append([]float32(nil), tensors.F32(tr.Grad("input_blocks.1.0.in_layers.2.weight"))...)
	}
	la, ga := grad(11)
	lb, gb := grad(11)
	lc, _ := grad(12)
	if la != lb {
		t.Errorf("same seed: losses %v and %v", la, lb)
	}
	for i := range ga {
		if ga[i] != gb[i] {
			t.Fatalf("same seed: gradients differ at %d", i)
		}
	}
	if la == lc {
		t.Errorf("seeds 11 and 12 give the same loss %v: dropout inactive?", la)
	}
	e1, err := tr.UNet().Eps(x, steps)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := tr.UNet().Eps(x, steps)
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := relErr(e1, e2); e != 0 {
		t.Errorf("Eps after training passes is not deterministic (dropout left on?): %.3g", e)
	}
}

// TestTrainingMatchesNativeEngine trains the same network from the same
// seed on both engines (dropout 0, same batches, package train's Adam,
// learning rate 1e-3, 30 steps) and checks that they start from the same
// weights, that the losses agree within 1e-4 relative at every step, and
// that the final weights agree within 1e-4 relative to the largest weight
// of each tensor (measured 1.2e-5; Adam normalises its steps, so float32
// rounding differences in near-zero gradients can move a weight by up to lr
// per step, hence the margin).
func TestTrainingMatchesNativeEngine(t *testing.T) {
	f, err := checkpoint.Load(filepath.Join(goldenDir, "tiny_b.weights.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ModelConfig(f.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Dropout = 0
	const batch, steps, lr = 4, 30, 1e-3
	tr, err := NewTrainer(cfg, rand.New(rand.NewSource(5)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	nu, err := model.New(cfg, rand.New(rand.NewSource(5)))
	if err != nil {
		t.Fatal(err)
	}
	nat, err := train.WrapUNet(nu, batch)
	if err != nil {
		t.Fatal(err)
	}
	names := tr.ParamNames()
	sizes := make([]int, len(names))
	for i, n := range names {
		sizes[i] = len(tensors.F32(tr.Param(n)))
		if e, _ := relErr(tr.Param(n), nat.Param(n)); e != 0 {
			t.Fatalf("initial %s differs between the engines (%.3g)", n, e)
		}
	}
	opt := func() *train.Adam {
		a, err := train.NewAdam(train.DefaultAdam(), sizes)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	type engine struct {
		net interface {
			MSEGrad(*tensor.Dense, []int, *tensor.Dense, int64) (float64, error)
			Param(string) *tensor.Dense
			Grad(string) *tensor.Dense
		}
		adam *train.Adam
	}
	engines := []engine{{tr, opt()}, {nat, opt()}}
	rng := rand.New(rand.NewSource(6))
	c, s := cfg.InChannels, cfg.ImageSize
	for step := 0; step < steps; step++ {
		x := tensors.Randn(rng, batch, c, s, s)
		target := tensors.Randn(rng, batch, c, s, s)
		ts := make([]int, batch)
		for i := range ts {
			ts[i] = rng.Intn(1000)
		}
		var losses [2]float64
		for k, e := range engines {
			l, err := e.net.MSEGrad(x, ts, target, int64(step))
			if err != nil {
				t.Fatal(err)
			}
			losses[k] = l
			params := make([][]float32, len(names))
			grads := make([][]float32, len(names))
			for i, n := range names {
				params[i], grads[i] = tensors.F32(e.net.Param(n)), tensors.F32(e.net.Grad(n))
			}
			if err := e.adam.Update(lr, params, grads); err != nil {
				t.Fatal(err)
			}
		}
		if math.Abs(losses[0]-losses[1]) > 1e-4*math.Abs(losses[1]) {
			t.Fatalf("step %d: loss torch engine %.8g, native %.8g", step, losses[0], losses[1])
		}
	}
	worst := 0.0
	for _, n := range names {
		e, err := relErr(tr.Param(n), nat.Param(n))
		if err != nil {
			t.Fatal(err)
		}
		worst = math.Max(worst, e)
	}
	if worst > 1e-4 {
		t.Errorf("after %d steps the weights differ by %.3g relative, want ≤ 1e-4", steps, worst)
	}
	t.Logf("after %d Adam steps: worst weight difference %.3g relative", steps, worst)
}
