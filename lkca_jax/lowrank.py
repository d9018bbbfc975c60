"""The upsampler's low rank (docs/design.md section 3.4, the paper's Section III-C and Fig. 4).

The upsampler kernel, Flax ``(k, k, F, O)`` (O = C*r*r for LKCA-Net), is read as the paper's
``O x (F*k*k)`` matrix. :func:`spectrum` gives its singular values, their normalised cumulative
sum and the ranks that reach 90/95/99 % of it. :func:`to_grouped` and :func:`to_svd` compress a
trained dense upsampler without retraining (an extension of ours): the block-diagonal part of the
matrix (``g`` feature groups, LKCA-LR's layout) or its truncated SVD (the best rank-R
approximation in Frobenius norm, as a k x k conv F->R then a 1x1 conv R->O).

Every architecture's learnable upsampler is the same module (:mod:`lkca_jax.models.upsampler`),
found at the ``params`` path its registry entry names (:mod:`lkca_jax.methods`), so both work on
all of them: LKCA-Net, VDSR, 3D-FCNN, SSPSR (its trunk's x2 stage, F -> 4F), MSDformer and
ESSAformer (each of their log2 r x2 stages, F -> 4F, converted alike). 3D-FCNN's kernel
is 3-D over a depth-1 axis; only its centre tap meets data, so the matrix is that tap's, and a
converted kernel keeps the outer taps as zeros (they never change the output).
"""

from __future__ import annotations

import pathlib

import numpy as np

from lkca_jax.methods import method_name, upsampler_parts

LEVELS = (0.90, 0.95, 0.99)
# the paper's Fig. 4 (Section III-C): 90 % of the cumulative sum at about these ranks of 1152
PAPER_RANK90 = {"Chikusei, Houston": 60, "Pavia": 130}
PAPER_SIZE = 1152


def as_matrix(kernel: np.ndarray) -> np.ndarray:
    """(k, k, F, O) -> (O, F*k*k), PyTorch's (out, in, kh, kw) weight flattened per output."""
    k1, k2, f, o = kernel.shape
    return np.asarray(kernel, np.float64).transpose(3, 2, 0, 1).reshape(o, f * k1 * k2)


def from_matrix(m: np.ndarray, k: int) -> np.ndarray:
    o, fkk = m.shape
    return m.reshape(o, fkk // (k * k), k, k).transpose(2, 3, 1, 0)


def live(kernel) -> np.ndarray:
    """The 2-D (k, k, F, O) kernel that meets data: a 3-D (taps, k, k, F, O) kernel's centre tap."""
    kernel = np.asarray(kernel)
    return kernel[kernel.shape[0] // 2] if kernel.ndim == 5 else kernel


def with_taps(kernel: np.ndarray, like) -> np.ndarray:
    """``kernel`` (k, k, ., .) placed at the centre tap of zeros shaped as ``like``'s taps, if it has any."""
    if np.ndim(like) != 5:
        return kernel
    out = np.zeros((np.shape(like)[0], *kernel.shape), kernel.dtype)
    out[np.shape(like)[0] // 2] = kernel
    return out


def fold_scale(up: dict) -> dict:
    """``up`` with its per-channel output scale (``model.up_extra = 'scale'``) folded into the last
    conv's kernel and bias, the scale then 1: the same function, and the matrix the upsampler
    really applies, which ``rank`` reads and ``lowrank convert`` factorises."""
    if "out_scale" not in up:
        return up
    s = np.asarray(up["out_scale"], np.float32)
    last = "conv_u" if "conv_u" in up else "conv"
    conv = {**up[last], "kernel": np.asarray(up[last]["kernel"]) * s}
    if "bias" in conv:
        conv["bias"] = np.asarray(conv["bias"]) * s
    return {**up, last: conv, "out_scale": np.ones_like(s)}


def dense_equivalent(up_params: dict, groups: int = 1) -> np.ndarray:
    """The (k, k, F, O) dense kernel an upsampler computes (dense, grouped or SVD; an output scale
    folded in)."""
    up_params = fold_scale(up_params)
    if "conv_v" in up_params:
        v = np.asarray(live(up_params["conv_v"]["kernel"]), np.float64)  # (k, k, F, R)
        u = np.asarray(up_params["conv_u"]["kernel"], np.float64)[0, 0]  # (R, O)
        return np.einsum("abfr,ro->abfo", v, u)
    kernel = np.asarray(live(up_params["conv"]["kernel"]), np.float64)
    if groups == 1:
        return kernel
    k1, k2, fg, o = kernel.shape
    dense = np.zeros((k1, k2, fg * groups, o))
    og = o // groups
    for j in range(groups):
        dense[:, :, j * fg:(j + 1) * fg, j * og:(j + 1) * og] = kernel[:, :, :, j * og:(j + 1) * og]
    return dense


def spectrum(kernel: np.ndarray) -> dict:
    """Singular values (descending), normalised cumulative sum, and the 90/95/99 % ranks of the
    kernel's matrix."""
    return matrix_spectrum(as_matrix(kernel))


def random_spectrum(shape, seed: int = 0) -> dict:
    """:func:`matrix_spectrum` of an i.i.d. Gaussian matrix of ``shape``: the reference of a matrix
    with no low-rank structure (its cumulative sum rises almost linearly)."""
    return matrix_spectrum(np.random.default_rng(seed).standard_normal(tuple(shape)))


def matrix_spectrum(m: np.ndarray) -> dict:
    s = np.linalg.svd(m, compute_uv=False)
    cumulative = np.cumsum(s) / max(s.sum(), np.finfo(float).tiny)
    ranks = {f"rank{int(round(p * 100))}": int(np.searchsorted(cumulative, p - 1e-12) + 1) for p in LEVELS}
    return {"shape": list(m.shape), "singular_values": s.tolist(),
            "cumulative": cumulative.tolist(), **ranks}


def to_grouped(kernel: np.ndarray, groups: int) -> tuple[np.ndarray, float]:
    """The (k, k, F/g, O) grouped kernel keeping the block-diagonal part of a dense (k, k, F, O) one:
    output group j reads input group j. Returns it and the relative Frobenius error of the matrix."""
    k1, k2, f, o = kernel.shape
    if f % groups or o % groups:
        raise ValueError(f"groups={groups} must divide F={f} and C*r*r={o}")
    fg, og = f // groups, o // groups
    grouped = np.concatenate([kernel[:, :, j * fg:(j + 1) * fg, j * og:(j + 1) * og] for j in range(groups)], -1)
    kept = dense_equivalent({"conv": {"kernel": grouped}}, groups)
    return grouped.astype(kernel.dtype), _relative_error(kernel, kept)


def to_svd(kernel: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(conv_v (k, k, F, R), conv_u (1, 1, R, O), relative Frobenius error) of the rank-R truncated
    SVD M ~ (U_R S_R) V_R^T of the dense kernel's matrix."""
    k = kernel.shape[0]
    m = as_matrix(kernel)
    if not 1 <= rank <= min(m.shape):
        raise ValueError(f"rank must be in 1..{min(m.shape)} for a {m.shape[0]} x {m.shape[1]} matrix, got {rank}")
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    conv_v = from_matrix(vt[:rank], k)  # (k, k, F, R): R outputs, one per right singular vector
    conv_u = (u[:, :rank] * s[:rank]).T[None, None]  # (1, 1, R, O)
    approx = dense_equivalent({"conv_v": {"kernel": conv_v}, "conv_u": {"kernel": conv_u}})
    return conv_v.astype(kernel.dtype), conv_u.astype(kernel.dtype), _relative_error(kernel, approx)


def _relative_error(kernel, approx) -> float:
    a = as_matrix(kernel)
    return float(np.linalg.norm(a - as_matrix(approx)) / max(np.linalg.norm(a), np.finfo(float).tiny))


def _convert_part(up: dict, kind: str, n: int) -> tuple[dict, dict, float, float]:
    """(new subtree, model-config updates, relative error, squared norm of the dense matrix) for one
    upsampler."""
    from lkca_jax.models.upsampler import resolve_groups

    up = fold_scale(up)
    full = np.asarray(up["conv"]["kernel"])
    kernel = live(full)
    norm2 = float(np.sum(as_matrix(kernel).astype(np.float64) ** 2))
    bias = {"bias": np.asarray(up["conv"]["bias"])} if "bias" in up["conv"] else {}
    rest = {k: v for k, v in up.items() if k != "conv"}  # the upsampler's extra vector (up_extra)
    if kind == "grouped":
        groups = resolve_groups(kernel.shape[2], kernel.shape[3], f"auto:{n}")
        grouped, err = to_grouped(kernel, groups)
        return {**rest, "conv": {"kernel": with_taps(grouped, full), **bias}}, \
            {"upsampler": "grouped", "groups": str(groups)}, err, norm2
    conv_v, conv_u, err = to_svd(kernel, n)
    new = {**rest, "conv_v": {"kernel": with_taps(conv_v, full)}, "conv_u": {"kernel": conv_u, **bias}}
    return new, {"upsampler": "svd", "rank": n}, err, norm2


def convert_variables(variables: dict, config, to: str) -> tuple[dict, dict, float]:
    """(new variables, model-config updates, relative error) for ``to`` = 'grouped:G' or 'svd:R'.

    A G that does not divide the upsampler's F and O (3D-FCNN's F is 9) becomes the largest one
    below it that does, as ``model.groups = 'auto:G'`` resolves it; the updates say which. A
    multi-stage upsampler has every stage converted; the error is then over all stages' kernels."""
    kind, _, n = to.partition(":")
    if kind not in ("grouped", "svd") or not n.isdigit():
        raise ValueError(f"--to must be grouped:G or svd:R (integers), got {to!r}")
    m = config.model if "model" in config else config
    if m.get("upsampler", "dense") != "dense":
        raise ValueError(f"only a dense upsampler can be converted, this {m.name} run's is {m.upsampler}")
    params, updates, wrong, total = variables["params"], {}, 0.0, 0.0
    for path, up in upsampler_parts(variables, config).items():  # the error over all parts' matrices
        new_up, updates, err, norm2 = _convert_part(up, kind, int(n))
        params = _replace_at(params, path, new_up)
        wrong += err ** 2 * norm2
        total += norm2
    return {**variables, "params": params}, updates, float(np.sqrt(wrong / max(total, np.finfo(float).tiny)))


def _replace_at(tree: dict, path: tuple[str, ...], value) -> dict:
    """A copy of the nested dict ``tree`` with ``value`` at ``path``."""
    head, *rest = path
    return {**tree, head: _replace_at(tree[head], tuple(rest), value) if rest else value}


def rank_report(workdirs, which: str = "best", out=None, weights: str = "ema") -> tuple[dict, pathlib.Path]:
    """The spectrum of each run's trained upsampler, written as ``rank.json`` in ``out`` (default: the
    first run's ``rank/``); :func:`lkca_jax.figures.plot_cumulative` draws them (the paper's Fig. 4)."""
    import json

    from lkca_jax.atomic import atomic_write
    from lkca_jax.checkpoint import load_run

    spectra = {}
    for workdir in workdirs:
        model, variables, config = load_run(workdir, which, weights)
        groups = model.up_groups if config.model.get("upsampler") == "grouped" else 1
        parts = upsampler_parts(variables, config)
        for path, up in parts.items():
            stage = f", {path[-1]}" if len(parts) > 1 else ""
            name = f"{method_name(config)}, {config.dataset} x{config.model.scale}{stage}"
            label = f"{name} ({pathlib.Path(workdir).name})"
            spectra[label] = {"workdir": str(workdir), **spectrum(dense_equivalent(up, groups))}
    out = pathlib.Path(out or pathlib.Path(workdirs[0]) / "rank")
    text = json.dumps(spectra, indent=1)
    atomic_write(out / "rank.json", lambda tmp: pathlib.Path(tmp).write_text(text))
    return spectra, out


def convert_run(workdir, to: str, out, which: str = "best", weights: str = "ema") -> tuple[float, dict]:
    """A new run in ``out`` whose upsampler is ``to`` ('grouped:G' or 'svd:R') of the dense one in
    ``workdir``; the rest of the model and its config are kept. Returns the relative Frobenius error
    and the model-config fields set (the groups actually used)."""
    from lkca_jax import checkpoint

    out = pathlib.Path(out)
    if (out / checkpoint.CONFIG_FILE).exists():
        raise ValueError(f"{out}: already a run; choose a new --out")
    _, variables, config = checkpoint.load_run(workdir, which, weights)
    new, updates, err = convert_variables(variables, config, to)
    config.model.update(updates)
    config.converted = f"{to} of {workdir}"
    checkpoint.save_run(out, config, new, {"converted_from": str(workdir), "to": to, "relative_frobenius_error": err})
    return err, updates
