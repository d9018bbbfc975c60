"""Weights between Flax and PyTorch (:mod:`lkca_jax.reference`), both ways, and ``.pt`` files.

Names: the Flax module path joined by dots, renamed as the architecture's registry entry says
(:mod:`lkca_jax.methods`: LKCA's ``block{i}`` -> ``blocks.{i}``, VDSR's ``conv{i}`` ->
``convs.{i}``, SSPSR's to its public code's names). Leaves: conv ``kernel`` (k, k, in/g, out) <->
``weight`` (out, in/g, k, k), 3-D (taps, k, k, in/g, out) <-> (out, in/g, taps, k, k); Dense
``kernel`` (in, out) <-> ``weight`` (out, in); BatchNorm ``scale``/``bias`` and the
``batch_stats`` ``mean``/``var`` <-> ``weight``/``bias``/``running_mean``/``running_var``; vectors
(``gamma``, ``layer_scale``, biases) as they are. Both directions walk the Flax model's own
parameter tree, so a missing or extra tensor is an error naming it.

Only NumPy is needed for the state dicts themselves (arrays in, arrays out); reading and writing
``.pt`` files needs torch and never unpickles anything but tensors (``weights_only=True``).
"""

from __future__ import annotations

import pathlib

import jax
import numpy as np

from lkca_jax.methods import architecture_of

LEAVES = {"scale": "weight", "mean": "running_mean", "var": "running_var"}


def _torch_name(path: tuple[str, ...], architecture) -> str:
    *modules, leaf = path
    leaf = "weight" if leaf == "kernel" else LEAVES.get(leaf, leaf)
    return f"{architecture.torch_name('.'.join(modules))}.{leaf}"


# kernel axes: Flax (k, k, in, out) <-> torch (out, in, k, k); 3-D (taps, k, k, in, out) <-> (out, in, taps, k, k)
TO_TORCH = {2: (1, 0), 4: (3, 2, 0, 1), 5: (4, 3, 0, 1, 2)}
TO_FLAX = {2: (1, 0), 4: (2, 3, 1, 0), 5: (2, 3, 4, 1, 0)}


def _to_torch(leaf: str, x: np.ndarray) -> np.ndarray:
    return x.transpose(TO_TORCH[x.ndim]) if leaf == "kernel" else x


def _to_flax(leaf: str, x: np.ndarray) -> np.ndarray:
    return x.transpose(TO_FLAX[x.ndim]) if leaf == "kernel" and x.ndim in TO_FLAX else x


def _flat(variables) -> dict[tuple[str, ...], np.ndarray]:
    """{(collection, module..., leaf): array} over params and batch_stats."""
    out = {}
    for path, x in jax.tree_util.tree_leaves_with_path(dict(variables)):
        out[tuple(k.key for k in path)] = np.asarray(x)
    return out


def flax_to_torch(variables, config) -> dict[str, np.ndarray]:
    """A PyTorch state dict (NumPy arrays; ``torch.from_numpy`` each to load) of the Flax variables
    of ``config``'s model."""
    architecture = architecture_of(config)
    return {_torch_name(path[1:], architecture): np.ascontiguousarray(_to_torch(path[-1], x))
            for path, x in _flat(variables).items()}


def flax_template(config):
    """The shapes of the Flax variables of ``config``'s model (nothing is computed)."""
    from lkca_jax.models import build_model

    model = build_model(config)
    lr = jax.ShapeDtypeStruct((1, 16, 16, config.model.bands), np.float32)
    return jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), lr)


def torch_to_flax(state_dict, config) -> dict:
    """Flax variables for ``config``'s model from a PyTorch state dict (tensors or arrays)."""
    template = _flat(jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), flax_template(config)))
    architecture = architecture_of(config)
    sd = {k: np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v) for k, v in state_dict.items()}
    sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    if sd and all(k.startswith("module.") for k in sd):  # saved from nn.DataParallel without .module
        sd = {k[len("module."):]: v for k, v in sd.items()}
    out: dict = {}
    used = set()
    for path, like in template.items():
        name = _torch_name(path[1:], architecture)
        if name not in sd:
            raise ValueError(f"state dict has no {name!r} (needed for Flax {'/'.join(path)})")
        x = _to_flax(path[-1], sd[name])
        if x.shape != like.shape:
            raise ValueError(f"{name}: shape {tuple(sd[name].shape)} does not fit Flax {'/'.join(path)} {like.shape}")
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = x.astype(like.dtype)
        used.add(name)
    extra = sorted(set(sd) - used)
    if extra:
        raise ValueError(f"state dict has tensors the model does not: {', '.join(extra[:5])}"
                         + (" ..." if len(extra) > 5 else ""))
    return out


def torch_model(variables, config):
    """The PyTorch reference of ``config``'s model holding ``variables`` (eval mode). Every tensor
    must load; only BatchNorm's ``num_batches_tracked`` counters, which Flax has no use for, stay."""
    import torch

    from lkca_jax.reference import build_torch_model

    net = build_torch_model(config)
    result = net.load_state_dict({k: torch.from_numpy(v) for k, v in flax_to_torch(variables, config).items()},
                                 strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise ValueError(f"weights do not fit the PyTorch reference: missing {missing[:5]}, "
                         f"unexpected {result.unexpected_keys[:5]}")
    return net.eval()


def save_pt(path, variables, config) -> None:
    """A ``.pt`` file: {'state_dict': tensors, 'config': the run config as JSON text} (atomic)."""
    import torch

    from lkca_jax.atomic import atomic_write

    payload = {"state_dict": {k: torch.from_numpy(v) for k, v in flax_to_torch(variables, config).items()},
               "config": config.to_json_best_effort()}
    atomic_write(pathlib.Path(path), lambda tmp: torch.save(payload, tmp))


# Where other code keeps the weights in a saved dict (BasicSR: params_ema, then params; others: model, net).
WRAPPERS = ("params_ema", "params", "model", "net")


def load_pt(path):
    """(state_dict, config or None) of a ``.pt`` file: ours, a bare PyTorch state dict, or a
    checkpoint dict holding one under a :data:`WRAPPERS` key."""
    import torch

    from lkca_jax.checkpoint import config_from_json

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for damaged or unsafe files
        raise ValueError(f"{path}: not a loadable weights-only PyTorch file ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:200]})") from None
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: expected a state dict, found {type(payload).__name__}")
    if "state_dict" in payload:
        config = payload.get("config")
        config = config_from_json(config) if isinstance(config, str) else None
        return payload["state_dict"], config
    for key in WRAPPERS:  # training scripts' checkpoint dicts around the weights
        if isinstance(payload.get(key), dict):
            return payload[key], None
    return payload, None
