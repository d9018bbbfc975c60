"""Feature-alignment distillation (LKCA-KD, docs/design.md section 4.3).

The student (LKCA-LR) is trained with ``L_sup + lambda(epoch) * L_KD`` where
``L_KD`` aligns its post-PixelShuffle feature map with a frozen teacher's
(LKCA-Net from ``config.teacher.workdir``, any depth): L1 + gradient loss +
(1 - cosine of spectral vectors). ``lambda(e) = lambda0 * gamma ** floor(e / T)``
is an optax staircase schedule of the epoch carried by each batch, so it is
exact at epoch boundaries whatever the batch size. The teacher's variables live
in the train state (``state.teacher``) behind ``stop_gradient``: no optimizer
state, never updated, never saved with the student (its checkpoint records the
teacher's workdir and :func:`fingerprint` instead: a resume refuses a teacher whose weights changed,
a run folder trained on or a shipped model shipped anew, rather than switching teacher midway).
"""

from __future__ import annotations

import dataclasses
import hashlib

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lkca_jax import losses
from lkca_jax.pretrained import is_shipped, load_run_or_shipped


def teacher_source(config) -> str:
    """``config.teacher.workdir``, refused in one line where it is empty or neither a run folder nor a
    shipped model."""
    if not config.teacher.workdir:
        raise ValueError("the kd variant needs config.teacher.workdir: a trained LKCA-Net run or a shipped one")
    is_shipped(config.teacher.workdir, "teacher.workdir")
    return config.teacher.workdir


def fingerprint(variables) -> str:
    """A SHA-256 (16 hex digits) of a teacher's variables: each leaf's path, dtype, shape and bytes, in
    path order; the same weights give the same one whether read from a run or a shipped model."""
    digest = hashlib.sha256()
    leaves = jax.tree_util.tree_flatten_with_path(variables)[0]
    for key, leaf in sorted((jax.tree_util.keystr(path), leaf) for path, leaf in leaves):
        a = np.asarray(leaf)
        digest.update(f"{key}|{a.dtype}|{a.shape}|".encode())
        digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()[:16]


def check_same_teacher(meta: dict, now: str, config, workdir) -> None:
    """A resumed KD run's teacher must be the one its checkpoint was trained with (``meta``'s
    ``teacher_digest``, where recorded): a ValueError in one line otherwise."""
    then = meta.get("teacher_digest")
    if then and then != now:
        raise ValueError(f"{workdir}: teacher.workdir {config.teacher.workdir} now holds other weights than the "
                         f"teacher this run was trained with (fingerprint {now}, was {then}); resume with that "
                         "teacher, or start a new workdir")


def kd_schedule(lambda0: float, gamma: float, decay_epochs: float) -> optax.Schedule:
    """lambda(epoch) = lambda0 * gamma ** floor(epoch / decay_epochs); ``epoch`` and the period may be
    fractional (a short run scales the paper's 10-epoch period down with its length)."""
    return optax.exponential_decay(lambda0, decay_epochs, gamma, staircase=True)


@dataclasses.dataclass(frozen=True)
class Distiller:
    teacher_model: object  # a flax module
    schedule: optax.Schedule
    l1_weight: float = 1.0
    grad_weight: float = 1.0
    cos_weight: float = 1.0

    def terms(self, teacher_variables, lr, student_features, mask, epoch) -> dict:
        """KD loss terms and ``kd_weight`` for this batch (``epoch``: per-image epochs, all equal)."""
        frozen = jax.lax.stop_gradient(teacher_variables)
        with jax.named_scope("teacher"):  # named so that bench/profile_step.py reports the parts apart
            _, teacher_features = self.teacher_model.apply(frozen, lr, train=False)
        with jax.named_scope("kd_loss"):
            out = losses.distillation(student_features, jax.lax.stop_gradient(teacher_features), self.l1_weight,
                                      self.grad_weight, self.cos_weight, mask)
        out["kd_weight"] = jnp.asarray(self.schedule(epoch[0]), jnp.float32)
        return out

    @classmethod
    def from_config(cls, config):
        """The distiller and the teacher's variables, restored from ``config.teacher.workdir`` (a run
        folder, or a shipped model of that name)."""
        t = config.teacher
        teacher, variables, teacher_config = load_run_or_shipped(teacher_source(config), t.which)
        for field in ("bands", "scale"):
            if teacher_config.model[field] != config.model[field]:
                raise ValueError(f"teacher {t.workdir} has {field}={teacher_config.model[field]}, "
                                 f"the student {config.model[field]}")
        return cls.of_teacher(config, teacher), jax.tree.map(jnp.asarray, variables)

    @classmethod
    def of_teacher(cls, config, teacher_model):
        """The distiller of ``teacher_model`` with ``config.teacher``'s schedule and loss weights."""
        t = config.teacher
        return cls(teacher_model, kd_schedule(t.lambda0, t.gamma, t.decay_epochs), t.l1_weight, t.grad_weight,
                   t.cos_weight)
