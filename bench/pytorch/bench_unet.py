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

This is the one timing implementation of bench/pytorch: `python3
bench/pytorch/unet.py --config JSON` (a config without a weights file) runs
bench_config below, which times the same steps and prints text lines.
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

STEPS = ("train_step", "eps", "eps_vjp")


def timed(fn, warmup, iters):
    """Runs fn warmup times untimed, then iters times; returns the median
    wall-clock and the median process CPU milliseconds of one call."""
    for _ in range(warmup):
        fn()
    ts, cs = [], []
    for _ in range(iters):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
        cs.append((time.process_time() - c0) * 1e3)
    return statistics.median(ts), statistics.median(cs)


def steps(model, cfg, batch):
    """The timed functions of model (built from cfg) at a batch size, on
    inputs drawn from a generator seeded with 0."""
    g = th.Generator().manual_seed(0)
    n, c, s = batch, cfg["in_channels"], cfg["image_size"]
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

    return {"train_step": train_step, "eps": eps, "eps_vjp": eps_vjp}


def load(weights, cfg=None):
    """Builds the model of cfg (default: the config in the weights file's
    metadata) and loads weights into it (strict); without weights, seeded
    initialisation (torch.manual_seed(0)). Returns (model, cfg)."""
    tensors = None
    if weights:
        tensors, meta = unet.load_safetensors(weights)
        if cfg is None:
            cfg = json.loads(meta["config"])
    th.manual_seed(0)
    model = unet.from_config(cfg)
    if tensors is not None:
        missing, unexpected = model.load_state_dict(
            {k: th.from_numpy(v.copy()) for k, v in tensors.items()}, strict=True
        )
        assert not missing and not unexpected
    return model, cfg


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--only", default=",".join(STEPS))
    a = ap.parse_args(argv)

    th.set_num_threads(a.threads)
    model, cfg = load(a.weights)
    fns = steps(model, cfg, a.batch)
    res = {"threads": th.get_num_threads(), "torch": th.__version__}
    for name in a.only.split(","):
        res[name + "_ms"] = timed(fns[name], a.warmup, a.iters)[0]
    print(json.dumps(res))


def bench_config(argv=None):
    """unet.py's command line: times a config given as JSON (weights
    optional), printing 'name: <ms> ms (cpu <ms> ms)' per step, medians."""
    ap = argparse.ArgumentParser(description="Times the PyTorch reference UNet of a config.")
    ap.add_argument("--config", required=True, help="model config as JSON (config.Model YAML keys)")
    ap.add_argument("--weights", help="safetensors state dict to load (else seeded init)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    a = ap.parse_args(argv)

    th.set_num_threads(a.threads)
    model, cfg = load(a.weights, json.loads(a.config))
    fns = steps(model, cfg, a.batch)
    for name in STEPS:
        ms, cpu = timed(fns[name], a.warmup, a.iters)
        print(f"{name}: {ms:.1f} ms (cpu {cpu:.1f} ms)")


if __name__ == "__main__":
    main()
