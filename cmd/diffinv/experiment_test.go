package main

import (
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/model"
)

// mnistSizedCheckpoint writes an untrained tiny 28-px UNet whose run config
// points data.dir at generated MNIST-format files (test split included).
func mnistSizedCheckpoint(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeTinyMNIST(t, dir, 12)
	for _, n := range []string{"images-idx3-ubyte", "labels-idx1-ubyte"} {
		b, err := os.ReadFile(filepath.Join(dir, "train-"+n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "t10k-"+n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := config.Default()
	cfg.Model = config.Model{ImageSize: 28, InChannels: 1, NumChannels: 8, ChannelMult: []int{1, 2}, NumResBlocks: 1,
		AttentionResolutions: []int{14}, NumHeads: 1, NumHeadChannels: -1, NumGroups: 4, UseScaleShiftNorm: true, ConvResample: true}
	cfg.Diffusion.Steps = 20
	cfg.Sample.Steps = 20
	cfg.Data.Dir = dir
	net, err := model.New(cfg.Model, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := cfg.YAML()
	p := filepath.Join(dir, "tiny28.safetensors")
	if err := net.Save(p, map[string]string{RunConfigKey: string(doc)}); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExperimentRunCommand(t *testing.T) {
	ckpt := mnistSizedCheckpoint(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "exp.yaml")
	body := `name: tiny
checkpoint: ` + ckpt + `
dataset: {name: mnist-test, n: 2}
tasks:
  - {name: inpaint-box, set: {measurement.noise.name: clean}}
methods:
  - {name: ddnm, set: {steps: 4}}
  - {name: pinv}
seeds: [0, 1]
metrics: [psnr, ssim, consistency, seconds]
output: ` + filepath.Join(dir, "out") + `
`
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"experiment", "run", file, "--tasks", "../../configs/tasks", "--sweep", "solver.eta=0.5,1"}
	if _, err := run(t, args...); err == nil || !strings.Contains(err.Error(), "eta") {
		// pinv has no eta: the sweep applies to every method, so a clear error is right.
		t.Fatalf("sweeping a ddnm option over pinv too: %v", err)
	}
	args = args[:5]
	dry, err := run(t, append(args, "--dry-run")...)
	if err != nil || !strings.Contains(dry, "4 cells, all valid") {
		t.Fatalf("dry run: %v\n%s", err, dry)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
		t.Error("a dry run wrote outputs")
	}
	if _, err := run(t, args...); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"results.csv", "table.md", "grids/inpaint-box.png"} {
		if _, err := os.Stat(filepath.Join(dir, "out", f)); err != nil {
			t.Errorf("missing %s", f)
		}
	}
	table, _ := os.ReadFile(filepath.Join(dir, "out", "table.md"))
	if !strings.Contains(string(table), "ddnm") || !strings.Contains(string(table), "pinv") {
		t.Errorf("table.md:\n%s", table)
	}
	// Again with --resume: nothing to recompute, same table.
	if _, err := run(t, append(args, "--resume")...); err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(filepath.Join(dir, "out", "table.md"))
	if string(again) != string(table) {
		t.Error("table.md changed on a resume with nothing to do")
	}
}
