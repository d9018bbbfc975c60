"""The methods this library builds, trains and compares: one registry entry each.

A **method** is what a config argument names (``x4,net``, ``x4,vdsr``) and what a table row is
called: its display name, the architecture it uses, the model fields it sets on top of the base
config, its training-recipe defaults, and whether it trains against a frozen teacher.

An **architecture** (``config.model.name``) is one Flax module (``lkca_jax/models/<name>.py``) and
one PyTorch reference (``lkca_jax/reference/<name>.py``): where each builder lives, its own config
fields (held under ``model.<name>``) and its bicubic-residual default, how Flax parameter names
become the reference's ``state_dict`` names, and where its learnable upsampler sits (for ``rank``
and ``lowrank``). Several methods share one architecture (LKCA-Net, LKCA-LR and LKCA-KD are all
``lkca``; LKCA's own fields are the base config's model fields).

Model building (:func:`lkca_jax.models.build_model`), the PyTorch reference
(:func:`lkca_jax.reference.build_torch_model`), weight conversion (:mod:`lkca_jax.convert`), the
config (:func:`lkca_jax.config.base_config`), the evaluation table, ``rank``/``lowrank`` and the
config argument all read these two tables; adding an architecture is its Flax module, its PyTorch
reference, its entries here and its tests (README, "Adding a method"). Builders are named as
``"module:name"`` strings so that importing this registry imports neither flax nor torch.

Every architecture here maps the LR batch alone to ``(sr, features)`` and makes its bicubic image
inside (LKCA-Net's, VDSR's and 3D-FCNN's residual, SSPSR's skip input, Bicubic itself); where the
public code takes the bicubic image as a second input (SSPSR), its PyTorch reference accepts it
too, and it is the same MATLAB bicubic image.
"""

from __future__ import annotations

import dataclasses
import importlib
import re


@dataclasses.dataclass(frozen=True)
class Architecture:
    """One model: ``flax(model_config) -> nn.Module`` and ``torch(model_config) ->
    torch.nn.Module`` (None: no reference yet), as ``"module:function"``; ``fields``: its own config
    fields and their defaults, which a config of this architecture holds under ``model.<its name>``
    (``model.vdsr.depth``); ``residual``: the default of ``model.bicubic_residual`` (SR = the
    network's output + the MATLAB bicubic image, one shared head: :func:`lkca_jax.precision.head`)
    where the architecture makes it a choice, None where it does not (LKCA-Net always adds it, SSPSR
    reads the bicubic image through its own skip conv, Bicubic is nothing else); ``torch_names``: (regex,
    replacement) pairs applied in order to a Flax module path joined by dots, giving the
    reference's module path (its ``state_dict`` names: for SSPSR those of the public code);
    ``upsampler``: the ``params`` path of its learnable
    :class:`~lkca_jax.models.upsampler.Upsampler` (``conv``, or ``conv_v``/``conv_u``, inside),
    which ``rank`` and ``lowrank`` read and replace; None where there is none (a ``*`` matches
    every module at its level: one upsampler per x2 stage); ``reconstruction``: the top-level
    modules that work on the upsampled map (tails, skip convs), for the paper's Fig. 1 split of the
    parameters into backbone, learnable upsampler and reconstruction (``count --parts``)."""

    flax: str
    torch: str | None = None
    fields: dict = dataclasses.field(default_factory=dict)
    residual: bool | None = None
    torch_names: tuple[tuple[str, str], ...] = ()
    upsampler: tuple[str, ...] | None = None
    reconstruction: tuple[str, ...] = ()

    def build_flax(self, model_config):
        return _resolve(self.flax)(model_config)

    def build_torch(self, model_config):
        if self.torch is None:
            raise ValueError(f"no PyTorch reference for model {model_config.name!r}")
        return _resolve(self.torch)(model_config)

    def torch_name(self, module_path: str) -> str:
        for pattern, replacement in self.torch_names:
            module_path = re.sub(pattern, replacement, module_path)
        return module_path


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
    "lkca": Architecture("lkca_jax.models.lkca:build", "lkca_jax.reference.lkca:LKCANet",
                         torch_names=((r"^block(\d+)", r"blocks.\1"),), upsampler=("up",)),
    # residual on: VDSR's global residual learning, here the bicubic image
    "vdsr": Architecture("lkca_jax.models.baselines:build_vdsr", "lkca_jax.reference.baselines:VDSR",
                         fields={"features": 64, "depth": 18}, residual=True,
                         torch_names=((r"^conv(\d+)$", r"convs.\1"),), upsampler=("up",)),
    # docs/design.md section 8.4; taps: the spectral extent of its first and last kernels, (3,9,9) and
    # (3,5,5); residual on (a choice: add the bicubic image, as VDSR and LKCA-Net do)
    "fcnn3d": Architecture("lkca_jax.models.baselines:build_fcnn3d", "lkca_jax.reference.baselines:FCNN3D",
                           fields={"widths": (64, 32, 9), "taps": 3}, residual=True, upsampler=("up",)),
    # docs/design.md section 8.1 and its demo.sh: subs bands per group, overlap bands shared by
    # neighbouring groups, reduction: its channel attention's.
    # SSPSR's public code: SSPN blocks in ``body.net.<i>``, each block's convs at ``body.0``/``body.2``
    # of its ``spa``/``spc`` part, the attention at ``spc.body.3.conv_du.0/2``, the upsampling convs
    # at their index in ``upsample``'s Sequential.
    "sspsr": Architecture("lkca_jax.models.sspsr:build_sspsr", "lkca_jax.reference.sspsr:SSPSR",
                          fields={"features": 256, "blocks": 3, "subs": 8, "overlap": 2, "res_scale": 0.1,
                                  "reduction": 16}, torch_names=(
        (r"^(branch|trunk)\.body\.ssb(\d+)_spc\.ca\.conv(\d)$", r"\1.body.net.\2.spc.body.3.conv_du.\3"),
        (r"^(branch|trunk)\.body\.ssb(\d+)_(spa|spc)\.conv(\d)$", r"\1.body.net.\2.\3.body.\4"),
        (r"^branch\.upsample\.conv(\d+)$", r"branch.upsample.\1"),
        (r"^trunk\.upsample\.conv$", r"trunk.upsample.0"),
    ), upsampler=("trunk", "upsample"), reconstruction=("skip_conv", "final")),
    # docs/design.md section 8.2 and its demo.sh: blocks DCTMs; its head splits the bands as SSPSR's
    # does (subs, overlap) and its attention blocks reduce as SSPSR's. residual off as published (on:
    # ours, the bicubic image added after the tail conv, which then starts at zero).
    # MSDformer's public code: the head's shared DCAM ``IG`` and per-group ``spc``/``middle`` lists,
    # ``body``/``middle`` lists of DCTMs and 3x3 convs, the upsampling convs at their Sequential index.
    "msdformer": Architecture("lkca_jax.models.msdformer:build_msdformer", "lkca_jax.reference.msdformer:MSDformer",
                              fields={"features": 240, "blocks": 4, "heads": 6, "mlp_ratio": 4.0, "subs": 8,
                                      "overlap": 2, "reduction": 16}, residual=False, torch_names=(
        (r"^head\.IG\.spa\.conv(\d)$", r"head.IG.spa.body.\1"),
        (r"^head\.spc(\d+)\.ca\.conv(\d)$", r"head.spc.\1.body.3.conv_du.\2"),
        (r"^head\.spc(\d+)\.conv(\d)$", r"head.spc.\1.body.\2"),
        (r"^head\.middle(\d+)$", r"head.middle.\1"),
        (r"^(body|middle)(\d+)", r"\1.\2"),
        (r"^upsample\.stage(\d+)\.conv$", r"upsample.\1"),
        (r"^upsample\.stage(\d+)\.", r"upsample.\1."),  # svd stages keep conv_v/conv_u inside
    ), upsampler=("upsample", "*"), reconstruction=("skip_conv", "tail")),
    # docs/design.md section 8.3, ESSA(inch=C, dim=256, upscale=r); dropout: Dropout2d inside
    # Convup/Convdown, training only. residual as MSDformer's.
    # ESSAformer's ESSA.py: everything inside ``blockup``, the Sequential convs at their index.
    "essaformer": Architecture("lkca_jax.models.essaformer:build_essaformer", "lkca_jax.reference.essaformer:ESSA",
                               fields={"features": 256, "dropout": 0.2}, residual=False, torch_names=(
        (r"^blockup\.(convup|convdown)\.(convu|convd)(\d)$", r"blockup.\1.\2.\3"),
        (r"^blockup\.convdownsample\.conv(\d+)$", r"blockup.convdownsample.\1"),
        (r"^blockup\.convupsample\.stage(\d+)\.conv$", r"blockup.convupsample.\1"),
        (r"^blockup\.convupsample\.stage(\d+)\.", r"blockup.convupsample.\1."),
    ), upsampler=("blockup", "convupsample", "*"), reconstruction=("conv_last",)),
    "bicubic": Architecture("lkca_jax.models.baselines:build_bicubic"),
}

# SSPSR's recipe as its code sets it (docs/design.md section 5.2): Adam 1e-4, x0.1 every 30 epochs (its
# epochs count from 1, so it decays one epoch before ours), 40 epochs, batch 32, its own loss.
SSPSR_RECIPE = {"optimizer": "adam", "learning_rate": 1e-4, "schedule": "step", "step_decay_epochs": 30,
                "step_decay_rate": 0.1, "num_epochs": 40, "batch_size": 32,
                "loss": "sspsr"}

# MSDformer's (docs/design.md section 5.2): Adam 5e-5 (its argparse default), x0.1 every 150 epochs, 300
# epochs, batch 32, HLoss (the base config's loss, which is MSDformer's).
MSDFORMER_RECIPE = {"optimizer": "adam", "learning_rate": 5e-5, "schedule": "step", "step_decay_epochs": 150,
                    "step_decay_rate": 0.1, "num_epochs": 300, "batch_size": 32, "loss": "hloss"}

METHODS = {m.name: m for m in (
    Method("net", "LKCA-Net", "lkca", model={"upsampler": "dense"}),
    Method("lr", "LKCA-LR", "lkca", model={"upsampler": "grouped"}),
    Method("kd", "LKCA-KD", "lkca", model={"upsampler": "grouped"}, teacher=True),
    Method("vdsr", "VDSR", "vdsr"),
    # its paper's loss (Mei et al. 2017; docs/design.md section 5.2): on the sample, with the main job's
    # budget, HLoss left it 0.13 dB below Bicubic and MSE 0.22 dB above (docs/results.md)
    Method("fcnn3d", "3D-FCNN", "fcnn3d", train={"loss": "mse"}),
    # its convs keep PyTorch's default init, the trunk upsampler included (no bicubic residual to start from)
    Method("sspsr", "SSPSR", "sspsr", model={"up_init_scale": 1.0}, train=SSPSR_RECIPE),
    # their upsamplers keep PyTorch's default init (no bicubic residual to start from)
    Method("msdformer", "MSDformer", "msdformer", model={"up_init_scale": 1.0}, train=MSDFORMER_RECIPE),
    # no training code was released: the base recipe (Adam, HLoss)
    Method("essaformer", "ESSAformer", "essaformer", model={"up_init_scale": 1.0}),
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


def method_name(config) -> str:
    """A table row's name: the method's display name, and what a conversion made of it."""
    method = METHODS.get(config.get("variant", ""))
    name = method.display if method else config.model.name
    if config.get("converted", ""):
        kind, _, n = config.converted.split()[0].partition(":")
        return f"{name} -> {'SVD r' if kind == 'svd' else 'grouped g'}={n}"
    if config.model.name == "lkca" and config.model.upsampler == "svd":
        name += f" (SVD r={config.model.rank})"
    return name


def upsampler_parts(variables: dict, config) -> dict[tuple[str, ...], dict]:
    """{``params`` path: subtree} of the model's learnable upsampler: one entry, or one per stage
    where the architecture's path ends in ``*`` (MSDformer's and ESSAformer's x2 stages)."""
    path = architecture_of(config).upsampler
    if path is None:
        m = config.model if "model" in config else config
        raise ValueError(f"a {m.name} model has no learnable upsampler to read or convert")
    parts = {(): variables["params"]}
    for key in path:
        parts = {p + (k,): node[k] for p, node in parts.items() for k in (sorted(node) if key == "*" else [key])}
    return parts
