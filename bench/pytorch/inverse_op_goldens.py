#!/usr/bin/env python3
"""Goldens for diffinv's measurement operators (inverse/op), from the reference codes' formulas.

For each operator of DPS's task list (bicubic SR x4, box and random inpainting,
Gaussian and motion deblur, phase retrieval) and DDNM's (average-pool SR x4,
colorization, block compressed sensing, inpainting, Gaussian deblur), at 64 px
(3 channels) and 28 px (1 channel, MNIST's size), it writes the input, the
reference formula's output y = A(x), and where they exist A^T y (for the
nonlinear phase retrieval: the VJP at x with cotangent y) and A^+ y. At 256 px
(run256) every operator is covered too, on channel 0 of the picture where the
operator acts per channel, to keep the files small: bicubic SR (A on all 3
channels, A^T, A^+), the two DPS blurs with DPS's own 61-px kernels (A, A^T),
phase retrieval in DPS's setting (A only), average-pool SR (A, A^T; A^+ is
16 A^T), DDNM colorization (A of the 3-channel input), block CS (A, A^+ = A^T)
and DDNM's Gaussian deblur (A, A^+). Inpainting masks are elementwise and
size-independent: they stay at 64 and 28 px.

The formulas are written here from the papers and the official code
(DPS2022/diffusion-posterior-sampling: Resizer, Blurkernel = ReflectionPad2d +
conv2d, scipy.ndimage.gaussian_filter of a delta, PhaseRetrievalOperator;
wyhuai/DDNM: functions/svd_operators.py SuperResolution, Colorization, CS,
Inpainting, Deblurring), evaluated in float64 with PyTorch (Debian's
python3-torch; scipy is not needed: gaussian_filter's kernel is rebuilt from
its definition). Transposes come from autograd, so they are the transposes of
exactly these forward formulas. Everything is stored as .npy, float32
little-endian (u1 for images, masks and box corners), in
inverse/op/testdata/goldens/ (OUTDIR overrides). Sizes: why 64 and not 256 px
for the full set: one 3x256x256 float32 array is 786 KB; the full set at
256 px would be ~15 MB; the 256-px files written here (mostly channel 0)
take 3.8 MB.

The blur goldens are DPS's whole operator, reflect padding included: diffinv
matches them on the whole image with boundary: reflect (blur_gauss,
blur_motion, blur_file), and away from the border with its defaults.

Run by hand:

    /usr/bin/python3 bench/pytorch/inverse_op_goldens.py [OUTDIR]

Changing this script changes committed goldens: regenerate into a temporary
OUTDIR and compare with the files in the repository (cmp).
"""
import math
import os

import numpy as np
import torch as th
import torch.nn.functional as F

import goldens_common as gc

(outdir,) = gc.out_dirs(__doc__, "inverse/op/testdata/goldens")
th.set_num_threads(1)
DT = th.float64


def save(name, a, dtype=np.float32):
    np.save(os.path.join(outdir, name + ".npy"), np.ascontiguousarray(np.asarray(a, dtype=dtype)))


def test_image(c, n):
    """A deterministic uint8 test picture (smooth shading, a disc, stripes,
    a diagonal edge and a little texture) so that every operator sees edges
    and non-symmetric structure."""
    rng = np.random.default_rng(1234 + n)
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    u, v = i / n, j / n
    img = np.zeros((c, n, n))
    for ch in range(c):
        base = 0.45 + 0.3 * np.sin(2.1 * u + 1.3 * ch) * np.cos(1.7 * v - 0.4 * ch)
        disc = ((u - 0.4) ** 2 + (v - 0.6) ** 2 < 0.06) * (0.35 - 0.1 * ch)
        stripes = 0.15 * (np.sin(2 * np.pi * (5 + ch) * v + 3 * u) > 0.3)
        edge = 0.2 * (u + 0.5 * v > 0.9)
        img[ch] = base + disc + stripes - edge + 0.05 * rng.standard_normal((n, n))
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def to_x(u8):
    """The [-1, 1] float32 image diffinv and the reference codes take."""
    return th.from_numpy((u8.astype(np.float64) / 127.5 - 1).astype(np.float32)).to(DT)[None]


def vjp(f, x, g):
    """(dA/dx)^T g by autograd: A^T g for a linear A."""
    x = x.clone().requires_grad_(True)
    (gx,) = th.autograd.grad((f(x) * g).sum(), x)
    return gx.detach()


# ---------------------------------------------------------------- DPS
def cubic(x):
    ax = np.abs(x)
    return (1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1) + (-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) * ((1 < ax) & (ax <= 2))


def resizer_matrix(n, factor):
    """DPS's Resizer (util/resizer.py, MATLAB imresize) as a matrix: for output
    o (1-based) the centre o/s + (1 - 1/s)/2, the antialiased cubic
    s*cubic(s*d) over ceil(4/s) + 2 taps from floor(centre - 2/s), weights
    normalised, indices mirrored with the edge repeated."""
    s = 1.0 / factor
    kw = 4.0 / s
    out = n // factor
    m = np.zeros((out, n))
    mirror = np.concatenate([np.arange(n), np.arange(n - 1, -1, -1)])
    for o in range(1, out + 1):
        match = o / s + 0.5 * (1 - 1 / s)
        left = math.floor(match - kw / 2)
        fov = left + np.arange(math.ceil(kw) + 2) - 1
        w = s * cubic(s * (match - fov - 1))
        w = w / w.sum()
        for f, wv in zip(fov, w):
            m[o - 1, mirror[f % (2 * n)]] += wv
    return th.from_numpy(m).to(DT)


def gaussian_filter_delta(size, sigma, truncate=4.0):
    """scipy.ndimage.gaussian_filter(delta, sigma) for a size x size centred
    delta: per axis the kernel exp(-t^2/2 sigma^2), |t| <= int(truncate*sigma
    + 0.5), normalised, correlated under mode 'reflect' (d c b a | a b c d)."""
    rad = int(truncate * sigma + 0.5)
    t = np.arange(-rad, rad + 1)
    w = np.exp(-0.5 / sigma**2 * t**2)
    w /= w.sum()
    c = size // 2
    k1 = np.zeros(size)
    for i in range(size):
        for tt, wv in zip(t, w):
            j = (i + tt) % (2 * size)
            if j >= size:
                j = 2 * size - 1 - j
            if j == c:
                k1[i] += wv
    return np.outer(k1, k1)


def dps_blur(k2):
    """DPS's Blurkernel: ReflectionPad2d(size//2) then a per-channel conv2d
    (a cross-correlation) with the kernel."""
    k = th.from_numpy(np.asarray(k2, np.float64)).to(DT)
    r = k.shape[0] // 2

    def f(x):
        c = x.shape[1]
        return F.conv2d(F.pad(x, (r, r, r, r), mode="reflect"), k[None, None].repeat(c, 1, 1, 1), groups=c)

    return f


def motion_kernel(size, seed):
    """A fixed, asymmetric motion-like kernel (a random-walk stroke drawn with
    bilinear splats and lightly blurred), normalised: the stand-in for one
    draw of DPS's motionblur.Kernel(size, 0.5), which is random at run time."""
    rng = np.random.default_rng(seed)
    k = np.zeros((size, size))
    c = (size - 1) / 2
    p = np.array([c - 0.3 * size, c - 0.1 * size])
    ang = 0.3
    for _ in range(8 * size):
        ang += 0.15 * rng.standard_normal()
        p = p + 0.12 * np.array([math.sin(ang) + 0.3, math.cos(ang)])
        i0, j0 = int(math.floor(p[0])), int(math.floor(p[1]))
        fi, fj = p[0] - i0, p[1] - j0
        for di, dj, w in ((0, 0, (1 - fi) * (1 - fj)), (1, 0, fi * (1 - fj)), (0, 1, (1 - fi) * fj), (1, 1, fi * fj)):
            if 0 <= i0 + di < size and 0 <= j0 + dj < size:
                k[i0 + di, j0 + dj] += w
    k[: size // 3, : size // 3] *= 2.0  # make it clearly asymmetric
    k = k / k.sum()
    return k.astype(np.float32).astype(np.float64) / k.astype(np.float32).astype(np.float64).sum()


def fft2c(x):
    """DPS's fft2_m: fftshift(fft2(ifftshift(x)), norm='ortho') over the last two axes."""
    return th.fft.fftshift(th.fft.fft2(th.fft.ifftshift(x, dim=(-2, -1)), norm="ortho"), dim=(-2, -1))


def phase_retrieval(pad):
    """DPS's PhaseRetrievalOperator: |fft2_m(zero-pad(x))| of the [-1, 1] image."""
    return lambda x: fft2c(F.pad(x, (pad, pad, pad, pad)).to(th.complex128)).abs()


# ---------------------------------------------------------------- DDNM
def patch_op(x, r, small):
    """Applies the r*r -> m matrix `small` to every r x r patch (row-major in
    the patch); out[b, c, k, blk] with blocks row-major."""
    b, c, n, _ = x.shape
    p = x.unfold(2, r, r).unfold(3, r, r).reshape(b, c, -1, r * r)  # b c blk r*r
    return th.einsum("km,bcpm->bcpk", small, p)


def patch_adj(z, r, small, n):
    b, c, nb, _ = z.shape
    p = th.einsum("km,bcpk->bcpm", small, z)
    nbs = n // r
    p = p.reshape(b, c, nbs, nbs, r, r).permute(0, 1, 2, 4, 3, 5)
    return p.reshape(b, c, n, n)


def ddnm_deblur_matrix(n, kernel):
    """DDNM's (and DDRM's) Deblurring 1-D matrix: A[i, j] = k[j - i + r] for
    j in range(i - r, i + r) inside the image: zero padding, and the loop's
    range leaves the last tap out."""
    r = len(kernel) // 2
    a = np.zeros((n, n))
    for i in range(n):
        for j in range(i - r, i + r):
            if 0 <= j < n:
                a[i, j] = kernel[j - i + r]
    return th.from_numpy(a).to(DT)


def separable_svd(a, zero):
    """SVD of a 1-D factor with DDNM's rule: 1-D singular values below `zero`
    set to 0."""
    u, s, vh = th.linalg.svd(a)
    s = th.where(s < zero, th.zeros_like(s), s)
    return u, s, vh.T


def run(n, c, full256=False):
    u8 = test_image(c, n)
    x = to_x(u8)
    pre = f"{n}"
    save(f"{pre}_x", u8, np.uint8)
    # Bicubic SR x4 (DPS).
    wh = resizer_matrix(n, 4)
    sr = lambda z: th.einsum("oi,bcij,pj->bcop", wh, z, wh)
    y = sr(x)
    save(f"{pre}_sr_bicubic_y", y[0])
    if full256:
        return
    save(f"{pre}_sr_bicubic_at", vjp(sr, x, y)[0])
    # Box inpainting (DPS: box of half the side; fixed corner here).
    size, top, left = n // 2, n // 8, n // 4
    mask = th.ones(n, n, dtype=DT)
    mask[top : top + size, left : left + size] = 0
    save(f"{pre}_inpaint_box_corner", np.array([size, top, left]), np.int32)
    save(f"{pre}_inpaint_box_y", (x * mask)[0])
    # Random inpainting (DPS 92% missing; DDNM's Inpainting with the same
    # mask: A = A^T = A^+ = multiplication by the mask).
    rng = np.random.default_rng(7 + n)
    m = np.ones(n * n, np.uint8)
    m[rng.permutation(n * n)[: round(0.92 * n * n)]] = 0
    m = m.reshape(n, n)
    save(f"{pre}_inpaint_random_mask", m, np.uint8)
    save(f"{pre}_inpaint_random_y", (x * th.from_numpy(m).to(DT))[0])
    # Gaussian deblur (DPS): 61 px, sigma 3 at 256 px, scaled by n/256 (size
    # 2*round(30*n/256)+1, sigma 3n/256), or sigma 1 at 28 px (the preset).
    gsize = 2 * round(30 * n / 256) + 1
    gsig = 1.0 if n == 28 else 3.0 * n / 256
    kg = gaussian_filter_delta(gsize, gsig)
    blur = dps_blur(kg)
    y = blur(x)
    save(f"{pre}_blur_gauss_y", y[0])
    save(f"{pre}_blur_gauss_at", vjp(blur, x, y)[0])
    # Motion deblur (DPS, a fixed kernel).
    km = motion_kernel(gsize, 11 + n)
    save(f"{pre}_blur_motion_kernel", km)
    blur = dps_blur(km)
    y = blur(x)
    save(f"{pre}_blur_motion_y", y[0])
    save(f"{pre}_blur_motion_at", vjp(blur, x, y)[0])
    # Phase retrieval (DPS: [-1, 1] image, padding 64 whatever the size);
    # channel 0 only.
    pr = phase_retrieval(64)
    x0 = x[:, :1]
    y = pr(x0)
    save(f"{pre}_phase_y", y[0])
    save(f"{pre}_phase_vjp", vjp(pr, x0, y)[0])
    # Average-pool SR x4 (DDNM SuperResolution): per 4x4 patch A = 1/16 * 1^T.
    small = th.full((1, 16), 1 / 16, dtype=DT)
    pool = lambda z: patch_op(z, 4, small)[..., 0].reshape(1, c, n // 4, n // 4)
    y = pool(x)
    save(f"{pre}_sr_avgpool_y", y[0])
    save(f"{pre}_sr_avgpool_at", vjp(pool, x, y)[0])
    pinv_small = th.linalg.pinv(small)  # 16x1 = 1^T (each pixel gets y)
    save(f"{pre}_sr_avgpool_pinv", patch_adj(y.reshape(1, c, -1, 1), 4, pinv_small.T, n)[0])
    # Colorization (DDNM's SVD Colorization: [0.3333, 0.3334, 0.3333]).
    if c == 3:
        a = th.tensor([0.3333, 0.3334, 0.3333], dtype=DT)
        col = lambda z: th.einsum("c,bchw->bhw", a, z)[:, None]
        y = col(x)
        save(f"{pre}_colorize_y", y[0])
        save(f"{pre}_colorize_at", vjp(col, x, y)[0])
        save(f"{pre}_colorize_pinv", (a[None, :, None, None] * y / (a @ a))[0])
    # Block CS (DDNM CS: per block the first m rows of an orthogonal matrix,
    # y ordered (channel, block, row)); DDNM uses 32-px blocks at 256 px,
    # here 8-px blocks at 64 and 4-px at 28 so the stored matrix stays small.
    r = 8 if n == 64 else 4
    g = th.from_numpy(np.random.default_rng(99 + n).standard_normal((r * r, r * r))).to(DT)
    _, _, v = th.linalg.svd(g)  # rows of v: orthonormal
    mrows = round(0.25 * r * r)
    q = v[:mrows]
    save(f"{pre}_cs_q", v)  # the whole orthogonal matrix; its first m = r*r/4 rows measure
    cs = lambda z: patch_op(z, r, q)
    y = cs(x)
    save(f"{pre}_cs_y", y[0])
    save(f"{pre}_cs_at", vjp(cs, x, y)[0])  # = A^+ y: orthonormal rows
    # Gaussian deblur (DDNM deblur_gauss: 5 taps of exp(-t^2/200), the 1-D
    # Deblurring matrix without its last tap, 1-D singular values < 0.03 set
    # to 0; DDNM's A, A^T and A^+ all use the truncated SVD).
    kern = np.exp(-0.5 * (np.arange(-2, 3) / 10.0) ** 2)
    kern = kern / kern.sum()
    a1 = ddnm_deblur_matrix(n, kern)
    u, s, v = separable_svd(a1, 3e-2)
    exact = lambda z: th.einsum("ij,bcjk,lk->bcil", a1, z, a1)
    y = exact(x)
    save(f"{pre}_ddnm_deblur_exact_y", y[0])
    s2 = s[:, None] * s[None, :]
    svd_a = lambda z: th.einsum("ij,bcjk,lk->bcil", u, s2 * th.einsum("ji,bcjk,kl->bcil", v, z, v), u)
    ys = svd_a(x)
    save(f"{pre}_ddnm_deblur_y", ys[0])
    save(f"{pre}_ddnm_deblur_at", vjp(svd_a, x, ys)[0])
    inv = th.where(s2 > 0, 1 / s2, th.zeros_like(s2))
    pinv = th.einsum("ij,bcjk,lk->bcil", v, inv * th.einsum("ji,bcjk,kl->bcil", u, ys, u), v)
    save(f"{pre}_ddnm_deblur_pinv", pinv[0])
    print(f"{n} px: 1-D singular values kept {int((s > 0).sum())} of {n}; pairs {int((s2 > 0).sum())} of {n * n}")


def run256():
    """The 256-px goldens beyond bicubic A (DPS's and DDNM's own size), with
    the same formulas and options as run(): channel 0 of the test picture
    where the operator acts per channel (one 256x256 float32 map is 256 KB,
    the whole 3-channel set would be ~15 MB), the 3-channel input for
    colorization. Average pooling's A^+ y is not stored: it is 16 * A^T y
    (asserted below to float64 rounding), the test derives it."""
    n = 256
    u8 = test_image(3, n)
    x = to_x(u8)
    x0 = x[:, :1]
    # Bicubic SR x4 (DPS): A^T y and A^+ y = (W^+ y W^+T) for y = A x0.
    wh = resizer_matrix(n, 4)
    sr = lambda z: th.einsum("oi,bcij,pj->bcop", wh, z, wh)
    y = sr(x0)
    save("256_sr_bicubic_at", vjp(sr, x0, y)[0])
    whp = th.linalg.pinv(wh)
    save("256_sr_bicubic_pinv", th.einsum("io,bcop,jp->bcij", whp, y, whp)[0])
    # The two DPS blurs (61-px kernels, reflect padding): A^T y (A x is
    # written by the main block).
    for name, k in (("gauss", gaussian_filter_delta(61, 3.0)), ("motion", motion_kernel(61, 11 + n))):
        blur = dps_blur(k)
        y = blur(x0)
        save(f"256_blur_{name}_y", y[0])
        save(f"256_blur_{name}_at", vjp(blur, x0, y)[0])
        if name == "motion":
            save("256_blur_motion_kernel", k)
    # Phase retrieval in DPS's setting ([-1, 1] image, padding 64): A x0
    # (384 x 384, 590 KB; no VJP at this size).
    save("256_phase_y", phase_retrieval(64)(x0)[0])
    # Average-pool SR x4 (DDNM): A, A^T; A^+ = 16 A^T (checked, not stored).
    small = th.full((1, 16), 1 / 16, dtype=DT)
    pool = lambda z: patch_op(z, 4, small)[..., 0].reshape(1, 1, n // 4, n // 4)
    y = pool(x0)
    save("256_sr_avgpool_y", y[0])
    at = vjp(pool, x0, y)[0]
    save("256_sr_avgpool_at", at)
    pinv = patch_adj(y.reshape(1, 1, -1, 1), 4, th.linalg.pinv(small).T, n)[0]
    d = float((pinv - 16 * at).abs().max())
    assert d < 1e-14, f"avgpool A^+ - 16 A^T = {d}"  # pinv's float64 rounding (~1e-15)
    # Colorization (DDNM weights) of the 3-channel input.
    a = th.tensor([0.3333, 0.3334, 0.3333], dtype=DT)
    save("256_colorize_y", th.einsum("c,bchw->bhw", a, x)[0])
    # Block CS (DDNM CS) with 8-px blocks as at 64 px (DDNM: 32-px blocks,
    # whose 1024x1024 matrix would be 4 MB): A x0 and A^+ y = A^T y.
    r = 8
    g = th.from_numpy(np.random.default_rng(99 + n).standard_normal((r * r, r * r))).to(DT)
    _, _, v = th.linalg.svd(g)
    q = v[: round(0.25 * r * r)]
    save("256_cs_q", v)
    cs = lambda z: patch_op(z, r, q)
    y = cs(x0)
    save("256_cs_y", y[0])
    save("256_cs_at", vjp(cs, x0, y)[0])
    # Gaussian deblur (DDNM deblur_gauss, as at 64 px): A x0 through the
    # truncated SVD and A^+ of it.
    kern = np.exp(-0.5 * (np.arange(-2, 3) / 10.0) ** 2)
    kern = kern / kern.sum()
    u, s, v = separable_svd(ddnm_deblur_matrix(n, kern), 3e-2)
    s2 = s[:, None] * s[None, :]
    ys = th.einsum("ij,bcjk,lk->bcil", u, s2 * th.einsum("ji,bcjk,kl->bcil", v, x0, v), u)
    save("256_ddnm_deblur_y", ys[0])
    inv = th.where(s2 > 0, 1 / s2, th.zeros_like(s2))
    save("256_ddnm_deblur_pinv", th.einsum("ij,bcjk,lk->bcil", v, inv * th.einsum("ji,bcjk,kl->bcil", u, ys, u), v)[0])
    print(f"256 px: 1-D singular values kept {int((s > 0).sum())} of {n}; pairs {int((s2 > 0).sum())} of {n * n}")


run(64, 3)
run(28, 1)
run(256, 3, full256=True)  # 256_x (3 channels) and 256_sr_bicubic_y (3 channels)
run256()
total = sum(os.path.getsize(os.path.join(outdir, f)) for f in os.listdir(outdir))
print(f"wrote {len(os.listdir(outdir))} files, {total} bytes, to {outdir}")
