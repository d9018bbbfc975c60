"""ESSAformer in PyTorch with ``ESSA.py``'s module names (mirrors :mod:`lkca_jax.models.essaformer`;
docs/design.md section 8.3)."""

from __future__ import annotations

import math

import torch
from torch import nn

from lkca_jax.reference import up_groups
from lkca_jax.reference.upsampler import MatlabBicubic, shuffle_stages


class ESSAttn(nn.Module):
    def __init__(self, f: int):
        super().__init__()
        self.lnqkv, self.ln = nn.Linear(f, 3 * f), nn.Linear(f, f)

    def forward(self, x):
        n = x.shape[1]
        q, k, v = self.lnqkv(x).chunk(3, dim=-1)
        q, k = q - q.mean(-1, keepdim=True), k - k.mean(-1, keepdim=True)
        q2, k2 = q * q, k * k
        q2 = nn.functional.normalize(q2 / (q2.sum(-1, keepdim=True) + 1e-7), dim=-1)  # over channels
        k2 = nn.functional.normalize(k2 / (k2.sum(-1, keepdim=True) + 1e-7), dim=-2)  # over tokens
        return self.ln(v + q2 @ (k2.transpose(-2, -1) @ v) / math.sqrt(n))


class ConvAttention(nn.Module):
    """ESSAformer's ``Convup``/``Convdown``: LayerNorm, ESSAttn, Dropout2d, concatenation with the
    input, the conv Sequential (``body``: ``convu`` or ``convd``), plus the input."""

    def __init__(self, f: int, body: str, p: float):
        super().__init__()
        self.norm, self.attn, self.drop = nn.LayerNorm(f), ESSAttn(f), nn.Dropout2d(p)
        self.body = body
        self.add_module(body, nn.Sequential(
            nn.Conv2d(2 * f, 2 * f, 1), nn.LeakyReLU(0.2), nn.Dropout2d(p), nn.Conv2d(2 * f, 2 * f, 3, padding=1),
            nn.LeakyReLU(0.2), nn.Dropout2d(p), nn.Conv2d(2 * f, f, 1)))

    def forward(self, x):
        b, f, h, w = x.shape
        a = self.attn(self.norm(x.flatten(2).transpose(1, 2))).transpose(1, 2).reshape(b, f, h, w)
        return getattr(self, self.body)(torch.cat([self.drop(a), x], dim=1)) + x


class BlockUp(nn.Module):
    def __init__(self, m, groups: int):
        super().__init__()
        f, stages = m.essaformer.features, int(math.log2(m.scale))
        self.convup = ConvAttention(f, "convu", m.essaformer.dropout)
        self.convdown = ConvAttention(f, "convd", m.essaformer.dropout)
        self.convupsample = shuffle_stages(f, stages, m, groups)
        self.convdownsample = nn.Sequential(*(layer for _ in range(stages)
                                              for layer in (nn.Conv2d(f, f // 4, 3, padding=1), nn.PixelUnshuffle(2))))

    def forward(self, x0):
        up, down = self.convupsample, self.convdownsample
        x1 = self.convup(up(x0))
        x2 = self.convdown(down(x1) + x0)
        x3 = self.convup(up(x2) + x1)
        x4 = self.convdown(down(x3) + x2)
        return self.convup(up(x4) + x3)


class ESSA(nn.Module):
    """ESSAformer with ``ESSA.py``'s module names (docs/design.md section 8.3), written from its layer
    list. ``forward(x)`` -> (sr, x5), x5 the HR map ``conv_last`` reads."""

    def __init__(self, m):
        super().__init__()
        groups = up_groups(m)
        self.conv_first = nn.Conv2d(m.bands, m.essaformer.features, 3, padding=1)
        self.blockup = BlockUp(m, groups)
        self.conv_last = nn.Conv2d(m.essaformer.features, m.bands, 3, padding=1)
        self.bicubic = MatlabBicubic(m.scale) if m.bicubic_residual else None

    def forward(self, x):
        x5 = self.blockup(self.conv_first(x))
        sr = self.conv_last(x5)
        return (sr + self.bicubic(x) if self.bicubic is not None else sr), x5
