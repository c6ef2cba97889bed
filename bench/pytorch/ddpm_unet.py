"""A self-contained PyTorch reference of the DDPM UNet (Ho et al. 2020) as
ported to PyTorch by pesser's pytorch_diffusion and used, as
`models/diffusion.py` (model type "simple"), by DDIM, SDEdit, DDRM and DDNM.

Written from the description of that file (no copy of it was available): the
module tree and therefore the state-dict names are those of the original:

    temb.dense.{0,1}                      Linear(ch, 4ch), Linear(4ch, 4ch)
    conv_in                               Conv2d(in_channels, ch, 3, padding 1)
    down.L.block.B.{norm1, conv1, temb_proj, norm2, conv2, nin_shortcut}
    down.L.attn.B.{norm, q, k, v, proj_out}
    down.L.downsample.conv                pad (0, 1, 0, 1), Conv2d(3, stride 2)
    mid.{block_1, attn_1, block_2}
    up.L.block.B (num_res_blocks + 1 per level), up.L.attn.B, up.L.upsample.conv
    norm_out, conv_out

and the function differs from guided-diffusion's UNetModel (bench/pytorch/
unet.py) in three details: the timestep embedding is [sin, cos] with
frequencies exp(-ln(10000) i / (half - 1)); Downsample pads only right and
bottom, then convolves with stride 2 and no padding; every GroupNorm has
eps 1e-6. ResnetBlocks add the projected embedding (no scale-shift) and
attention is one head with separate 1x1 q, k, v convolutions.

The one change from the original: the GroupNorm group count is a parameter
(the original fixes 32) so that tiny test models are possible.

`from_config` builds the model from the keys of diffinv's config.Model (with
model.arch: ddpm). Run with Debian's python3-torch: /usr/bin/python3.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def get_timestep_embedding(timesteps, embedding_dim):
    """[sin(t f_i), cos(t f_i)], f_i = exp(-ln(10000) i / (half - 1)), in float32."""
    assert len(timesteps.shape) == 1
    half_dim = embedding_dim // 2
    emb = math.log(10000) / (half_dim - 1)
    emb = torch.exp(torch.arange(half_dim, dtype=torch.float32) * -emb)
    emb = emb.to(device=timesteps.device)
    emb = timesteps.float()[:, None] * emb[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=1)
    if embedding_dim % 2 == 1:
        emb = F.pad(emb, (0, 1, 0, 0))
    return emb


def nonlinearity(x):
    return x * torch.sigmoid(x)


def Normalize(in_channels, groups=32):
    return nn.GroupNorm(num_groups=groups, num_channels=in_channels, eps=1e-6, affine=True)


class Upsample(nn.Module):
    def __init__(self, in_channels, with_conv):
        super().__init__()
        self.with_conv = with_conv
        if with_conv:
            self.conv = nn.Conv2d(in_channels, in_channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if self.with_conv:
            x = self.conv(x)
        return x


class Downsample(nn.Module):
    def __init__(self, in_channels, with_conv):
        super().__init__()
        self.with_conv = with_conv
        if with_conv:
            # torch convolutions pad symmetrically; the padding is done by hand.
            self.conv = nn.Conv2d(in_channels, in_channels, kernel_size=3, stride=2, padding=0)

    def forward(self, x):
        if self.with_conv:
            x = F.pad(x, (0, 1, 0, 1), mode="constant", value=0)
            x = self.conv(x)
        else:
            x = F.avg_pool2d(x, kernel_size=2, stride=2)
        return x


class ResnetBlock(nn.Module):
    def __init__(self, *, in_channels, out_channels=None, dropout, temb_channels, groups=32):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        self.in_channels, self.out_channels = in_channels, out_channels
        self.norm1 = Normalize(in_channels, groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.temb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = Normalize(out_channels, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=1, padding=0)

    def forward(self, x, temb):
        h = x
        h = self.norm1(h)
        h = nonlinearity(h)
        h = self.conv1(h)
        h = h + self.temb_proj(nonlinearity(temb))[:, :, None, None]
        h = self.norm2(h)
        h = nonlinearity(h)
        h = self.dropout(h)
        h = self.conv2(h)
        if self.in_channels != self.out_channels:
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    def __init__(self, in_channels, groups=32):
        super().__init__()
        self.norm = Normalize(in_channels, groups)
        self.q = nn.Conv2d(in_channels, in_channels, kernel_size=1, stride=1, padding=0)
        self.k = nn.Conv2d(in_channels, in_channels, kernel_size=1, stride=1, padding=0)
        self.v = nn.Conv2d(in_channels, in_channels, kernel_size=1, stride=1, padding=0)
        self.proj_out = nn.Conv2d(in_channels, in_channels, kernel_size=1, stride=1, padding=0)

    def forward(self, x):
        h_ = self.norm(x)
        q, k, v = self.q(h_), self.k(h_), self.v(h_)
        b, c, h, w = q.shape
        q = q.reshape(b, c, h * w).permute(0, 2, 1)  # b, hw(q), c
        k = k.reshape(b, c, h * w)  # b, c, hw(k)
        w_ = torch.bmm(q, k) * (int(c) ** (-0.5))  # b, hw(q), hw(k)
        w_ = F.softmax(w_, dim=2)
        v = v.reshape(b, c, h * w)
        w_ = w_.permute(0, 2, 1)  # b, hw(k), hw(q)
        h_ = torch.bmm(v, w_).reshape(b, c, h, w)  # sum over keys
        h_ = self.proj_out(h_)
        return x + h_


class Model(nn.Module):
    def __init__(
        self,
        *,
        ch,
        out_ch,
        ch_mult,
        num_res_blocks,
        attn_resolutions,
        dropout,
        in_channels,
        resolution,
        resamp_with_conv=True,
        groups=32,
    ):
        super().__init__()
        self.ch = ch
        self.temb_ch = ch * 4
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        self.resolution = resolution
        self.in_channels = in_channels

        self.temb = nn.Module()
        self.temb.dense = nn.ModuleList([nn.Linear(ch, self.temb_ch), nn.Linear(self.temb_ch, self.temb_ch)])

        self.conv_in = nn.Conv2d(in_channels, ch, kernel_size=3, stride=1, padding=1)

        curr_res = resolution
        in_ch_mult = (1,) + tuple(ch_mult)
        self.down = nn.ModuleList()
        block_in = None
        for i_level in range(self.num_resolutions):
            block, attn = nn.ModuleList(), nn.ModuleList()
            block_in = ch * in_ch_mult[i_level]
            block_out = ch * ch_mult[i_level]
            for _ in range(num_res_blocks):
                block.append(
                    ResnetBlock(in_channels=block_in, out_channels=block_out, temb_channels=self.temb_ch, dropout=dropout, groups=groups)
                )
                block_in = block_out
                if curr_res in attn_resolutions:
                    attn.append(AttnBlock(block_in, groups))
            down = nn.Module()
            down.block, down.attn = block, attn
            if i_level != self.num_resolutions - 1:
                down.downsample = Downsample(block_in, resamp_with_conv)
                curr_res = curr_res // 2
            self.down.append(down)

        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(in_channels=block_in, out_channels=block_in, temb_channels=self.temb_ch, dropout=dropout, groups=groups)
        self.mid.attn_1 = AttnBlock(block_in, groups)
        self.mid.block_2 = ResnetBlock(in_channels=block_in, out_channels=block_in, temb_channels=self.temb_ch, dropout=dropout, groups=groups)

        self.up = nn.ModuleList()
        for i_level in reversed(range(self.num_resolutions)):
            block, attn = nn.ModuleList(), nn.ModuleList()
            block_out = ch * ch_mult[i_level]
            skip_in = ch * ch_mult[i_level]
            for i_block in range(num_res_blocks + 1):
                if i_block == num_res_blocks:
                    skip_in = ch * in_ch_mult[i_level]
                block.append(
                    ResnetBlock(in_channels=block_in + skip_in, out_channels=block_out, temb_channels=self.temb_ch, dropout=dropout, groups=groups)
                )
                block_in = block_out
                if curr_res in attn_resolutions:
                    attn.append(AttnBlock(block_in, groups))
            up = nn.Module()
            up.block, up.attn = block, attn
            if i_level != 0:
                up.upsample = Upsample(block_in, resamp_with_conv)
                curr_res = curr_res * 2
            self.up.insert(0, up)  # keep up[i_level] indexed by level

        self.norm_out = Normalize(block_in, groups)
        self.conv_out = nn.Conv2d(block_in, out_ch, kernel_size=3, stride=1, padding=1)

    def embed(self, t):
        """The timestep embedding after temb.dense (float32 sinusoids, then the
        dense layers in the parameters' dtype)."""
        temb = get_timestep_embedding(t, self.ch).to(self.conv_in.weight.dtype)
        temb = self.temb.dense[0](temb)
        temb = nonlinearity(temb)
        return self.temb.dense[1](temb)

    def forward(self, x, t):
        assert x.shape[2] == x.shape[3] == self.resolution
        temb = self.embed(t)
        hs = [self.conv_in(x)]
        for i_level in range(self.num_resolutions):
            for i_block in range(self.num_res_blocks):
                h = self.down[i_level].block[i_block](hs[-1], temb)
                if len(self.down[i_level].attn) > 0:
                    h = self.down[i_level].attn[i_block](h)
                hs.append(h)
            if i_level != self.num_resolutions - 1:
                hs.append(self.down[i_level].downsample(hs[-1]))
        h = hs[-1]
        h = self.mid.block_1(h, temb)
        h = self.mid.attn_1(h)
        h = self.mid.block_2(h, temb)
        for i_level in reversed(range(self.num_resolutions)):
            for i_block in range(self.num_res_blocks + 1):
                h = self.up[i_level].block[i_block](torch.cat([h, hs.pop()], dim=1), temb)
                if len(self.up[i_level].attn) > 0:
                    h = self.up[i_level].attn[i_block](h)
            if i_level != 0:
                h = self.up[i_level].upsample(h)
        h = self.norm_out(h)
        h = nonlinearity(h)
        return self.conv_out(h)


def from_config(m):
    """Builds the DDPM Model from a dict with the keys of diffinv's config.Model
    (arch ddpm: no learn_sigma, one attention head, no scale-shift)."""
    assert m.get("arch", "ddpm") == "ddpm", m.get("arch")
    assert not m["learn_sigma"] and not m["use_scale_shift_norm"] and not m["resblock_updown"]
    return Model(
        ch=m["num_channels"],
        out_ch=m["in_channels"],
        ch_mult=tuple(m["channel_mult"]),
        num_res_blocks=m["num_res_blocks"],
        attn_resolutions=tuple(m["attention_resolutions"]),
        dropout=m["dropout"],
        in_channels=m["in_channels"],
        resolution=m["image_size"],
        resamp_with_conv=m["conv_resample"],
        groups=m["num_groups"],
    )


# DDNM's configs/celeba_hq.yml (SDEdit's celeba_hq.ckpt) as diffinv model keys.
CELEBAHQ256 = dict(
    arch="ddpm",
    image_size=256,
    in_channels=3,
    num_channels=128,
    channel_mult=[1, 1, 2, 2, 4, 4],
    num_res_blocks=2,
    attention_resolutions=[16],
    num_heads=1,
    num_head_channels=-1,
    num_groups=32,
    use_scale_shift_norm=False,
    resblock_updown=False,
    conv_resample=True,
    dropout=0.0,
    learn_sigma=False,
)


if __name__ == "__main__":
    m = from_config(CELEBAHQ256)
    n = sum(p.numel() for p in m.parameters())
    print(f"DDPM CelebA-HQ 256 model: {n} parameters, {len(m.state_dict())} tensors")
