package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/model"
	"github.com/diffinv/diffinv/prior"
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
// engine; net is the native UNet already loaded from it and cfg the run's
// config. It first resolves the precision (engine.precision, set by
// --precision) for the engine, sets it on net and prints the precision line
// to w: the torch engine runs float32 only.
func (e *engineFlags) denoiser(path string, net *model.UNet, cfg *config.Config, prec *precisionFlag, w io.Writer) (diffusion.Denoiser, error) {
	switch e.name {
	case "native", "":
		if e.device != "cpu" && e.device != "" {
			return nil, fmt.Errorf("--device %s: the native engine runs on the CPU only (use --engine torch)", e.device)
		}
		if _, _, err := prec.use(w, cfg, e.name, net); err != nil {
			return nil, err
		}
		return net, nil
	case "torch":
		if _, _, err := prec.use(w, cfg, e.name, net); err != nil {
			return nil, err
		}
		if st, err := os.Stat(path); err == nil && st.IsDir() {
			path = filepath.Join(path, prior.ModelFile)
		}
		return torchDenoiser(path, e.device)
	}
	return nil, fmt.Errorf("--engine %q: want native or torch", e.name)
}
