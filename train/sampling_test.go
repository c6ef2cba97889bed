package train

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/diffinv/diffinv/internal/tensors"
	"gorgonia.org/tensor"
)

// TestUNetSampler writes EMA sample grids of a tiny UNet run.
func TestUNetSampler(t *testing.T) {
	dir := t.TempDir()
	cfg := tinyUNetConfig(dir)
	cfg.Diffusion.Prediction = "v"
	cfg.Train.Steps, cfg.Train.SampleEvery = 2, 2
	sampler, err := UNetSampler(cfg, 4, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	var last *tensor.Dense
	keep := func(step int, ema map[string]*tensor.Dense) (*tensor.Dense, error) {
		x, err := sampler(step, ema)
		last = x
		return x, err
	}
	if err := Run(context.Background(), cfg, quiet(RunOptions{NewModel: NewUNet, Dataset: testData(t, 10), Sample: keep})); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, SampleDir, "step-00000002.png")); err != nil {
		t.Fatal(err)
	}
	if !last.Shape().Eq(tensor.Shape{4, 1, 8, 8}) {
		t.Fatalf("samples of shape %v, want [4 1 8 8]", last.Shape())
	}
	for _, v := range tensors.F32(last) {
		if !(v >= -1 && v <= 1) {
			t.Fatalf("sample value %g outside [-1, 1] (DDIM's last step returns the clipped x̂0)", v)
		}
	}
	c := readCkpt(t, dir, 2)
	again, err := sampler(2, c.EMA)
	if err != nil {
		t.Fatal(err)
	}
	if !equalF32(tensors.F32(again), tensors.F32(last)) {
		t.Error("the sampler gave other samples for the same EMA weights")
	}
	if _, err := UNetSampler(cfg, 4, 101, 3); err == nil {
		t.Error("101 sampling steps accepted for T = 100")
	}
}
