//go:build torch

// Package torch is diffinv's second engine: guided-diffusion's UNet built
// from a config.Model with gotch (github.com/sugarme/gotch v0.7.0) and run on
// libtorch, on the CPU here and on CUDA where a CUDA libtorch is installed
// (not tested on this project's machines).
//
// The parameter names are guided-diffusion's state-dict names (the
// PyTorch reference is bench/pytorch/unet.py), so PyTorch checkpoints map
// one to one (see Import) and the native engine's checkpoints load
// unchanged. With model.arch ddpm the network computes the DDPM UNet
// (pytorch_diffusion's Model, bench/pytorch/ddpm_unet.py), and Import renames
// such a state dict's names (ConvertStateDict, model.FromDDPM). UNet implements diffusion.Denoiser: Eps runs without autograd;
// EpsVJP gives x_t requires_grad and backpropagates Σ ε·v.
//
// The package builds only with the build tag `torch` and the cgo flags that
// `make setup-torch` writes (scripts/torch/setup.sh): gotch v0.7.0 targets
// libtorch 1.11, and a forced compatibility header makes it compile against
// Debian 12's libtorch 1.13.1.
//
// gotch v0.7.0 frees libtorch tensors only by hand, and libtorch's grad mode
// and gotch's last-error slot are per OS thread: every method runs locked to
// one OS thread and frees every intermediate it creates. A UNet serialises
// its calls with a mutex; Close frees its parameters.
package torch
