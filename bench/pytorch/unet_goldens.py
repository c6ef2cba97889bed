"""Writes the UNet goldens in model/testdata that diffinv's model tests read.

For each small config below: seeded random weights (the zero-initialised
output convolutions and the GroupNorm affines are randomised too, so every
parameter matters and every gradient is informative), random inputs x and
integer timesteps t, and

    out     the full network output (2C channels when learn_sigma)
    eps     its first C channels
    vjp     v^T d eps / d x for a random v
    grad.*  d loss / d param for loss = mean((eps - target)^2), for every
            third parameter and those of time_embed and out (size budget)

The network is evaluated in float64 (weights, x, v and target are float32
values, so the float64 model computes the exact function of those values) with
the timestep embedding computed in float32 as guided-diffusion does; the
results are stored as float32. Dropout is off (eval mode).

Files: model/testdata/<name>.weights.safetensors (the state dict, the config
in __metadata__["config"] as JSON with config.Model's YAML keys) and
model/testdata/<name>.golden.safetensors.

Run: /usr/bin/python3 bench/pytorch/unet_goldens.py [OUTDIR]
(OUTDIR, default model/testdata of this checkout, takes all the files.)
"""

import torch as th

import goldens_common as gc
import unet

CONFIGS = {
    # scale-shift norm, conv resampling, attention at 8 px with 2 heads, 1 channel.
    "tiny_a": dict(
        image_size=16,
        in_channels=1,
        num_channels=8,
        channel_mult=[1, 2],
        num_res_blocks=1,
        attention_resolutions=[8],
        num_heads=2,
        num_head_channels=-1,
        num_groups=4,
        use_scale_shift_norm=True,
        resblock_updown=False,
        conv_resample=True,
        dropout=0.1,
        learn_sigma=False,
        batch=2,
        seed=1,
    ),
    # additive embedding, ResBlock up/down, head channels, learned sigma, RGB.
    "tiny_b": dict(
        image_size=8,
        in_channels=3,
        num_channels=8,
        channel_mult=[1, 2, 2],
        num_res_blocks=2,
        attention_resolutions=[4],
        num_heads=1,
        num_head_channels=4,
        num_groups=4,
        use_scale_shift_norm=False,
        resblock_updown=True,
        conv_resample=True,
        dropout=0.0,
        learn_sigma=True,
        batch=2,
        seed=2,
    ),
    # plain nearest upsample and average-pool downsample (conv_resample false),
    # attention only in the middle block.
    "tiny_c": dict(
        image_size=8,
        in_channels=1,
        num_channels=8,
        channel_mult=[1, 2],
        num_res_blocks=1,
        attention_resolutions=[],
        num_heads=1,
        num_head_channels=-1,
        num_groups=4,
        use_scale_shift_norm=True,
        resblock_updown=False,
        conv_resample=False,
        dropout=0.0,
        learn_sigma=False,
        batch=3,
        seed=3,
    ),
}


class F32Embedding(th.nn.Module):
    """Wraps a float64 model so its timestep embedding is computed in float32."""

    def __init__(self, model):
        super().__init__()
        self.m = model

    def forward(self, x, t):
        m = self.m
        emb32 = unet.timestep_embedding(t, m.model_channels)
        emb = m.time_embed(emb32.double())
        hs = []
        h = x
        for module in m.input_blocks:
            h = module(h, emb)
            hs.append(h)
        h = m.middle_block(h, emb)
        for module in m.output_blocks:
            h = th.cat([h, hs.pop()], dim=1)
            h = module(h, emb)
        return m.out(h)


def make(name, cfg, outdir):
    th.manual_seed(cfg["seed"])
    mcfg = {k: v for k, v in cfg.items() if k not in ("batch", "seed")}
    model = unet.from_config(mcfg)
    # zero_module'd convs and GroupNorm shifts start at 0: randomise them too.
    sd = gc.randomise(model, lambda pname, p: p.abs().max() == 0)
    x, t, v, target = gc.inputs(cfg["batch"], cfg["in_channels"], cfg["image_size"], 100 + cfg["seed"])
    golden, loss = gc.golden(
        model.double(), F32Embedding(model), x, t, v, target, ("time_embed.", "out."), with_out=True
    )
    gc.save(outdir, name, sd, golden, mcfg, "diffinv-unet-golden")
    gc.report(name, model, sd, loss)


def main():
    (outdir,) = gc.out_dirs(__doc__, "model/testdata")
    th.set_num_threads(1)
    for name, cfg in CONFIGS.items():
        make(name, cfg, outdir)


if __name__ == "__main__":
    main()
