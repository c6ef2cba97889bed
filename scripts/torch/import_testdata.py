"""Writes engine/torch/testdata: a small guided-diffusion state dict saved by
PyTorch in both torch.save formats, plus PyTorch's output on fixed inputs.

Files:
  tiny.yaml            the diffinv model config (model section) of the net
  tiny.zip.pt          state dict, torch.save default (zip) format
  tiny.legacy.pt       state dict, _use_new_zipfile_serialization=False
  tiny.half.pt         the same state dict in float16 (zip format)
  tiny.golden.safetensors  x, t and PyTorch's float32 output `out`
  views.pt             {"state_dict": {...}, "step": 3} in pickle protocol 4:
                       views of one storage (offset, transposed strides) and
                       float16 values below float16's smallest normal

The net uses every module kind the import must name: attention (by head
count), scale-shift ResBlocks, ResBlock up/down, learned sigma, RGB.

Run from the repository root with Debian's python3-torch:
  /usr/bin/python3 scripts/torch/import_testdata.py
"""

import os
import sys

import torch as th

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "pytorch"))
import unet  # noqa: E402

CFG = dict(
    image_size=8,
    in_channels=3,
    num_channels=4,
    channel_mult=[1, 2],
    num_res_blocks=1,
    attention_resolutions=[4],
    num_heads=2,
    num_head_channels=-1,
    num_groups=2,
    use_scale_shift_norm=True,
    resblock_updown=True,
    conv_resample=True,
    dropout=0.0,
    learn_sigma=True,
)


def main():
    out = "engine/torch/testdata"
    os.makedirs(out, exist_ok=True)
    th.manual_seed(7)
    model = unet.from_config(CFG)
    with th.no_grad():
        for name, p in model.named_parameters():
            if p.abs().max() == 0:  # zero_module'd convs and GroupNorm shifts
                p.copy_(0.1 * th.randn_like(p))
            if name.endswith("weight") and p.ndim == 1:
                p.copy_(1 + 0.2 * th.randn_like(p))
    model.eval()
    sd = model.state_dict()
    th.save(sd, os.path.join(out, "tiny.zip.pt"))
    th.save(sd, os.path.join(out, "tiny.legacy.pt"), _use_new_zipfile_serialization=False)
    th.save({k: v.half() for k, v in sd.items()}, os.path.join(out, "tiny.half.pt"))

    g = th.Generator().manual_seed(8)
    x = th.randn(2, CFG["in_channels"], CFG["image_size"], CFG["image_size"], generator=g)
    t = th.tensor([17, 901])
    with th.no_grad():
        y = model(x, t)
    unet.save_safetensors(
        os.path.join(out, "tiny.golden.safetensors"),
        {"x": x, "t": t.float(), "out": y},
        {"format": "diffinv-import-golden"},
    )
    with open(os.path.join(out, "tiny.yaml"), "w") as f:
        f.write("# Written by scripts/torch/import_testdata.py: the net of tiny.*.pt.\nmodel:\n")
        for k, v in CFG.items():
            f.write(f"  {k}: {str(v).lower() if isinstance(v, bool) else v}\n")
        # config.Load checks the data section against the model (RGB, 8 px).
        f.write("data:\n  dataset: folder\n  dir: unused\n")
    base = th.arange(24, dtype=th.float32).reshape(2, 3, 4)
    views = {
        "a": base,
        "t": base.transpose(0, 2),
        "s": base[1],
        "h": th.tensor([1e-5, -2.5, 3e-7], dtype=th.float16),
    }
    th.save({"state_dict": views, "step": 3}, os.path.join(out, "views.pt"), pickle_protocol=4)
    print("wrote", out, sum(p.numel() for p in model.parameters()), "parameters")


if __name__ == "__main__":
    main()
