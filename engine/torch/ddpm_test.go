//go:build torch

package torch

import (
	"math/rand"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/checkpoint"
	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/model"
)

// TestImportDDPMMatchesPyTorch imports the DDPM state dicts that
// bench/pytorch/ddpm_goldens.py saved with torch.save (zip and legacy
// format, original DDPM names) with model.arch ddpm, and checks ε and
// vᵀ∂ε/∂x of both engines on the imported checkpoint against PyTorch's
// (bench/pytorch/ddpm_unet.py, float64 on the same weights).
func TestImportDDPMMatchesPyTorch(t *testing.T) {
	c, err := config.Load(config.Sources{File: "testdata/ddpm_tiny.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.Model
	g, steps := ddpmGolden(t)
	x, v := g.Tensors["x"], g.Tensors["v"]
	for _, file := range []string{"ddpm_tiny.zip.pt", "ddpm_tiny.legacy.pt"} {
		t.Run(file, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "c.safetensors")
			n, err := Import(filepath.Join("testdata", file), cfg, out, nil)
			if err != nil {
				t.Fatal(err)
			}
			params, err := ParamsFor(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if n != len(params) {
				t.Fatalf("wrote %d tensors, the model has %d", n, len(params))
			}
			u, err := FromCheckpoint(out, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			if u.Config().Arch != config.ArchDDPM {
				t.Fatalf("imported checkpoint has arch %q", u.Config().Arch)
			}
			eps, vjp, err := u.EpsVJP(x, steps, v)
			if err != nil {
				t.Fatal(err)
			}
			e1, err := relErr(eps, g.Tensors["eps"])
			if err != nil {
				t.Fatal(err)
			}
			e2, err := relErr(vjp, g.Tensors["vjp"])
			if err != nil {
				t.Fatal(err)
			}
			if e1 > 1e-5 || e2 > 1e-5 {
				t.Errorf("torch engine vs PyTorch: ε relative error %.3g, vᵀ∂ε/∂x %.3g, want ≤ 1e-5", e1, e2)
			}
			nat, _, err := model.Load(out)
			if err != nil {
				t.Fatalf("the native engine cannot load the imported checkpoint: %v", err)
			}
			eps2, err := nat.Eps(x, steps)
			if err != nil {
				t.Fatal(err)
			}
			e3, err := relErr(eps2, g.Tensors["eps"])
			if err != nil {
				t.Fatal(err)
			}
			if e3 > 1e-5 {
				t.Errorf("native engine vs PyTorch: ε relative error %.3g, want ≤ 1e-5", e3)
			}
			t.Logf("relative error vs PyTorch: torch engine ε %.3g, vjp %.3g; native engine ε %.3g", e1, e2, e3)
		})
	}
}

// TestImportDDPMErrors checks the errors of a DDPM state dict that does not
// fit: imported as adm, with a tensor missing, and a guided-diffusion state
// dict imported as ddpm.
func TestImportDDPMErrors(t *testing.T) {
	c, err := config.Load(config.Sources{File: "testdata/ddpm_tiny.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	sd, err := ReadStateDict("testdata/ddpm_tiny.zip.pt")
	if err != nil {
		t.Fatal(err)
	}
	adm := c.Model
	adm.Arch = config.ArchADM
	if err := CheckStateDict(sd, adm); err == nil || !strings.Contains(err.Error(), "model.arch: ddpm") {
		t.Errorf("DDPM state dict as adm: %v, want an error pointing to model.arch: ddpm", err)
	}
	delete(sd, "up.1.upsample.conv.weight")
	if err := CheckStateDict(sd, c.Model); err == nil || !strings.Contains(err.Error(), "up.1.upsample.conv.weight") {
		t.Errorf("missing tensor: %v, want an error naming it", err)
	}
	gd, err := ReadStateDict("testdata/tiny.zip.pt")
	if err != nil {
		t.Fatal(err)
	}
	tiny := tinyConfig(t)
	tiny.Arch = config.ArchDDPM
	tiny.LearnSigma, tiny.UseScaleShiftNorm, tiny.ResblockUpdown, tiny.NumHeads = false, false, false, 1
	if err := CheckStateDict(gd, tiny); err == nil || !strings.Contains(err.Error(), "model.arch: adm") {
		t.Errorf("guided-diffusion state dict as ddpm: %v, want an error pointing to model.arch: adm", err)
	}
}

// TestDDPMTrainerMatchesNative checks a training pass of the torch engine
// (Trainer.MSEGrad) with model.arch ddpm against the native engine's
// TrainGraph (itself checked against PyTorch's gradients in package model)
// on the golden DDPM weights: the loss against PyTorch's, every parameter
// gradient against the native one.
func TestDDPMTrainerMatchesNative(t *testing.T) {
	w, err := checkpoint.Load(filepath.Join(goldenDir, "ddpm_tiny.weights.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ModelConfig(w.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	params, err := model.FromDDPM(w.Tensors, cfg)
	if err != nil {
		t.Fatal(err)
	}
	g, steps := ddpmGolden(t)
	tr, err := TrainerFrom(cfg, params, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	loss, err := tr.MSEGrad(g.Tensors["x"], steps, g.Tensors["target"], 1)
	if err != nil {
		t.Fatal(err)
	}
	want := float64(tensors.F32(g.Tensors["loss"])[0])
	if d := loss - want; d > 1e-5*want || -d > 1e-5*want {
		t.Errorf("torch engine loss %v, PyTorch %v", loss, want)
	}
	nat, err := model.New(cfg, rand.New(rand.NewSource(1)))
	if err == nil {
		err = nat.SetParams(params)
	}
	if err != nil {
		t.Fatal(err)
	}
	tg, err := nat.NewTrainGraph(len(steps), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tg.Step(g.Tensors["x"], steps, g.Tensors["target"]); err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for _, name := range tr.ParamNames() {
		e, err := relErr(tr.Grad(name), tg.Grads()[name])
		if err != nil {
			t.Fatal(err)
		}
		worst = max(worst, e)
		if e > 1e-4 {
			t.Errorf("∂loss/∂%s: torch engine vs native relative error %.3g, want ≤ 1e-4", name, e)
		}
	}
	t.Logf("%d parameter gradients, worst relative error torch engine vs native %.3g", len(tr.ParamNames()), worst)
}

// ddpmGolden loads bench/pytorch/ddpm_goldens.py's golden file and its
// timesteps.
func ddpmGolden(t *testing.T) (*checkpoint.File, []int) {
	t.Helper()
	g, err := checkpoint.Load(filepath.Join(goldenDir, "ddpm_tiny.golden.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	var steps []int
	for _, v := range tensors.F32(g.Tensors["t"]) {
		steps = append(steps, int(v))
	}
	return g, steps
}
