package main

import (
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/checkpoint"
	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/model"
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
}
