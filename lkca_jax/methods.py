"""The methods this library builds, trains and compares: one registry entry each.

A **method** is what a config argument names (``x4,net``, ``x4,vdsr``) and what a table row is
called: its display name, the architecture it uses, the model fields it sets on top of the base
config, its training-recipe defaults, and whether it trains against a frozen teacher.

An **architecture** (``config.model.name``) is one Flax module and one PyTorch reference: where
each builder lives, how Flax parameter names become the reference's ``state_dict`` names, and
where its learnable upsampler sits (for ``rank`` and ``lowrank``). Several methods share one
architecture (LKCA-Net, LKCA-LR and LKCA-KD are all ``lkca``).

Model building (:func:`lkca_jax.models.build_model`), the PyTorch reference
(:func:`lkca_jax.torch_ref.build_torch_model`), weight conversion (:mod:`lkca_jax.convert`), the
evaluation table, ``rank``/``lowrank`` and the config argument all read these two tables; adding a
method is one Flax module, one PyTorch reference, one entry here and its tests. Builders are named
as ``"module:function"`` strings so that importing this registry imports neither flax nor torch.

Every architecture here maps the LR batch alone to ``(sr, features)`` and makes its bicubic image
inside (LKCA-Net's and VDSR's residual, Bicubic itself); SSPSR and MSDformer take the bicubic image
as a second input, and their entries will say so when they land.
"""

from __future__ import annotations

import dataclasses
import importlib
import re


@dataclasses.dataclass(frozen=True)
class Architecture:
    """One model: ``flax(model_config, axis_name) -> nn.Module`` and ``torch(model_config) ->
    torch.nn.Module`` (None: no reference yet), as ``"module:function"``; ``torch_names``: (regex,
    replacement) pairs that turn one Flax module name into the reference's; ``upsampler``: the
    ``params`` path of its learnable upsampler in LKCA's layout (``conv``, or ``conv_v``/``conv_u``),
    None where ``rank`` and ``lowrank`` cannot read one."""

    flax: str
    torch: str | None = None
    torch_names: tuple[tuple[str, str], ...] = ()
    upsampler: tuple[str, ...] | None = None

    def build_flax(self, model_config, axis_name=None):
        return _resolve(self.flax)(model_config, axis_name)

    def build_torch(self, model_config):
        if self.torch is None:
            raise ValueError(f"no PyTorch reference for model {model_config.name!r}")
        return _resolve(self.torch)(model_config)

    def torch_name(self, module: str) -> str:
        for pattern, replacement in self.torch_names:
            module = re.sub(pattern, replacement, module)
        return module


@dataclasses.dataclass(frozen=True)
class Method:
    """A config argument and a table row: ``architecture`` (a key of :data:`ARCHITECTURES`),
    ``model`` and ``train`` (config fields it sets over the base config's), ``teacher``: trained
    with distillation from a frozen teacher (``config.teacher``)."""

    name: str
    display: str
    architecture: str
    model: dict = dataclasses.field(default_factory=dict)
    train: dict = dataclasses.field(default_factory=dict)
    teacher: bool = False


ARCHITECTURES = {
    "lkca": Architecture("lkca_jax.models.lkca:build", "lkca_jax.torch_ref:build_lkca",
                         torch_names=((r"^block(\d+)$", r"blocks.\1"),), upsampler=("up",)),
    "vdsr": Architecture("lkca_jax.models.baselines:build_vdsr", "lkca_jax.torch_ref:build_vdsr",
                         torch_names=((r"^conv(\d+)$", r"convs.\1"),)),
    "bicubic": Architecture("lkca_jax.models.baselines:build_bicubic"),
}

METHODS = {m.name: m for m in (
    Method("net", "LKCA-Net", "lkca", model={"upsampler": "dense"}),
    Method("lr", "LKCA-LR", "lkca", model={"upsampler": "grouped"}),
    Method("kd", "LKCA-KD", "lkca", model={"upsampler": "grouped"}, teacher=True),
    Method("vdsr", "VDSR", "vdsr"),
    Method("bicubic", "Bicubic", "bicubic"),
)}


def _resolve(spec: str):
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def method_of(config) -> Method:
    """The method a full config was made for (``config.variant``)."""
    name = config.get("variant", "")
    if name not in METHODS:
        raise ValueError(f"config variant {name!r} is not a registered method {tuple(METHODS)}")
    return METHODS[name]


def architecture_of(config) -> Architecture:
    """The architecture of a config or of its ``model`` block (``model.name``)."""
    m = config.model if "model" in config else config
    if m.name not in ARCHITECTURES:
        raise ValueError(f"unknown model name {m.name!r}; expected one of {tuple(ARCHITECTURES)}")
    return ARCHITECTURES[m.name]
