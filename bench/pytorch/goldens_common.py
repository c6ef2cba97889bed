"""Scaffolding shared by the golden scripts of bench/pytorch.

unet_goldens.py, ddpm_goldens.py and ops_goldens.py use it for their command
line (an optional OUTDIR that takes every file instead of the repository's
testdata folders) and for where the files go; the two UNet scripts also for
the golden recipe they share: seeded random parameters, seeded inputs, the
float64 evaluation (output, eps, vjp, loss, parameter gradients) and the
safetensors pair <name>.weights.safetensors / <name>.golden.safetensors.

Changing anything here changes committed goldens: regenerate into a temporary
OUTDIR and compare with the files in the repository (cmp).
"""

import argparse
import json
import os
import sys

import torch as th

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
import unet  # noqa: E402  (safetensors writer)


def out_dirs(doc, *repo_dirs, argv=None):
    """Parses the command line [OUTDIR] and returns one folder per entry of
    repo_dirs (paths relative to the repository root): each of them, or
    OUTDIR for all when given. The folders are created."""
    ap = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    ap.add_argument(
        "outdir",
        nargs="?",
        help="write every file here instead of " + ", ".join(repo_dirs) + " of this checkout",
    )
    a = ap.parse_args(argv)
    dirs = [a.outdir if a.outdir else os.path.join(ROOT, d) for d in repo_dirs]
    for d in dirs:
        os.makedirs(d, exist_ok=True)
    return dirs


def randomise(model, shift):
    """Gives every parameter a say: GroupNorm gains (1-D weights) become
    1 + 0.2 N(0, 1), parameters for which shift(name, p) holds 0.1 N(0, 1),
    drawn from the global generator in named_parameters order. Puts the model
    in eval mode and returns its float32 state dict."""
    with th.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight") and p.ndim == 1:  # GroupNorm gain
                p.copy_(1 + 0.2 * th.randn_like(p))
            elif shift(name, p):
                p.copy_(0.1 * th.randn_like(p))
    model.eval()
    return {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}


def inputs(n, c, s, seed):
    """x, integer timesteps t, a cotangent v and a target, from a generator
    seeded with seed."""
    g = th.Generator().manual_seed(seed)
    x = th.randn(n, c, s, s, generator=g)
    t = th.randint(0, 1000, (n,), generator=g)
    v = th.randn(n, c, s, s, generator=g)
    target = th.randn(n, c, s, s, generator=g)
    return x, t, v, target


def golden(model, forward, x, t, v, target, grad_prefixes, with_out):
    """Evaluates forward (the float64 model, or a wrapper of it) at x, t and
    returns (tensors, loss): x, t, v, target, eps (the first C channels of the
    output), vjp = v^T d eps / d x, loss = mean((eps - target)^2) and grad.<name>
    of every third parameter of model and of those under grad_prefixes; out
    (the whole output) too when with_out. Stored as float32."""
    c = x.shape[1]
    x64 = x.double().requires_grad_(True)
    out = forward(x64, t)
    eps = out[:, :c]
    (vjp,) = th.autograd.grad((eps * v.double()).sum(), x64, retain_graph=True)
    loss = ((eps - target.double()) ** 2).mean()
    params = dict(model.named_parameters())
    grads = th.autograd.grad(loss, list(params.values()))

    g = {"x": x, "t": t.float(), "v": v, "target": target}
    if with_out:
        g["out"] = out.detach().float()
    g["eps"] = eps.detach().float()
    g["vjp"] = vjp.float()
    g["loss"] = loss.detach().float().reshape(1)
    for i, (pname, gr) in enumerate(zip(params, grads)):
        if i % 3 == 0 or pname.startswith(grad_prefixes):
            g["grad." + pname] = gr.float()
    return g, loss


def save(outdir, name, sd, tensors, cfg, fmt):
    """Writes <name>.weights.safetensors (sd) and <name>.golden.safetensors
    (tensors), both with the config as JSON and fmt in their metadata."""
    meta = {"config": json.dumps(cfg, sort_keys=True), "format": fmt}
    unet.save_safetensors(os.path.join(outdir, name + ".weights.safetensors"), sd, meta)
    unet.save_safetensors(os.path.join(outdir, name + ".golden.safetensors"), tensors, meta)


def report(name, model, sd, loss):
    nparam = sum(p.numel() for p in model.parameters())
    print(f"{name}: {nparam} parameters, {len(sd)} tensors, loss {loss.item():.6f}")
