package main

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/diffinv/diffinv/config"
)

// Flags that stand for config keys set them only when given: every such
// flag is bound to its key (configFlags.bind) and applyFlags appends
// key=value after --set for each bound flag the user passed
// (cmd.Flags().Changed). A flag that was not passed never overrides the
// config, whatever its default: a command's own defaults live in the config
// defaults or in a preset layer below the file (eval samples' protocol,
// demo's solver steps, train-attr-classifier's CelebA settings). The layers,
// lowest first: defaults (or a checkpoint's run config), presets, --config,
// DIFFINV_*, --set, flags given.

// flagKey binds a flag to the config key it sets.
type flagKey struct{ flag, key string }

// bind records that the flag named flag sets key when given.
func (f *configFlags) bind(flag, key string) {
	f.binds = append(f.binds, flagKey{flag, key})
}

// applyFlags appends key=value to the --set values for every bound flag
// given on cmd's command line, in binding order; it must run once, before
// the config is loaded.
func (f *configFlags) applyFlags(cmd *cobra.Command) {
	for _, b := range f.binds {
		fl := cmd.Flags().Lookup(b.flag)
		if fl == nil || !fl.Changed {
			continue
		}
		v := fl.Value.String()
		if fl.Value.Type() == "string" {
			v = strconv.Quote(v) // a YAML double-quoted scalar: "123" or "a: b" stay strings
		}
		f.sets = append(f.sets, b.key+"="+v)
	}
}

// seedUsage is --seed's help in every command: one sentence, with what
// it sets in parentheses.
func seedUsage(sets string) string {
	return "seed of the command's random draws (" + sets + ")"
}

// addSeed registers --seed on cmd, bound to key: the config key that seeds
// the command's random draws (sample.seed, train.seed, solver.seed,
// classifier.seed; README, "The command line").
func (f *configFlags) addSeed(cmd *cobra.Command, key string) {
	var seed int64
	cmd.Flags().Int64Var(&seed, "seed", 0, seedUsage("sets "+key+"; default: the config's"))
	f.bind("seed", key)
}

// configHook, when set (by tests), sees every config a command loads,
// after all its layers and before any work; an error it returns ends the
// command with that error.
var configHook func(cmd *cobra.Command, cfg *config.Config) error

// loaded runs configHook on cfg.
func loaded(cmd *cobra.Command, cfg *config.Config) error {
	if configHook == nil {
		return nil
	}
	if err := configHook(cmd, cfg); err != nil {
		return fmt.Errorf("%s: %w", cmd.CommandPath(), err)
	}
	return nil
}
