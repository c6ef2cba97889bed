package experiment

import (
	"strings"
	"testing"
)

const trainSpec = `name: t
train:
  config: configs/mnist.yaml
  steps: 100
  set: {train.batch_size: 16}
sweep:
  train.loss_weight: [uniform, p2]
seeds: [0, 1]
metrics: [fid, confident, mse]
output: out
`

func TestTrainSpec(t *testing.T) {
	e, err := Decode(strings.NewReader(trainSpec))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"train.steps=7", "train.lr=0.0005", "train.eval.n=64", "train.eval.seed=3", "model.num_channels=16"} {
		if err := e.Set(s); err != nil {
			t.Fatalf("--set %s: %v", s, err)
		}
	}
	if err := e.AddSweep("diffusion.prediction=eps,v"); err != nil {
		t.Fatal(err)
	}
	cells, err := e.Cells()
	if err != nil {
		t.Fatal(err)
	}
	if len(cells) != 2*2*2 {
		t.Fatalf("%d cells, want 8", len(cells))
	}
	c := cells[0]
	if c.Train == nil || c.Train.Set["train.steps"] != 7 || c.Train.Set["train.seed"] != 0 || c.Train.Set["train.lr"] != 0.0005 ||
		c.Train.Set["train.loss_weight"] != "uniform" || c.Train.Set["diffusion.prediction"] != "eps" || c.Train.Eval.N != 64 ||
		*c.Train.Eval.Seed != 3 || c.Train.Eval.Steps != 50 || c.Train.Eval.Sampler != "ddim" {
		t.Errorf("first cell %+v, eval %+v", c.Train, c.Train.Eval)
	}
	if !strings.HasPrefix(c.ID, "train_eps_uniform_s0_") {
		t.Errorf("ID %s, want train_eps_uniform_s0_…", c.ID)
	}
	if c.Label() != "train / prediction=eps, loss_weight=uniform / seed 0" {
		t.Errorf("label %q", c.Label())
	}
}

func TestTrainSpecErrors(t *testing.T) {
	for _, tc := range []struct{ edit, want string }{
		{"steps: 100", "train.steps: 0"},
		{"train.loss_weight: [uniform, p2]", "sweep key \"solver.scale\""},
		{"set: {train.batch_size: 16}", "train.set.train.seed: not settable"},
		{"metrics: [fid, confident, mse]", "\"psnr\" is a metric of solve cells"},
		{"output: out", "dataset.name: empty"},
	} {
		repl := map[string]string{
			"steps: 100":                       "steps: 0",
			"train.loss_weight: [uniform, p2]": "solver.scale: [1, 2]",
			"set: {train.batch_size: 16}":      "set: {train.seed: 3}",
			"metrics: [fid, confident, mse]":   "metrics: [fid, psnr]",
			"output: out":                      "output: out\ntasks: [{name: sr4}]\nmethods: [{name: dps}]",
		}[tc.edit]
		e, err := Decode(strings.NewReader(strings.Replace(trainSpec, tc.edit, repl, 1)))
		if err == nil {
			err = e.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s → %s: error %v, want %q", tc.edit, repl, err, tc.want)
		}
	}
	// A solve experiment takes no training metric.
	e, err := Decode(strings.NewReader("name: s\ncheckpoint: x\ndataset: {name: mnist-test, n: 1}\ntasks: [{name: sr4}]\nmethods: [{name: dps}]\nseeds: [0]\nmetrics: [psnr, confident]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Validate(); err == nil || !strings.Contains(err.Error(), "\"confident\" is a metric of training cells") {
		t.Errorf("solve experiment with confident: %v", err)
	}
}
