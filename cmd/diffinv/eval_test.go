package main

import (
	"strings"
	"testing"
)

func TestEvalSamplesCommand(t *testing.T) {
	ckpt := mnistSizedCheckpoint(t)
	out, err := run(t, "eval", "samples", "--checkpoint", ckpt, "--classifier", "../../models/classifier/classifier.safetensors",
		"--n", "6", "--steps", "3", "--sampler", "ddim")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"6 samples vs 12 test images", "FID", "KID"} {
		if !strings.Contains(out, want) {
			t.Errorf("report misses %q:\n%s", want, out)
		}
	}
	if _, err := run(t, "eval", "samples", "--checkpoint", ckpt, "--classifier", "nope.safetensors", "--n", "2", "--steps", "2"); err == nil || !strings.Contains(err.Error(), "nope.safetensors") {
		t.Errorf("missing classifier: %v", err)
	}
}

func TestTrainClassifierCommandErrors(t *testing.T) {
	if _, err := run(t, "train-classifier", "--data", "/nonexistent", "--out", t.TempDir()+"/c.safetensors"); err == nil || !strings.Contains(err.Error(), "/nonexistent") {
		t.Errorf("missing data: %v", err)
	}
}

func TestTrainClassifierCommand(t *testing.T) {
	ckpt := mnistSizedCheckpoint(t) // also writes tiny MNIST train and test files beside it
	dir := ckpt[:strings.LastIndex(ckpt, "/")]
	out := t.TempDir() + "/c.safetensors"
	stdout, err := run(t, "train-classifier", "--data", dir, "--out", out, "--batch", "4", "--max-steps", "3", "--epochs", "1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "test accuracy") || !strings.Contains(stdout, out) {
		t.Errorf("output %q", stdout)
	}
	if _, err := run(t, "eval", "samples", "--checkpoint", ckpt, "--classifier", out, "--n", "2", "--steps", "2"); err != nil {
		t.Errorf("the trained classifier does not load for eval: %v", err)
	}
}
