package main

import (
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/checkpoint"
	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/eval"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/model"
	"github.com/diffinv/diffinv/sample"
)

// tinyCheckpoint writes an untrained tiny UNet with a run config whose
// diffusion has T = 20 steps.
func tinyCheckpoint(t *testing.T) string {
	t.Helper()
	cfg := config.Default()
	cfg.Model = config.Model{ImageSize: 8, InChannels: 1, NumChannels: 8, ChannelMult: []int{1, 2}, NumResBlocks: 1,
		AttentionResolutions: []int{4}, NumHeads: 1, NumHeadChannels: -1, NumGroups: 4, UseScaleShiftNorm: true, ConvResample: true}
	cfg.Diffusion.Steps = 20
	cfg.Sample.Steps = 20
	cfg.Data.Dataset = "folder" // 8-px images: not MNIST-sized
	net, err := model.New(cfg.Model, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "tiny.safetensors")
	if err := net.Save(p, map[string]string{RunConfigKey: string(doc)}); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSampleCommand(t *testing.T) {
	ckpt := tinyCheckpoint(t)
	dir := t.TempDir()
	for _, s := range []struct {
		sampler string
		extra   []string
	}{
		{"ddpm", nil},
		{"ddim", []string{"--set", "sample.eta=0.5"}},
		{"vp-em", nil},
		{"pc", nil},
		{"ald", []string{"--set", "sample.langevin_steps=2"}},
		{"ode", []string{"--set", "sample.ode_method=rk4"}},
	} {
		t.Run(s.sampler, func(t *testing.T) {
			out := filepath.Join(dir, s.sampler+".png")
			args := append([]string{"sample", "--checkpoint", ckpt, "--sampler", s.sampler, "--steps", "5", "--n", "3", "--seed", "7", "--out", out}, s.extra...)
			if _, err := run(t, args...); err != nil {
				t.Fatal(err)
			}
			img, err := data.LoadPNG(out)
			if err != nil {
				t.Fatal(err)
			}
			// 3 samples: 2 per row, 2 rows of 8 px with 2 px padding.
			if sh := img.Shape(); sh[2] != 2+2*(8+2) || sh[3] != 2+2*(8+2) {
				t.Errorf("grid shape %v", sh)
			}
			f, err := checkpoint.Load(strings.TrimSuffix(out, ".png") + ".safetensors")
			if err != nil {
				t.Fatal(err)
			}
			if sh := f.Tensors["samples"].Shape(); len(sh) != 4 || sh[0] != 3 || sh[1] != 1 || sh[2] != 8 {
				t.Errorf("samples shape %v", sh)
			}
		})
	}
	// Same seed, deterministic sampler: the same bits.
	a, b := filepath.Join(dir, "a.png"), filepath.Join(dir, "b.png")
	for _, p := range []string{a, b} {
		if _, err := run(t, "sample", "--checkpoint", ckpt, "--sampler", "ddim", "--steps", "4", "--n", "2", "--seed", "3", "--out", p); err != nil {
			t.Fatal(err)
		}
	}
	ra, _ := os.ReadFile(strings.TrimSuffix(a, ".png") + ".safetensors")
	rb, _ := os.ReadFile(strings.TrimSuffix(b, ".png") + ".safetensors")
	if len(ra) == 0 || string(ra[len(ra)-64:]) != string(rb[len(rb)-64:]) {
		t.Error("ddim with the same seed gave different samples")
	}
	// sample.spacing=quad walks other timesteps (T = 20, 4 steps: 0, 1, 7,
	// 16 against 0, 5, 10, 15): other samples from the same seed.
	q := filepath.Join(dir, "q.png")
	if _, err := run(t, "sample", "--checkpoint", ckpt, "--sampler", "ddim", "--steps", "4", "--n", "2", "--seed", "3", "--out", q, "--set", "sample.spacing=quad"); err != nil {
		t.Fatal(err)
	}
	rq, _ := os.ReadFile(strings.TrimSuffix(q, ".png") + ".safetensors")
	if len(rq) == 0 || string(ra[len(ra)-64:]) == string(rq[len(rq)-64:]) {
		t.Error("ddim with sample.spacing=quad gave the uniform spacing's samples")
	}
}

func TestSampleCommandErrors(t *testing.T) {
	ckpt := tinyCheckpoint(t)
	out := filepath.Join(t.TempDir(), "x.png")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"sample", "--out", out}, "--checkpoint is required"},
		{[]string{"sample", "--checkpoint", "missing.safetensors", "--out", out}, "missing.safetensors"},
		{[]string{"sample", "--checkpoint", ckpt}, "--out is required"},
		// A missing output folder fails before any sampling, naming the folder.
		{[]string{"sample", "--checkpoint", ckpt, "--out", filepath.Join(filepath.Dir(out), "nofolder", "x.png")}, "nofolder"},
		{[]string{"sample", "--checkpoint", ckpt, "--sampler", "nope", "--out", out}, "nope"},
		{[]string{"sample", "--checkpoint", ckpt, "--steps", "50", "--out", out}, "sample.steps"},
		{[]string{"sample", "--checkpoint", ckpt, "--set", "model.num_channels=16", "--out", out}, "architecture"},
	}
	for _, tc := range tests {
		_, err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
	// Too many samples for the memory: refused before drawing (eval.Draw,
	// which eval samples shares: eval's own test).
	t.Setenv("DIFFINV_MEM_AVAILABLE", "100000")
	for _, args := range [][]string{
		{"sample", "--checkpoint", ckpt, "--steps", "4", "--n", "5000", "--out", out},
	} {
		if _, err := run(t, args...); err == nil || !strings.Contains(err.Error(), "5000 samples of") {
			t.Errorf("%v with 100 kB available: %v, want the samples refused", args, err)
		}
	}
}

// elementDenoiser is a cheap stand-in for a network: ε̂ = tanh(x_t)·(1 +
// t/T)/2 element by element, so each sample's output depends only on its
// own x_t.
type elementDenoiser struct{ T int }

func (e elementDenoiser) Eps(xt *tensor.Dense, t []int) (*tensor.Dense, error) {
	out := tensors.Like(xt)
	xs, o := tensors.F32(xt), tensors.F32(out)
	d := len(xs) / len(t)
	for j := range xs {
		o[j] = float32(math.Tanh(float64(xs[j])) * (1 + float64(t[j/d])/float64(e.T)) / 2)
	}
	return out, nil
}

func (e elementDenoiser) EpsVJP(xt *tensor.Dense, t []int, v *tensor.Dense) (*tensor.Dense, *tensor.Dense, error) {
	return nil, nil, fmt.Errorf("not needed")
}

// TestDrawSamplesBatchSize: sample k has its own stream (x_T, then the
// sampler's noise), so every sampler draws the same samples with
// sample.batch_size 1 as with 3 (5 samples: batches of 3 and 2), and a
// different seed gives different ones.
func TestDrawSamplesBatchSize(t *testing.T) {
	sched, err := diffusion.NewSchedule(diffusion.Linear, 50, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	den := elementDenoiser{T: 50}
	for _, sampler := range sample.Names() {
		draw := func(batch int, seed int64) []float32 {
			t.Helper()
			cfg := config.Default()
			cfg.Model.InChannels, cfg.Model.ImageSize = 1, 2
			cfg.Sample.Sampler, cfg.Sample.NumSamples, cfg.Sample.BatchSize, cfg.Sample.Seed = sampler, 5, batch, seed
			cfg.Sample.Eta = 0.5 // DDIM draws noise
			cfg.Sample.LangevinSteps = 2
			opts, err := eval.SamplerOptions(&cfg)
			if err != nil {
				t.Fatal(err)
			}
			x, err := eval.Draw(&cfg, den, sched, opts, func(int) {})
			if err != nil {
				t.Fatalf("%s: %v", sampler, err)
			}
			return tensors.F32(x)
		}
		one, three := draw(1, 7), draw(3, 7)
		if !reflect.DeepEqual(one, three) {
			t.Errorf("%s: batch_size 1 gives %v, batch_size 3 %v", sampler, one, three)
		}
		if reflect.DeepEqual(one, draw(3, 8)) {
			t.Errorf("%s: seeds 7 and 8 give the same samples", sampler)
		}
	}
}
