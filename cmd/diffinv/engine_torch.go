//go:build torch

package main

import (
	"math/rand"

	"github.com/spf13/cobra"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/diffusion"
	torchengine "github.com/diffinv/diffinv/engine/torch"
	"github.com/diffinv/diffinv/train"
)

// torchCommands are the commands only torch builds have (import).
func torchCommands() []*cobra.Command { return []*cobra.Command{newImportCmd()} }

func torchDenoiser(path, device string) (diffusion.Denoiser, error) {
	return torchengine.FromCheckpoint(path, torchengine.Options{Device: device})
}

func torchTrainNetwork(device string) (func(*config.Config, *rand.Rand) (train.Network, error), error) {
	return func(cfg *config.Config, rng *rand.Rand) (train.Network, error) {
		// libtorch runs the network in float32 (no autocast): an explicit
		// bf16 is refused here too, not silently run in fp32.
		if cfg.Engine.Precision == config.PrecisionBF16 {
			return nil, errTorchFP32
		}
		t, err := torchengine.NewTrainer(cfg.Model, rng, torchengine.Options{Device: device})
		if err != nil {
			return nil, err // not a typed nil inside the interface
		}
		return t, nil
	}, nil
}
