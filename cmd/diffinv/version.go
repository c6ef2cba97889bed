package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/internal/blas"
	"github.com/diffinv/diffinv/nn"
)

// version is set at link time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print diffinv's version, build information, the precision auto picks here and the BLAS",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "diffinv %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, d := range bi.Deps {
					switch d.Path {
					case "gorgonia.org/gorgonia", "gorgonia.org/tensor", "github.com/sugarme/gotch":
						fmt.Fprintf(out, "  %s %s\n", d.Path, d.Version)
					}
				}
			}
			// What engine.precision auto picks on this machine, and why.
			if _, why, err := nn.ResolvePrecision(config.PrecisionAuto); err != nil {
				fmt.Fprintf(out, "precision: auto: %v\n", err)
			} else {
				fmt.Fprintf(out, "precision: %s\n", why)
			}
			fmt.Fprintf(out, "blas: %s\n", blas.Info())
			return nil
		},
	}
}
