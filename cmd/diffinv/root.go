package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/diffinv/diffinv/config"
)

// configFlags are the flags every config-driven command shares.
type configFlags struct {
	file    string
	sets    []string
	presets []config.Preset // task presets, below the file
}

// add registers --config and --set on cmd.
func (f *configFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.file, "config", "c", "", "YAML config file (see configs/)")
	cmd.Flags().StringArrayVar(&f.sets, "set", nil, "override a config key, key=value (repeatable; beats DIFFINV_* env vars and the file)")
}

// load merges defaults, the file, DIFFINV_* variables and --set values.
func (f *configFlags) load() (*config.Config, error) {
	return config.Load(config.Sources{Presets: f.presets, File: f.file, Env: os.Environ(), Sets: f.sets})
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "diffinv",
		Short: "Diffusion models and the inverse problems they solve",
		Long: `diffinv trains small DDPMs, samples them (DDPM, DDIM, score SDEs, Langevin,
probability-flow ODE) and solves inverse problems y = A(x) + n with them.

Configuration: every key can be set in a YAML file (--config), by an
environment variable DIFFINV_<SECTION>_<KEY>, or by --set section.key=value,
with precedence --set > environment > file > defaults.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newVersionCmd(), newConfigCmd(), newSampleCmd(), newBenchCmd(), newTrainCmd(), newSolveCmd(), newMeasureCmd(), newDemoCmd(), newExperimentCmd(), newTrainClassifierCmd(), newEvalCmd(), newExportCmd())
	root.AddCommand(torchCommands()...)
	return root
}
