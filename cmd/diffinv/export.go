package main

import (
	"fmt"

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
			c, err := train.LoadCheckpoint(from)
			if err != nil {
				return fmt.Errorf("export: %w", err)
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
