//go:build !torch

package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestTorchEngineNeedsTorchBuild(t *testing.T) {
	ckpt := tinyCheckpoint(t)
	out := filepath.Join(t.TempDir(), "x.png")
	for _, args := range [][]string{
		{"sample", "--checkpoint", ckpt, "--engine", "torch", "--out", out},
		{"train", "--engine", "torch", "--set", "train.steps=1", "--out", t.TempDir()},
	} {
		if _, err := run(t, args...); err == nil || !strings.Contains(err.Error(), "make build-torch") {
			t.Errorf("%v: %v, want an error pointing at make build-torch", args, err)
		}
	}
	if _, err := run(t, "sample", "--checkpoint", ckpt, "--engine", "tpu", "--out", out); err == nil || !strings.Contains(err.Error(), "tpu") {
		t.Errorf("unknown engine: %v", err)
	}
	if _, err := run(t, "sample", "--checkpoint", ckpt, "--device", "cuda", "--out", out); err == nil || !strings.Contains(err.Error(), "--engine torch") {
		t.Errorf("cuda on the native engine: %v", err)
	}
}
