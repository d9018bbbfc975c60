"""LKCA-Net and LKCA-LR in PyTorch (mirrors :mod:`lkca_jax.models.lkca`), written from
docs/design.md section 3 with PyTorch's own layers."""

from __future__ import annotations

import torch
from torch import nn

from lkca_jax.reference import up_groups
from lkca_jax.reference.upsampler import MatlabBicubic, Upsampler


class LayerNorm2d(nn.Module):
    """Channels-first LayerNorm written out as ConvNeXt's code does: per pixel, mean and biased
    variance over the channels, then ``weight`` and ``bias`` per channel. fvcore counts these
    element-wise ops 0, as the paper's Flops column does for the LKB's normalisations."""

    def __init__(self, channels: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[None, :, None, None] * x + self.bias[None, :, None, None]


def make_norm(channels: int, m) -> nn.Module:
    """``model.norm``: 'layer' (:class:`LayerNorm2d`) or 'batch' (``nn.BatchNorm2d``)."""
    if m.get("norm", "batch") == "layer":
        return LayerNorm2d(channels, m.get("ln_epsilon", 1e-6))
    return nn.BatchNorm2d(channels, eps=m.bn_epsilon, momentum=1 - m.bn_momentum)


class SE(nn.Module):
    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.fc1 = nn.Linear(channels, max(channels // reduction, 1))
        self.fc2 = nn.Linear(max(channels // reduction, 1), channels)

    def forward(self, z):
        pooled = nn.functional.adaptive_avg_pool2d(z, 1).flatten(1)  # fvcore: 1 per input element
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(pooled))))
        return s[:, :, None, None]


class LKCA(nn.Module):
    """a -> [a, DW5(a), DW7_d3(DW5(a))] -> SE gate -> grouped 1x1 to F -> norm -> gamma * a * A."""

    def __init__(self, f: int, m):
        super().__init__()
        for i, (k, d) in enumerate(zip(m.kernel_sizes, m.dilations)):
            self.add_module(f"dw{i}", nn.Conv2d(f, f, k, padding=d * (k - 1) // 2, dilation=d, groups=f))
        n = len(m.kernel_sizes) + 1
        self.se = SE(n * f, m.se_reduction)
        self.fuse = nn.Conv2d(n * f, f, 1, groups=m.fusion_groups)
        self.fuse_bn = make_norm(f, m)
        self.gamma = nn.Parameter(torch.full((f,), float(m.gamma_init)))
        self.n = len(m.kernel_sizes)

    def forward(self, a):
        maps = [a]
        for i in range(self.n):
            maps.append(getattr(self, f"dw{i}")(maps[-1]))
        z = torch.cat(maps, dim=1)
        z = z * self.se(z)
        return self.gamma[None, :, None, None] * (a * self.fuse_bn(self.fuse(z)))


class LKB(nn.Module):
    def __init__(self, f: int, m, drop_path: float):
        super().__init__()
        self.bn = make_norm(f, m)
        self.proj_in = nn.Conv2d(f, f, 1)
        self.act = nn.GELU(approximate="tanh" if m.gelu_approximate else "none")
        self.lkca = LKCA(f, m)
        self.proj_out = nn.Conv2d(f, f, 1)
        self.layer_scale = nn.Parameter(torch.full((f,), float(m.layer_scale_init)))
        self.drop_path = drop_path

    def forward(self, x):
        u = self.bn(x)
        v = self.proj_out(self.lkca(self.act(self.proj_in(u)))) + u
        v = self.layer_scale[None, :, None, None] * v
        if self.training and self.drop_path > 0:
            keep = (torch.rand(x.shape[0], 1, 1, 1, device=x.device) >= self.drop_path).to(x.dtype)
            v = v * keep / (1 - self.drop_path)
        return x + v


class LKCANet(nn.Module):
    """forward(lr (N, C, h, w)) -> (sr, features), features the post-PixelShuffle map."""

    def __init__(self, m):
        super().__init__()
        groups = up_groups(m)
        f = m.features
        self.head = nn.Conv2d(m.bands, f, 3, padding=1)
        self.blocks = nn.ModuleList(LKB(f, m, m.drop_path_rate * i / max(m.depth - 1, 1)) for i in range(m.depth))
        self.up = Upsampler(f, m.bands * m.scale ** 2, m.scale, m, groups, m.up_kernel,
                            extra=m.get("up_extra", "none"))
        self.bicubic = MatlabBicubic(m.scale)

    def forward(self, lr):
        x = self.head(lr)
        for block in self.blocks:
            x = block(x)
        feats = self.up(x)
        return feats + self.bicubic(lr), feats
