package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/diffinv/diffinv/train"
)

func newExportCmd() *cobra.Command {
	var from, out string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write a training checkpoint's EMA weights as a model file",
		Long: `Reads a training checkpoint (checkpoints/step-NNNNNNNN.safetensors of a
diffinv train run: weights, EMA, Adam state) and writes its EMA weights with
the run config as a model file, the small file that sample, solve, eval and
--init take: what the run writes as model.safetensors, for any kept step.`,
		Example: `  diffinv export --checkpoint runs/mnist/checkpoints/step-00006000.safetensors --out models/mnist/model.safetensors`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
			if err := train.SaveModel(out, c); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "exported: %s (EMA weights of step %d)\n", out, c.Step)
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "checkpoint", "", "training checkpoint to read")
	cmd.Flags().StringVar(&out, "out", "", "model file to write")
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
