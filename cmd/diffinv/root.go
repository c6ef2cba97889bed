package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"

	"github.com/diffinv/diffinv/config"
)

// configFlags are the flags every config-driven command shares.
type configFlags struct {
	file    string
	sets    []string
	presets []config.Preset // task presets, below the file
	binds   []flagKey       // flags that set config keys when given (bind)
}

// add registers --config and --set on cmd.
func (f *configFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.file, "config", "c", "", "YAML config file (see configs/)")
	cmd.Flags().StringArrayVar(&f.sets, "set", nil, "override a config key, key=value (repeatable; beats DIFFINV_* env vars and the file)")
}

// load merges defaults, the file, DIFFINV_* variables and --set values.
func (f *configFlags) load() (*config.Config, error) {
	return config.Load(f.sources())
}

// sources are the layers the flags name: presets, --config, the process
// environment (DIFFINV_*) and --set.
func (f *configFlags) sources() config.Sources {
	return config.Sources{Presets: f.presets, File: f.file, Env: os.Environ(), Sets: f.sets}
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
	// --cpuprofile FILE writes a Go CPU profile of any command (go tool
	// pprof bin/diffinv FILE): where a run's time goes, C kernels included
	// as cgo calls.
	var profile string
	var profFile *os.File
	root.PersistentFlags().StringVar(&profile, "cpuprofile", "", "write a CPU profile of the command to this file (go tool pprof)")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if profile == "" {
			return nil
		}
		f, err := os.Create(profile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		profFile = f
		return pprof.StartCPUProfile(f)
	}
	root.PersistentPostRunE = func(*cobra.Command, []string) error {
		if profFile == nil {
			return nil
		}
		pprof.StopCPUProfile()
		return profFile.Close()
	}
	root.AddCommand(newVersionCmd(), newConfigCmd(), newSampleCmd(), newBenchCmd(), newTrainCmd(), newSolveCmd(), newMeasureCmd(), newDemoCmd(), newExperimentCmd(), newTrainClassifierCmd(), newTrainAttrClassifierCmd(), newEvalCmd(), newExportCmd())
	root.AddCommand(torchCommands()...)
	return root
}
