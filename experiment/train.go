package experiment

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
)

// TrainSpec is an experiment file's train section: with it, every cell
// trains a model (train.Run, resumably, inside the cell's folder), exports
// its EMA weights and evaluates them on the MNIST classifier (FID, KID,
// confident share, class histogram of Eval's samples). The sweep axes then
// address config keys (train.K, diffusion.K, model.K, data.K) and each seed
// is the cell's train.seed.
type TrainSpec struct {
	// Config is the base config file (e.g. configs/mnist.yaml).
	Config string `yaml:"config"`
	// Set overrides config keys of the base config, dotted key → scalar
	// (train.lr: 0.0005, model.num_channels: 16).
	Set map[string]any `yaml:"set"`
	// Steps is train.steps, the optimiser steps of every cell (≥ 1).
	Steps int `yaml:"steps"`
	// Eval is the evaluation protocol of the trained models.
	Eval TrainEval `yaml:"eval"`
}

// TrainEval is the sampling protocol a training cell evaluates its model
// with; zero fields take `diffinv eval samples`' protocol: 1000 DDIM
// samples at 50 steps, seed 1.
type TrainEval struct {
	// N is the number of samples (default 1000).
	N int `yaml:"n" json:"n"`
	// Sampler is the sampler name (default ddim).
	Sampler string `yaml:"sampler" json:"sampler"`
	// Steps is the number of sampling steps (default 50).
	Steps int `yaml:"steps" json:"steps"`
	// Seed seeds the samples and KID's subsets (default 1).
	Seed *int64 `yaml:"seed" json:"seed"`
}

// Resolved returns the protocol with the defaults filled in.
func (t TrainEval) Resolved() TrainEval {
	if t.N == 0 {
		t.N = 1000
	}
	if t.Sampler == "" {
		t.Sampler = "ddim"
	}
	if t.Steps == 0 {
		t.Steps = 50
	}
	if t.Seed == nil {
		one := int64(1)
		t.Seed = &one
	}
	return t
}

// TrainCell is a training cell's settings.
type TrainCell struct {
	// Config is the base config file.
	Config string
	// Set is every config key the cell sets over Config: the file's
	// train.set, this cell's sweep values (which win), train.steps and
	// train.seed (the cell's seed).
	Set map[string]any
	// Eval is the evaluation protocol, defaults filled in.
	Eval TrainEval
}

// trainPrefixes are the config sections a training sweep or set may
// address.
var trainPrefixes = []string{"train", "diffusion", "model", "data"}

func isTrainKey(k string) bool {
	p, rest, _ := strings.Cut(k, ".")
	if rest == "" {
		return false
	}
	for _, q := range trainPrefixes {
		if p == q {
			return true
		}
	}
	return false
}

// trainBookkeeping are config keys a training cell sets itself or that do
// not change its model.
var trainBookkeeping = map[string]string{
	"train.steps": "give train.steps as the train section's steps",
	"train.seed":  "the experiment's seeds are the cells' train.seed",
	"train.out":   "each cell trains in its own folder under the results folder",
}

// validateTrain checks the train section and what a training experiment
// may hold.
func (e *Experiment) validateTrain(add func(string, ...any)) {
	t := e.Train
	if strings.TrimSpace(t.Config) == "" {
		add("train.config: empty, want the base config file (e.g. configs/mnist.yaml)")
	}
	if t.Steps < 1 {
		add("train.steps: %d, want ≥ 1 optimiser steps", t.Steps)
	}
	for k := range t.Set {
		if !isTrainKey(k) {
			add("train.set.%s: want a key of the train, diffusion, model or data section", k)
		}
		if why, ok := trainBookkeeping[k]; ok {
			add("train.set.%s: not settable here: %s", k, why)
		}
	}
	ev := t.Eval
	if ev.N < 0 || ev.N == 1 {
		add("train.eval.n: %d, want ≥ 2 samples (0 for the default 1000)", ev.N)
	}
	if ev.Steps < 0 {
		add("train.eval.steps: %d, want ≥ 1 (0 for the default 50)", ev.Steps)
	}
	if len(e.Tasks) > 0 || len(e.Methods) > 0 {
		// Each trained model also solves the tasks.
		e.validateSolve(add)
		if e.Checkpoint != "" {
			add("checkpoint: %q, but a training experiment's solve cells use each training cell's model", e.Checkpoint)
		}
	}
	if len(trainMetrics(e.Metrics)) == 0 {
		add("metrics: none of %v is a metric of training cells (fid, kid, confident, class_min, class_max, mse)", e.Metrics)
	}
	for _, k := range e.SweepKeys() {
		if why, ok := trainBookkeeping[k]; ok {
			add("sweep.%s: not sweepable: %s", k, why)
		}
	}
}

// trainCells expands a training experiment: the points of the training
// sweep axes × seeds, each training cell followed by its solve cells
// (tasks × methods × the points of the solver./task. axes) when the file
// has tasks.
func (e *Experiment) trainCells() ([]Cell, error) {
	ev := e.Train.Eval.Resolved()
	var trainKeys, solveKeys []string
	for _, k := range e.SweepKeys() {
		if isTrainKey(k) {
			trainKeys = append(trainKeys, k)
		} else {
			solveKeys = append(solveKeys, k)
		}
	}
	solvePoints := e.sweepPoints(solveKeys)
	var cells []Cell
	for _, p := range e.sweepPoints(trainKeys) {
		for _, seed := range e.Seeds {
			set := cloneSet(e.Train.Set)
			for _, sv := range p {
				set[sv.Key] = sv.Value
			}
			set["train.steps"] = e.Train.Steps
			set["train.seed"] = int(seed)
			c := Cell{
				Index:     len(cells),
				Task:      Task{Name: "train", Set: map[string]any{}},
				Method:    Method{Name: "train", Set: map[string]any{}},
				Train:     &TrainCell{Config: e.Train.Config, Set: set, Eval: ev},
				Sweep:     p,
				Seed:      seed,
				Precision: e.RunPrecision,
				Engine:    e.RunEngine,
				Metrics:   trainMetrics(e.Metrics),
			}
			if e.Resolver != nil {
				r, err := e.Resolver(c)
				if err != nil {
					return nil, fmt.Errorf("experiment %q: training cell (%s, seed %d): %w", e.Name, c.SweepLabel(), c.Seed, err)
				}
				c.Resolved = append([]string{}, r...)
				sort.Strings(c.Resolved)
			}
			c.ID = trainCellID(c)
			cells = append(cells, c)
			if len(e.Tasks) > 0 {
				trained := c
				var err error
				if cells, err = e.solveCells(solvePoints, &trained, "", cells); err != nil {
					return nil, err
				}
			}
		}
	}
	return cells, nil
}

// trainMetrics are the metrics of ms that training cells compute.
func trainMetrics(ms []string) []string {
	var r []string
	for _, name := range ms {
		if m, err := LookupMetric(name); err == nil && m.Train {
			r = append(r, name)
		}
	}
	return r
}

// solveMetrics are the metrics of ms that solve cells compute.
func solveMetrics(ms []string) []string {
	var r []string
	for _, name := range ms {
		if m, err := LookupMetric(name); err == nil && !m.NoSolve {
			r = append(r, name)
		}
	}
	return r
}

// trainCellID is a training cell's ID: "train", its sweep values, its
// seed and a hash of its settings: the config keys it sets, the
// evaluation protocol, the seed, precision and engine, and Resolved (the
// config they resolve to, which the CellRunner's Resolver gives). With a
// Resolver the base config file's path does not enter (its content does,
// through Resolved); without one the path stands in.
func trainCellID(c Cell) string {
	var b strings.Builder
	b.WriteString("diffinv-experiment-train-cell v1\n")
	t := c.Train
	if c.Resolved == nil {
		fmt.Fprintf(&b, "config=%q\n", t.Config)
	}
	ks := make([]string, 0, len(t.Set))
	for k := range t.Set {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	for _, k := range ks {
		fmt.Fprintf(&b, "set.%q=%s\n", k, canonical(t.Set[k]))
	}
	fmt.Fprintf(&b, "eval n=%d sampler=%q steps=%d seed=%d\n", t.Eval.N, t.Eval.Sampler, t.Eval.Steps, *t.Eval.Seed)
	fmt.Fprintf(&b, "seed=%d\n", c.Seed)
	if c.Precision != "" && c.Precision != "fp32" {
		fmt.Fprintf(&b, "precision=%s\n", c.Precision)
	}
	if c.Engine != "" && c.Engine != "native" {
		fmt.Fprintf(&b, "engine=%s\n", c.Engine)
	}
	b.WriteString("resolved:\n")
	for _, l := range c.Resolved {
		fmt.Fprintf(&b, "%q\n", l)
	}
	h := sha256.Sum256([]byte(b.String()))
	name := "train"
	for _, sv := range c.Sweep {
		name += "_" + slug(display(sv.Value))
	}
	return fmt.Sprintf("%s_s%d_%s", name, c.Seed, hex.EncodeToString(h[:6]))
}

// TrainLog is the training log inside a training cell's folder.
const TrainLog = "log.jsonl"

// TrainModel is the exported EMA model inside a training cell's folder.
const TrainModel = "model.safetensors"

// setTrain applies one --set to the train section: train.config,
// train.steps, train.eval.{n,sampler,steps,seed}, or any other config key
// (train.K, diffusion.K, model.K, data.K) into train.set.
func (e *Experiment) setTrain(k, raw string) error {
	fail := func(err error) error { return fmt.Errorf("--set %s: %w", k, err) }
	t := e.Train
	switch k {
	case "train.config":
		t.Config = raw
		return nil
	case "train.eval.sampler":
		t.Eval.Sampler = raw
		return nil
	case "train.steps", "train.eval.n", "train.eval.steps", "train.eval.seed":
		n, err := parseInt(raw)
		if err != nil {
			return fail(err)
		}
		switch k {
		case "train.steps":
			t.Steps = int(n)
		case "train.eval.n":
			t.Eval.N = int(n)
		case "train.eval.steps":
			t.Eval.Steps = int(n)
		case "train.eval.seed":
			t.Eval.Seed = &n
		}
		return nil
	}
	v, err := parseScalar(raw)
	if err != nil {
		return fail(err)
	}
	t.Set = with(t.Set, k, v)
	return nil
}
