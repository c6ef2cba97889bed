package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/train"
	"gorgonia.org/tensor"
)

// TestOutputsNeverOverwriteInputs covers issue 19 items 6 and 9: export
// over its own training checkpoint, sample writing its raw samples over
// its PNG grid or over the checkpoint. Each is refused, naming both
// paths, and the input is left as it was.
func TestOutputsNeverOverwriteInputs(t *testing.T) {
	ckpt := tinyTrainCheckpoint(t)
	dir := filepath.Dir(ckpt)
	link := filepath.Join(t.TempDir(), "link.safetensors")
	if err := os.Symlink(ckpt, link); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(".", ckpt)
	if err != nil {
		rel = ckpt
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"export same path", []string{"export", "--checkpoint", ckpt, "--out", ckpt}, []string{"same file", ckpt}},
		{"export other spelling", []string{"export", "--checkpoint", ckpt, "--out", filepath.Join(dir, ".", filepath.Base(ckpt))}, []string{"same file"}},
		{"export relative", []string{"export", "--checkpoint", rel, "--out", ckpt}, []string{"same file"}},
		{"export via link", []string{"export", "--checkpoint", ckpt, "--out", link}, []string{"same file", link, ckpt}},
		{"sample out safetensors", []string{"sample", "--checkpoint", ckpt, "--steps", "2", "--n", "1", "--out", filepath.Join(t.TempDir(), "x.safetensors")}, []string{"x.safetensors", "PNG grid would be overwritten"}},
		{"sample raw over checkpoint", []string{"sample", "--checkpoint", ckpt, "--steps", "2", "--n", "1", "--out", strings.TrimSuffix(ckpt, ".safetensors") + ".png"}, []string{"same file", ckpt}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := run(t, tc.args...)
			if err == nil {
				t.Fatalf("%v: no error", tc.args)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v: error %q does not contain %q", tc.args, err, w)
				}
			}
			after, rerr := os.ReadFile(ckpt)
			if rerr != nil || string(after) != string(before) {
				t.Fatalf("%v changed the checkpoint", tc.args)
			}
		})
	}
	// A distinct --out still exports.
	if _, err := run(t, "export", "--checkpoint", ckpt, "--out", filepath.Join(t.TempDir(), "m.safetensors")); err != nil {
		t.Fatalf("export to another file: %v", err)
	}
}

// tinyTrainCheckpoint writes a training checkpoint (weights, EMA, Adam
// state) of tinyCheckpoint's network.
func tinyTrainCheckpoint(t *testing.T) string {
	t.Helper()
	net, cfg, err := loadCheckpoint(tinyCheckpoint(t), &configFlags{})
	if err != nil {
		t.Fatal(err)
	}
	params := net.Params()
	c := &train.Checkpoint{Step: 3, Config: cfg, Params: params, EMA: params, AdamM: params, AdamV: params}
	for name := range params {
		c.Names = append(c.Names, name)
	}
	sort.Strings(c.Names)
	p := filepath.Join(t.TempDir(), "step-00000003.safetensors")
	if err := train.SaveCheckpoint(p, c); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCheckpointPathsMustBeRegularFiles covers issue 19 item 10: a device
// or a directory as the checkpoint is an immediate error naming it, in
// every command that takes one (it hung on /dev/zero before); a folder
// without a model.safetensors names that file (a model folder is a
// checkpoint for the commands that load a prior).
func TestCheckpointPathsMustBeRegularFiles(t *testing.T) {
	out := t.TempDir()
	img := filepath.Join(out, "in.png")
	if err := data.SavePNG(img, tensors.New(1, 1, 8, 8)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"/dev/zero", out} {
		for _, args := range [][]string{
			{"sample", "--checkpoint", bad, "--out", filepath.Join(out, "s.png")},
			{"solve", "--checkpoint", bad, "--task", "../../configs/tasks/sr4.yaml", "--image", img, "--out", filepath.Join(out, "o")},
			{"export", "--checkpoint", bad, "--out", filepath.Join(out, "m.safetensors")},
			{"eval", "samples", "--checkpoint", bad, "--n", "1"},
		} {
			_, err := run(t, args...)
			// A folder is a model folder for the commands that load a
			// prior: then its missing model.safetensors is named.
			want := "want a regular file"
			if bad == out && args[0] != "export" {
				want = filepath.Join(out, "model.safetensors")
			}
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), bad) {
				t.Errorf("%v: %v, want an error naming %s and %q", args, err, bad, want)
			}
		}
	}
}

// TestSolveImageBomb covers issue 19 item 7 at the command: solve --image
// refuses, from the header, an image larger than the model takes.
func TestSolveImageBomb(t *testing.T) {
	ckpt := tinyCheckpoint(t)
	dir := t.TempDir()
	big := filepath.Join(dir, "big.png")
	if err := data.SavePNG(big, tensors.New(1, 1, 64, 64)); err != nil {
		t.Fatal(err)
	}
	_, err := run(t, "solve", "--checkpoint", ckpt, "--task", "../../configs/tasks/sr4.yaml", "--set", "measurement.operator.factor=2",
		"--image", big, "--out", filepath.Join(dir, "o"))
	if err == nil || !strings.Contains(err.Error(), "64×64, larger than the 8×8") {
		t.Fatalf("solve --image of 64×64 on an 8-px model: %v", err)
	}
}

// TestExportF16 exports a training checkpoint's EMA weights as f32 and as
// f16: the f16 file is about half as large, loads as the same network, its
// weights are the f32 ones within binary16 rounding (2^-11 relative) and
// not all equal to them, and an unknown --dtype is refused by name.
func TestExportF16(t *testing.T) {
	ckpt := tinyTrainCheckpoint(t)
	dir := t.TempDir()
	p32, p16 := filepath.Join(dir, "m32.safetensors"), filepath.Join(dir, "m16.safetensors")
	if _, err := run(t, "export", "--checkpoint", ckpt, "--out", p32); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "export", "--checkpoint", ckpt, "--out", p16, "--dtype", "f16")
	if err != nil || !strings.Contains(out, "f16") {
		t.Fatalf("export --dtype f16: %v (output %q)", err, out)
	}
	s32, err := os.Stat(p32)
	if err != nil {
		t.Fatal(err)
	}
	s16, err := os.Stat(p16)
	if err != nil {
		t.Fatal(err)
	}
	if r := float64(s16.Size()) / float64(s32.Size()); r > 0.6 {
		t.Fatalf("f16 file is %.2f of the f32 file's size, want about half", r)
	}
	n32, _, err := loadCheckpoint(p32, &configFlags{})
	if err != nil {
		t.Fatal(err)
	}
	n16, _, err := loadCheckpoint(p16, &configFlags{})
	if err != nil {
		t.Fatalf("the f16 model does not load: %v", err)
	}
	w32, w16 := n32.Params(), n16.Params()
	differ := 0
	for name, a := range w32 {
		b, ok := w16[name]
		if !ok {
			t.Fatalf("f16 model lacks %s", name)
		}
		av, bv := a.Data().([]float32), b.Data().([]float32)
		for i := range av {
			d := float64(bv[i] - av[i])
			if d != 0 {
				differ++
			}
			if math.Abs(d) > math.Abs(float64(av[i]))/(1<<11)+1.0/(1<<25) {
				t.Fatalf("%s[%d]: f32 %g, f16 %g: beyond binary16 rounding", name, i, av[i], bv[i])
			}
		}
	}
	if differ == 0 {
		t.Fatal("f16 weights equal the f32 ones exactly: nothing was rounded")
	}
	if _, err := run(t, "export", "--checkpoint", ckpt, "--out", filepath.Join(dir, "x.safetensors"), "--dtype", "f8"); err == nil || !strings.Contains(err.Error(), `"f8"`) {
		t.Fatalf("--dtype f8: error %v, want one naming f8", err)
	}
}

// TestExportWeights: --weights raw writes the optimiser's weights;
// ema-debiased needs the run's log to show a fresh native run, then writes
// (EMA − s θ0)/(1 − s) with θ0 rebuilt from train.seed (train's own test
// checks that against the trained weights' average); a bad kind is refused;
// each export reports the EMA's distance and zero-layer norm ratio.
func TestExportWeights(t *testing.T) {
	src := tinyTrainCheckpoint(t)
	c, err := train.LoadCheckpoint(src)
	if err != nil {
		t.Fatal(err)
	}
	// Distinct raw weights and EMA: raw = 2·EMA, the zero-initialised
	// layers given weights first.
	for _, n := range c.Names {
		for i, v := range tensors.F32(c.EMA[n]) {
			if v == 0 {
				tensors.F32(c.EMA[n])[i] = 0.01 * float32(i%5+1)
			}
		}
		raw := tensors.New(c.EMA[n].Shape()...)
		for i, v := range tensors.F32(c.EMA[n]) {
			tensors.F32(raw)[i] = 2 * v
		}
		c.Params[n] = raw
	}
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "run", train.CheckpointDir, "step-00000003.safetensors")
	os.MkdirAll(filepath.Dir(ckpt), 0o755)
	if err := train.SaveCheckpoint(ckpt, c); err != nil {
		t.Fatal(err)
	}
	load := func(p string) map[string]*tensor.Dense {
		net, _, err := loadCheckpoint(p, &configFlags{})
		if err != nil {
			t.Fatal(err)
		}
		return net.Params()
	}
	rawOut := filepath.Join(dir, "raw.safetensors")
	out, err := run(t, "export", "--checkpoint", ckpt, "--out", rawOut, "--weights", "raw")
	if err != nil {
		t.Fatal(err)
	}
	// raw = 2·EMA: the EMA sits half the raw norm away, zero-initialised layers included.
	if !strings.Contains(out, "distance 0.5 of their norm") || !strings.Contains(out, "‖EMA‖/‖raw‖ = 0.500") {
		t.Errorf("export's EMA report: %q, want distance 0.5 and ratio 0.500", out)
	}
	if d := train.RelDistance(load(rawOut), c.Params); d != 0 {
		t.Errorf("--weights raw: %g from the raw weights", d)
	}
	debOut := filepath.Join(dir, "deb.safetensors")
	if _, err := run(t, "export", "--checkpoint", ckpt, "--out", debOut, "--weights", "ema-debiased"); err == nil || !strings.Contains(err.Error(), "no run record") {
		t.Fatalf("ema-debiased without a run log: %v", err)
	}
	seed := c.Config.Train.Seed
	rec := fmt.Sprintf(`{"type":"run","step":0,"seed":%d,"init_seed":%d}`+"\n", seed, train.InitSeed(seed))
	os.WriteFile(filepath.Join(dir, "run", train.LogFile), []byte(rec), 0o644)
	out, err = run(t, "export", "--checkpoint", ckpt, "--out", debOut, "--weights", "ema-debiased")
	if err != nil {
		t.Fatal(err)
	}
	s := train.EMAInitShare(c.Config.Train, 3)
	if !strings.Contains(out, "debiased EMA weights") || s <= 0 || s >= 1 {
		t.Fatalf("output %q, share %g", out, s)
	}
	init, err := train.InitialWeights(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*tensor.Dense{}
	for _, n := range c.Names {
		w := tensors.New(c.EMA[n].Shape()...)
		for i, v := range tensors.F32(c.EMA[n]) {
			tensors.F32(w)[i] = float32((float64(v) - s*float64(tensors.F32(init[n])[i])) / (1 - s))
		}
		want[n] = w
	}
	if d := train.RelDistance(load(debOut), want); d > 1e-7 {
		t.Errorf("--weights ema-debiased: %g from (EMA − s θ0)/(1 − s)", d)
	}
	if _, err := run(t, "export", "--checkpoint", ckpt, "--out", debOut, "--weights", "swa"); err == nil || !strings.Contains(err.Error(), `"swa"`) {
		t.Errorf("--weights swa: %v", err)
	}
}

// TestExportSampleDefaults: --set sample.* lands in the model file's run
// config (what sample and eval start from), leaves the weights alone, and
// any other key is refused by name before anything is written.
func TestExportSampleDefaults(t *testing.T) {
	src := tinyTrainCheckpoint(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "m.safetensors")
	if _, err := run(t, "export", "--checkpoint", src, "--out", out, "--set", "sample.eta=1", "--set", "sample.steps=10"); err != nil {
		t.Fatal(err)
	}
	net, cfg, err := loadCheckpoint(out, &configFlags{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Sample.Eta != 1 || cfg.Sample.Steps != 10 {
		t.Errorf("stored sample defaults: eta %v, steps %d, want 1 and 10", cfg.Sample.Eta, cfg.Sample.Steps)
	}
	c, err := train.LoadCheckpoint(src)
	if err != nil {
		t.Fatal(err)
	}
	if d := train.RelDistance(net.Params(), c.EMA); d != 0 {
		t.Errorf("weights moved by %g", d)
	}
	for _, tc := range []struct{ set, want string }{
		{"model.num_channels=8", "model.num_channels"},
		{"train.lr=1", "train.lr"},
		{"sample.eta=high", "sample.eta"},
	} {
		bad := filepath.Join(dir, "bad.safetensors")
		if _, err := run(t, "export", "--checkpoint", src, "--out", bad, "--set", tc.set); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--set %s: %v, want an error naming %s", tc.set, err, tc.want)
		}
		if _, err := os.Stat(bad); err == nil {
			t.Errorf("--set %s: a file was written", tc.set)
		}
	}
}
