#!/usr/bin/env python3
"""Golden SSIM and PSNR values for metrics/metrics_test.go.

Independent of the Go code: SSIM is computed from Wang et al.'s formula the
way scikit-image's structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1) does it: each local statistic is
filtered over the whole image with scipy.ndimage.gaussian_filter's
conventions (truncate=3.5, mode='reflect', i.e. d c b a | a b c d), the
border of (win-1)/2 pixels is cropped, the SSIM map averaged, and the
per-channel means averaged. Only numpy is needed; when scikit-image is
installed (Debian python3-skimage) every value is also checked against its
structural_similarity and the version is recorded in the JSON.

Run from the repository root:
    /usr/bin/python3 metrics/testdata/ssim_golden.py > metrics/testdata/ssim_golden.json
The image pairs are generated here from a fixed seed and written into the
JSON as bytes (value/255 is the [0,1] image), so the Go test needs no Python.
"""
import json
import numpy as np

SIGMA, TRUNCATE, K1, K2, L = 1.5, 3.5, 0.01, 0.03, 1.0


def gaussian_filter_reflect(img):
    r = int(TRUNCATE * SIGMA + 0.5)
    x = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-0.5 * x * x / SIGMA**2)
    g /= g.sum()
    out = img
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (r, r)
        p = np.pad(out, pad, mode="symmetric")  # numpy 'symmetric' == scipy 'reflect'
        acc = np.zeros_like(out)
        n = out.shape[axis]
        for i, gi in enumerate(g):
            sl = [slice(None), slice(None)]
            sl[axis] = slice(i, i + n)
            acc += gi * p[tuple(sl)]
        out = acc
    return out, r


def ssim_channel(a, b):
    ux, r = gaussian_filter_reflect(a)
    uy, _ = gaussian_filter_reflect(b)
    uxx, _ = gaussian_filter_reflect(a * a)
    uyy, _ = gaussian_filter_reflect(b * b)
    uxy, _ = gaussian_filter_reflect(a * b)
    vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
    c1, c2 = (K1 * L) ** 2, (K2 * L) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return s[r:-r, r:-r].mean()


def ssim(x, y):
    return float(np.mean([ssim_channel(x[c], y[c]) for c in range(x.shape[0])]))


def psnr(x, y):
    return float(10 * np.log10(L * L / np.mean((x - y) ** 2)))


def smooth(rng, c, h, w):
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((c, h, w))
    for ch in range(c):
        for _ in range(4):
            cx, cy, s, a = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(2, 6), rng.uniform(-0.5, 0.5)
            img[ch] += a * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))
        img[ch] += 0.5 + 0.2 * (xx / w - 0.5) * (ch + 1)
    return img


def q(img):
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def main():
    rng = np.random.RandomState(20231126)
    pairs = []
    # 1: gray, smooth image vs. a noisy copy (non-square to catch H/W mix-ups).
    x = q(smooth(rng, 1, 24, 19))
    y = q(x / 255.0 + rng.normal(0, 0.08, x.shape))
    pairs.append(("gray_noise", x, y))
    # 2: RGB, a shifted and brightened copy.
    x = q(smooth(rng, 3, 17, 23))
    y = q(np.roll(x / 255.0, 1, axis=2) * 0.9 + 0.05)
    pairs.append(("rgb_shift_gain", x, y))
    # 3: two independent noise images (SSIM near 0).
    pairs.append(("gray_independent", rng.randint(0, 256, (1, 16, 16)).astype(np.uint8),
                  rng.randint(0, 256, (1, 16, 16)).astype(np.uint8)))
    # 4: exactly the window size, RGB with mild noise.
    x = q(smooth(rng, 3, 11, 11))
    y = q(x / 255.0 + rng.normal(0, 0.03, x.shape))
    pairs.append(("rgb_window_size", x, y))
    try:  # optional cross-check against scikit-image itself
        from skimage import __version__ as skimage_version
        from skimage.metrics import structural_similarity
    except ImportError:
        skimage_version, structural_similarity = None, None
    out = []
    for name, x, y in pairs:
        xf, yf = x.astype(np.float64) / 255.0, y.astype(np.float64) / 255.0
        if structural_similarity is not None:
            ref = structural_similarity(xf, yf, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                        data_range=1, channel_axis=0)
            assert abs(ref - ssim(xf, yf)) < 1e-12, (name, ref, ssim(xf, yf))
        out.append({
            "name": name, "c": int(x.shape[0]), "h": int(x.shape[1]), "w": int(x.shape[2]),
            "x": x.ravel().tolist(), "y": y.ravel().tolist(),
            "ssim": ssim(xf, yf), "psnr": psnr(xf, yf),
        })
    print(json.dumps({"generator": "metrics/testdata/ssim_golden.py", "numpy": np.__version__,
                      "skimage_checked": skimage_version, "pairs": out}, indent=1))


if __name__ == "__main__":
    main()
