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

Run from the repository root: /usr/bin/python3 bench/pytorch/unet_goldens.py
"""

import json
import os
import sys

import torch as th

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import unet  # noqa: E402

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
    with th.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("weight") and p.ndim == 1:  # GroupNorm gain
                p.copy_(1 + 0.2 * th.randn_like(p))
            elif p.abs().max() == 0:  # zero_module'd convs, GroupNorm shift
                p.copy_(0.1 * th.randn_like(p))
    model.eval()
    sd = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}

    n, c, s = cfg["batch"], cfg["in_channels"], cfg["image_size"]
    g = th.Generator().manual_seed(100 + cfg["seed"])
    x = th.randn(n, c, s, s, generator=g)
    t = th.randint(0, 1000, (n,), generator=g)
    v = th.randn(n, c, s, s, generator=g)
    target = th.randn(n, c, s, s, generator=g)

    m64 = F32Embedding(model.double())
    x64 = x.double().requires_grad_(True)
    out = m64(x64, t)
    eps = out[:, :c]
    (vjp,) = th.autograd.grad((eps * v.double()).sum(), x64, retain_graph=True)
    loss = ((eps - target.double()) ** 2).mean()
    params = dict(model.named_parameters())
    grads = th.autograd.grad(loss, list(params.values()))

    golden = {
        "x": x,
        "t": t.float(),
        "v": v,
        "target": target,
        "out": out.detach().float(),
        "eps": eps.detach().float(),
        "vjp": vjp.float(),
        "loss": loss.detach().float().reshape(1),
    }
    for i, (pname, gr) in enumerate(zip(params, grads)):
        if i % 3 == 0 or pname.startswith(("time_embed.", "out.")):
            golden["grad." + pname] = gr.float()

    meta = {"config": json.dumps(mcfg, sort_keys=True), "format": "diffinv-unet-golden"}
    unet.save_safetensors(os.path.join(outdir, name + ".weights.safetensors"), sd, meta)
    unet.save_safetensors(os.path.join(outdir, name + ".golden.safetensors"), golden, meta)
    nparam = sum(p.numel() for p in model.parameters())
    print(f"{name}: {nparam} parameters, {len(sd)} tensors, loss {loss.item():.6f}")


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "model/testdata"
    os.makedirs(outdir, exist_ok=True)
    th.set_num_threads(1)
    for name, cfg in CONFIGS.items():
        make(name, cfg, outdir)


if __name__ == "__main__":
    main()
