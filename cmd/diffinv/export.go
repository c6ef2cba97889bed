package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/train"
)

func newExportCmd() *cobra.Command {
	var from, out, dtype, weights string
	var sets []string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write a training checkpoint's EMA (or raw, or debiased EMA) weights as a model file",
		Long: `Reads a training checkpoint (checkpoints/step-NNNNNNNN.safetensors of a
diffinv train run: weights, EMA, Adam state) and writes its EMA weights with
the run config as a model file, the small file that sample, solve, eval and
--init take: what the run writes as model.safetensors, for any kept step.

--dtype f16 stores the weights as IEEE binary16, half the size (a 10.7 M-
parameter face model: 43 → 21 MB), each weight rounded to the nearest
binary16 value (relative error ≤ 2^-11); every command reads such a file
back as float32. Evaluate the file you ship: its samples differ from the
float32 weights' by that rounding. A weight beyond binary16's range is an
error.

--weights picks what is written: ema (the default, what the run ships),
raw (the optimiser's current weights) or ema-debiased. An EMA starts at the
initial weights and keeps a share ∏ d_k of them (0.9995^t without a warm-up:
22 % after 3,000 steps, 0.25 % after 12,000), which early in a run leaves
its samples noise while the raw weights already draw images;
ema-debiased removes that share and renormalises, (EMA − s θ0)/(1 − s),
the exponential average of the trained weights alone (Adam's bias
correction with θ0 for zero). θ0 is rebuilt from the run's train.seed, so it
needs a fresh native run (checked in the run's log.jsonl beside
checkpoints/).

Each export also prints how far the EMA sits from the raw weights and the
norm ratio ‖EMA‖/‖raw‖ of the layers that start at zero (the residual and
attention blocks' output projections): they grow through training and an
EMA lags them, which shrinks the averaged network's residual branches (the
face recipe at step 9,500: 0.931, all weights within 3.3 %).

--set sample.KEY=VALUE stores a sampling default in the file's run config,
which sample, eval and solve start from: the face model ships with
sample.eta=1, since its deterministic DDIM samples (η = 0) break where
DDIM with fresh noise draws faces. Only sample.* keys can be set.`,
		Example: `  diffinv export --checkpoint runs/mnist/checkpoints/step-00006000.safetensors --out models/mnist/model.safetensors
  diffinv export --checkpoint runs/celeba-recipe/run/checkpoints/step-00012000.safetensors --out models/celeba64/model.safetensors --dtype f16 --set sample.eta=1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store := map[string]string{"f32": "F32", "f16": "F16"}[dtype]
			if store == "" {
				return fmt.Errorf("export: --dtype %q, want f32 or f16", dtype)
			}
			if from == "" || out == "" {
				return fmt.Errorf("export: --checkpoint and --out are both required (got %q and %q)", from, out)
			}
			if err := distinctFiles("--checkpoint", from, "--out", out); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			c, err := train.LoadCheckpoint(from)
			if err != nil {
				return fmt.Errorf("export: %w", err)
			}
			if len(sets) > 0 {
				if c.Config, err = sampleDefaults(c.Config, sets); err != nil {
					return fmt.Errorf("export: %w", err)
				}
			}
			if dir := filepath.Dir(out); dir != "" {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return fmt.Errorf("export: --out folder: %w", err)
				}
			}
			w, what := c.EMA, "EMA weights"
			switch weights {
			case "ema":
			case "raw":
				w, what = c.Params, "raw weights"
			case "ema-debiased":
				if err := train.CheckFreshNativeRun(from); err != nil {
					return fmt.Errorf("export: --weights ema-debiased: %w", err)
				}
				init, err := train.InitialWeights(c.Config)
				if err != nil {
					return fmt.Errorf("export: %w", err)
				}
				d, s, err := train.DebiasedEMA(c, init)
				if err != nil {
					return fmt.Errorf("export: %w", err)
				}
				w = d
				what = fmt.Sprintf("debiased EMA weights (the initial weights' share %.3g%% removed; distance to the raw weights %.3g of their norm, the EMA's %.3g)",
					100*s, train.RelDistance(d, c.Params), train.RelDistance(c.EMA, c.Params))
			default:
				return fmt.Errorf("export: --weights %q, want ema, raw or ema-debiased", weights)
			}
			if err := train.SaveWeightsAs(out, c, w, weights, store); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "exported: %s (%s of step %d, %s)\n", out, what, c.Step, dtype)
			// How far the EMA sits from the raw weights, and how much of that is
			// the lag of the layers that start at zero (train.ZeroModuleNormRatio).
			if r, n, err := train.ZeroModuleNormRatio(c); err != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "EMA against the raw weights: not compared: %v\n", err)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "EMA against the raw weights: distance %.3g of their norm; the %d zero-initialised output-layer tensors: ‖EMA‖/‖raw‖ = %.3f\n",
					train.RelDistance(c.EMA, c.Params), n, r)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "checkpoint", "", "training checkpoint to read")
	cmd.Flags().StringVar(&out, "out", "", "model file to write")
	cmd.Flags().StringVar(&dtype, "dtype", "f32", "stored weight type: f32 (exact) or f16 (half the size, rounded)")
	cmd.Flags().StringArrayVar(&sets, "set", nil, "sample.KEY=VALUE: a sampling default stored in the file's run config (repeatable; only sample.* keys)")
	cmd.Flags().StringVar(&weights, "weights", "ema", "weights to write: ema, raw or ema-debiased (the EMA without its share of the initial weights)")
	return cmd
}

// sampleDefaults applies --set overrides to the run config a model file
// stores, which sample, eval and solve read their defaults from. Only
// sample.* keys may change: the weights fix the model and the diffusion,
// and the train and data keys record how they were made.
func sampleDefaults(cfg *config.Config, sets []string) (*config.Config, error) {
	for _, kv := range sets {
		if !strings.HasPrefix(kv, "sample.") {
			key, _, _ := strings.Cut(kv, "=")
			return nil, fmt.Errorf("--set %q: only sample.* keys (the file's sampling defaults) can be set on export, not %s: the weights fix the model and diffusion, and the train and data keys record the run", kv, key)
		}
	}
	out, err := config.LoadOnto(*cfg, config.Sources{Sets: sets})
	if err != nil {
		return nil, fmt.Errorf("--set: %w", err)
	}
	return out, nil
}

// distinctFiles refuses an output path that names the input file, by path
// or, where the output exists, as the same file (a link, another spelling):
// writing it would destroy the input (a training checkpoint exported over
// itself loses its Adam state and raw weights).
func distinctFiles(inFlag, in, outFlag, out string) error {
	ai, aerr := filepath.Abs(in)
	ao, oerr := filepath.Abs(out)
	same := aerr == nil && oerr == nil && ai == ao
	if !same {
		if si, err := os.Stat(in); err == nil {
			if so, err := os.Stat(out); err == nil {
				same = os.SameFile(si, so)
			}
		}
	}
	if same {
		return fmt.Errorf("%s %s and %s %s are the same file; writing it would destroy the input, so give another %s", outFlag, out, inFlag, in, outFlag)
	}
	return nil
}
