"""Models trained by this project, shipped inside the package: ``load_pretrained(name)``.

Each lives in a folder beside this file, ``<name>/``: ``config.json`` (the run's config),
``variables.npz`` (every array of the trained ``params`` and ``batch_stats``, keyed by its
slash-joined path), ``test.json`` (its evaluation, per test image) and ``README.md`` (what it is,
the command that trained it, its test table and the data's citation). ``recipes/cave_study.py
--ship`` writes them from the CAVE study's runs (docs/results.md); no orbax, no training workdir and
no ``../shared`` are needed to use them.

    model, variables, config = lkca_jax.load_pretrained("cave-x4-lkca-kd")
    python -m lkca_jax sr --pretrained cave-x4-lkca-kd --input scene.mat --output scene_x4.mat
"""

from __future__ import annotations

import pathlib
import shutil
import tempfile

import numpy as np

HERE = pathlib.Path(__file__).parent
SEP = "/"


def available() -> list[str]:
    """The names shipped with this installation."""
    return sorted(p.name for p in HERE.iterdir() if (p / "variables.npz").is_file())


def folder(name: str) -> pathlib.Path:
    if name not in available():
        raise ValueError(f"no pretrained model {name!r}; shipped: {', '.join(available()) or 'none'}")
    return HERE / name


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    for key, value in tree.items():
        path = f"{prefix}{SEP}{key}" if prefix else str(key)
        out.update(_flatten(value, path) if isinstance(value, dict) else {path: np.asarray(value)})
    return out


def _unflatten(flat) -> dict:
    tree: dict = {}
    for path, value in flat.items():
        *parents, leaf = path.split(SEP)
        node = tree
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return tree


def is_shipped(source: str, field: str = "") -> bool:
    """Whether ``source`` names a shipped model (there being no run folder, a folder with a
    ``config.json``, at that path from the current directory) rather than a run folder; a ValueError,
    in one line naming the config ``field`` given, where it is neither."""
    if (pathlib.Path(source) / "config.json").is_file():
        return False
    if source in available():
        return True
    raise ValueError(f"{field + ' ' if field else ''}{source}: neither a run folder nor a shipped model "
                     f"({', '.join(available()) or 'none'})")


def load_run_or_shipped(source: str, which: str = "best"):
    """``(model, variables, config)`` of the run folder ``source`` (its ``which`` checkpoint, EMA
    weights where kept) or, where there is no such folder, of the shipped model of that name (one set
    of weights, its EMA ones: ``which`` does not apply). ``train.init_from`` and ``teacher.workdir``
    read theirs here."""
    from lkca_jax.checkpoint import load_run

    return load_pretrained(source) if is_shipped(source) else load_run(source, which)


def load_pretrained(name: str):
    """``(model, variables, config)`` of a shipped model, as :func:`lkca_jax.load_run` gives a run's."""
    from lkca_jax.checkpoint import load_config
    from lkca_jax.models import build_model

    where = folder(name)
    config = load_config(where)
    with np.load(where / "variables.npz") as npz:
        variables = _unflatten({k: npz[k] for k in npz.files})
    variables.setdefault("batch_stats", {})
    return build_model(config), variables, config


def ship(workdir, name: str, which: str, readme: str, root=HERE) -> pathlib.Path:
    """Write the trained run in ``workdir`` as the shipped model ``name`` under ``root`` (a fresh folder
    renamed into place, so a failure leaves any previous version whole)."""
    from lkca_jax.checkpoint import CONFIG_FILE, restore_variables

    _, variables, _ = restore_variables(workdir, which)
    root = pathlib.Path(root)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        shutil.copy(pathlib.Path(workdir) / CONFIG_FILE, tmp / CONFIG_FILE)
        shutil.copy(pathlib.Path(workdir) / "eval" / "test.json", tmp / "test.json")
        np.savez_compressed(tmp / "variables.npz", **_flatten(variables))
        (tmp / "README.md").write_text(readme)
        tmp.chmod(0o755)  # mkdtemp makes it private; a package's data are readable by all
        for f in tmp.iterdir():
            f.chmod(0o644)
        target = root / name
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
