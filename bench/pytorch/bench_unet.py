"""Times the PyTorch reference UNet for diffinv's side-by-side benchmark.

Called by `diffinv bench unet` (and so `make bench`) with the weights the Go
side wrote; prints one JSON object of median milliseconds:

    {"train_step_ms": ..., "eps_ms": ..., "eps_vjp_ms": ..., "threads": ...}

train_step: forward, MSE to a noise target, backward, Adam step (lr 1e-4)
eps:        forward under no_grad
eps_vjp:    forward with x requiring grad, then backward of sum(eps * v)
Dropout is on in train_step (train mode) and off otherwise, as in diffinv.

Usage: python3 bench/pytorch/bench_unet.py --weights W.safetensors --batch 64
       --threads 2 --iters 10 --warmup 2
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch as th

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import unet  # noqa: E402


def timed(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--only", default="train_step,eps,eps_vjp")
    a = ap.parse_args()

    th.set_num_threads(a.threads)
    tensors, meta = unet.load_safetensors(a.weights)
    cfg = json.loads(meta["config"])
    model = unet.from_config(cfg)
    missing, unexpected = model.load_state_dict({k: th.from_numpy(v.copy()) for k, v in tensors.items()}, strict=True)
    assert not missing and not unexpected

    g = th.Generator().manual_seed(0)
    n, c, s = a.batch, cfg["in_channels"], cfg["image_size"]
    x = th.randn(n, c, s, s, generator=g)
    v = th.randn(n, c, s, s, generator=g)
    target = th.randn(n, c, s, s, generator=g)
    t = th.randint(0, 1000, (n,), generator=g)
    opt = th.optim.Adam(model.parameters(), lr=1e-4)

    def train_step():
        model.train()
        out = model(x, t)[:, :c]
        loss = ((out - target) ** 2).mean()
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()

    def eps():
        model.eval()
        with th.no_grad():
            model(x, t)

    def eps_vjp():
        model.eval()
        xx = x.clone().requires_grad_(True)
        out = model(xx, t)[:, :c]
        (g_,) = th.autograd.grad((out * v).sum(), xx)
        return g_

    res = {"threads": th.get_num_threads(), "torch": th.__version__}
    fns = {"train_step": train_step, "eps": eps, "eps_vjp": eps_vjp}
    for name in a.only.split(","):
        res[name + "_ms"] = timed(fns[name], a.warmup, a.iters)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
