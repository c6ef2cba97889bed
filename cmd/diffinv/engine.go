package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/model"
)

// errNoTorch is what torch-engine requests get from a default build.
var errNoTorch = errors.New("--engine torch needs a build with libtorch: run `make build-torch` (bin/diffinv built with -tags torch)")

// engineFlags choose the engine that runs the network.
type engineFlags struct {
	name   string // native or torch
	device string // torch only: cpu, cuda, cuda:N
}

func (e *engineFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&e.name, "engine", "native", "network engine: native (Gorgonia) or torch (libtorch; builds with -tags torch)")
	cmd.Flags().StringVar(&e.device, "device", "cpu", "torch engine device: cpu, cuda or cuda:N (CUDA was not tested here)")
}

// denoiser returns the network of the checkpoint at path on the chosen
// engine; net is the native UNet already loaded from it.
func (e *engineFlags) denoiser(path string, net *model.UNet) (diffusion.Denoiser, error) {
	switch e.name {
	case "native", "":
		if e.device != "cpu" && e.device != "" {
			return nil, fmt.Errorf("--device %s: the native engine runs on the CPU only (use --engine torch)", e.device)
		}
		return net, nil
	case "torch":
		return torchDenoiser(path, e.device)
	}
	return nil, fmt.Errorf("--engine %q: want native or torch", e.name)
}
