package model_test

import (
	"fmt"
	"math/rand"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/model"
)

// A UNet from a config, as a denoiser: ε for a batch, then ε and the
// vector–Jacobian product DPS needs.
func ExampleNew() {
	cfg := config.Model{
		ImageSize: 16, InChannels: 1, NumChannels: 16, ChannelMult: []int{1, 2},
		NumResBlocks: 1, AttentionResolutions: []int{8}, NumHeads: 1, NumHeadChannels: -1,
		NumGroups: 8, UseScaleShiftNorm: true, ConvResample: true,
	}
	rng := rand.New(rand.NewSource(1))
	u, err := model.New(cfg, rng)
	if err != nil {
		fmt.Println(err)
		return
	}
	x := tensors.Randn(rng, 4, 1, 16, 16)
	t := []int{0, 250, 500, 999}
	eps, err := u.Eps(x, t)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, vjp, err := u.EpsVJP(x, t, tensors.Randn(rng, 4, 1, 16, 16))
	if err != nil {
		fmt.Println(err)
		return
	}
	// PyTorch counts 190369 parameters for this config too
	// (bench/pytorch/unet.py from_config).
	fmt.Println(u.NumParams(), "parameters; first:", u.ParamSpecs()[0].Name)
	fmt.Println("eps", eps.Shape(), "vjp", vjp.Shape())
	// Output:
	// 190369 parameters; first: time_embed.0.weight
	// eps (4, 1, 16, 16) vjp (4, 1, 16, 16)
}
