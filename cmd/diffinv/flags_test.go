package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/metrics"
)

// errSeen stops a command right after its config is loaded.
var errSeen = errors.New("config seen")

// loadedConfig runs args with configHook set and returns the first config
// the command loaded (the command stops there, before any work).
func loadedConfig(t *testing.T, args ...string) *config.Config {
	t.Helper()
	var got *config.Config
	configHook = func(_ *cobra.Command, cfg *config.Config) error {
		got = cfg
		return errSeen
	}
	defer func() { configHook = nil }()
	if _, err := run(t, args...); !errors.Is(err, errSeen) {
		t.Fatalf("%v: err %v, want the config hook's", args, err)
	}
	return got
}

// flagCase is one row of a command family's table: args on top of the
// family's base arguments and what the loaded config must hold.
type flagCase struct {
	name string
	args []string
	want func(*config.Config) any
	val  any
}

func runFlagCases(t *testing.T, base []string, cases []flagCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loadedConfig(t, append(append([]string(nil), base...), tc.args...)...)
			if got := tc.want(cfg); fmt.Sprint(got) != fmt.Sprint(tc.val) {
				t.Errorf("%v: got %v, want %v", tc.args, got, tc.val)
			}
		})
	}
}

// Flags that stand for config keys override the config only when given:
// a --set (or file) value survives a flag left out and loses to a flag
// given, whatever the flag's default.
func TestFlagsOverrideOnlyWhenGiven(t *testing.T) {
	model := "../../models/mnist"
	tasks := "../../configs/tasks"
	seedOf := func(key string) func(*config.Config) any {
		return func(c *config.Config) any {
			return map[string]int64{"train.seed": c.Train.Seed, "sample.seed": c.Sample.Seed, "solver.seed": c.Solver.Seed, "classifier.seed": c.Classifier.Seed}[key]
		}
	}
	t.Run("train", func(t *testing.T) {
		runFlagCases(t, []string{"train", "--config", "../../configs/mnist.yaml"}, []flagCase{
			{"seed default", nil, seedOf("train.seed"), config.Default().Train.Seed},
			{"seed from set", []string{"--set", "train.seed=7"}, seedOf("train.seed"), 7},
			{"seed flag beats set", []string{"--set", "train.seed=7", "--seed", "9"}, seedOf("train.seed"), 9},
			{"out from set", []string{"--set", "train.out=/tmp/a"}, func(c *config.Config) any { return c.Train.Out }, "/tmp/a"},
			{"out flag beats set", []string{"--set", "train.out=/tmp/a", "--out", "/tmp/b"}, func(c *config.Config) any { return c.Train.Out }, "/tmp/b"},
			{"numeric out stays a string", []string{"--out", "123"}, func(c *config.Config) any { return c.Train.Out }, "123"},
		})
	})
	t.Run("sample", func(t *testing.T) {
		runFlagCases(t, []string{"sample", "--checkpoint", model, "--out", filepath.Join(t.TempDir(), "s.png")}, []flagCase{
			{"seed from set", []string{"--set", "sample.seed=7"}, seedOf("sample.seed"), 7},
			{"seed flag beats set", []string{"--set", "sample.seed=7", "--seed", "9"}, seedOf("sample.seed"), 9},
			{"n from set", []string{"--set", "sample.num_samples=5"}, func(c *config.Config) any { return c.Sample.NumSamples }, 5},
			{"n flag beats set", []string{"--set", "sample.num_samples=5", "--n", "6"}, func(c *config.Config) any { return c.Sample.NumSamples }, 6},
			{"steps from set", []string{"--set", "sample.steps=11"}, func(c *config.Config) any { return c.Sample.Steps }, 11},
			{"steps flag beats set", []string{"--set", "sample.steps=11", "--steps", "12"}, func(c *config.Config) any { return c.Sample.Steps }, 12},
			{"sampler from set", []string{"--set", "sample.sampler=ddpm"}, func(c *config.Config) any { return c.Sample.Sampler }, "ddpm"},
			{"sampler flag beats set", []string{"--set", "sample.sampler=ddpm", "--sampler", "ode"}, func(c *config.Config) any { return c.Sample.Sampler }, "ode"},
		})
	})
	t.Run("eval samples", func(t *testing.T) {
		n := func(c *config.Config) any { return c.Sample.NumSamples }
		runFlagCases(t, []string{"eval", "samples", "--checkpoint", model}, []flagCase{
			// The protocol beats the checkpoint's run config (64 samples)...
			{"protocol n", nil, n, 1000},
			{"protocol sampler", nil, func(c *config.Config) any { return c.Sample.Sampler + fmt.Sprint(c.Sample.Steps, c.Sample.Seed) }, "ddim50 1"},
			// ...and loses to --set, which the flags' defaults used to beat.
			{"n from set", []string{"--set", "sample.num_samples=200"}, n, 200},
			{"n flag beats set", []string{"--set", "sample.num_samples=200", "--n", "300"}, n, 300},
			{"seed from set", []string{"--set", "sample.seed=7"}, seedOf("sample.seed"), 7},
			{"seed flag beats set", []string{"--set", "sample.seed=7", "--seed", "9"}, seedOf("sample.seed"), 9},
			{"steps from set", []string{"--set", "sample.steps=20"}, func(c *config.Config) any { return c.Sample.Steps }, 20},
			{"sampler from set", []string{"--set", "sample.sampler=ddpm"}, func(c *config.Config) any { return c.Sample.Sampler }, "ddpm"},
		})
	})
	t.Run("solve", func(t *testing.T) {
		runFlagCases(t, []string{"solve", "--checkpoint", model, "--task", "sr4", "--tasks", tasks, "--out", t.TempDir()}, []flagCase{
			{"seed default", nil, seedOf("solver.seed"), 0},
			{"seed from set", []string{"--set", "solver.seed=7"}, seedOf("solver.seed"), 7},
			{"seed flag beats set", []string{"--set", "solver.seed=7", "--seed", "9"}, seedOf("solver.seed"), 9},
			{"method from set", []string{"--set", "solver.method=ddnm"}, func(c *config.Config) any { return c.Solver.Method }, "ddnm"},
			{"method flag beats set", []string{"--set", "solver.method=ddnm", "--method", "ddrm"}, func(c *config.Config) any { return c.Solver.Method }, "ddrm"},
		})
	})
	t.Run("measure", func(t *testing.T) {
		runFlagCases(t, []string{"measure", "--task", "sr4", "--tasks", tasks, "--image", "x.png", "--out", "y.png"}, []flagCase{
			{"seed from set", []string{"--set", "solver.seed=7"}, seedOf("solver.seed"), 7},
			{"seed flag beats set", []string{"--set", "solver.seed=7", "--seed", "9"}, seedOf("solver.seed"), 9},
		})
	})
	t.Run("demo", func(t *testing.T) {
		steps := func(c *config.Config) any { return fmt.Sprint(c.Solver.Method, " ", c.Solver.Options["steps"]) }
		runFlagCases(t, []string{"demo", "--checkpoint", model + "/model.safetensors", "--digits", "../../demo/digits", "--tasks", tasks, "--out", t.TempDir(), "--task", "sr4"}, []flagCase{
			{"demo steps", nil, steps, "dps 1000"},
			{"ddnm steps", []string{"--method", "ddnm"}, steps, "ddnm 100"},
			{"steps from set", []string{"--set", "solver.steps=20"}, steps, "dps 20"},
			{"steps flag beats set", []string{"--set", "solver.steps=20", "--dps-steps", "30"}, steps, "dps 30"},
			{"other method's flag", []string{"--set", "solver.steps=20", "--ddnm-steps", "30"}, steps, "dps 20"},
			{"seed from set", []string{"--set", "solver.seed=7"}, seedOf("solver.seed"), 7},
			{"seed flag beats set", []string{"--set", "solver.seed=7", "--seed", "9"}, seedOf("solver.seed"), 9},
		})
	})
	for _, name := range []string{"train-classifier", "train-attr-classifier"} {
		t.Run(name, func(t *testing.T) {
			runFlagCases(t, []string{name}, []flagCase{
				{"seed from set", []string{"--set", "classifier.seed=7"}, seedOf("classifier.seed"), 7},
				{"seed flag beats set", []string{"--set", "classifier.seed=7", "--seed", "9"}, seedOf("classifier.seed"), 9},
				{"epochs from set", []string{"--set", "classifier.epochs=5"}, func(c *config.Config) any { return c.Classifier.Epochs }, 5},
				{"epochs flag beats set", []string{"--set", "classifier.epochs=5", "--epochs", "6"}, func(c *config.Config) any { return c.Classifier.Epochs }, 6},
				{"batch flag beats set", []string{"--set", "classifier.batch_size=5", "--batch", "6"}, func(c *config.Config) any { return c.Classifier.BatchSize }, 6},
				{"lr from set", []string{"--set", "classifier.lr=0.002"}, func(c *config.Config) any { return c.Classifier.LR }, 0.002},
				{"lr flag beats set", []string{"--set", "classifier.lr=0.002", "--lr", "0.003"}, func(c *config.Config) any { return c.Classifier.LR }, 0.003},
				{"max-steps flag beats set", []string{"--set", "classifier.max_steps=5", "--max-steps", "6"}, func(c *config.Config) any { return c.Classifier.MaxSteps }, 6},
				{"ref seed from set", []string{"--set", "classifier.ref_seed=3"}, func(c *config.Config) any { return c.Classifier.RefSeed }, 3},
				{"fid-seed beats set", []string{"--set", "classifier.ref_seed=3", "--fid-seed", "4"}, func(c *config.Config) any { return c.Classifier.RefSeed }, 4},
				{"data from set", []string{"--set", "data.dir=/d1"}, func(c *config.Config) any { return c.Data.Dir }, "/d1"},
				{"data flag beats set", []string{"--set", "data.dir=/d1", "--data", "/d2"}, func(c *config.Config) any { return c.Data.Dir }, "/d2"},
				{"out from set", []string{"--set", "classifier.out=/o1"}, func(c *config.Config) any { return c.Classifier.Out }, "/o1"},
				{"out flag beats set", []string{"--set", "classifier.out=/o1", "--out", "/o2"}, func(c *config.Config) any { return c.Classifier.Out }, "/o2"},
			})
		})
	}
	t.Run("train-attr-classifier only", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(file, []byte("classifier:\n  epochs: 9\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		runFlagCases(t, []string{"train-attr-classifier"}, []flagCase{
			{"defaults", nil, func(c *config.Config) any {
				return fmt.Sprint(c.Data.Dataset, c.Data.Dir, c.Classifier.Epochs, c.Classifier.Out, c.Classifier.RefN)
			}, fmt.Sprint("celeba", "../shared/data/celeba", 4, DefaultAttrClassifier, 1000)},
			{"file beats the command's defaults", []string{"--config", file}, func(c *config.Config) any { return c.Classifier.Epochs }, 9},
			{"limit from set", []string{"--set", "data.limit=5"}, func(c *config.Config) any { return c.Data.Limit }, 5},
			{"limit flag beats set", []string{"--set", "data.limit=5", "--limit", "6"}, func(c *config.Config) any { return c.Data.Limit }, 6},
			{"ref-n flag beats set", []string{"--set", "classifier.ref_n=5", "--ref-n", "6"}, func(c *config.Config) any { return c.Classifier.RefN }, 6},
		})
	})
}

// The classifier section's defaults are the settings the shipped MNIST
// classifier was trained with.
func TestClassifierDefaults(t *testing.T) {
	o := classifierOptions(config.Default().Classifier)
	o.EvalEvery = false
	if o != metrics.DefaultTrainOptions() {
		t.Errorf("classifier defaults %+v, want metrics.DefaultTrainOptions %+v", o, metrics.DefaultTrainOptions())
	}
	if d := config.Default().Classifier; d.RefSeed != int64(metrics.DefaultRefSeed) || d.Out != DefaultClassifier {
		t.Errorf("classifier.ref_seed %d out %s, want %d and %s", d.RefSeed, d.Out, int64(metrics.DefaultRefSeed), DefaultClassifier)
	}
	// The wrong dataset is refused by name.
	if _, err := run(t, "train-attr-classifier", "--config", "../../configs/mnist.yaml"); err == nil || !strings.Contains(err.Error(), `data.dataset is "mnist"`) {
		t.Errorf("attr classifier on mnist: %v", err)
	}
	if _, err := run(t, "train-classifier", "--config", "../../configs/celeba64.yaml"); err == nil || !strings.Contains(err.Error(), `data.dataset is "celeba"`) {
		t.Errorf("mnist classifier on celeba: %v", err)
	}
}

// --seed has one help sentence everywhere, and where it names a config key
// the key exists.
func TestSeedFlagSame(t *testing.T) {
	root := newRootCmd()
	var seen []string
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if f := c.Flags().Lookup("seed"); f != nil {
			seen = append(seen, c.CommandPath())
			if !strings.HasPrefix(f.Usage, "seed of the command's random draws (") {
				t.Errorf("%s --seed: %q", c.CommandPath(), f.Usage)
			}
			if i := strings.Index(f.Usage, "(sets "); i >= 0 {
				key := strings.Fields(f.Usage[i+len("(sets "):])[0]
				key = strings.TrimSuffix(key, ";")
				if !slices.Contains(config.Keys(), key) {
					t.Errorf("%s --seed sets %q, not a config key", c.CommandPath(), key)
				}
			} else if c.Name() != "unet" {
				t.Errorf("%s --seed names no config key: %q", c.CommandPath(), f.Usage)
			}
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	for _, want := range []string{"diffinv train", "diffinv sample", "diffinv solve", "diffinv measure", "diffinv demo", "diffinv eval samples", "diffinv train-classifier", "diffinv train-attr-classifier", "diffinv bench unet"} {
		if !slices.Contains(seen, want) {
			t.Errorf("%s has no --seed (have %v)", want, seen)
		}
	}
}
