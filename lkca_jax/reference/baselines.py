"""VDSR and 3D-FCNN as the paper used them, in PyTorch (mirrors :mod:`lkca_jax.models.baselines`;
docs/design.md section 8)."""

from __future__ import annotations

import torch
from torch import nn

from lkca_jax.reference import up_groups
from lkca_jax.reference.upsampler import MatlabBicubic, Upsampler


class VDSR(nn.Module):
    def __init__(self, m):
        super().__init__()
        groups = up_groups(m)
        f = m.vdsr.features
        self.head = nn.Conv2d(m.bands, f, 3, padding=1, bias=False)
        self.convs = nn.ModuleList(nn.Conv2d(f, f, 3, padding=1, bias=False) for _ in range(m.vdsr.depth))
        self.up = Upsampler(f, m.bands * m.scale ** 2, m.scale, m, groups, bias=False)
        self.bicubic = MatlabBicubic(m.scale) if m.bicubic_residual else None

    def forward(self, lr):
        x = torch.relu(self.head(lr))
        for conv in self.convs:
            x = torch.relu(conv(x))
        feats = self.up(x)
        return (feats + self.bicubic(lr) if self.bicubic is not None else feats), feats


class FCNN3D(nn.Module):
    """3D-FCNN as the paper used it (docs/design.md section 8.4): (N, C, h, w) viewed as (N, C, 1, h, w),
    Conv3d C->64 (taps,9,9), 64->32 and 32->9 (1x1x1), each with ReLU, then Conv3d 9->C*r*r
    (taps,5,5) and PixelShuffle(r); plus the bicubic image when ``model.bicubic_residual``."""

    def __init__(self, m):
        super().__init__()
        groups = up_groups(m)
        (w1, w2, w3), t = m.fcnn3d.widths, m.fcnn3d.taps
        self.conv1 = nn.Conv3d(m.bands, w1, (t, 9, 9), padding=(t // 2, 4, 4))
        self.conv2 = nn.Conv3d(w1, w2, 1)
        self.conv3 = nn.Conv3d(w2, w3, 1)
        self.up = Upsampler(w3, m.bands * m.scale ** 2, m.scale, m, groups, kernel=5, taps=t)
        self.bicubic = MatlabBicubic(m.scale) if m.bicubic_residual else None

    def forward(self, lr):
        x = torch.relu(self.conv1(lr[:, :, None]))
        x = torch.relu(self.conv3(torch.relu(self.conv2(x))))
        feats = self.up(x)
        return (feats + self.bicubic(lr) if self.bicubic is not None else feats), feats
