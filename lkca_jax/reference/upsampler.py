"""The reference's shared pieces (mirrors :mod:`lkca_jax.models.upsampler`): MATLAB's bicubic
upscaling as two interpolation matrices (its ``imresize`` weights, symmetric borders), the learnable
sub-pixel upsampler (dense, grouped or rank-R) and EDSR's x2 shuffle stages."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def matlab_cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic kernel with a = -0.5, as MATLAB's imresize uses."""
    ax = np.abs(x)
    return ((1.5 * ax ** 3 - 2.5 * ax ** 2 + 1) * (ax <= 1)
            + (-0.5 * ax ** 3 + 2.5 * ax ** 2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def bicubic_matrix(n_in: int, scale: int) -> np.ndarray:
    """(n_in * scale, n_in) matrix of MATLAB's bicubic upscaling along one axis.

    Output pixel i (1-based) maps to u = i / scale + 0.5 * (1 - 1 / scale) in input coordinates; it
    takes the 4 + 2 nearest inputs weighted by the cubic kernel, normalised, indices outside the
    image mirrored (``symmetric``)."""
    n_out = n_in * scale
    u = np.arange(1, n_out + 1) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - 2)
    taps = left[:, None] + np.arange(6)[None, :]  # 1-based input indices
    weights = matlab_cubic(u[:, None] - taps)
    weights /= weights.sum(axis=1, keepdims=True)
    idx = taps.astype(np.int64) - 1
    period = 2 * n_in  # symmetric extension: ... 1 0 | 0 1 ... n-1 | n-1 n-2 ...
    idx = np.mod(idx, period)
    idx = np.where(idx >= n_in, period - 1 - idx, idx)
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.repeat(np.arange(n_out), 6), idx.ravel()), weights.ravel())
    return m


class MatlabBicubic(nn.Module):
    """x (N, C, h, w) -> (N, C, h*r, w*r), MATLAB imresize(x, r, 'bicubic') for integer r."""

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = (int(n) for n in x.shape[-2:])  # fixed sizes: the matrices are constants
        mh = torch.as_tensor(bicubic_matrix(h, self.scale), dtype=x.dtype, device=x.device)
        mw = torch.as_tensor(bicubic_matrix(w, self.scale), dtype=x.dtype, device=x.device)
        return mh @ x @ mw.T


class Upsampler(nn.Module):
    """Conv f -> out (dense, grouped or rank-R ``conv_v`` then 1x1 ``conv_u``), then PixelShuffle.
    ``taps`` > 0: ``Conv3d`` kernels (taps, k, k) on a (N, f, 1, h, w) input, as 3D-FCNN's last layer
    (``conv_u`` then runs as a 2-D 1x1 conv after the depth axis is dropped)."""

    def __init__(self, f: int, out: int, scale: int, m, groups: int, kernel: int = 3, bias: bool = True,
                 taps: int = 0, extra: str = "none"):
        super().__init__()
        self.extra = extra  # one more vector over the out channels, before the shuffle (upsampler.EXTRAS)
        if extra != "none":
            init = {"scale": 1.0, "prelu": 0.25}.get(extra, 0.0)
            setattr(self, f"out_{extra}", nn.Parameter(torch.full((out,), init)))
        conv = (lambda i, o, k, **kw: nn.Conv3d(i, o, (taps, k, k), padding=(taps // 2, k // 2, k // 2), **kw)) \
            if taps else (lambda i, o, k, **kw: nn.Conv2d(i, o, k, padding=k // 2, **kw))
        if m.upsampler == "svd":
            self.conv_v = conv(f, m.rank, kernel, bias=False)
            self.conv_u = nn.Conv2d(m.rank, out, 1, bias=bias)
        else:
            self.conv = conv(f, out, kernel, groups=groups if m.upsampler == "grouped" else 1, bias=bias)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x):
        y = self.conv_v(x) if hasattr(self, "conv_v") else self.conv(x)
        y = y[:, :, 0] if y.ndim == 5 else y
        y = self.conv_u(y) if hasattr(self, "conv_u") else y
        if self.extra == "scale":
            y = y * self.out_scale[None, :, None, None]
        elif self.extra == "prelu":
            y = torch.nn.functional.prelu(y, self.out_prelu)
        elif self.extra == "bias":
            y = y + self.out_bias[None, :, None, None]
        return self.shuffle(y)


def shuffle_stages(f: int, stages: int, m, groups: int) -> nn.Sequential:
    """EDSR's upsampler as MSDformer's and ESSAformer's code builds it: ``stages`` x [conv F -> 4F
    (grouped after ``lowrank convert``), PixelShuffle(2)], the convs at Sequential index 0, 2, ...;
    an ``svd`` stage is an :class:`Upsampler` at that index (it shuffles itself; an identity follows)."""
    if m.upsampler == "svd":
        return nn.Sequential(*(layer for _ in range(stages) for layer in (Upsampler(f, 4 * f, 2, m, groups),
                                                                         nn.Identity())))
    g = groups if m.upsampler == "grouped" else 1
    return nn.Sequential(*(layer for _ in range(stages)
                           for layer in (nn.Conv2d(f, 4 * f, 3, padding=1, groups=g), nn.PixelShuffle(2))))
