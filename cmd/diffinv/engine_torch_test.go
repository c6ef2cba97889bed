//go:build torch

package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/checkpoint"
	"github.com/diffinv/diffinv/internal/tensors"
)

// The torch engine samples the same bits' worth as the native one: DDIM with
// η = 0 from the same seed agrees to float tolerance.
func TestSampleTorchEngineMatchesNative(t *testing.T) {
	ckpt := tinyCheckpoint(t)
	dir := t.TempDir()
	var got [2][]float32
	for i, eng := range []string{"native", "torch"} {
		out := filepath.Join(dir, eng+".png")
		if _, err := run(t, "sample", "--checkpoint", ckpt, "--engine", eng, "--sampler", "ddim", "--steps", "5", "--n", "2", "--seed", "4", "--out", out); err != nil {
			t.Fatalf("%s: %v", eng, err)
		}
		f, err := checkpoint.Load(strings.TrimSuffix(out, ".png") + ".safetensors")
		if err != nil {
			t.Fatal(err)
		}
		got[i] = tensors.F32(f.Tensors["samples"])
	}
	for j := range got[0] {
		if d := got[0][j] - got[1][j]; d > 1e-4 || d < -1e-4 {
			t.Fatalf("sample value %d: native %v, torch %v", j, got[0][j], got[1][j])
		}
	}
}

func TestImportCommandRegistered(t *testing.T) {
	if _, err := run(t, "import", "--help"); err != nil {
		t.Fatal(err)
	}
	// The common flags, and the deprecated --from/--arch, which still work.
	for _, args := range [][]string{
		{"--checkpoint", "missing.pt", "--config", "../../configs/mnist.yaml"},
		{"--from", "missing.pt", "--arch", "../../configs/mnist.yaml"},
	} {
		args = append(append([]string{"import"}, args...), "--out", filepath.Join(t.TempDir(), "c.safetensors"))
		if _, err := run(t, args...); err == nil || !strings.Contains(err.Error(), "missing.pt") {
			t.Errorf("%v: missing file: %v", args, err)
		}
	}
	// --config is read (and --set over it) before the state dict.
	_, err := run(t, "import", "--checkpoint", "missing.pt", "--config", "../../configs/mnist.yaml", "--set", "model.bogus=1", "--out", filepath.Join(t.TempDir(), "c.safetensors"))
	if err == nil || !strings.Contains(err.Error(), "model.bogus") {
		t.Errorf("--set model.bogus: %v", err)
	}
	if _, err := run(t, "import", "--checkpoint", "missing.pt", "--out", filepath.Join(t.TempDir(), "c.safetensors")); err == nil || !strings.Contains(err.Error(), "--config is required") {
		t.Errorf("no --config: %v", err)
	}
	out, _ := run(t, "import", "--help")
	if strings.Contains(out, "--from string") || strings.Contains(out, "--arch string") || !strings.Contains(out, "--checkpoint string") {
		t.Errorf("import --help shows the deprecated flags or misses --checkpoint:\n%s", out)
	}
}
