// Package model is diffinv's UNet: guided-diffusion's UNetModel (the
// network behind the DPS and DDNM checkpoints) as a Gorgonia graph built
// from the fast ops of package nn, with guided-diffusion's parameter names
// (time_embed, input_blocks, middle_block, output_blocks, out) so that a
// PyTorch state dict maps onto it name by name.
//
// A UNet holds its parameters in one name → tensor map shared by all its
// graphs; a graph is built once per batch size and purpose (forward, VJP,
// training) and reused, with a TapeMachine reset before every run. The UNet
// is a diffusion.Denoiser: Eps runs the forward graph, EpsVJP returns
// vᵀ ∂ε/∂x_t by reverse-mode autodiff through the graph, what DPS needs.
// EpsPullback (inverse/solve.Pullbacker) runs the VJP graph's forward part
// once and returns ε with a function that runs only its backward part for
// each v, so a guided step costs one forward pass (pullback.go).
//
// SetPrecision(nn.BF16) rebuilds the graphs in bf16 mixed precision: the
// convolutions run on oneDNN's AMX kernels with float32 master weights and
// accumulation, and the graph keeps its activations channels-last (N×H×W×C)
// between a transposition of the input and one of the output, so that no
// convolution reorders its activations (ops.go picks each op's layout).
// Eps, EpsVJP and EpsPullback take and return NCHW float32 in both.
//
// Checkpoints are safetensors files (package checkpoint) holding the
// parameters and, under the metadata key "config", the model config as JSON
// with config.Model's YAML keys, so a checkpoint alone rebuilds its network.
//
// With model.arch ddpm the same modules compute the DDPM UNet of Ho et al.
// (pytorch_diffusion's Model, as in DDIM, SDEdit, DDRM and DDNM): DDPM's
// timestep embedding, Downsample padding and GroupNorm ε (ddpm.go).
// FromDDPM renames such a state dict onto our names; config.Model.Validate lists the
// settings the variant supports.
//
// bench/pytorch/unet.py and bench/pytorch/ddpm_unet.py are the PyTorch
// references of the two networks; bench/pytorch/unet_goldens.py and
// ddpm_goldens.py write the goldens in testdata that the tests compare
// against.
package model
