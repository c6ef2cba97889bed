"""Writes the goldens of diffinv's model.arch: ddpm (the DDPM UNet of
bench/pytorch/ddpm_unet.py, pesser's pytorch_diffusion `models/diffusion.py`
as in DDIM / SDEdit / DDRM / DDNM) that the Go tests read.

A tiny model (16x16x3, ch 16, ch_mult (1, 2), 1 res block, attention at 8 px,
8 GroupNorm groups, conv resampling) gets seeded random weights (GroupNorm
gains around 1, shifts and biases random, so every parameter matters), random
inputs x, integer timesteps t, a cotangent v and a target, and

    eps     the network output (3 channels: DDPM predicts eps only)
    vjp     v^T d eps / d x
    loss    mean((eps - target)^2)
    grad.*  d loss / d param, for every third parameter and those of temb,
            norm_out and conv_out, under the ORIGINAL DDPM names

The network is evaluated in float64 on the float32 weights and inputs, with
the sinusoidal timestep embedding computed in float32 as the original does;
results are stored as float32.

Files (from the repository root):
    model/testdata/ddpm_tiny.weights.safetensors   state dict, DDPM names
    model/testdata/ddpm_tiny.golden.safetensors    the tensors above
    model/testdata/ddpm_celebahq256.names.txt      name and shape of every
        tensor of the CelebA-HQ 256 model (DDNM's celeba_hq.ckpt), and the count
    engine/torch/testdata/ddpm_tiny.zip.pt         torch.save, zip format
    engine/torch/testdata/ddpm_tiny.legacy.pt      torch.save, legacy format
    engine/torch/testdata/ddpm_tiny.yaml           the diffinv config of both

Run: /usr/bin/python3 bench/pytorch/ddpm_goldens.py [OUTDIR]
(OUTDIR, default the folders above of this checkout, takes all the files.)
"""

import os

import torch as th

import ddpm_unet
import goldens_common as gc

TINY = dict(
    arch="ddpm",
    image_size=16,
    in_channels=3,
    num_channels=16,
    channel_mult=[1, 2],
    num_res_blocks=1,
    attention_resolutions=[8],
    num_heads=1,
    num_head_channels=-1,
    num_groups=8,
    use_scale_shift_norm=False,
    resblock_updown=False,
    conv_resample=True,
    dropout=0.0,
    learn_sigma=False,
)
BATCH, SEED = 2, 7


def yaml_of(cfg):
    lines = ["# Written by bench/pytorch/ddpm_goldens.py: the net of ddpm_tiny.*.pt.", "model:"]
    for k, v in cfg.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        lines.append(f"  {k}: {v}")
    lines += ["data:", "  dataset: folder", "  dir: unused", ""]
    return "\n".join(lines)


def main():
    mdir, tdir = gc.out_dirs(__doc__, "model/testdata", "engine/torch/testdata")
    th.set_num_threads(1)

    th.manual_seed(SEED)
    model = ddpm_unet.from_config(TINY)
    sd = gc.randomise(model, lambda name, p: name.endswith("bias"))
    x, t, v, target = gc.inputs(BATCH, TINY["in_channels"], TINY["image_size"], 100 + SEED)
    golden, loss = gc.golden(
        model.double(), model, x, t, v, target, ("temb.", "norm_out.", "conv_out."), with_out=False
    )
    gc.save(mdir, "ddpm_tiny", sd, golden, TINY, "ddpm-unet-golden")
    th.save(sd, os.path.join(tdir, "ddpm_tiny.zip.pt"))
    th.save(sd, os.path.join(tdir, "ddpm_tiny.legacy.pt"), _use_new_zipfile_serialization=False)
    with open(os.path.join(tdir, "ddpm_tiny.yaml"), "w") as f:
        f.write(yaml_of(TINY))
    gc.report("ddpm_tiny", model, sd, loss)

    big = ddpm_unet.from_config(ddpm_unet.CELEBAHQ256)
    total = sum(p.numel() for p in big.parameters())
    with open(os.path.join(mdir, "ddpm_celebahq256.names.txt"), "w") as f:
        f.write("# Written by bench/pytorch/ddpm_goldens.py: the state dict of the DDPM CelebA-HQ 256 model\n")
        f.write("# (DDNM configs/celeba_hq.yml, SDEdit's celeba_hq.ckpt): name and shape per line.\n")
        f.write(f"# parameters: {total}\n")
        for k, p in big.state_dict().items():
            f.write(k + " " + "x".join(str(d) for d in p.shape) + "\n")
    print(f"ddpm_celebahq256: {total} parameters, {len(big.state_dict())} tensors")


if __name__ == "__main__":
    main()
