package runner

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/data"
	"github.com/diffinv/diffinv/experiment"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/metrics"
	"gorgonia.org/tensor"
)

// tinyTrainConfig is a 28-px UNet small enough to train a few steps in
// well under a second.
const tinyTrainConfig = `model: {arch: adm, image_size: 28, in_channels: 1, num_channels: 8, channel_mult: [1, 2], num_res_blocks: 1, attention_resolutions: [14],
  num_heads: 1, num_head_channels: -1, num_groups: 4, dropout: 0}
diffusion: {steps: 20}
train: {batch_size: 4, lr: 0.002, warmup_steps: 2, checkpoint_every: 2, keep_checkpoints: 2, log_every: 1, sample_every: 0}
data: {dataset: folder, dir: unused-the-test-passes-the-data}
sample: {steps: 4}
`

const tinyTrainExperiment = `name: tiny-train
train:
  config: CONFIG
  steps: 6
  set: {train.ema_decay: 0.9}
  eval: {n: 8, steps: 4}
sweep:
  train.loss_weight: [uniform, p2]
seeds: [0]
metrics: [fid, kid, confident, class_min, class_max, mse]
`

// randomDigits returns n seeded random 1×28×28 images.
func randomDigits(t *testing.T, n int, seed int64) *data.Dataset {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	pix := make([]uint8, n*28*28)
	for i := range pix {
		pix[i] = uint8(rng.Intn(256))
	}
	ds, err := data.NewDataset(pix, nil, n, 1, 28, 28)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// trainSetup writes the tiny config and experiment file, and returns the
// experiment opened with its runner (generated data, an untrained
// classifier on generated reference images).
func trainSetup(t *testing.T, dir string, sets ...string) (*experiment.Experiment, *Runner) {
	t.Helper()
	cfgPath := filepath.Join(dir, "tiny.yaml")
	if err := os.WriteFile(cfgPath, []byte(tinyTrainConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	expPath := filepath.Join(dir, "exp.yaml")
	if err := os.WriteFile(expPath, []byte(strings.Replace(tinyTrainExperiment, "CONFIG", cfgPath, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	exp, err := experiment.Open(expPath, sets, nil)
	if err != nil {
		t.Fatal(err)
	}
	trainData, refData := randomDigits(t, 16, 1), randomDigits(t, 32, 2)
	r := &Runner{
		TrainData: func(*config.Config) (*data.Dataset, error) { return trainData, nil },
		EvalReference: func(*config.Config) (*metrics.Classifier, *metrics.Reference, error) {
			c, err := metrics.NewClassifier(rand.New(rand.NewSource(3)))
			if err != nil {
				return nil, nil, err
			}
			ref, err := metrics.NewReference(c, refData)
			return c, ref, err
		},
	}
	exp.Resolver = r.ResolveCell
	return exp, r
}

func runTrain(t *testing.T, exp *experiment.Experiment, r experiment.CellRunner, out string, resume bool, sh experiment.Shard) error {
	t.Helper()
	var log bytes.Buffer
	err := experiment.Run(context.Background(), exp, r, experiment.RunOptions{Out: out, Resume: resume, Log: &log, Progress: &bytes.Buffer{}, Shard: sh})
	t.Logf("%s", log.String())
	return err
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestTrainCells runs a tiny training experiment (two loss weightings,
// six steps each) three ways: uninterrupted; killed in the second cell's
// training and resumed; as two shards one after another. All three give
// the same results.csv.
func TestTrainCells(t *testing.T) {
	dir := t.TempDir()
	exp, r := trainSetup(t, dir)
	cells, err := exp.Cells()
	if err != nil {
		t.Fatal(err)
	}
	if len(cells) != 2 {
		t.Fatalf("%d cells, want 2", len(cells))
	}
	for _, c := range cells {
		if err := r.ValidateCell(c); err != nil {
			t.Errorf("cell %s: %v", c.ID, err)
		}
		if cost := r.CellCost(c); cost != 3*6*4+8*4 {
			t.Errorf("cell %s costs %v, want 3×6×4 + 8×4", c.ID, cost)
		}
	}

	full := filepath.Join(dir, "full")
	if err := runTrain(t, exp, r, full, false, experiment.Shard{}); err != nil {
		t.Fatal(err)
	}
	want := readFile(t, filepath.Join(full, experiment.ResultsCSV))
	if n := strings.Count(want, "\n"); n != 3 {
		t.Errorf("results.csv has %d lines, want a header and 2 cells:\n%s", n, want)
	}
	for _, c := range cells {
		for _, f := range []string{experiment.TrainModel, experiment.TrainLog, "checkpoints"} {
			if _, err := os.Stat(filepath.Join(full, experiment.CellsDir, c.ID, f)); err != nil {
				t.Errorf("cell %s: %v", c.ID, err)
			}
		}
	}
	for _, f := range []string{experiment.TableMD, filepath.Join(experiment.PlotsDir, experiment.LossPlot), filepath.Join(experiment.PlotsDir, "train.loss-weight.png")} {
		if _, err := os.Stat(filepath.Join(full, f)); err != nil {
			t.Error(err)
		}
	}
	table := readFile(t, filepath.Join(full, experiment.TableMD))
	for _, s := range []string{"| Setting |", "loss_weight=uniform", "loss_weight=p2", "FID↓", "confident↑", "Class shares"} {
		if !strings.Contains(table, s) {
			t.Errorf("table.md lacks %q:\n%s", s, table)
		}
	}

	// Killed during the second cell's training (after step 3 of 6, its
	// checkpoint at step 2 on disk), then resumed.
	killed := filepath.Join(dir, "killed")
	calls := 0
	kill := experiment.CellRunnerFunc(func(ctx context.Context, c experiment.Cell, p func(int, int)) (*experiment.CellResult, error) {
		calls++
		if calls == 2 {
			r.stopAt = 3
			defer func() { r.stopAt = 0 }()
		}
		return r.RunCell(ctx, c, p)
	})
	if err := runTrain(t, exp, kill, killed, false, experiment.Shard{}); !errors.Is(err, errStopped) {
		t.Fatalf("killed run: %v, want it stopped", err)
	}
	if _, err := os.Stat(filepath.Join(killed, experiment.CellsDir, cells[1].ID, "checkpoints", "step-00000003.safetensors")); err != nil {
		t.Fatalf("the killed cell left no checkpoint: %v", err)
	}
	if err := runTrain(t, exp, r, killed, true, experiment.Shard{}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(killed, experiment.ResultsCSV)); got != want {
		t.Errorf("killed and resumed: results.csv\n%s\nwant (uninterrupted)\n%s", got, want)
	}

	// Two shards one after another.
	sharded := filepath.Join(dir, "sharded")
	for k := range 2 {
		if err := runTrain(t, exp, r, sharded, true, experiment.Shard{Index: k, Count: 2}); err != nil {
			t.Fatal(err)
		}
	}
	if got := readFile(t, filepath.Join(sharded, experiment.ResultsCSV)); got != want {
		t.Errorf("two shards: results.csv\n%s\nwant (one run)\n%s", got, want)
	}
}

// TestTrainCellIdentity: a changed training setting (in the file or in
// the base config) makes every cell new; another sweep value leaves the
// other cells' IDs.
func TestTrainCellIdentity(t *testing.T) {
	ids := func(exp *experiment.Experiment) []string {
		t.Helper()
		cells, err := exp.Cells()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range cells {
			out = append(out, c.ID)
		}
		return out
	}
	exp, _ := trainSetup(t, t.TempDir())
	base := ids(exp)
	exp2, _ := trainSetup(t, t.TempDir()) // another folder, same settings
	if got := ids(exp2); strings.Join(got, ",") != strings.Join(base, ",") {
		t.Errorf("same settings from another config path: IDs %v, want %v", got, base)
	}
	lr, _ := trainSetup(t, t.TempDir(), "train.lr=0.001")
	for i, id := range ids(lr) {
		if id == base[i] {
			t.Errorf("train.lr changed, cell %d kept ID %s", i, id)
		}
	}
	steps, _ := trainSetup(t, t.TempDir(), "train.steps=7")
	for i, id := range ids(steps) {
		if id == base[i] {
			t.Errorf("train.steps changed, cell %d kept ID %s", i, id)
		}
	}
	more, _ := trainSetup(t, t.TempDir())
	if err := more.AddSweep("train.loss_weight=uniform,min_snr,p2"); err != nil {
		t.Fatal(err)
	}
	got := ids(more)
	if len(got) != 3 || got[0] != base[0] || got[2] != base[1] {
		t.Errorf("adding min_snr: IDs %v, want %s and %s kept", got, base[0], base[1])
	}
	// The base config's content enters (through the resolved settings).
	dir := t.TempDir()
	edited, _ := trainSetup(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "tiny.yaml"), []byte(strings.Replace(tinyTrainConfig, "lr: 0.002", "lr: 0.003", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids(edited) {
		if id == base[i] {
			t.Errorf("base config's train.lr changed, cell %d kept ID %s", i, id)
		}
	}
}

// TestTrainCellsSolve: with tasks and methods beside the train section,
// each trained model also solves them (a solve cell per training cell,
// task, method and solver sweep value), after its training cell, in the
// same shard; one run and two shards give the same results.csv and
// solve.csv.
func TestTrainCellsSolve(t *testing.T) {
	dir := t.TempDir()
	exp, r := trainSetup(t, dir)
	exp.Dataset = experiment.Dataset{Name: "mnist-test", N: 2}
	exp.Tasks = []experiment.Task{{Name: "sr4"}}
	exp.Methods = []experiment.Method{{Name: "ddnm", Set: map[string]any{"steps": 4}}}
	exp.Metrics = []string{"confident", "mse", "psnr", "ssim"}
	if err := exp.AddSweep("solver.eta=0.5,1"); err != nil {
		t.Fatal(err)
	}
	r.TasksDir = "../../configs/tasks"
	r.Images = func(cfg *config.Config, d experiment.Dataset) (*tensor.Dense, int, error) {
		rng := rand.New(rand.NewSource(int64(d.Offset)))
		x := tensors.New(d.N, 1, 28, 28)
		for i := range tensors.F32(x) {
			tensors.F32(x)[i] = float32(2*rng.Float64() - 1)
		}
		return x, d.Offset, nil
	}
	cells, err := exp.Cells()
	if err != nil {
		t.Fatal(err)
	}
	if len(cells) != 2*(1+2) {
		t.Fatalf("%d cells, want 2 training cells with 2 solve cells each", len(cells))
	}
	for i, c := range cells {
		if err := r.ValidateCell(c); err != nil {
			t.Errorf("cell %s: %v", c.ID, err)
		}
		if i%3 != 0 && (c.Trained == nil || c.Trained.ID != cells[i-i%3].ID || c.Seed != cells[i-i%3].Seed) {
			t.Errorf("cell %d (%s) does not solve with the model of training cell %s", i, c.ID, cells[i-i%3].ID)
		}
	}
	shards := experiment.Assign(cells, 2, r.CellCost)
	for i, c := range cells {
		if shards[c.ID] != shards[cells[i-i%3].ID] {
			t.Errorf("cell %s is in shard %d, its training cell in %d", c.ID, shards[c.ID], shards[cells[i-i%3].ID])
		}
	}

	full := filepath.Join(dir, "full")
	if err := runTrain(t, exp, r, full, false, experiment.Shard{}); err != nil {
		t.Fatal(err)
	}
	solve := readFile(t, filepath.Join(full, experiment.SolveCSV))
	if n := strings.Count(solve, "\n"); n != 1+4*2 {
		t.Errorf("solve.csv has %d lines, want a header and 4 cells × 2 images:\n%s", n, solve)
	}
	table := readFile(t, filepath.Join(full, experiment.TableMD))
	t.Logf("table.md:\n%s", table)
	for _, s := range []string{"# Solving with the trained models", "ddnm (eta=0.5, loss_weight=uniform)", "PSNR↑"} {
		if !strings.Contains(table, s) {
			t.Errorf("table.md lacks %q:\n%s", s, table)
		}
	}
	sharded := filepath.Join(dir, "sharded")
	for k := range 2 {
		if err := runTrain(t, exp, r, sharded, true, experiment.Shard{Index: k, Count: 2}); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{experiment.ResultsCSV, experiment.SolveCSV} {
		if got, want := readFile(t, filepath.Join(sharded, f)), readFile(t, filepath.Join(full, f)); got != want {
			t.Errorf("two shards: %s\n%s\nwant (one run)\n%s", f, got, want)
		}
	}
}
