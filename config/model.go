package config

import (
	"fmt"

	"github.com/diffinv/diffinv/diffusion"
)

// checkArch checks model.arch and the settings the chosen architecture
// supports: "adm" (or empty: checkpoints written before the key existed)
// takes every option; "ddpm" (the DDPM UNet of Ho et al. as in DDIM, SDEdit,
// DDRM and DDNM) has one attention head, additive time conditioning,
// Upsample/Downsample modules, ε output only and conv_in with num_channels
// outputs, so it needs num_heads 1 with num_head_channels -1,
// use_scale_shift_norm, resblock_updown and learn_sigma false,
// channel_mult[0] = 1 and num_channels ≥ 4 (its embedding divides by
// num_channels/2 − 1). Validate calls it; both engines validate with Validate.
func (cfg Model) checkArch() error {
	switch cfg.Arch {
	case "", ArchADM:
		return nil
	case ArchDDPM:
	default:
		return fmt.Errorf("model.arch = %q, want %q (guided-diffusion's UNetModel) or %q (the DDPM UNet)", cfg.Arch, ArchADM, ArchDDPM)
	}
	const pre = "model.arch ddpm"
	switch {
	case cfg.LearnSigma:
		return fmt.Errorf("%s predicts ε only: model.learn_sigma = true, want false", pre)
	case cfg.UseScaleShiftNorm:
		return fmt.Errorf("%s adds the time embedding (no FiLM): model.use_scale_shift_norm = true, want false", pre)
	case cfg.ResblockUpdown:
		return fmt.Errorf("%s resamples with Upsample/Downsample modules: model.resblock_updown = true, want false", pre)
	case cfg.NumHeadChannels != -1 || cfg.NumHeads != 1:
		return fmt.Errorf("%s has one attention head: model.num_heads = %d, num_head_channels = %d, want 1 and -1", pre, cfg.NumHeads, cfg.NumHeadChannels)
	case len(cfg.ChannelMult) > 0 && cfg.ChannelMult[0] != 1:
		return fmt.Errorf("%s: model.channel_mult[0] = %d, want 1 (DDPM's conv_in has num_channels outputs whatever the first multiplier)", pre, cfg.ChannelMult[0])
	case cfg.NumChannels < 4:
		return fmt.Errorf("%s: model.num_channels = %d, want ≥ 4 (its timestep embedding divides by num_channels/2 − 1)", pre, cfg.NumChannels)
	}
	return nil
}

// Validate checks that cfg describes a buildable UNet, for either engine,
// and returns an error naming the first bad field and what was expected.
// Config.Validate calls it for the model section; the engines call it
// before building a network.
func (cfg Model) Validate() error {
	switch {
	case cfg.ImageSize < 1:
		return fmt.Errorf("model.image_size = %d, want ≥ 1", cfg.ImageSize)
	case cfg.InChannels < 1:
		return fmt.Errorf("model.in_channels = %d, want ≥ 1", cfg.InChannels)
	case cfg.NumChannels < 1:
		return fmt.Errorf("model.num_channels = %d, want ≥ 1", cfg.NumChannels)
	case len(cfg.ChannelMult) == 0:
		return fmt.Errorf("model.channel_mult is empty, want one multiplier per level")
	case cfg.NumResBlocks < 1:
		return fmt.Errorf("model.num_res_blocks = %d, want ≥ 1", cfg.NumResBlocks)
	case cfg.NumGroups < 1:
		return fmt.Errorf("model.num_groups = %d, want ≥ 1", cfg.NumGroups)
	case cfg.Dropout < 0 || cfg.Dropout >= 1:
		return fmt.Errorf("model.dropout = %v, want in [0, 1)", cfg.Dropout)
	case cfg.NumHeadChannels == 0 || cfg.NumHeadChannels < -1:
		return fmt.Errorf("model.num_head_channels = %d, want -1 (use num_heads) or ≥ 1", cfg.NumHeadChannels)
	case cfg.NumHeadChannels == -1 && cfg.NumHeads < 1:
		return fmt.Errorf("model.num_heads = %d, want ≥ 1", cfg.NumHeads)
	}
	if cfg.NumChannels%2 != 0 {
		return fmt.Errorf("model.num_channels = %d, want an even number (the sinusoidal embedding has cos and sin halves)", cfg.NumChannels)
	}
	levels := len(cfg.ChannelMult)
	if div := 1 << (levels - 1); cfg.ImageSize%div != 0 {
		return fmt.Errorf("model.image_size = %d, want it divisible by %d (2^%d, for %d levels of channel_mult)", cfg.ImageSize, div, levels-1, levels)
	}
	for i, m := range cfg.ChannelMult {
		if m < 1 {
			return fmt.Errorf("model.channel_mult[%d] = %d, want ≥ 1", i, m)
		}
		if ch := m * cfg.NumChannels; ch%cfg.NumGroups != 0 {
			return fmt.Errorf("model.num_groups = %d does not divide the %d channels of level %d (channel_mult[%d]·num_channels)", cfg.NumGroups, ch, i, i)
		}
		if cfg.NumHeadChannels > 0 && (m*cfg.NumChannels)%cfg.NumHeadChannels != 0 {
			return fmt.Errorf("model.num_head_channels = %d does not divide the %d channels of level %d", cfg.NumHeadChannels, m*cfg.NumChannels, i)
		}
		if cfg.NumHeadChannels == -1 && (m*cfg.NumChannels)%cfg.NumHeads != 0 {
			return fmt.Errorf("model.num_heads = %d does not divide the %d channels of level %d", cfg.NumHeads, m*cfg.NumChannels, i)
		}
	}
	for _, r := range cfg.AttentionResolutions {
		ok := false
		for l := 0; l < levels; l++ {
			if cfg.ImageSize>>l == r {
				ok = true
			}
		}
		if !ok {
			return fmt.Errorf("model.attention_resolutions holds %d, want one of the level sides %v", r, cfg.levelSides())
		}
	}
	return cfg.checkArch()
}

func (cfg Model) levelSides() []int {
	s := make([]int, len(cfg.ChannelMult))
	for l := range s {
		s[l] = cfg.ImageSize >> l
	}
	return s
}

// NewSchedule builds the β schedule d describes (diffusion.NewSchedule; the
// cosine schedule ignores beta_start and beta_end).
func (d Diffusion) NewSchedule() (*diffusion.Schedule, error) {
	b0, b1 := d.BetaStart, d.BetaEnd
	if d.Schedule == diffusion.Cosine {
		b0, b1 = 0, 0
	}
	s, err := diffusion.NewSchedule(d.Schedule, d.Steps, b0, b1)
	if err != nil {
		return nil, fmt.Errorf("config: diffusion: %w", err)
	}
	return s, nil
}
