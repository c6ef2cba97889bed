package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/diffinv/diffinv/config"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Inspect configuration",
	}
	var cf configFlags
	var flat bool
	print := &cobra.Command{
		Use:   "print",
		Short: "Print the merged config (defaults < file < DIFFINV_* env < --set) as YAML",
		Example: `  diffinv config print --config configs/mnist.yaml --set train.lr=0.0005
  diffinv config print --flat | grep train.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := cf.load()
			if err != nil {
				return err
			}
			if flat {
				fmt.Fprintln(cmd.OutOrStdout(), strings.Join(cfg.Flat(), "\n"))
				return nil
			}
			b, err := cfg.YAML()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	cf.add(print)
	print.Flags().BoolVar(&flat, "flat", false, "print one dotted key: value per line")
	keys := &cobra.Command{
		Use:   "keys",
		Short: "List every config key and its DIFFINV_* environment variable",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, k := range config.Keys() {
				fmt.Fprintf(cmd.OutOrStdout(), "%-36s %s_%s\n", k, config.EnvPrefix, strings.ToUpper(strings.ReplaceAll(k, ".", "_")))
			}
			return nil
		},
	}
	cmd.AddCommand(print, keys)
	return cmd
}
