#!/usr/bin/env python3
"""Goldens for diffinv's inverse-problem solvers (inverse/solve): short
deterministic runs of DPS, MCG, DDNM, DDNM+ and DDRM computed by PyTorch
(Debian's python3-torch) in float64.

Written to inverse/solve/testdata/solver_goldens.json; TestSolverGoldens in
inverse/solve replays every case with diffinv's solvers and compares the
final images, without Python. Run by hand:

    /usr/bin/python3 bench/pytorch/inverse_solver_goldens.py [OUTDIR]

(OUTDIR, default inverse/solve/testdata of this checkout, takes the file.)

The update rules are written here from the papers and the official codes,
not copied from diffinv:

  DPS   DPS2022/diffusion-posterior-sampling: guided_diffusion/
        gaussian_diffusion.py (p_sample_loop, DDPM.p_sample),
        posterior_mean_variance.py (EpsilonXMeanProcessor with clip_denoised:
        the clamped x0 feeds both the posterior mean and the measurement
        norm, so the gradient passes through the clamp; the fixed_small,
        fixed_large and learned_range variance processors),
        condition_methods.py (PosteriorSampling: x_t -= scale * grad of
        torch.linalg.norm(y - A(x0)) over the whole batch).
  MCG   the DPS step (HJ-harry/MCG_diffusion also differentiates the
        clamped x0), then x <- x - A^+(A x - y_{t-1}) with
        y_{t-1} = sqrt(abar_{t-1}) y + sqrt(1 - abar_{t-1}) A z.
  DDNM  wyhuai/DDNM functions/svd_ddnm.py ddnm_diffusion: x0 <- x0 -
        A^+(A x0 - y), x_{t-1} = sqrt(abar') x0 + sqrt(1-abar') (eta z +
        sqrt(1 - eta^2) eps).
  DDNM+ svd_ddnm.py ddnm_plus_diffusion with svd_operators' Lambda and
        Lambda_noise, in spectral coordinates (with the V^T that the official
        Lambda_noise leaves out of eps).
  DDRM  bahjat-kawar/ddrm functions/denoising.py efficient_generalized_steps
        (sigma_y > 0): the x_T initialisation and the three spectral cases.

Every run is short and deterministic: a closed-form stub denoiser
eps(x, t) = 0.5 x + 0.2 tanh(x) + c (1 + t/T) (with, for the learned
variance, v(x, t) = 0.9 tanh(x) - 0.1), a linear schedule of T = 100 steps
(beta 1e-4 .. 0.05) walked at 10 respaced timesteps (0, 10, ..., 90, as
diffinv's uniform respacing), 1x8x8 images in batches of 2, and two
operators given as explicit matrices with their SVD (the Go test builds the
same operator from them, so the goldens test the solver update rules, not
diffinv's operators): inpainting (48 of 64 pixels kept, y the kept pixels)
and 2x average pooling (y 4x4). Every normal draw (x_T and each step's z,
in the order diffinv's solvers draw them: per step the ancestral or DDIM
noise, then MCG's projection noise; DDNM+'s and DDRM's z in spectral
coordinates) is drawn here in float32 and stored, and the Go test replays
it through the solve package's noise hook.

Cases whose name ends in a variant (e.g. dps_inpaint_batch_norm) run an
intended difference between diffinv and the official code as diffinv's named
option; "differs_from" names the case it changes, whose noise it draws (the
same seed), and the test checks that the two finals differ, so the
difference is the option's. The cases of the remaining points of issue 18:
MCG with the MCG code's noise level (noise_level current, zeta 1, batch
norm, clamp; written as that code's masked update), DDRM at sigma_y = 0
(strict_cases: the code returns x0 at the last step) and with zero singular
values (whole-image inpainting, whose SVD is written down so the zeros are
exact), DDNM+ time travel (L = 2, r = 2) re-noising the last x0 as the code
(travel_x0) or by the forward process, and DPS with Poisson noise (rate 1:
the DPS code's scalar mean 1/|y| factor, per batch and per image, and
diffinv's shot-noise weights).

Float32 data (the stub's constant, y, the noise draws) are written as 9
significant digits, which identify a float32 exactly; the Go test rounds
them back to float32. Finals and operator matrices are float64 reprs.
"""
import json
import math
import os

import torch as th

import goldens_common as gc

(outdir,) = gc.out_dirs(__doc__, "inverse/solve/testdata")
th.set_num_threads(1)

T = 100
BETA_START, BETA_END = 1e-4, 0.05
STEPS = 10
N, C, H, W = 2, 1, 8, 8
D = C * H * W
F64 = th.float64

# ---------------------------------------------------------------- schedule
base_betas = th.linspace(BETA_START, BETA_END, T, dtype=F64)
base_ab = th.cumprod(1 - base_betas, 0)
stride = T // STEPS
ts = list(range(0, T, stride))  # respaced timesteps, index i -> ts[i]
K = len(ts)
ab = base_ab[ts]
ab_prev = th.cat([th.ones(1, dtype=F64), ab[:-1]])
betas = 1 - ab / ab_prev  # SpacedDiffusion's betas
post_var = betas * (1 - ab_prev) / (1 - ab)
post_logvar_clip = th.log(th.cat([post_var[1:2], post_var[1:]]))
large_logvar = th.log(th.cat([post_var[1:2], betas[1:]]))
coef_x0 = betas * th.sqrt(ab_prev) / (1 - ab)
coef_xt = (1 - ab_prev) * th.sqrt(1 - betas) / (1 - ab)

# ---------------------------------------------------------------- stub denoiser
g0 = th.Generator().manual_seed(18)
c_img = (0.3 * th.randn(D, generator=g0)).float()  # the stub's constant
x_true = (0.8 * th.tanh(th.randn(N, D, generator=g0))).float()
y_noise = th.randn(N, 64, generator=g0).float()  # measurement noise, first M used


def den_eps(x, t):
    return 0.5 * x + 0.2 * th.tanh(x) + c_img.double() * (1 + t / T)


def den_var(x, t):
    return 0.9 * th.tanh(x) - 0.1


# ---------------------------------------------------------------- operators
def inpaint_matrix():
    keep = th.ones(H, W, dtype=th.bool)
    keep[2:6, 3:7] = False
    idx = th.nonzero(keep.flatten()).flatten()
    A = th.zeros(len(idx), D, dtype=F64)
    A[th.arange(len(idx)), idx] = 1
    return A


def avgpool_matrix():
    A = th.zeros((H // 2) * (W // 2), D, dtype=F64)
    for r in range(H // 2):
        for c in range(W // 2):
            for dr in range(2):
                for dc in range(2):
                    A[r * (W // 2) + c, (2 * r + dr) * W + 2 * c + dc] = 0.25
    return A


def inpaint_full():
    """Inpainting with y on the whole image (diffinv's inpaint convention):
    A = diag(mask), M = D, so the missing pixels are zero singular values.
    Its SVD is written down, not computed, so those are exact zeros: U = V =
    the permutation putting the kept pixels first, s = (1, ..., 1, 0, ..., 0)."""
    keep = th.ones(H, W, dtype=th.bool)
    keep[1:5, 2:7] = False
    keep[6, 0:3] = False
    keep = keep.flatten()
    A = th.diag(keep.to(F64))
    order = th.cat([th.nonzero(keep).flatten(), th.nonzero(~keep).flatten()])
    P = th.zeros(D, D, dtype=F64)
    P[order, th.arange(D)] = 1  # column j = e_{order[j]}
    s = th.cat([th.ones(int(keep.sum()), dtype=F64), th.zeros(int((~keep).sum()), dtype=F64)])
    return A, (P, s, P)


class Operator:
    def __init__(self, name, A, svd=None):
        self.name, self.A = name, A
        if svd is None:
            U, s, Vh = th.linalg.svd(A, full_matrices=True)
            svd = (U, s, Vh.T)
        U, s, V = svd
        self.U, self.s, self.V = U, s, V  # A = U diag(s) V[:, :M]^T
        self.M = A.shape[0]
        sinv = th.where(s > 0, 1 / s, th.zeros_like(s))
        self.pinv = self.V[:, : self.M] @ th.diag(sinv) @ U.T  # D x M

    def fwd(self, x):
        return x @ self.A.T

    def apinv(self, r):
        return r @ self.pinv.T

    def json(self):
        return {
            "name": self.name,
            "m": self.M,
            "a": self.A.flatten().tolist(),
            "u": self.U.flatten().tolist(),
            "s": self.s.tolist(),
            "v": self.V.flatten().tolist(),
        }


OPS = {
    "inpaint": Operator("inpaint", inpaint_matrix()),
    "avgpool": Operator("avgpool", avgpool_matrix()),
    "inpaint_full": Operator("inpaint_full", *inpaint_full()),
}
RATE = 1.0  # Poisson rate of the poisson cases


def measure(op, sigma_y, noise="gaussian"):
    if noise == "poisson":
        # DPS's PoissonNoise: u = clamp((Ax+1)/2, 0, 1), k ~ Poisson(255 rate u),
        # y = clamp(2k/(255 rate) - 1, -1, 1).
        u = ((op.fwd(x_true.double()) + 1) / 2).clamp(0, 1)
        k = th.poisson(255 * RATE * u, generator=th.Generator().manual_seed(55))
        return (2 * k / (255 * RATE) - 1).clamp(-1, 1).float()
    y = op.fwd(x_true.double()) + sigma_y * y_noise[:, : op.M].double()
    return y.float()


# ---------------------------------------------------------------- noise
class Noise:
    """Every normal draw of a run, float32, in the order the solver uses
    them."""

    def __init__(self, seed):
        self.g = th.Generator().manual_seed(seed)
        self.draws = []

    def __call__(self):
        z = th.randn(N, D, generator=self.g).float()
        self.draws.append(z.flatten().tolist())
        return z.double()


# ---------------------------------------------------------------- solvers
def dps(op, y, noise, o, project=False, noise_name="gaussian"):
    """DPS (and MCG with project): DDPM.p_sample, then PosteriorSampling.

    Poisson noise: poisson_weight "scalar" is the DPS code's grad_and_value
    with the poisson noiser, (norm(y - A x0) / y.abs()).mean() (with
    batch_norm literally that; per image the same per image); "shot"
    (default) is diffinv's weighted norm sqrt(sum_j w_j e_j^2), w_j =
    1 / max((y_j + 1)/2, 0.01). MCG with noise_level "current" is the MCG
    code's inpainting step written as that code does (p_sample_loop_progressive,
    sample_method MCG): sample * (1 - mask) - grad * (1 - mask) +
    q_sample(y, t, z) * mask."""
    clip = o.get("clip_x0", False)
    clip_loss = clip and not o.get("clip_mean_only", False)
    batch = o.get("batch_norm", False)
    zeta = o["scale"]
    variance = o.get("_variance", "fixed_small")
    pw = o.get("poisson_weight", "shot")
    current = o.get("noise_level", "prev") == "current"
    x = noise()
    for i in reversed(range(K)):
        x = x.detach().requires_grad_(True)
        eps = den_eps(x, ts[i])
        x0 = (x - th.sqrt(1 - ab[i]) * eps) / th.sqrt(ab[i])
        x0c = x0.clamp(-1, 1) if clip else x0
        sample = coef_x0[i] * x0c + coef_xt[i] * x
        if i > 0:
            z = noise()
            if variance == "learned_range":
                frac = (den_var(x.detach(), ts[i]) + 1) / 2
                logvar = frac * th.log(betas[i]) + (1 - frac) * post_logvar_clip[i]
            elif variance == "fixed_large":
                logvar = large_logvar[i]
            else:
                logvar = post_logvar_clip[i]
            sample = sample + th.exp(0.5 * logvar) * z
        diff = y.double() - op.fwd(x0c if clip_loss else x0)
        if noise_name == "poisson" and pw == "scalar":
            yd = y.double()
            if batch:
                norm = (th.linalg.norm(diff) / yd.abs()).mean()
            else:
                norm = (th.linalg.norm(diff, dim=1, keepdim=True) / yd.abs()).mean(dim=1).sum()
        elif noise_name == "poisson":
            w = 1 / th.clamp((y.double() + 1) / 2, min=0.01)
            per = th.sqrt((w * diff**2).sum(dim=1))
            norm = th.sqrt((per**2).sum()) if batch else per.sum()
        else:
            norm = th.linalg.norm(diff) if batch else th.linalg.norm(diff, dim=1).sum()
        (grad,) = th.autograd.grad(norm, x)
        if project and current:
            # the MCG code, for a selection operator (inpainting)
            assert ((op.A == 0) | (op.A == 1)).all() and (op.A.sum(1) == 1).all()
            mask = op.A.sum(0)  # 1 on measured pixels
            cond = y.double() @ op.A  # the reference image on the mask
            q = th.sqrt(ab[i]) * cond + th.sqrt(1 - ab[i]) * noise()
            x = (sample * (1 - mask) - zeta * grad * (1 - mask) + q * mask).detach()
            continue
        x = (sample - zeta * grad).detach()
        if project:
            yt = th.sqrt(ab_prev[i]) * y.double()
            if i > 0:
                yt = yt + th.sqrt(1 - ab_prev[i]) * op.fwd(noise())
            x = x - op.apinv(op.fwd(x) - yt)
    return x


def ddnm(op, y, noise, o):
    eta = o["eta"]
    x = noise()
    for i in reversed(range(K)):
        eps = den_eps(x, ts[i])
        x0 = (x - th.sqrt(1 - ab[i]) * eps) / th.sqrt(ab[i])
        x0h = x0 - op.apinv(op.fwd(x0) - y.double())
        c1 = th.sqrt(1 - ab_prev[i]) * eta
        c2 = th.sqrt(1 - ab_prev[i]) * math.sqrt(1 - eta**2)
        z = noise() if (eta > 0 and i > 0) else th.zeros(N, D, dtype=F64)
        x = th.sqrt(ab_prev[i]) * x0h + c1 * z + c2 * eps
    return x


def get_schedule_jump(T_sampling, travel_length, travel_repeat):
    """DDNM's (RePaint's) time-travel schedule, from svd_ddnm.py: from every
    j in range(0, T - L, L) go back up L steps, r - 1 times."""
    jumps = {j: travel_repeat - 1 for j in range(0, T_sampling - travel_length, travel_length)}
    t, ts = T_sampling, []
    while t >= 1:
        t -= 1
        ts.append(t)
        if jumps.get(t, 0) > 0:
            jumps[t] -= 1
            for _ in range(travel_length):
                t += 1
                ts.append(t)
    ts.append(-1)
    return ts


def ddnm_plus(op, y, sigma_y, noise, o):
    """Lambda / Lambda_noise per singular value, in spectral coordinates;
    fresh_noise: the official noise on sigma_t > a n_j, else diffinv's
    gamma (eta z + sqrt(1 - eta^2) V^T eps). Time travel (travel_length L,
    travel_repeat r): going up from index i to j, travel_x0 re-noises the
    last step's uncorrected x0 as ddnm_plus_diffusion does (x0_preds[-1]:
    x_j = sqrt(abar_j) x0 + sqrt(1 - abar_j) z); otherwise diffinv's
    forward jump x_j = sqrt(abar_j/abar_i) x_i + sqrt(1 - abar_j/abar_i) z."""
    eta, fresh = o["eta"], o.get("fresh_noise", False)
    L, r = o.get("travel_length", 0), o.get("travel_repeat", 1)
    times = get_schedule_jump(K, L, r) if L > 0 else list(range(K - 1, -2, -1))
    V, U, s, M = op.V, op.U, op.s, op.M
    ybar = (y.double() @ U) / s  # N x M
    measured = th.zeros(D, dtype=th.bool)
    measured[:M] = s > 0
    n = th.zeros(D, dtype=F64)
    n[:M] = sigma_y / s
    x = noise()
    last_x0 = None
    for i, j in zip(times[:-1], times[1:]):
        if j > i:  # time travel
            z = noise()
            if o.get("travel_x0", False):
                x = th.sqrt(ab[j]) * last_x0 + th.sqrt(1 - ab[j]) * z
            else:
                rr = ab[j] / ab[i]
                x = th.sqrt(rr) * x + th.sqrt(1 - rr) * z
            continue
        eps = den_eps(x, ts[i])
        x0 = (x - th.sqrt(1 - ab[i]) * eps) / th.sqrt(ab[i])
        last_x0 = x0
        vx0, veps = x0 @ V, eps @ V
        a, sig = th.sqrt(ab_prev[i]), th.sqrt(1 - ab_prev[i])
        z = noise() if (i > 0 and (eta > 0 or fresh)) else th.zeros(N, D, dtype=F64)
        lam = th.zeros(D, dtype=F64)
        d1 = th.full((D,), float(sig * eta), dtype=F64)
        d2 = th.full((D,), float(sig * math.sqrt(1 - eta**2)), dtype=F64)
        low = measured & (sig < a * n)  # y less noisy than x_{t-1}: lambda < 1
        high = measured & ~low
        lam[low] = sig * math.sqrt(1 - eta**2) / (a * n[low])
        d1[low], d2[low] = sig * eta, 0.0
        gamma = th.sqrt(th.clamp(sig**2 - a**2 * n**2, min=0))
        lam[high] = 1.0
        if fresh:
            d1[high], d2[high] = gamma[high], 0.0
        else:
            d1[high], d2[high] = gamma[high] * eta, gamma[high] * math.sqrt(1 - eta**2)
        ybar_full = th.zeros(N, D, dtype=F64)
        ybar_full[:, :M] = ybar
        vx0h = vx0 - lam * (vx0 - ybar_full)
        u = a * vx0h + d1 * z + d2 * veps
        x = u @ V.T
    return x


def ddrm(op, y, sigma_y, noise, o):
    """strict_cases: the three cases exactly as efficient_generalized_steps
    selects them (before: s sigma' > sigma_y, after: s sigma' < sigma_y,
    else the missing-pixel case). Otherwise diffinv's selection: s = 0 (and
    j >= M) missing, s sigma' > sigma_y or sigma_y = 0 noisier, else less
    noisy."""
    eta, eta_b = o["eta"], o["eta_b"]
    strict = o.get("strict_cases", False)
    V, U, s, M = op.V, op.U, op.s, op.M
    uty = y.double() @ U
    ybar = uty / s
    Sigma = th.zeros(D, dtype=F64)
    Sigma[:M] = s
    # x_T from p(x_T | y)
    sig_T = th.sqrt((1 - ab[K - 1]) / ab[K - 1])
    large = th.zeros(D, dtype=th.bool)
    large[:M] = s * sig_T > sigma_y
    inv = th.zeros(D, dtype=F64)
    inv[large] = sigma_y / Sigma[large]
    init = th.zeros(N, D, dtype=F64)
    init[:, large] = th.cat([ybar, th.zeros(N, D - M, dtype=F64)], 1)[:, large]
    init = init + th.sqrt(th.clamp(sig_T**2 - inv**2, min=0)) * noise()
    if o.get("init_over_sigma", False):
        init = init / sig_T
    else:
        init = init * th.sqrt(ab[K - 1])
    x = init @ V.T
    for i in reversed(range(K)):
        eps = den_eps(x, ts[i])
        x0 = (x - th.sqrt(1 - ab[i]) * eps) / th.sqrt(ab[i])
        sn = th.sqrt((1 - ab_prev[i]) / ab_prev[i])
        vx0, veps = x0 @ V, eps @ V
        z = noise() if i > 0 else th.zeros(N, D, dtype=F64)
        before = th.zeros(D, dtype=th.bool)
        after = th.zeros(D, dtype=th.bool)
        if strict:
            before[:M] = s * sn > sigma_y
            after[:M] = s * sn < sigma_y
        else:
            meas = s > 0
            before[:M] = meas & ((s * sn > sigma_y) | (sigma_y == 0))
            after[:M] = meas & ~before[:M]
        out = vx0 + math.sqrt(1 - eta**2) * sn * veps + eta * sn * z
        svx0 = (vx0 * Sigma)[:, :M]
        less = vx0 + math.sqrt(1 - eta**2) * sn * th.cat([(uty - svx0) / max(sigma_y, 1e-300), th.zeros(N, D - M, dtype=F64)], 1) + eta * sn * z
        out[:, after] = less[:, after]
        yb = th.cat([ybar, th.zeros(N, D - M, dtype=F64)], 1)
        sb = th.sqrt(th.clamp(sn**2 - sigma_y**2 / th.where(Sigma > 0, Sigma, th.ones_like(Sigma)) ** 2 * eta_b**2, min=0))
        noisier = yb * eta_b + (1 - eta_b) * vx0 + sb * z
        out[:, before] = noisier[:, before]
        x = th.sqrt(ab_prev[i]) * (out @ V.T)
    return x


# ---------------------------------------------------------------- cases
CASES = [
    # name, method, operator, sigma_y, options, variance, differs_from
    ("dps_inpaint_official", "dps", "inpaint", 0.05, {"scale": 0.5, "clip_x0": True, "batch_norm": True}, "fixed_small", None),
    ("dps_inpaint", "dps", "inpaint", 0.05, {"scale": 0.5, "clip_x0": True}, "fixed_small", "dps_inpaint_official"),
    ("dps_inpaint_clip_mean_only", "dps", "inpaint", 0.05, {"scale": 0.5, "clip_x0": True, "clip_mean_only": True}, "fixed_small", "dps_inpaint"),
    ("dps_avgpool_noclip", "dps", "avgpool", 0.05, {"scale": 0.3}, "fixed_small", None),
    ("dps_avgpool_clip", "dps", "avgpool", 0.05, {"scale": 0.3, "clip_x0": True}, "fixed_small", "dps_avgpool_noclip"),
    ("dps_avgpool_learned_range", "dps", "avgpool", 0.05, {"scale": 0.3, "clip_x0": True}, "learned_range", "dps_avgpool_clip"),
    ("dps_avgpool_fixed_large", "dps", "avgpool", 0.05, {"scale": 0.3, "clip_x0": True}, "fixed_large", "dps_avgpool_clip"),
    ("mcg_inpaint", "mcg", "inpaint", 0.05, {"scale": 0.3, "clip_x0": True}, "fixed_small", None),
    # (On inpainting the stub's per-pixel Jacobian puts MCG's gradient on
    # the measured pixels only, which the projection overwrites: batch_norm
    # is seen on average pooling.)
    ("mcg_avgpool", "mcg", "avgpool", 0.05, {"scale": 0.3, "clip_x0": True}, "fixed_small", None),
    ("mcg_avgpool_batch_norm", "mcg", "avgpool", 0.05, {"scale": 0.3, "clip_x0": True, "batch_norm": True}, "fixed_small", "mcg_avgpool"),
    ("ddnm_inpaint", "ddnm", "inpaint", 0.0, {"eta": 0.85}, "fixed_small", None),
    ("ddnm_avgpool", "ddnm", "avgpool", 0.0, {"eta": 0.85}, "fixed_small", None),
    ("ddnm+_avgpool_fresh_noise", "ddnm+", "avgpool", 0.1, {"eta": 0.85, "fresh_noise": True}, "fixed_small", None),
    ("ddnm+_avgpool", "ddnm+", "avgpool", 0.1, {"eta": 0.85}, "fixed_small", "ddnm+_avgpool_fresh_noise"),
    ("ddnm+_inpaint_fresh_noise", "ddnm+", "inpaint", 0.1, {"eta": 0.85, "fresh_noise": True}, "fixed_small", None),
    ("ddrm_avgpool_init_over_sigma", "ddrm", "avgpool", 0.1, {"eta": 0.85, "eta_b": 1.0, "init_over_sigma": True}, "fixed_small", None),
    ("ddrm_avgpool", "ddrm", "avgpool", 0.1, {"eta": 0.85, "eta_b": 1.0}, "fixed_small", "ddrm_avgpool_init_over_sigma"),
    ("ddrm_inpaint_init_over_sigma", "ddrm", "inpaint", 0.1, {"eta": 0.85, "eta_b": 0.7, "init_over_sigma": True}, "fixed_small", None),
    # The remaining points of issue 18.
    # MCG as its official code: y noised to level t (noise_level current),
    # zeta = 1, batch norm, clamp.
    ("mcg_inpaint_noise_current", "mcg", "inpaint", 0.05, {"scale": 1.0, "clip_x0": True, "batch_norm": True, "noise_level": "current"}, "fixed_small", None),
    ("mcg_inpaint_noise_prev", "mcg", "inpaint", 0.05, {"scale": 1.0, "clip_x0": True, "batch_norm": True}, "fixed_small", "mcg_inpaint_noise_current"),
    # DDRM at sigma_y = 0: the official code returns x0 at the last step.
    ("ddrm_avgpool_clean_strict_cases", "ddrm", "avgpool", 0.0, {"eta": 0.85, "eta_b": 0.7, "strict_cases": True}, "fixed_small", None),
    ("ddrm_avgpool_clean", "ddrm", "avgpool", 0.0, {"eta": 0.85, "eta_b": 0.7}, "fixed_small", "ddrm_avgpool_clean_strict_cases"),
    # DDRM with zero singular values (whole-image inpainting, sigma_y > 0).
    ("ddrm_inpaint_full_strict_cases", "ddrm", "inpaint_full", 0.1, {"eta": 0.85, "eta_b": 1.0, "strict_cases": True}, "fixed_small", None),
    ("ddrm_inpaint_full", "ddrm", "inpaint_full", 0.1, {"eta": 0.85, "eta_b": 1.0}, "fixed_small", "ddrm_inpaint_full_strict_cases"),
    # DDNM+ time travel (L = 2, r = 2): the official re-noising of x0.
    ("ddnm+_avgpool_travel_x0", "ddnm+", "avgpool", 0.1, {"eta": 0.85, "fresh_noise": True, "travel_length": 2, "travel_repeat": 2, "travel_x0": True}, "fixed_small", None),
    ("ddnm+_avgpool_travel", "ddnm+", "avgpool", 0.1, {"eta": 0.85, "fresh_noise": True, "travel_length": 2, "travel_repeat": 2}, "fixed_small", "ddnm+_avgpool_travel_x0"),
    # DPS with Poisson noise (rate 1): the DPS code's scalar weighting
    # (batch norm, as the code) and diffinv's shot-noise weights.
    ("dps_inpaint_poisson_scalar", "dps", "inpaint", 0.0, {"scale": 0.5, "clip_x0": True, "batch_norm": True, "poisson_weight": "scalar"}, "fixed_small", None),
    ("dps_inpaint_poisson_scalar_per_image", "dps", "inpaint", 0.0, {"scale": 0.5, "clip_x0": True, "poisson_weight": "scalar"}, "fixed_small", "dps_inpaint_poisson_scalar"),
    ("dps_inpaint_poisson", "dps", "inpaint", 0.0, {"scale": 0.5, "clip_x0": True}, "fixed_small", "dps_inpaint_poisson_scalar_per_image"),
]

def f32(v):
    """A float32 value as its shortest exact decimal (9 significant digits
    identify a float32; the Go test rounds back to float32)."""
    return float("%.9g" % v)


cases = []
finals = {}
seeds = {}
for k, (name, method, opname, sigma_y, opts, variance, differs) in enumerate(CASES):
    op = OPS[opname]
    noise_name = "poisson" if "poisson" in name else ("gaussian" if sigma_y > 0 else "clean")
    y = measure(op, sigma_y, noise_name)
    # A case that varies another draws the same noise, so the difference of
    # their finals is the option's alone.
    seeds[name] = seeds[differs] if differs else 1000 + k
    noise = Noise(seeds[name])
    o = dict(opts, _variance=variance)
    if method in ("dps", "mcg"):
        x = dps(op, y, noise, o, project=(method == "mcg"), noise_name=noise_name)
    elif method == "ddnm":
        x = ddnm(op, y, noise, o)
    elif method == "ddnm+":
        x = ddnm_plus(op, y, sigma_y, noise, o)
    else:
        x = ddrm(op, y, sigma_y, noise, o)
    finals[name] = x
    cases.append(
        {
            "name": name,
            "method": method,
            "operator": opname,
            "sigma_y": sigma_y,
            "noise_model": noise_name,
            "rate": RATE if noise_name == "poisson" else 0.0,
            "options": dict(opts, steps=STEPS),
            "variance": variance,
            "differs_from": differs or "",
            "y": [f32(v) for v in y.flatten().tolist()],
            "noise": [[f32(v) for v in d] for d in noise.draws],
            "final": x.flatten().tolist(),
        }
    )
    line = f"{name}: {len(noise.draws)} draws, |x| max {x.abs().max().item():.4f}"
    if differs and differs in finals:
        line += f", max |x - {differs}| = {(x - finals[differs]).abs().max().item():.3e}"
    print(line)

golden = {
    "format": "diffinv inverse solver goldens v1",
    "schedule": {"kind": "linear", "T": T, "beta_start": BETA_START, "beta_end": BETA_END},
    "shape": [N, C, H, W],
    "stub": "eps(x,t) = 0.5 x + 0.2 tanh(x) + c (1 + t/T); v(x,t) = 0.9 tanh(x) - 0.1",
    "c": [f32(v) for v in c_img.tolist()],
    "operators": {k: v.json() for k, v in OPS.items()},
    "cases": cases,
}
path = os.path.join(outdir, "solver_goldens.json")
with open(path, "w") as f:
    json.dump(golden, f)
print("wrote", path, os.path.getsize(path), "bytes")
