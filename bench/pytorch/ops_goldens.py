#!/usr/bin/env python3
"""Goldens for diffinv's nn ops, computed by PyTorch (Debian's python3-torch).

For each case: small random float32 inputs, the op's output, and the
gradients of the random projection loss sum(out * r) w.r.t. every input.
Written to nn/testdata/ops_goldens.json; the Go tests in nn/ compare against
it without Python. Run:

    /usr/bin/python3 bench/pytorch/ops_goldens.py [OUTDIR]

(OUTDIR, default nn/testdata of this checkout, takes the file.)

The attention classes are guided-diffusion's QKVAttentionLegacy and
QKVAttention (openai/guided-diffusion, unet.py), the embedding its
timestep_embedding (nn.py), verbatim in substance.
"""
import json
import math
import os

import torch as th
import torch.nn.functional as F

import goldens_common as gc

(outdir,) = gc.out_dirs(__doc__, "nn/testdata")
th.manual_seed(0)
th.set_num_threads(1)


def timestep_embedding(timesteps, dim, max_period=10000):
    half = dim // 2
    freqs = th.exp(-math.log(max_period) * th.arange(start=0, end=half, dtype=th.float32) / half)
    args = timesteps[:, None].float() * freqs[None]
    embedding = th.cat([th.cos(args), th.sin(args)], dim=-1)
    if dim % 2:
        embedding = th.cat([embedding, th.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


def qkv_attention_legacy(qkv, n_heads):
    bs, width, length = qkv.shape
    ch = width // (3 * n_heads)
    q, k, v = qkv.reshape(bs * n_heads, ch * 3, length).split(ch, dim=1)
    scale = 1 / math.sqrt(math.sqrt(ch))
    weight = th.einsum("bct,bcs->bts", q * scale, k * scale)
    weight = th.softmax(weight.float(), dim=-1).type(weight.dtype)
    a = th.einsum("bts,bcs->bct", weight, v)
    return a.reshape(bs, -1, length)


def qkv_attention(qkv, n_heads):
    bs, width, length = qkv.shape
    ch = width // (3 * n_heads)
    q, k, v = qkv.chunk(3, dim=1)
    scale = 1 / math.sqrt(math.sqrt(ch))
    weight = th.einsum("bct,bcs->bts", (q * scale).view(bs * n_heads, ch, length), (k * scale).view(bs * n_heads, ch, length))
    weight = th.softmax(weight.float(), dim=-1).type(weight.dtype)
    a = th.einsum("bts,bcs->bct", weight, v.reshape(bs * n_heads, ch, length))
    return a.reshape(bs, -1, length)


def attn4d(fn, qkv, heads):
    b, c, h, w = qkv.shape
    return fn(qkv.reshape(b, c, h * w), heads).reshape(b, -1, h, w)


def case(name, op, params, inputs, fn):
    ins = {k: v.clone().float().requires_grad_(True) for k, v in inputs.items()}
    out = fn(**ins)
    r = th.randn_like(out)
    (out * r).sum().backward()

    def enc(t):
        return {"shape": list(t.shape), "data": [float(x) for x in t.detach().reshape(-1).tolist()]}

    return {
        "name": name,
        "op": op,
        "params": params,
        "inputs": {k: enc(v) for k, v in ins.items()},
        "order": list(inputs.keys()),
        "output": enc(out),
        "r": enc(r),
        "grads": {k: enc(v.grad) for k, v in ins.items()},
    }


def rn(*s, scale=1.0):
    return th.randn(*s) * scale


cases = []
for (n, c, h, w, o, k, s, p, bias) in [(2, 3, 6, 5, 4, 3, 1, 1, True), (2, 4, 7, 6, 3, 3, 2, 1, True), (2, 4, 5, 5, 6, 1, 1, 0, False),
                                      (2, 8, 6, 5, 6, 3, 1, 1, True), (1, 16, 4, 4, 4, 3, 1, 1, False)]:
    inputs = {"x": rn(n, c, h, w), "w": rn(o, c, k, k, scale=0.3)}
    if bias:
        inputs["b"] = rn(o)
    cases.append(case(f"conv2d_n{n}_c{c}_k{k}_s{s}_p{p}_bias{bias}", "conv2d", {"stride": s, "pad": p}, inputs,
                      lambda x, w, b=None, s=s, p=p: F.conv2d(x, w, b, stride=s, padding=p)))

gn_in = {"x": rn(2, 8, 4, 3) + 0.5, "gamma": rn(8), "beta": rn(8)}
cases.append(case("group_norm", "group_norm", {"groups": 4, "eps": 1e-5}, gn_in,
                  lambda x, gamma, beta: F.group_norm(x, 4, gamma, beta, 1e-5)))
cases.append(case("group_norm_silu", "group_norm_silu", {"groups": 2, "eps": 1e-5}, gn_in,
                  lambda x, gamma, beta: F.silu(F.group_norm(x, 2, gamma, beta, 1e-5))))
cases.append(case("silu", "silu", {}, {"x": rn(2, 3, 4, 4, scale=3)}, lambda x: F.silu(x)))
cases.append(case("upsample2x", "upsample2x", {}, {"x": rn(2, 3, 3, 4)},
                  lambda x: F.interpolate(x, scale_factor=2, mode="nearest")))
cases.append(case("avgpool2x_odd", "avgpool2x", {}, {"x": rn(2, 3, 5, 7)}, lambda x: F.avg_pool2d(x, kernel_size=2, stride=2)))
cases.append(case("concat", "concat", {}, {"a": rn(2, 3, 2, 3), "b": rn(2, 2, 2, 3)}, lambda a, b: th.cat([a, b], dim=1)))
cases.append(case("linear", "linear", {}, {"x": rn(3, 5), "w": rn(4, 5), "b": rn(4)}, lambda x, w, b: F.linear(x, w, b)))
cases.append(case("add_channel", "add_channel", {}, {"x": rn(2, 3, 2, 2), "e": rn(2, 3)}, lambda x, e: x + e[..., None, None]))
cases.append(case("scale_shift", "scale_shift", {}, {"x": rn(2, 3, 2, 2), "scale": rn(2, 3), "shift": rn(2, 3)},
                  lambda x, scale, shift: x * (1 + scale[..., None, None]) + shift[..., None, None]))
cases.append(case("attention_legacy", "attention", {"heads": 2, "legacy": True}, {"qkv": rn(2, 24, 3, 3)},
                  lambda qkv: attn4d(qkv_attention_legacy, qkv, 2)))
cases.append(case("attention_new", "attention", {"heads": 2, "legacy": False}, {"qkv": rn(2, 24, 7)},
                  lambda qkv: qkv_attention(qkv, 2)))

ts = th.tensor([0.0, 1.0, 17.0, 500.0, 999.0])
emb = {}
for dim in (8, 7, 128):
    e = timestep_embedding(ts, dim)
    emb[str(dim)] = {"shape": list(e.shape), "data": [float(x) for x in e.reshape(-1).tolist()]}

out = {"torch": th.__version__, "cases": cases, "timestep_embedding": {"t": ts.tolist(), "max_period": 10000, "dims": emb}}
path = os.path.join(outdir, "ops_goldens.json")
with open(path, "w") as f:
    json.dump(out, f)
print("wrote", os.path.normpath(path), len(cases), "cases")
