"""PyTorch's time for the measurement operators that BenchmarkCircConv,
BenchmarkReflectConv and BenchmarkPhaseRetrieval time in diffinv
(inverse/op): 8 one-channel images, circular or reflect-padded filtering
(F.pad + conv2d, PyTorch's own operators, as DPS builds its blurs) with a
k×k kernel, and Fourier phase retrieval's |FFT2(pad(x))|, forward only.
fp32 and bf16 (autocast) where conv2d takes it; prints ms per call, the
median of 200 calls after 20 warm-up ones, 2 threads.

    /usr/bin/python3 bench/pytorch/bench_ops.py
"""
import statistics
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)


def timed(f, n=200, warm=20):
    for _ in range(warm):
        f()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def main():
    g = torch.Generator().manual_seed(1)
    for mode in ("circular", "reflect"):
        for side in (28, 64):
            for ks in (7, 9, 13, 15, 17):
                x = torch.randn(8, 1, side, side, generator=g)
                k = torch.rand(1, 1, ks, ks, generator=g)
                r = ks // 2

                def fwd(x=x, k=k, r=r):
                    with torch.no_grad():
                        return F.conv2d(F.pad(x, (r, r, r, r), mode=mode), k)

                def fwd_bf16(x=x, k=k, r=r):
                    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                        return F.conv2d(F.pad(x, (r, r, r, r), mode=mode), k)

                fp32 = timed(fwd)
                try:
                    bf16 = "%.3f" % timed(fwd_bf16)
                except RuntimeError as e:  # no bf16 kernel
                    bf16 = "n/a (%s)" % str(e).splitlines()[0][:60]
                print(f"{mode} {side}px {ks}x{ks}: fp32 {fp32:.3f} ms, bf16 autocast {bf16} ms")
    for side in (28, 64):
        pad = round(2 / 8 * side)
        x = torch.rand(8, 1, side, side, generator=g)

        def pr(x=x, pad=pad):
            with torch.no_grad():
                return torch.fft.fftshift(torch.fft.fft2(F.pad(x, (pad, pad, pad, pad)), norm="ortho")).abs()

        print(f"phase retrieval {side}px (pad {pad}): fp32 {timed(pr):.3f} ms")


if __name__ == "__main__":
    main()
