package model

import (
	"fmt"
	"math"
	"strings"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/checkpoint"
	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/internal/tensors"
)

// This file holds what model.arch ddpm adds to guided-diffusion's UNet: the
// DDPM UNet of Ho et al. as ported to PyTorch by pytorch_diffusion
// (`models/diffusion.py` of DDIM, SDEdit, DDRM and DDNM; bench/pytorch/
// ddpm_unet.py is a reference). Its modules are ours one to one, so the
// network keeps guided-diffusion's parameter names and FromDDPM renames a
// DDPM state dict on import. Three details of the function differ, each
// switched on by arch.ddpm: the timestep embedding (ddpmEmbeddingInto),
// Downsample's padding (nn.Pad2d(x, 0, 1, 0, 1), i.e. F.pad(x, (0, 1, 0, 1)),
// before an unpadded stride-2 conv; see builder.layer) and GroupNorm's ε
// (ddpmNormEps).

// ddpmEmbeddingInto writes DDPM's sinusoidal timestep embedding of t into
// dst (float32, len(t)×dim): with half = dim/2 and
// f_i = exp(−ln(10000)·i/(half−1)), row n is [sin(t_n f), cos(t_n f)] (sin
// first), plus a zero column when dim is odd. Like get_timestep_embedding it
// computes the frequencies and the products in float32.
func ddpmEmbeddingInto(dst *tensor.Dense, t []int) error {
	s := dst.Shape()
	d, ok := dst.Data().([]float32)
	if !ok || len(s) != 2 || s[0] != len(t) || s[1] < 4 {
		return fmt.Errorf("model: DDPM timestep embedding into a %v %v tensor, want float32 [%d ≥4]", dst.Dtype(), s, len(t))
	}
	dim := s[1]
	half := dim / 2
	c := -float32(math.Log(10000) / float64(half-1))
	for n, tv := range t {
		row := d[n*dim : (n+1)*dim]
		for i := 0; i < half; i++ {
			freq := float32(math.Exp(float64(float32(i) * c)))
			arg := float64(float32(tv) * freq)
			row[i] = float32(math.Sin(arg))
			row[half+i] = float32(math.Cos(arg))
		}
		if dim%2 == 1 {
			row[dim-1] = 0
		}
	}
	return nil
}

// ddpmTensor is one tensor of a DDPM state dict: its name and shape, and
// where its values go among ours (parameter and element offset: DDPM's q, k
// and v convolutions fill thirds of our qkv).
type ddpmTensor struct {
	name   string
	shape  []int
	target string
	off    int
}

// DDPM's submodule names inside a ResnetBlock and an AttnBlock, by ours.
var (
	ddpmResSub = map[string]string{
		"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "temb_proj",
		"out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "nin_shortcut",
	}
	ddpmAttnSub = map[string]string{"norm": "norm", "proj_out": "proj_out"}
)

// ddpmPlan lists the tensors of the DDPM state dict of a (arch ddpm) in our
// parameter order, with their places among our parameters.
func ddpmPlan(a *arch) ([]ddpmTensor, error) {
	cfg := a.cfg
	levels, nrb := len(cfg.ChannelMult), cfg.NumResBlocks
	// Our module path → DDPM's, for every module with parameters.
	mods := map[string]string{
		"time_embed.0": "temb.dense.0", "time_embed.2": "temb.dense.1",
		"input_blocks.0.0": "conv_in",
		"middle_block.0":   "mid.block_1", "middle_block.1": "mid.attn_1", "middle_block.2": "mid.block_2",
		"out.0": "norm_out", "out.2": "conv_out",
	}
	name := func(l layer, level, blk int, side string) {
		switch l := l.(type) {
		case resBlock:
			mods[l.name] = fmt.Sprintf("%s.%d.block.%d", side, level, blk)
		case attnBlock:
			mods[l.name] = fmt.Sprintf("%s.%d.attn.%d", side, level, blk)
		case downLayer:
			mods[l.name+".op"] = fmt.Sprintf("down.%d.downsample.conv", level)
		case upLayer:
			mods[l.name+".conv"] = fmt.Sprintf("up.%d.upsample.conv", level)
		}
	}
	idx := 1
	for level := 0; level < levels; level++ {
		n := nrb
		if level != levels-1 {
			n++ // the Downsample block
		}
		for b := 0; b < n; b++ {
			for _, l := range a.input[idx] {
				name(l, level, b, "down")
			}
			idx++
		}
	}
	idx = 0
	for level := levels - 1; level >= 0; level-- {
		for b := 0; b <= nrb; b++ {
			for _, l := range a.output[idx] {
				name(l, level, b, "up")
			}
			idx++
		}
	}

	var plan []ddpmTensor
	for _, p := range a.params {
		dot := strings.LastIndexByte(p.Name, '.')
		mod, leaf := p.Name[:dot], p.Name[dot:]
		if d, ok := mods[mod]; ok {
			plan = append(plan, ddpmTensor{d + leaf, p.Shape, p.Name, 0})
			continue
		}
		found := false
		for sub, dsub := range ddpmResSub {
			if blk, ok := strings.CutSuffix(mod, "."+sub); ok && mods[blk] != "" {
				plan = append(plan, ddpmTensor{mods[blk] + "." + dsub + leaf, p.Shape, p.Name, 0})
				found = true
			}
		}
		for sub, dsub := range ddpmAttnSub {
			if blk, ok := strings.CutSuffix(mod, "."+sub); ok && mods[blk] != "" {
				shape := p.Shape
				if sub == "proj_out" && leaf == ".weight" {
					shape = []int{p.Shape[0], p.Shape[1], 1, 1} // Conv2d 1×1, ours Conv1d
				}
				plan = append(plan, ddpmTensor{mods[blk] + "." + dsub + leaf, shape, p.Name, 0})
				found = true
			}
		}
		if blk, ok := strings.CutSuffix(mod, ".qkv"); ok && mods[blk] != "" {
			c := p.Shape[0] / 3
			shape, size := []int{c}, c
			if leaf == ".weight" {
				shape, size = []int{c, c, 1, 1}, c*c
			}
			for i, part := range []string{"q", "k", "v"} {
				plan = append(plan, ddpmTensor{mods[blk] + "." + part + leaf, shape, p.Name, i * size})
			}
			found = true
		}
		if !found {
			return nil, fmt.Errorf("model: internal error: no DDPM name for parameter %s", p.Name)
		}
	}
	return plan, nil
}

// ddpmArch builds the arch of cfg, which must select model.arch ddpm.
func ddpmArch(cfg config.Model) (*arch, error) {
	if !isDDPM(cfg) {
		return nil, fmt.Errorf("model.arch = %q, want %q for a DDPM state dict", cfg.Arch, config.ArchDDPM)
	}
	return newArch(cfg)
}

// DDPMShapes returns the name → shape map of the state dict that the DDPM
// UNet of cfg (model.arch ddpm) has in PyTorch under its original names
// (temb.dense.0, conv_in, down.L.block.B.norm1, down.L.attn.B.q,
// down.L.downsample.conv, mid.block_1, up.L.upsample.conv, norm_out,
// conv_out, ...).
func DDPMShapes(cfg config.Model) (map[string][]int, error) {
	a, err := ddpmArch(cfg)
	if err != nil {
		return nil, err
	}
	plan, err := ddpmPlan(a)
	if err != nil {
		return nil, err
	}
	m := make(map[string][]int, len(plan))
	for _, t := range plan {
		m[t.name] = append([]int(nil), t.shape...)
	}
	return m, nil
}

// LooksLikeDDPM reports whether sd has the DDPM UNet's names (temb.dense.0
// and conv_in) rather than guided-diffusion's.
func LooksLikeDDPM(sd map[string]*tensor.Dense) bool {
	_, temb := sd["temb.dense.0.weight"]
	_, in := sd["conv_in.weight"]
	return temb && in
}

// FromDDPM renames a state dict of the DDPM UNet (original names, float32,
// PyTorch shapes) into the parameters of our UNet of cfg (model.arch ddpm):
// one tensor per DDPM tensor, except that the 1×1 q, k and v convolutions of
// each attention block are concatenated into our qkv and the 1×1 Conv2d
// weights of attention become Conv1d ones. It checks sd against DDPMShapes
// first: the error names every missing, unexpected and misshaped tensor.
func FromDDPM(sd map[string]*tensor.Dense, cfg config.Model) (map[string]*tensor.Dense, error) {
	a, err := ddpmArch(cfg)
	if err != nil {
		return nil, err
	}
	plan, err := ddpmPlan(a)
	if err != nil {
		return nil, err
	}
	want := make(map[string][]int, len(plan))
	for _, t := range plan {
		want[t.name] = t.shape
	}
	if err := checkpoint.Check(sd, want); err != nil {
		return nil, fmt.Errorf("DDPM state dict: %w", err)
	}
	out := make(map[string]*tensor.Dense, len(a.params))
	for _, p := range a.params {
		out[p.Name] = tensor.New(tensor.WithShape(p.Shape...), tensor.Of(tensor.Float32))
	}
	for _, t := range plan {
		src := sd[t.name]
		if src.Dtype() != tensor.Float32 || src.RequiresIterator() {
			return nil, fmt.Errorf("DDPM state dict: %s has dtype %v (or is a view), want a contiguous float32 tensor", t.name, src.Dtype())
		}
		dst := tensors.F32(out[t.target])
		vals := tensors.F32(src)
		if t.off+len(vals) > len(dst) {
			return nil, fmt.Errorf("model: internal error: %s does not fit %s at %d", t.name, t.target, t.off)
		}
		copy(dst[t.off:], vals)
	}
	return out, nil
}
