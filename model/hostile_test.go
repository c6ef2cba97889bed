package model

import (
	"fmt"
	"math"
	"math/rand"
	"path/filepath"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/checkpoint"
	"github.com/diffinv/diffinv/internal/tensors"
)

// TestLoadHostileFiles: a small file whose metadata claims a huge network
// is an error naming the mismatch (the network is never allocated: at
// num_channels 100000 it would need terabytes), and weights holding NaN or
// infinity are an error naming the parameter, on Load and SetParams alike.
func TestLoadHostileFiles(t *testing.T) {
	dir := t.TempDir()
	huge := tinyConfig()
	huge.NumChannels = 100000
	cs, err := EncodeConfig(huge)
	if err != nil {
		t.Fatal(err)
	}
	small := filepath.Join(dir, "huge-config.safetensors")
	one := map[string]*tensor.Dense{"input_blocks.0.0.weight": tensors.FromSlice([]float32{1, 2, 3, 4}, 4)}
	if err := checkpoint.Save(small, one, map[string]string{ConfigKey: cs}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load(small); err == nil || !strings.Contains(err.Error(), "input_blocks.0.0.weight has shape [4], want [100000 2 3 3]") {
		t.Errorf("Load of a 4-value file claiming num_channels 100000: %v, want a shape error", err)
	}

	u, err := New(tinyConfig(), rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	good, err := EncodeConfig(tinyConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(-1))} {
		vals := map[string]*tensor.Dense{}
		for name, p := range u.Params() {
			vals[name] = p.Clone().(*tensor.Dense)
		}
		tensors.F32(vals["out.2.bias"])[1] = bad
		want := fmt.Sprintf("parameter out.2.bias holds %v at index 1", bad)
		path := filepath.Join(dir, "bad.safetensors")
		if err := checkpoint.Save(path, vals, map[string]string{ConfigKey: good}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := Load(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load with %v weights: %v, want an error containing %q", bad, err, want)
		}
		if err := u.SetParams(vals); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("SetParams with %v weights: %v, want an error containing %q", bad, err, want)
		}
	}
}
