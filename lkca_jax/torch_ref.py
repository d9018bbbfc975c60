"""An independent PyTorch reference of every architecture (NCHW), for cross-checks and ONNX.

LKCA-Net and LKCA-LR are written from docs/design.md section 3, VDSR, 3D-FCNN, SSPSR,
MSDformer and ESSAformer from docs/design.md section 8, with PyTorch's own layers
(``nn.Conv2d(groups=...)``, ``nn.BatchNorm2d``, ``nn.PixelShuffle``, ``nn.GELU``) and a MATLAB
bicubic residual built as two interpolation matrices (MATLAB's ``imresize`` weights, symmetric
borders). Module names follow the Flax modules' (SSPSR's, MSDformer's and ESSAformer's: their
public code's), and :mod:`lkca_jax.methods` says how one maps onto the other, so
:mod:`lkca_jax.convert` can map them name by name.

Importing this module needs torch; nothing else in the library does.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from lkca_jax.methods import architecture_of


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


class LKCANet(nn.Module):
    """forward(lr (N, C, h, w)) -> (sr, features), features the post-PixelShuffle map."""

    def __init__(self, m, groups: int):
        super().__init__()
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


class VDSR(nn.Module):
    def __init__(self, m, groups: int):
        super().__init__()
        f = m.vdsr_features
        self.head = nn.Conv2d(m.bands, f, 3, padding=1, bias=False)
        self.convs = nn.ModuleList(nn.Conv2d(f, f, 3, padding=1, bias=False) for _ in range(m.vdsr_depth))
        self.up = Upsampler(f, m.bands * m.scale ** 2, m.scale, m, groups, bias=False)
        self.bicubic = MatlabBicubic(m.scale) if m.vdsr_residual else None

    def forward(self, lr):
        x = torch.relu(self.head(lr))
        for conv in self.convs:
            x = torch.relu(conv(x))
        feats = self.up(x)
        return (feats + self.bicubic(lr) if self.bicubic is not None else feats), feats


class FCNN3D(nn.Module):
    """3D-FCNN as the paper used it (docs/design.md section 8.4): (N, C, h, w) viewed as (N, C, 1, h, w),
    Conv3d C->64 (taps,9,9), 64->32 and 32->9 (1x1x1), each with ReLU, then Conv3d 9->C*r*r
    (taps,5,5) and PixelShuffle(r); plus the bicubic image when ``fcnn_residual``."""

    def __init__(self, m, groups: int):
        super().__init__()
        (w1, w2, w3), t = m.fcnn_widths, m.fcnn_taps
        self.conv1 = nn.Conv3d(m.bands, w1, (t, 9, 9), padding=(t // 2, 4, 4))
        self.conv2 = nn.Conv3d(w1, w2, 1)
        self.conv3 = nn.Conv3d(w2, w3, 1)
        self.up = Upsampler(w3, m.bands * m.scale ** 2, m.scale, m, groups, kernel=5, taps=t)
        self.bicubic = MatlabBicubic(m.scale) if m.fcnn_residual else None

    def forward(self, lr):
        x = torch.relu(self.conv1(lr[:, :, None]))
        x = torch.relu(self.conv3(torch.relu(self.conv2(x))))
        feats = self.up(x)
        return (feats + self.bicubic(lr) if self.bicubic is not None else feats), feats


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
        self.spa = ResBlock(f, 3, m.sspsr_res_scale)
        self.spc = ResBlock(f, 1, m.sspsr_res_scale, attention=m.sspsr_reduction)

    def forward(self, x):
        return self.spc(self.spa(x))


class SSPN(nn.Module):
    def __init__(self, f: int, m):
        super().__init__()
        self.net = nn.Sequential(*(SSB(f, m) for _ in range(m.sspsr_blocks)))

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

    def __init__(self, m, groups: int):
        super().__init__()
        from lkca_jax.models.sspsr import band_counts, group_starts

        f, c, subs = m.sspsr_features, m.bands, m.sspsr_subs
        self.starts = group_starts(c, subs, m.sspsr_overlap)
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
        from lkca_jax.models.sspsr import band_counts, group_starts

        subs = m.sspsr_subs
        self.starts, self.subs = group_starts(c, subs, m.sspsr_overlap), subs
        self.IG = DCAM(subs, f)
        self.spc = nn.ModuleList(ResBlock(f, 1, 0.1, attention=m.sspsr_reduction) for _ in self.starts)
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
        self.mlp = Mlp(f, int(f * m.msdformer_mlp_ratio))
        self.global_attn = DMSA(f, m.msdformer_heads)

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

    def __init__(self, m, groups: int):
        super().__init__()
        f, c, n = m.msdformer_features, m.bands, m.msdformer_blocks
        self.head = MSAMG(c, f, m)
        self.body = nn.ModuleList(DCTM(f, m) for _ in range(n))
        self.middle = nn.ModuleList(nn.Conv2d(f, f, 3, padding=1) for _ in range(n))  # middle[0] never runs
        self.skip_conv = nn.Conv2d(c, f, 3, padding=1)
        self.upsample = shuffle_stages(f, int(math.log2(m.scale)), m, groups)
        self.tail = nn.Conv2d(f, c, 3, padding=1)
        self.bicubic = MatlabBicubic(m.scale)
        self.residual = m.get("bicubic_residual", False)

    def forward(self, x, lms=None):
        y = self.head(x)
        t = self.body[0](y)
        for i in range(1, len(self.body)):
            t = self.middle[i](self.body[i](t))
        feats = self.upsample(y + t)
        lms = self.bicubic(x) if lms is None else lms
        sr = self.tail(feats + self.skip_conv(lms))
        return (sr + lms if self.residual else sr), feats


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
        f, stages = m.essa_features, int(math.log2(m.scale))
        self.convup = ConvAttention(f, "convu", m.essa_dropout)
        self.convdown = ConvAttention(f, "convd", m.essa_dropout)
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

    def __init__(self, m, groups: int):
        super().__init__()
        self.conv_first = nn.Conv2d(m.bands, m.essa_features, 3, padding=1)
        self.blockup = BlockUp(m, groups)
        self.conv_last = nn.Conv2d(m.essa_features, m.bands, 3, padding=1)
        self.bicubic = MatlabBicubic(m.scale) if m.get("bicubic_residual", False) else None

    def forward(self, x):
        x5 = self.blockup(self.conv_first(x))
        sr = self.conv_last(x5)
        return (sr + self.bicubic(x) if self.bicubic is not None else sr), x5


def gradient_magnitude(x: torch.Tensor) -> torch.Tensor:
    """G(x) of docs/design.md section 4.1 on (N, C, H, W): forward differences along the
    spectrum, H and W, all on the [1:, 1:, 1:] sub-cube, sqrt(sum of squares + 1e-6)."""
    core = x[:, 1:, 1:, 1:]
    dc = core - x[:, :-1, 1:, 1:]
    dh = core - x[:, 1:, :-1, 1:]
    dw = core - x[:, 1:, 1:, :-1]
    return torch.sqrt(dc ** 2 + dh ** 2 + dw ** 2 + 1e-6)


def hloss(y: torch.Tensor, gt: torch.Tensor, l1_weight=1.0, sam_weight=0.5, grad_weight=0.1) -> torch.Tensor:
    """MSDformer's HLoss on (N, C, H, W): L1 + SAM loss (angle / pi, cos clamped to 1 - 1e-6) +
    L1 of the gradient magnitudes."""
    cos = (y * gt).sum(1) / torch.clamp(y.norm(dim=1) * gt.norm(dim=1), min=1e-12)
    sam = torch.arccos(torch.clamp(cos, -1 + 1e-6, 1 - 1e-6)).mean() / math.pi
    grad = (gradient_magnitude(y) - gradient_magnitude(gt)).abs().mean()
    return l1_weight * (y - gt).abs().mean() + sam_weight * sam + grad_weight * grad


def sspsr_loss(y: torch.Tensor, gt: torch.Tensor, spatial=1e-3, spectral=2e-3) -> torch.Tensor:
    """SSPSR's loss on (N, C, H, W): L1 + spatial * (mean squared vertical + mean squared horizontal
    neighbour difference of y) + spectral * mean squared adjacent-band difference of y."""
    tv = (y[:, :, 1:] - y[:, :, :-1]).pow(2).mean() + (y[..., 1:] - y[..., :-1]).pow(2).mean()
    return (y - gt).abs().mean() + spatial * tv + spectral * (y[:, 1:] - y[:, :-1]).pow(2).mean()


def training_loss(t):
    """The torch form of the supervised loss a config's ``train`` block selects (``t.loss``)."""
    return {"hloss": lambda y, gt: hloss(y, gt, t.l1_weight, t.sam_weight, t.grad_weight),
            "mse": lambda y, gt: (y - gt).pow(2).mean(),
            "sspsr": lambda y, gt: sspsr_loss(y, gt, t.spatial_tv_weight, t.spectral_tv_weight)}[t.get("loss", "hloss")]


def _up_groups(m) -> int:
    """The upsampler groups the Flax model resolves (and validates) for the same config."""
    from lkca_jax.models import build_model

    return build_model(m).up_groups


def build_lkca(m) -> LKCANet:
    return LKCANet(m, _up_groups(m))


def build_vdsr(m) -> VDSR:
    return VDSR(m, _up_groups(m))


def build_fcnn3d(m) -> FCNN3D:
    return FCNN3D(m, _up_groups(m))


def build_sspsr(m) -> SSPSR:
    return SSPSR(m, _up_groups(m))


def build_msdformer(m) -> MSDformer:
    return MSDformer(m, _up_groups(m))


def build_essaformer(m) -> ESSA:
    return ESSA(m, _up_groups(m))


def build_torch_model(config) -> nn.Module:
    """The PyTorch reference of ``config.model`` (``config`` may be the model block itself), through
    :mod:`lkca_jax.methods`."""
    m = config.model if "model" in config else config
    return architecture_of(m).build_torch(m)
