package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTrainedDiffusionFixed: a checkpoint that records its run config
// fixes the diffusion settings its network was trained with; changing one
// by --set, DIFFINV_DIFFUSION_* or a config file is an error naming the key
// and both values, while the sampling-time variance choice stays free and a
// file without a run config (an import) takes the user's settings.
func TestTrainedDiffusionFixed(t *testing.T) {
	ckpt := tinyCheckpoint(t)
	cases := []struct {
		name string
		sets []string
		env  map[string]string
		want string // "" = accepted
	}{
		{"prediction", []string{"diffusion.prediction=x0"}, nil, "diffusion.prediction is x0, the network was trained with eps"},
		{"steps", []string{"diffusion.steps=1000"}, nil, "diffusion.steps is 1000, the network was trained with 20"},
		{"schedule", []string{"diffusion.schedule=cosine"}, nil, "diffusion.schedule is cosine, the network was trained with linear"},
		{"beta_end", []string{"diffusion.beta_end=0.03"}, nil, "diffusion.beta_end is 0.03, the network was trained with 0.02"},
		{"env", nil, map[string]string{"DIFFINV_DIFFUSION_PREDICTION": "v"}, "diffusion.prediction is v"},
		{"variance", []string{"diffusion.variance=fixed_large"}, nil, ""},
		{"same value", []string{"diffusion.prediction=eps"}, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			_, cfg, err := loadCheckpoint(ckpt, &configFlags{sets: c.sets})
			if c.want == "" {
				if err != nil {
					t.Fatalf("%v: %v, want it accepted", c.sets, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "drop the diffusion.* settings") {
				t.Fatalf("%v %v: error %v (config %+v), want one containing %q", c.sets, c.env, err, cfg, c.want)
			}
		})
	}

	// A file without a run config takes the user's diffusion settings.
	net, _, _, err := loadWeights(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	bare := t.TempDir() + "/bare.safetensors"
	if err := net.Save(bare, nil); err != nil {
		t.Fatal(err)
	}
	_, cfg, err := loadCheckpoint(bare, &configFlags{sets: []string{"diffusion.prediction=x0", "diffusion.steps=50", "data.dataset=folder"}})
	if err != nil {
		t.Fatalf("checkpoint without a run config: %v", err)
	}
	if cfg.Diffusion.Prediction != "x0" || cfg.Diffusion.Steps != 50 {
		t.Errorf("checkpoint without a run config: %v, diffusion %+v, want the --set values", err, cfg.Diffusion)
	}
}

// TestAbsurdSizesRefused: requests that cannot fit in memory are errors
// naming the key before anything is allocated (each would otherwise end in
// the runtime's fatal out-of-memory error).
func TestAbsurdSizesRefused(t *testing.T) {
	ckpt := tinyCheckpoint(t)
	dataDir := t.TempDir()
	writeTinyMNIST(t, dataDir, 8)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"sample", "--checkpoint", ckpt, "--n", "100000000000", "--out", filepath.Join(t.TempDir(), "s.png")}, "samples of 1×8×8 (sample.num_samples, --n) need"},
		{[]string{"train", "--config", "../../configs/mnist.yaml", "--out", t.TempDir(), "--set", "data.dir=" + dataDir,
			"--set", "model.num_channels=100000", "--set", "train.steps=1"}, "parameters (model.num_channels 100000"},
		{[]string{"train", "--config", "../../configs/mnist.yaml", "--out", t.TempDir(), "--set", "data.dir=" + dataDir,
			"--set", "diffusion.steps=2000000000"}, "config key diffusion.steps: value 2000000000"},
	}
	for _, c := range cases {
		if _, err := run(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error containing %q", c.args, err, c.want)
		}
	}
}

// TestCheckpointFolder: --checkpoint takes a model folder (models/mnist)
// for the model.safetensors in it.
func TestCheckpointFolder(t *testing.T) {
	out := filepath.Join(t.TempDir(), "s.png")
	if _, err := run(t, "sample", "--checkpoint", "../../models/mnist", "--n", "1", "--steps", "2", "--out", out, "--precision", "fp32"); err != nil {
		t.Fatalf("sample --checkpoint models/mnist: %v", err)
	}
	if _, err := os.Stat(out); err != nil {
		t.Error(err)
	}
}
