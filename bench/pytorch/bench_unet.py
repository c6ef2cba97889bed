"""Times the PyTorch reference UNet for diffinv's side-by-side benchmark.

Called by `diffinv bench unet` (and so `make bench`) with the weights the Go
side wrote; prints one JSON object (the last line of stdout):

    {"torch": "1.13.0", "threads": 2, "maxrss_kb": ...,
     "results": [{"precision": "fp32", "format": "nchw",
                  "train_step_ms": ..., "eps_ms": ..., "eps_vjp_ms": ...},
                 {"precision": "bf16", "format": "channels_last",
                  "error": "RuntimeError: ..."}, ...],
     "check_max_abs": ...}

one result per precision × memory format (median milliseconds, or the error
that stopped that combination), the peak resident memory of this process
at the end (VmHWM; ru_maxrss off Linux), and
with --check the largest |eps_torch − eps_diffinv| on the check file's batch.

train_step: forward, MSE to a noise target, backward, Adam step (lr 1e-4)
eps:        forward under no_grad
eps_vjp:    forward with x requiring grad, then backward of sum(eps * v)
Dropout is on in train_step (train mode) and off otherwise, as in diffinv.

Precisions: fp32, and bf16 = CPU autocast (torch.autocast("cpu",
dtype=torch.bfloat16)) around the forward pass and the loss, backward outside
it, as PyTorch's AMP documentation does it; the weights and the optimiser stay
float32. Memory formats: nchw (contiguous) and channels_last (the model and
the inputs converted with memory_format=torch.channels_last). Each
combination starts from the same weights (a fresh model and Adam).

Usage: python3 bench/pytorch/bench_unet.py --weights W.safetensors --batch 64
       --threads 2 --iters 10 --warmup 2 [--precisions fp32,bf16]
       [--formats nchw,channels_last] [--only train_step,eps,eps_vjp]
       [--check CHECK.safetensors]

The check file holds x (N×C×H×W), t (N, float32) and eps (diffinv's output
for them on the same weights); the model runs them in float32, NCHW, eval.

This is the one timing implementation of bench/pytorch: `python3
bench/pytorch/unet.py --config JSON` (a config without a weights file) runs
bench_config below, which times the same steps (fp32, NCHW) and prints text
lines.
"""

import argparse
import contextlib
import json
import os
import resource
import statistics
import sys
import time

import torch as th

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import unet  # noqa: E402

STEPS = ("train_step", "eps", "eps_vjp")
PRECISIONS = ("fp32", "bf16")
FORMATS = ("nchw", "channels_last")


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


def autocast(precision):
    """The context the forward pass and loss run in: bf16 CPU autocast, or
    nothing for fp32."""
    if precision == "bf16":
        return th.autocast("cpu", dtype=th.bfloat16)
    if precision != "fp32":
        raise ValueError(f"precision {precision!r}: want fp32 or bf16")
    return contextlib.nullcontext()


def memory_format(fmt):
    if fmt == "channels_last":
        return th.channels_last
    if fmt != "nchw":
        raise ValueError(f"memory format {fmt!r}: want nchw or channels_last")
    return th.contiguous_format


def steps(model, cfg, batch, precision="fp32", fmt="nchw"):
    """The timed functions of model (built from cfg) at a batch size, on
    inputs drawn from a generator seeded with 0, in a precision (fp32, or
    bf16 autocast) and memory format (nchw or channels_last; the model is
    converted in place)."""
    mf = memory_format(fmt)
    if fmt == "channels_last":
        model.to(memory_format=mf)
    g = th.Generator().manual_seed(0)
    n, c, s = batch, cfg["in_channels"], cfg["image_size"]
    x = th.randn(n, c, s, s, generator=g).contiguous(memory_format=mf)
    v = th.randn(n, c, s, s, generator=g).contiguous(memory_format=mf)
    target = th.randn(n, c, s, s, generator=g).contiguous(memory_format=mf)
    t = th.randint(0, 1000, (n,), generator=g)
    opt = th.optim.Adam(model.parameters(), lr=1e-4)

    def train_step():
        model.train()
        with autocast(precision):
            out = model(x, t)[:, :c]
            loss = ((out.float() - target) ** 2).mean()
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()

    def eps():
        model.eval()
        with th.no_grad(), autocast(precision):
            model(x, t)

    def eps_vjp():
        model.eval()
        xx = x.clone().requires_grad_(True)
        with autocast(precision):
            out = model(xx, t)[:, :c]
            s_ = (out.float() * v).sum()
        (g_,) = th.autograd.grad(s_, xx)
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


def check(model, cfg, path):
    """The largest |eps − check eps| of model (float32, NCHW, eval) on the
    check file's x and t."""
    tensors, _ = unet.load_safetensors(path)
    x = th.from_numpy(tensors["x"].copy())
    t = th.from_numpy(tensors["t"].copy()).round().long()
    want = th.from_numpy(tensors["eps"].copy())
    model.eval()
    with th.no_grad():
        got = model(x, t)[:, : cfg["in_channels"]]
    return (got - want).abs().max().item()


def maxrss_kb():
    """Peak resident memory of this process in KiB: VmHWM on Linux, else
    ru_maxrss. (On Linux ru_maxrss keeps the high-water mark of the process
    before exec, which for a child of Go's vfork-style spawn is the parent's
    peak: a Go benchmark reading it would see its own memory.)"""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r // 1024 if sys.platform == "darwin" else r


def split(s, allowed, what):
    out = [p for p in s.split(",") if p]
    for p in out:
        if p not in allowed:
            raise SystemExit(f"bench_unet.py: {what} {p!r}: want some of {','.join(allowed)}")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--only", default=",".join(STEPS))
    ap.add_argument("--precisions", default=",".join(PRECISIONS))
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--check", help="safetensors file with x, t and diffinv's eps")
    a = ap.parse_args(argv)
    only = split(a.only, STEPS, "step")
    precisions = split(a.precisions, PRECISIONS, "precision")
    formats = split(a.formats, FORMATS, "memory format")

    th.set_num_threads(a.threads)
    res = {"threads": th.get_num_threads(), "torch": th.__version__, "results": []}
    if a.check:
        model, cfg = load(a.weights)
        res["check_max_abs"] = check(model, cfg, a.check)
        del model
    for precision in precisions:
        for fmt in formats:
            r = {"precision": precision, "format": fmt}
            try:
                model, cfg = load(a.weights)
                fns = steps(model, cfg, a.batch, precision, fmt)
                for name in only:
                    r[name + "_ms"] = timed(fns[name], a.warmup, a.iters)[0]
            except Exception as e:  # noqa: BLE001 - reported, the other combinations go on
                r = {"precision": precision, "format": fmt,
                     "error": f"{type(e).__name__}: {e}".splitlines()[0]}
            res["results"].append(r)
            model = fns = None
    res["maxrss_kb"] = maxrss_kb()
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
