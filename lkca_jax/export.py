"""Deployment artifacts of a trained run, each verified against the Flax model before it is kept.

* ``stablehlo``: ``jax.export`` of the inference function ``lr (N, H, W, C) -> sr`` with the
  weights baked in and the batch dimension symbolic; reload it with
  ``jax.export.deserialize(open(f, 'rb').read()).call(lr)``, no model code needed.
* ``onnx``: the PyTorch reference (:mod:`lkca_jax.reference`) with converted weights, exported by
  PyTorch's current exporter (``torch.onnx.export(..., dynamo=True)``, through ``torch.export``;
  the TorchScript one is deprecated since torch 2.9) with a dynamic batch, checked with onnxruntime.

Both are written to a temporary file, reloaded and run on a random batch of 2 (values in [0, 1),
the normalised range), and renamed into place only when they agree with Flax within ``tol``.
"""

from __future__ import annotations

import contextlib
import io
import pathlib
import warnings

import jax
import numpy as np

from lkca_jax import checkpoint, precision
from lkca_jax.atomic import finish, remove, replace, temp_beside, write_error
from lkca_jax.inference import predictor
from lkca_jax.methods import architecture_of
from lkca_jax.quiet import quiet_logger

FORMATS = ("stablehlo", "onnx")


def _stablehlo(model, config, variables, lr_shape, tmp: str):
    batch = jax.export.symbolic_shape("batch")[0]
    spec = jax.ShapeDtypeStruct((batch, *lr_shape), np.float32)
    exported = jax.export.export(jax.jit(lambda lr: model.apply(variables, lr, train=False)[0]))(spec)
    pathlib.Path(tmp).write_bytes(exported.serialize())
    reloaded = jax.export.deserialize(pathlib.Path(tmp).read_bytes())
    return lambda x: np.asarray(reloaded.call(x))


def _onnx(model, config, variables, lr_shape, tmp: str):
    import onnxruntime
    import torch

    from lkca_jax.convert import torch_model

    net = torch_model(variables, config)
    h, w, c = lr_shape
    example = torch.zeros(2, c, h, w)  # not 1: torch.export may specialise a size-1 dimension
    batch = torch.export.Dim("batch", min=1)
    # The exporter logs each torchvision op it skips and warns of its own deprecations; the
    # artifact is checked below, so none of that reaches the user.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), quiet_logger("torch.onnx"):
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (example,), tmp, input_names=["lr"], output_names=["sr", "features"],
                          dynamic_shapes=({0: batch},), dynamo=True, external_data=False, verbose=False)
    session = onnxruntime.InferenceSession(tmp, providers=["CPUExecutionProvider"])
    return lambda x: session.run(["sr"], {"lr": x.transpose(0, 3, 1, 2)})[0].transpose(0, 2, 3, 1)


def export(workdir, fmt: str, lr_size: tuple[int, int], out, which: str = "best", tol: float = 1e-4,
           weights: str = "ema", dtype: str | None = None) -> dict:
    """Write the ``fmt`` artifact of the run in ``workdir`` for LR inputs of ``lr_size`` to ``out``."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if fmt == "onnx" and precision.resolve(dtype) != np.float32:
        raise ValueError(f"ONNX export computes in float32 (its graph is the PyTorch reference's), not {dtype}; "
                         "use --format stablehlo for a bfloat16 or float16 artifact")
    model, variables, config = checkpoint.load_run(workdir, which, weights, dtype)
    if config.model.name == "bicubic" or (fmt == "onnx" and architecture_of(config).torch is None):
        raise ValueError(f"{workdir}: no {fmt} export for model {config.model.name!r}")
    lr_shape = (*lr_size, config.model.bands)
    out = pathlib.Path(out)
    tmp = temp_beside(out)
    try:
        try:
            run = (_stablehlo if fmt == "stablehlo" else _onnx)(model, config, variables, lr_shape, tmp)
        except OSError as err_:  # a full disk, a size limit: one line naming OUT
            raise write_error(out, err_) from None
        x = np.random.default_rng(0).random((2, *lr_shape), np.float32)
        want = np.asarray(predictor(model)(variables, x))
        err = float(np.abs(run(x) - want).max())
        if not err <= tol:
            raise ValueError(f"{fmt} artifact differs from the Flax model by {err:.3g} (> {tol}); not written")
        try:
            finish(tmp, out)
            replace(tmp, out)
        except OSError as err_:
            raise write_error(out, err_) from None
    finally:
        remove(tmp)
    return {"output": str(out), "format": fmt, "lr_shape": list(lr_shape), "max_abs_error": err,
            "bytes": out.stat().st_size}
