"""MSDformer in PyTorch with its public code's module names (mirrors
:mod:`lkca_jax.models.msdformer`; docs/design.md section 8.2)."""

from __future__ import annotations

import math

import torch
from torch import nn

from lkca_jax.models.sspsr import band_counts, group_starts
from lkca_jax.reference import up_groups
from lkca_jax.reference.sspsr import ResBlock
from lkca_jax.reference.upsampler import MatlabBicubic, shuffle_stages


class DCB(nn.Module):
    def __init__(self, subs: int, f: int):
        super().__init__()
        for i, d in enumerate((1, 3, 5)):
            self.add_module(f"dconv{i + 1}", nn.Conv2d(subs, f, 3, padding=d, dilation=d))
        self.act = nn.PReLU()  # one slope, shared by the three branches

    def forward(self, x):
        return sum(self.act(getattr(self, f"dconv{i}")(x)) for i in (1, 2, 3))


class DCAM(nn.Module):
    def __init__(self, subs: int, f: int):
        super().__init__()
        self.dcb = DCB(subs, f)
        self.spa = ResBlock(f, 3, 0.1)

    def forward(self, x):
        return self.spa(self.dcb(x))


class MSAMG(nn.Module):
    """MSDformer's grouped head: the shared DCAM ``IG``, per-group ``spc`` and ``middle``, the
    groups summed at their bands and divided by the cover count, then ``tail`` (1x1 C -> F)."""

    def __init__(self, c: int, f: int, m):
        super().__init__()
        subs = m.msdformer.subs
        self.starts, self.subs = group_starts(c, subs, m.msdformer.overlap), subs
        self.IG = DCAM(subs, f)
        self.spc = nn.ModuleList(ResBlock(f, 1, 0.1, attention=m.msdformer.reduction) for _ in self.starts)
        self.middle = nn.ModuleList(nn.Conv2d(f, subs, 1) for _ in self.starts)
        self.tail = nn.Conv2d(c, f, 1)
        self.register_buffer("counts", torch.from_numpy(band_counts(c, self.starts, subs)), persistent=False)

    def forward(self, x):
        y = torch.zeros_like(x)
        for g, s in enumerate(self.starts):
            t = self.middle[g](self.spc[g](self.IG(x[:, s:s + self.subs])))
            y = y + nn.functional.pad(t, (0, 0, 0, 0, s, x.shape[1] - s - self.subs))
        return self.tail(y / self.counts[:, None, None])


class DeformConv2d(nn.Module):
    """Deformable conv v1, 3x3, no bias, as docs/design.md section 8.2 describes MSDformer's: offsets
    ``p_conv`` (rows for taps 0..8, then columns), sample points in the coordinates of the input
    zero-padded by 1, clamped to that padded extent with their floor and floor+1 neighbours,
    bilinear weights; the 9 samples tiled into a (3h, 3w) map and a stride-3 conv ``conv``."""

    def __init__(self, c: int, o: int):
        super().__init__()
        self.conv = nn.Conv2d(c, o, 3, stride=3, bias=False)
        self.p_conv = nn.Conv2d(c, 18, 3, padding=1)
        nn.init.zeros_(self.p_conv.weight)

    def forward(self, x):
        b, c, h, w = x.shape
        off = self.p_conv(x)
        xp = nn.functional.pad(x, (1, 1, 1, 1))
        hp, wp = h + 2, w + 2
        taps = torch.arange(9, device=x.device)
        py = (torch.arange(h, device=x.device) + 1.0)[None, None, :, None] + (taps // 3 - 1)[None, :, None, None] \
            + off[:, :9]
        px = (torch.arange(w, device=x.device) + 1.0)[None, None, None, :] + (taps % 3 - 1)[None, :, None, None] \
            + off[:, 9:]
        y0, x0 = py.detach().floor(), px.detach().floor()
        y1, x1 = (y0 + 1).clamp(0, hp - 1), (x0 + 1).clamp(0, wp - 1)
        y0, x0 = y0.clamp(0, hp - 1), x0.clamp(0, wp - 1)
        py, px = py.clamp(0, hp - 1), px.clamp(0, wp - 1)
        flat = xp.reshape(b, c, hp * wp)

        def at(yy, xx):
            idx = (yy * wp + xx).long().reshape(b, 1, -1).expand(-1, c, -1)
            return flat.gather(2, idx).reshape(b, c, 9, h, w)

        wy0, wy1 = (1 + (y0 - py))[:, None], (1 - (y1 - py))[:, None]
        wx0, wx1 = (1 + (x0 - px))[:, None], (1 - (x1 - px))[:, None]
        samples = wy0 * wx0 * at(y0, x0) + wy1 * wx1 * at(y1, x1) + wy0 * wx1 * at(y0, x1) + wy1 * wx0 * at(y1, x0)
        tiled = samples.reshape(b, c, 3, 3, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c, 3 * h, 3 * w)
        return self.conv(tiled)


class DMSA(nn.Module):
    def __init__(self, f: int, heads: int):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(f, 3 * f, 1, bias=False)
        self.deformconv = DeformConv2d(f, f)
        self.project_out = nn.Conv2d(f, f, 1, bias=False)

    def forward(self, x):
        b, f, h, w = x.shape
        split = lambda t: t.reshape(b, self.heads, f // self.heads, h * w)
        q = nn.functional.normalize(split(self.deformconv(x)), dim=-1)
        _, k, v = self.qkv(x).chunk(3, dim=1)  # the q third is computed and discarded
        k, v = nn.functional.normalize(split(k), dim=-1), split(v)
        attn = torch.softmax((q @ k.transpose(-2, -1)) * self.temperature, dim=-1)
        return self.project_out((attn @ v).reshape(b, f, h, w))


class Mlp(nn.Module):
    def __init__(self, f: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(f, hidden), nn.GELU(), nn.Linear(hidden, f)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class DCTM(nn.Module):
    def __init__(self, f: int, m):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(f), nn.LayerNorm(f)
        self.mlp = Mlp(f, int(f * m.msdformer.mlp_ratio))
        self.global_attn = DMSA(f, m.msdformer.heads)

    def forward(self, x):
        b, f, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)  # (b, hw, f)
        u = self.norm1(t).transpose(1, 2).reshape(b, f, h, w)
        t = t + self.global_attn(u).flatten(2).transpose(1, 2)
        t = t + self.mlp(self.norm2(t))
        return t.transpose(1, 2).reshape(b, f, h, w)


class MSDformer(nn.Module):
    """MSDformer with the public code's module names (docs/design.md section 8.2), written from its
    layer list; ``forward(x, lms=None)`` as SSPSR's. Returns (sr, upsampler output)."""

    def __init__(self, m):
        super().__init__()
        groups = up_groups(m)
        f, c, n = m.msdformer.features, m.bands, m.msdformer.blocks
        self.head = MSAMG(c, f, m)
        self.body = nn.ModuleList(DCTM(f, m) for _ in range(n))
        self.middle = nn.ModuleList(nn.Conv2d(f, f, 3, padding=1) for _ in range(n))  # middle[0] never runs
        self.skip_conv = nn.Conv2d(c, f, 3, padding=1)
        self.upsample = shuffle_stages(f, int(math.log2(m.scale)), m, groups)
        self.tail = nn.Conv2d(f, c, 3, padding=1)
        self.bicubic = MatlabBicubic(m.scale)
        self.residual = m.bicubic_residual

    def forward(self, x, lms=None):
        y = self.head(x)
        t = self.body[0](y)
        for i in range(1, len(self.body)):
            t = self.middle[i](self.body[i](t))
        feats = self.upsample(y + t)
        lms = self.bicubic(x) if lms is None else lms
        sr = self.tail(feats + self.skip_conv(lms))
        return (sr + lms if self.residual else sr), feats
