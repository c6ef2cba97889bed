package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/checkpoint"
)

// writeTinyMNIST writes n 28×28 images (a bright square at a per-image
// position) and labels as raw IDX files in dir, split "train".
func writeTinyMNIST(t *testing.T, dir string, n int) {
	t.Helper()
	img := []byte{0, 0, 8, 3}
	img = binary.BigEndian.AppendUint32(img, uint32(n))
	img = binary.BigEndian.AppendUint32(img, 28)
	img = binary.BigEndian.AppendUint32(img, 28)
	lab := []byte{0, 0, 8, 1}
	lab = binary.BigEndian.AppendUint32(lab, uint32(n))
	for i := 0; i < n; i++ {
		px := make([]byte, 28*28)
		r, c := 4+i%16, 4+(i*7)%16
		for y := r; y < r+8; y++ {
			for x := c; x < c+8; x++ {
				px[y*28+x] = 255
			}
		}
		img = append(img, px...)
		lab = append(lab, byte(i%10))
	}
	for name, b := range map[string][]byte{"train-images-idx3-ubyte": img, "train-labels-idx1-ubyte": lab} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTrainThenSampleCommands(t *testing.T) {
	dataDir, out := t.TempDir(), filepath.Join(t.TempDir(), "run")
	writeTinyMNIST(t, dataDir, 16)
	base := []string{"train", "--config", "../../configs/mnist.yaml", "--out", out,
		"--set", "data.dir=" + dataDir, "--set", "model.num_channels=8", "--set", "model.num_groups=4",
		"--set", "model.num_res_blocks=1", "--set", "model.attention_resolutions=[7]",
		"--set", "train.batch_size=4", "--set", "train.checkpoint_every=2", "--set", "train.log_every=1",
		"--set", "train.sample_every=4", "--grid-n", "2", "--grid-steps", "2"}
	// Train 2 steps, then resume to 4: the CLI path of an interrupted run.
	if _, err := run(t, append(base, "--set", "train.steps=2")...); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, append(base, "--set", "train.steps=4")...); err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Fatalf("second run without --resume: %v, want an error naming --resume", err)
	}
	if _, err := run(t, append(base, "--set", "train.steps=4", "--resume")...); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"model.safetensors", "log.jsonl", "loss.png", "checkpoints/step-00000004.safetensors", "samples/step-00000004.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing output: %v", err)
		}
	}
	// --stop-at: a 4-step schedule stopped after step 3 says so and leaves
	// a step-3 checkpoint (the checkpoint interval is 2).
	split := filepath.Join(t.TempDir(), "split")
	stopped, err := run(t, append(base, "--set", "train.steps=4", "--out", split, "--stop-at", "3")...)
	if err != nil || !strings.Contains(stopped, "stopped at step 3 of 4") || !strings.Contains(stopped, "--resume") {
		t.Errorf("--stop-at 3: output %q, error %v; want it to say it stopped at step 3 of 4 and how to resume", stopped, err)
	}
	if _, err := os.Stat(filepath.Join(split, "checkpoints/step-00000003.safetensors")); err != nil {
		t.Errorf("--stop-at 3: %v", err)
	}
	// export writes a training checkpoint's EMA weights as the model file
	// the run wrote at that step; a model file is not a training checkpoint.
	exported := filepath.Join(t.TempDir(), "m.safetensors")
	if _, err := run(t, "export", "--checkpoint", filepath.Join(out, "checkpoints/step-00000004.safetensors"), "--out", exported); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(filepath.Join(out, "model.safetensors"))
	if got, err := os.ReadFile(exported); err != nil || !bytes.Equal(got, want) || len(want) == 0 {
		t.Errorf("exported model: %d bytes (%v), want the run's %d-byte model file byte for byte", len(got), err, len(want))
	}
	if _, err := run(t, "export", "--checkpoint", exported, "--out", filepath.Join(t.TempDir(), "x.safetensors")); err == nil || !strings.Contains(err.Error(), exported) || !strings.Contains(err.Error(), "format") {
		t.Errorf("export of a model file: error %v, want one naming the file and its format", err)
	}
	if _, err := run(t, "export", "--out", exported); err == nil || !strings.Contains(err.Error(), "--checkpoint") {
		t.Errorf("export without --checkpoint: error %v", err)
	}
	png := filepath.Join(t.TempDir(), "s.png")
	if _, err := run(t, "sample", "--checkpoint", filepath.Join(out, "model.safetensors"), "--sampler", "ddim", "--steps", "3", "--n", "2", "--out", png); err != nil {
		t.Fatal(err)
	}
	f, err := checkpoint.Load(strings.TrimSuffix(png, ".png") + ".safetensors")
	if err != nil {
		t.Fatal(err)
	}
	if sh := f.Tensors["samples"].Shape(); sh[0] != 2 || sh[2] != 28 {
		t.Errorf("samples shape %v", sh)
	}
	// A training checkpoint samples with its EMA weights: the same samples
	// as the model file written beside it at the same step.
	png2 := filepath.Join(t.TempDir(), "c.png")
	if _, err := run(t, "sample", "--checkpoint", filepath.Join(out, "checkpoints/step-00000004.safetensors"), "--sampler", "ddim", "--steps", "3", "--n", "2", "--out", png2); err != nil {
		t.Fatal(err)
	}
	g, err := checkpoint.Load(strings.TrimSuffix(png2, ".png") + ".safetensors")
	if err != nil {
		t.Fatal(err)
	}
	a, b := f.Tensors["samples"].Data().([]float32), g.Tensors["samples"].Data().([]float32)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("sample %d from the training checkpoint %v, from the model file %v", i, b[i], a[i])
		}
	}
}

func TestTrainCommandErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "--set", "data.dir=/nonexistent", "--out", t.TempDir()}, "data.dir"},
		{[]string{"train", "--set", "train.lr=2"}, "train.lr"},
		{[]string{"train", "--config", "missing.yaml"}, "missing.yaml"},
	} {
		if _, err := run(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error naming %q", tc.args, err, tc.want)
		}
	}
}

// TestTrainCelebAShort trains configs/celeba64.yaml (shrunk) for two steps on
// the real CelebA train split when it is present.
func TestTrainCelebAShort(t *testing.T) {
	dir := "../../../shared/data/celeba"
	if _, err := os.Stat(filepath.Join(dir, "list_eval_partition.txt")); err != nil {
		t.Skipf("CelebA crops not found at %s: %v", dir, err)
	}
	out := filepath.Join(t.TempDir(), "celeba")
	_, err := run(t, "train", "--config", "../../configs/celeba64.yaml", "--out", out,
		"--set", "data.dir="+dir, "--set", "data.limit=8",
		"--set", "model.num_channels=32", "--set", "model.channel_mult=[1,2]", "--set", "model.num_res_blocks=1",
		"--set", "model.attention_resolutions=[32]", "--set", "model.num_heads=1",
		"--set", "train.batch_size=4", "--set", "train.steps=2", "--set", "train.checkpoint_every=2",
		"--set", "train.sample_every=0")
	if err != nil {
		t.Fatal(err)
	}
	m, err := checkpoint.Load(filepath.Join(out, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if sh := m.Tensors["input_blocks.0.0.weight"].Shape(); sh[1] != 3 {
		t.Errorf("first conv %v, want 3 input channels", sh)
	}
}

// A learned-variance model trains with the hybrid loss and samples with
// DDPM's learned-range variance.
func TestTrainLearnSigmaThenSample(t *testing.T) {
	dataDir, out := t.TempDir(), filepath.Join(t.TempDir(), "run")
	writeTinyMNIST(t, dataDir, 8)
	if _, err := run(t, "train", "--config", "../../configs/mnist.yaml", "--out", out,
		"--set", "data.dir="+dataDir, "--set", "model.num_channels=8", "--set", "model.num_groups=4",
		"--set", "model.learn_sigma=true", "--set", "diffusion.variance=learned_range",
		"--set", "train.batch_size=4", "--set", "train.steps=2", "--set", "train.checkpoint_every=2",
		"--set", "train.sample_every=0"); err != nil {
		t.Fatal(err)
	}
	png := filepath.Join(t.TempDir(), "s.png")
	if _, err := run(t, "sample", "--checkpoint", filepath.Join(out, "model.safetensors"), "--sampler", "ddpm", "--steps", "4", "--n", "2", "--out", png); err != nil {
		t.Fatal(err)
	}
}
