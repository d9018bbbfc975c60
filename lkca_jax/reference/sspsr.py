"""SSPSR in PyTorch with its public code's module names (mirrors :mod:`lkca_jax.models.sspsr`;
docs/design.md section 8.1)."""

from __future__ import annotations

import math

import torch
from torch import nn

from lkca_jax.models.sspsr import band_counts, group_starts
from lkca_jax.reference import up_groups
from lkca_jax.reference.upsampler import MatlabBicubic, Upsampler


class CALayer(nn.Module):
    def __init__(self, c: int, reduction: int):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(nn.Conv2d(c, c // reduction, 1), nn.ReLU(inplace=True),
                                     nn.Conv2d(c // reduction, c, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.conv_du(self.avg_pool(x))


class ResBlock(nn.Module):
    """x + res_scale * body(x); body = conv, ReLU, conv (k x k), and channel attention if asked."""

    def __init__(self, f: int, k: int, res_scale: float, attention: int = 0):
        super().__init__()
        parts = [nn.Conv2d(f, f, k, padding=k // 2), nn.ReLU(inplace=True), nn.Conv2d(f, f, k, padding=k // 2)]
        self.body = nn.Sequential(*parts, *([CALayer(f, attention)] if attention else []))
        self.res_scale = res_scale

    def forward(self, x):
        return x + self.res_scale * self.body(x)


class SSB(nn.Module):
    def __init__(self, f: int, m):
        super().__init__()
        self.spa = ResBlock(f, 3, m.sspsr.res_scale)
        self.spc = ResBlock(f, 1, m.sspsr.res_scale, attention=m.sspsr.reduction)

    def forward(self, x):
        return self.spc(self.spa(x))


class SSPN(nn.Module):
    def __init__(self, f: int, m):
        super().__init__()
        self.net = nn.Sequential(*(SSB(f, m) for _ in range(m.sspsr.blocks)))

    def forward(self, x):
        return self.net(x) + x


class BranchUnit(nn.Module):
    def __init__(self, c_in: int, f: int, m, upsample: nn.Module, tail: bool):
        super().__init__()
        self.head = nn.Conv2d(c_in, f, 3, padding=1)
        self.body = SSPN(f, m)
        self.upsample = upsample
        self.tail = nn.Conv2d(f, c_in, 3, padding=1) if tail else None

    def forward(self, x):
        y = self.upsample(self.body(self.head(x)))
        return self.tail(y) if self.tail is not None else y


class SSPSR(nn.Module):
    """SSPSR with the public code's module names (docs/design.md section 8.1), written from its layer
    list; ``forward(x, lms=None)``: ``lms``, the bicubic image the public code takes as a second
    input, is made here with MATLAB's bicubic when not given. Returns (sr, trunk features)."""

    def __init__(self, m):
        super().__init__()
        groups = up_groups(m)
        f, c, subs = m.sspsr.features, m.bands, m.sspsr.subs
        self.starts = group_starts(c, subs, m.sspsr.overlap)
        self.subs = subs
        stages = [layer for _ in range(int(math.log2(m.scale // 2)))
                  for layer in (nn.Conv2d(f, 4 * f, 3, padding=1), nn.PixelShuffle(2))]
        self.branch = BranchUnit(subs, f, m, nn.Sequential(*stages), tail=True)
        if m.upsampler == "svd":
            trunk_up = Upsampler(f, 4 * f, 2, m, groups)
        else:  # the public code's Sequential(conv, PixelShuffle), grouped after `lowrank convert`
            g = groups if m.upsampler == "grouped" else 1
            trunk_up = nn.Sequential(nn.Conv2d(f, 4 * f, 3, padding=1, groups=g), nn.PixelShuffle(2))
        self.trunk = BranchUnit(c, f, m, trunk_up, tail=False)
        self.skip_conv = nn.Conv2d(c, f, 3, padding=1)
        self.final = nn.Conv2d(f, c, 3, padding=1)
        self.bicubic = MatlabBicubic(m.scale)
        # groups covering each band, for the average; not in the state dict (the public code's has none)
        self.register_buffer("counts", torch.from_numpy(band_counts(c, self.starts, subs)), persistent=False)

    def forward(self, x, lms=None):
        c, subs = x.shape[1], self.subs
        outs = self.branch(torch.cat([x[:, s:s + subs] for s in self.starts], dim=0))
        outs = outs.unflatten(0, (len(self.starts), -1))  # (G, N, 8, rh/2, rw/2)
        y = sum(nn.functional.pad(outs[g], (0, 0, 0, 0, s, c - s - subs)) for g, s in enumerate(self.starts))
        feats = self.trunk(y / self.counts[:, None, None])
        lms = self.bicubic(x) if lms is None else lms
        return self.final(feats + self.skip_conv(lms)), feats
