//go:build !torch

package main

import (
	"math/rand"

	"github.com/spf13/cobra"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/train"
)

// torchCommands are the commands only torch builds have (import).
func torchCommands() []*cobra.Command { return nil }

func torchDenoiser(string, string) (diffusion.Denoiser, error) { return nil, errNoTorch }

func torchTrainNetwork(string) (func(*config.Config, *rand.Rand) (train.Network, error), error) {
	return nil, errNoTorch
}
