package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/diffinv/diffinv/train"
)

func newExportCmd() *cobra.Command {
	var from, out, dtype string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write a training checkpoint's EMA weights as a model file",
		Long: `Reads a training checkpoint (checkpoints/step-NNNNNNNN.safetensors of a
diffinv train run: weights, EMA, Adam state) and writes its EMA weights with
the run config as a model file, the small file that sample, solve, eval and
--init take: what the run writes as model.safetensors, for any kept step.

--dtype f16 stores the weights as IEEE binary16, half the size (a 10.7 M-
parameter face model: 43 → 21 MB), each weight rounded to the nearest
binary16 value (relative error ≤ 2^-11); every command reads such a file
back as float32. Evaluate the file you ship: its samples differ from the
float32 weights' by that rounding. A weight beyond binary16's range is an
error.`,
		Example: `  diffinv export --checkpoint runs/mnist/checkpoints/step-00006000.safetensors --out models/mnist/model.safetensors
  diffinv export --checkpoint runs/celeba-recipe/run/checkpoints/step-00012000.safetensors --out models/celeba64/model.safetensors --dtype f16`,
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
			if dir := filepath.Dir(out); dir != "" {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return fmt.Errorf("export: --out folder: %w", err)
				}
			}
			if err := train.SaveModelAs(out, c, store); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "exported: %s (EMA weights of step %d, %s)\n", out, c.Step, dtype)
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "checkpoint", "", "training checkpoint to read")
	cmd.Flags().StringVar(&out, "out", "", "model file to write")
	cmd.Flags().StringVar(&dtype, "dtype", "f32", "stored weight type: f32 (exact) or f16 (half the size, rounded)")
	return cmd
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
