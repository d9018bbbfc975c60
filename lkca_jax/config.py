"""The shared base config and the loader for ``configs/<dataset>.py:<arg>`` specs.

Dataset files in ``configs/`` call :func:`base_config` and override only what
differs. The argument is ``'<scale>,<variant>'``: scale ``x2``/``x3``/``x4``/
``x8`` (or a bare integer), variant a method of :data:`lkca_jax.methods.METHODS`:

* ``net``: LKCA-Net, dense upsampler
* ``lr``: LKCA-LR, grouped upsampler (g = 8)
* ``kd``: LKCA-KD, the LR model trained with distillation from a teacher
* ``vdsr``: the paper's VDSR baseline
* ``fcnn3d``: the paper's 3D-FCNN baseline
* ``sspsr``: SSPSR, with its own loss and recipe
* ``msdformer``: MSDformer, with its own recipe
* ``essaformer``: ESSAformer
* ``bicubic``: MATLAB bicubic, no parameters

The method's registry entry sets ``model.name`` (its architecture) and its own model and training
fields over the base values below.
"""

from __future__ import annotations

import ast
import importlib.util
import pathlib

import ml_collections

from lkca_jax.data.registry import DATASETS
from lkca_jax.data.spec import data_config, with_defaults
from lkca_jax.methods import ARCHITECTURES, METHODS


def parse_arg(arg: str, default_scale: int = 4) -> tuple[int, str]:
    """``'x4,net'`` -> (4, 'net'); either part may be missing (defaults x4, net), in any order."""
    scale, variant = default_scale, "net"
    for part in filter(None, (p.strip() for p in (arg or "").split(","))):
        if part.lstrip("xX").isdigit():
            scale = int(part.lstrip("xX"))
        elif part in METHODS:
            variant = part
        else:
            raise ValueError(f"config argument {arg!r}: {part!r} is neither a scale (x2, x3, x4, x8) "
                             f"nor a method {tuple(METHODS)}")
    if scale < 2:
        raise ValueError(f"config argument {arg!r}: scale must be at least 2")
    return scale, variant


def base_config(dataset: str, arg: str = "", bands: int | None = None) -> ml_collections.ConfigDict:
    """Everything shared by all datasets, with the paper's values as defaults, then the
    dataset's own fields from its entry in :data:`lkca_jax.data.registry.DATASETS` (a folder of any
    cubes needs ``bands``)."""
    scale, variant = parse_arg(arg)
    if dataset not in DATASETS:
        raise ValueError(f"dataset {dataset!r} is not registered; known: {', '.join(DATASETS)}")
    entry = DATASETS[dataset]
    bands = bands or entry.bands
    if not bands:
        raise ValueError(f"dataset {dataset!r} learns its band count from the files: give bands")
    c = ml_collections.ConfigDict()
    c.dataset = dataset
    c.variant = variant

    m = c.model = ml_collections.ConfigDict()
    method = METHODS[variant]
    m.name = method.architecture
    m.bands = bands
    m.scale = scale
    # LKCA-Net (docs/design.md section 3).
    m.features = 128
    m.depth = 16
    m.upsampler = "dense"
    # Paper: g = 8. 'auto:8' is 8 wherever 8 divides F and C*r*r (all the paper's settings) and
    # the largest valid divisor below 8 elsewhere (e.g. CAVE x2: 31*4 channels); an int is strict.
    m.groups = "auto:8"
    m.rank = 64  # only for upsampler='svd'
    m.up_kernel = 3
    # Choice: the upsampler's last kernel init x this; 0: SR starts as bicubic (1: PyTorch's). The
    # upsampler fields (upsampler, groups, rank, up_init_scale) apply to every architecture's own.
    m.up_init_scale = 0.0
    # LKCA only. The paper's Param column has C*r^2 parameters more than the architecture above, and
    # its Flops column no trace of them: one vector over the upsampler's C*r^2 output channels that
    # fvcore counts as 0. Its form is an inference (docs/architecture.md, "The parameter column"):
    # 'scale' (per-channel, init 1), 'prelu' (slope, init 0.25) or 'bias' (a second bias, init 0),
    # or 'none'. chikusei.py, houston.py and pavia.py, the paper's datasets, build 'scale'.
    m.up_extra = "none"
    m.kernel_sizes = (5, 7)
    m.dilations = (1, 3)  # choice: VAN's LKA (5x5 d1 then 7x7 d3); the paper lost the values
    m.se_reduction = 16
    m.fusion_groups = 4
    m.gamma_init = 1.0  # choice
    m.layer_scale_init = 1e-2  # choice: VAN's default
    m.drop_path_rate = 0.1  # choice: rate of the last block, linear from 0 (VAN)
    m.gelu_approximate = False  # PyTorch's nn.GELU is the exact erf form
    # The LKB's two normalisations: 'layer' (channels-first LayerNorm, mean and variance over the
    # channels per pixel, then a per-channel affine) or 'batch' (BatchNorm, statistics synced over the
    # data axis). Default 'layer', the paper's model as its Flops column shows it: fvcore counts it 0
    # and every LKCA entry comes out exact, where BatchNorm's 2 per element moves them off the printed
    # digits (Chikusei x4: 0.869G against 0.867G; docs/design.md section 3.3). On real data it trained
    # far worse in the one comparison made on the sample (720 steps: 0.54 dB below Bicubic against
    # 0.77 dB above with 'batch'; docs/benchmarks.md, at f814673), and again in the CAVE study
    # (docs/results.md: 0.97 dB below BatchNorm, one seed each, a gap ten times the seed spread).
    # So configs/sample.py and configs/cave.py, the configs trained here, choose 'batch'; the
    # remote-sensing configs (chikusei, houston, pavia) keep 'layer' because they build the paper's
    # model as its counts show it, untrained here.
    m.norm = "layer"
    m.ln_epsilon = 1e-6  # ConvNeXt's channels-first LayerNorm
    m.bn_momentum = 0.9  # BatchNorm running-average decay, Flax convention (= PyTorch momentum 0.1)
    m.bn_epsilon = 1e-5  # PyTorch's default
    m.conv_impl = "auto"  # auto | xla | fast (auto: fast on CPU, xla on GPU/TPU)
    # The compared architectures' own fields, under model.<name> (model.vdsr.depth), and the bicubic
    # residual where the architecture makes it a choice: both from its registry entry
    # (lkca_jax/methods.py, ARCHITECTURES), so that a config holds only its own architecture's.
    arch = ARCHITECTURES[method.architecture]
    if arch.fields:
        m[method.architecture] = ml_collections.ConfigDict(arch.fields)
    if arch.residual is not None:
        m.bicubic_residual = arch.residual

    # Data: the dataset's block (lkca_jax/data/spec.py, each field explained there). Dataset files set the rest.
    c.data = data_config(dataset)

    # Training (docs/design.md sections 4 and 5; lkca_jax/training.py).
    t = c.train = ml_collections.ConfigDict()
    t.seed = 0  # parameters, drop path and the epoch order
    t.batch_size = 32  # global, over all devices and processes (MSDformer: 32)
    t.num_epochs = 300  # MSDformer
    t.num_steps = 0  # > 0: stop after this many steps instead
    t.augment = "all8"  # all8 (MSDformer: every epoch has all 8 dihedral copies) | random | none
    t.optimizer = "adam"  # adam | adamw
    t.learning_rate = 1e-4  # SSPSR; the paper's value is lost
    t.schedule = "cosine"  # cosine (to min_learning_rate) | step | constant
    t.min_learning_rate = 1e-6
    t.warmup_steps = 0
    t.step_decay_epochs = 100  # step schedule: multiply by step_decay_rate every this many epochs
    t.step_decay_rate = 0.5
    t.weight_decay = 0.0  # adamw only
    # > 0: clip the global gradient norm. Short KD runs want it (docs/results.md, the CAVE study): the
    # cosine term of L_KD is singular at a zero-initialised student's features (up_init_scale 0), and
    # its first gradients would fill Adam's second moments for thousands of steps.
    t.grad_clip_norm = 0.0
    t.loss = "hloss"  # hloss (MSDformer's, the paper's) | mse (VDSR's, 3D-FCNN's) | sspsr; lkca_jax/losses.py
    t.l1_weight = 1.0  # HLoss: L1 + 0.5 SAM + 0.1 gradient (MSDformer)
    t.sam_weight = 0.5
    t.grad_weight = 0.1
    t.spatial_tv_weight = 1e-3  # SSPSR's loss: L1 + 1e-3 spatial TV + 2e-3 spectral TV (its code)
    t.spectral_tv_weight = 2e-3
    t.parallel = "pmap"  # pmap | jit (NamedSharding mesh); lkca_jax/parallel.py
    # Precision of the convolutions, products and activations: float32 | bfloat16 | float16 (dynamic
    # loss scaling). Parameters, optimizer state, EMA, normalisation statistics, softmax, the bicubic
    # residual, the losses and the metrics stay float32 (lkca_jax/precision.py says which and why).
    t.compute_dtype = "float32"
    # > 0 (e.g. 0.999): keep an exponential moving average of the params and BatchNorm statistics,
    # debiased (zero-initialised, / (1 - d^t)); validation, the best checkpoint, evaluation, sr,
    # export, compare, lowrank and a KD teacher then use it (--weights raw: the raw weights). 0: off.
    t.ema_decay = 0.0
    # k > 1: each step's batch (train.batch_size, unchanged) in k micro-batches of batch_size / k,
    # their gradients averaged, one update: the same batch in less memory (lkca_jax/training.py).
    t.grad_accum_steps = 1
    t.log_every_steps = 50
    t.eval_every_steps = 500  # validation MPSNR; the best checkpoint follows it
    t.checkpoint_every_steps = 500
    t.keep_checkpoints = 3
    t.prefetch = 2  # batches prepared ahead in a background thread
    # Start from another run's weights (or a shipped model's, by its name: one set of weights, which
    # init_which does not choose) instead of random ones (a fresh run only; a resume does not read it):
    # 'all' (fine-tune, e.g. a `lowrank convert`ed run) or 'backbone' (head and blocks: an LKCA-KD
    # student started from its teacher's backbone, the teacher's depth then equal to the student's).
    # Its EMA weights where it kept them, from its best-validation or its last checkpoint.
    t.init_from = ""
    t.init_parts = "all"  # all | backbone
    t.init_which = "best"  # best | last

    # Distillation, the kd variant (docs/design.md section 4.3; lkca_jax/distillation.py).
    k = c.teacher = ml_collections.ConfigDict()
    k.workdir = ""  # a trained LKCA-Net run or a shipped one's name (same bands and scale, any depth)
    k.which = "best"  # its best-validation or last checkpoint (a run's; a shipped model has one)
    k.lambda0 = 0.01  # lambda(e) = lambda0 * gamma ** floor(e / decay_epochs) (paper)
    k.gamma = 0.66
    k.decay_epochs = 10.0  # may be fractional: a run of E epochs scales the paper's 10 of ~300 to E / 30
    k.l1_weight = 1.0  # L_KD = L1 + gradient loss + (1 - cosine), equally weighted
    k.grad_weight = 1.0
    k.cos_weight = 1.0

    # Evaluation (lkca_jax/evaluation.py).
    e = c.eval = ml_collections.ConfigDict()
    e.batch_size = 1  # test images per jitted call
    e.validation_batch_size = 32
    # Test images whose LR side exceeds this many pixels run in tiles with the same result (LKCA-Net:
    # backbone whole at LR, upsampler tiled). 0: whole, falling back to tiles only when out of memory.
    e.tile = 0
    e.legacy_ergas = False  # True: the anchors' ERGAS with ratio 4 at every scale, labelled as such
    e.save_images = False
    e.bicubic_row = True  # the table also holds Bicubic on the same images, and the model's gain over it
    e.per_image = False  # each image's MPSNR, SAM and ERGAS (and the MPSNR gain) under the table
    # True: the model's mean over the 8 flips and quarter-turns of each image, each output turned back
    # (the geometric self-ensemble of EDSR's "+" rows): 8 times the work; the table names it "<method>+"
    # and goes to eval/test+.json (a training run writes the plain model's eval/test.json first)
    e.self_ensemble = False
    e.rgb_bands = ()  # false-colour (R, G, B) band indices; () picks bands at 3/4, 1/2 and 1/4 of the range
    # compute dtype of validation and evaluation (float32 | bfloat16 | float16); the table's metrics are
    # float32 either way. float32 by default, so that a run's numbers do not depend on its train dtype.
    e.dtype = "float32"

    # The method's own fields (lkca_jax/methods.py).
    m.update(method.model)
    t.update(method.train)

    # The paper's Flops column: MACs for one 16 x 16 low-resolution input.
    c.count_lr_size = 16
    return c


# Runs saved before the compared architectures' fields were nested (model.vdsr_depth, ...): each flat
# name and where it lives now; the three residual switches became one, model.bicubic_residual.
LEGACY_FIELDS = {
    "vdsr_features": "vdsr.features", "vdsr_depth": "vdsr.depth", "vdsr_residual": "bicubic_residual",
    "fcnn_widths": "fcnn3d.widths", "fcnn_taps": "fcnn3d.taps", "fcnn_residual": "bicubic_residual",
    "sspsr_features": "sspsr.features", "sspsr_blocks": "sspsr.blocks", "sspsr_res_scale": "sspsr.res_scale",
    "sspsr_subs": ("sspsr.subs", "msdformer.subs"), "sspsr_overlap": ("sspsr.overlap", "msdformer.overlap"),
    "sspsr_reduction": ("sspsr.reduction", "msdformer.reduction"),
    "msdformer_features": "msdformer.features", "msdformer_blocks": "msdformer.blocks",
    "msdformer_heads": "msdformer.heads", "msdformer_mlp_ratio": "msdformer.mlp_ratio",
    "essa_features": "essaformer.features", "essa_dropout": "essaformer.dropout",
}


def upgrade(config) -> ml_collections.ConfigDict:
    """A saved run's config in today's layout: the flat fields of :data:`LEGACY_FIELDS` of its own
    architecture moved under ``model.<name>``, the other architectures' dropped (every config used to
    carry all of them), its residual switch renamed; data fields newer than the run at their defaults
    (:func:`lkca_jax.data.spec.with_defaults`). Today's configs come back unchanged."""
    if "data" in config:
        config.data.update(with_defaults(config.data, config.data.protocol))
    m = config.model if "model" in config else config
    old = {name: m[name] for name in LEGACY_FIELDS if name in m}
    if not old:
        return config
    arch, entry = m.name, ARCHITECTURES.get(m.name)
    residual = m.get("bicubic_residual")  # MSDformer's and ESSAformer's switch kept its name
    for name in (*old, "bicubic_residual"):
        if name in m:
            del m[name]
    if entry is not None and entry.fields:
        block = ml_collections.ConfigDict(entry.fields)
        for name, value in old.items():
            targets = LEGACY_FIELDS[name]
            for target in (targets,) if isinstance(targets, str) else targets:
                owner, _, leaf = target.partition(".")
                if owner == arch:
                    block[leaf] = value
        m[arch] = block
    if entry is not None and entry.residual is not None:
        own = {"vdsr": "vdsr_residual", "fcnn3d": "fcnn_residual"}.get(arch, "")
        m.bicubic_residual = old.get(own, entry.residual if residual is None else residual)
    return config


def load_config(spec: str, overrides: dict | None = None) -> ml_collections.ConfigDict:
    """Load ``path/to/config.py[:arg]`` the way ml_collections' ``config_flags`` does, then apply
    ``overrides`` ({'model.depth': '32', ...}, values as typed on a command line)."""
    path, _, arg = spec.partition(":")
    file = pathlib.Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    module_spec = importlib.util.spec_from_file_location(f"_lkca_config_{file.stem}", file)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    config = module.get_config(arg) if arg else module.get_config()
    return apply_overrides(config, overrides, spec)


def apply_overrides(config: ml_collections.ConfigDict, overrides: dict | None, where: str):
    """``config`` with ``overrides`` ({'model.depth': '32', ...}, values as typed on a command line)
    set; an unknown field or a value of the wrong type is refused in one line naming ``where``."""
    for field, text in (overrides or {}).items():
        *parents, leaf = field.split(".")
        node = config
        for name in parents:
            node = node.get(name) if isinstance(node, ml_collections.ConfigDict) else None
        if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
            raise ValueError(f"{where}: no config field {field!r}")
        try:
            setattr(node, leaf, _parse_value(text))
        except TypeError as err:
            raise ValueError(f"{where}: --config.{field} {text!r}: {' '.join(str(err).split())}") from None
    return config


def _parse_value(text: str):
    """A command-line value as Python: numbers, tuples and booleans (any case); else the string."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def split_overrides(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """``--config.a.b value`` and ``--config.a.b=value`` pairs out of ``argv``: (the rest, overrides)."""
    rest, overrides, i = [], {}, 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--config."):
            field, eq, value = arg[len("--config."):].partition("=")
            if not eq:
                if i + 1 >= len(argv):
                    raise ValueError(f"{arg} needs a value")
                i, value = i + 1, argv[i + 1]
            overrides[field] = value
        else:
            rest.append(arg)
        i += 1
    return rest, overrides


# Each number's range: 'int >= n' (a whole number), '>= x', '> x', or an interval '[a, b)', '[a, b]'.
RANGES = {
    "model.bands": "int >= 1", "model.scale": "int >= 2", "model.features": "int >= 1", "model.depth": "int >= 0",
    "model.drop_path_rate": "[0, 1)", "model.bn_momentum": "[0, 1]", "model.essaformer.dropout": "[0, 1)",
    "data.val_fraction": "[0, 1)", "data.patch_size": "int >= 0", "data.stride": "int >= 0",
    "data.test_crop": "int >= 0",
    "train.batch_size": "int >= 1", "train.num_epochs": "int >= 0", "train.num_steps": "int >= 0",
    "train.learning_rate": "> 0", "train.min_learning_rate": ">= 0", "train.warmup_steps": "int >= 0",
    "train.step_decay_epochs": "> 0", "train.weight_decay": ">= 0", "train.grad_clip_norm": ">= 0",
    "train.ema_decay": "[0, 1)", "train.grad_accum_steps": "int >= 1", "train.log_every_steps": "int >= 1",
    "train.eval_every_steps": "int >= 1", "train.checkpoint_every_steps": "int >= 1",
    "train.keep_checkpoints": "int >= 1", "train.prefetch": "int >= 0",
    "teacher.decay_epochs": "> 0", "teacher.gamma": "[0, 1]",
    "eval.batch_size": "int >= 1", "eval.validation_batch_size": "int >= 1", "eval.tile": "int >= 0",
}


def _in_range(value, spec: str) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if spec.startswith("int "):
        return value == int(value) and value >= float(spec.split()[-1])
    if spec.startswith(">= "):
        return value >= float(spec[3:])
    if spec.startswith("> "):
        return value > float(spec[2:])
    low, high = (float(x) for x in spec[1:-1].split(","))
    return low <= value and (value <= high if spec.endswith("]") else value < high)


def check(config) -> None:
    """Refuse, in one line naming the field, a config whose values cannot make a run: an unknown
    method, dataset or name, a size or count out of its range, a run of no steps. Entry points call
    it before anything is written; training.check_train_config adds the optimizer, the schedule and
    the devices' division of the batch."""
    from lkca_jax import losses, parallel, precision
    from lkca_jax.data import pipeline, protocols
    from lkca_jax.models import lkca, upsampler
    from lkca_jax.ops.conv import IMPLS

    choices = {  # each from the module that acts on it
        "model.norm": lkca.NORMS, "model.upsampler": upsampler.UPSAMPLERS,
        "model.up_extra": tuple(upsampler.EXTRAS), "model.conv_impl": IMPLS,
        "data.source": ("files", "tfds"), "data.normalisation": protocols.NORMALISATIONS,
        "train.augment": pipeline.AUGMENTS, "train.loss": losses.LOSSES, "train.parallel": parallel.MODES,
        "train.compute_dtype": tuple(precision.DTYPES), "train.init_parts": ("all", "backbone"),
        "train.init_which": ("best", "last"),
        "teacher.which": ("best", "last"), "eval.dtype": tuple(precision.DTYPES),
    }  # the optimizer and the schedule: training.check_train_config

    def field(name):
        node = config
        for part in name.split("."):
            if not isinstance(node, ml_collections.ConfigDict) or part not in node:
                return None
            node = node[part]
        return node

    if config.get("variant", "net") not in METHODS:
        raise ValueError(f"config: unknown method {config.variant!r}; known: {', '.join(METHODS)}")
    if config.data.protocol not in DATASETS:
        raise ValueError(f"config: data.protocol {config.data.protocol!r} is none of {', '.join(DATASETS)}")
    if config.model.name not in ARCHITECTURES:
        raise ValueError(f"config: model.name {config.model.name!r} is none of {', '.join(ARCHITECTURES)}")
    for name, allowed in choices.items():
        value = field(name)
        if value is not None and value not in allowed:
            raise ValueError(f"config: {name} must be one of {' | '.join(allowed)}, got {value!r}")
    for name, spec in RANGES.items():
        value = field(name)
        if value is not None and not _in_range(value, spec):
            wording = spec.replace("int ", "a whole number ") if spec[0] in "i>" else f"in {spec}"
            raise ValueError(f"config: {name} must be {wording}, got {value!r}")
    t = config.get("train")
    if t is not None and config.model.name != "bicubic" and t.num_steps <= 0 and t.num_epochs <= 0:
        raise ValueError("config: train.num_epochs or train.num_steps must be positive (a run of no steps)")
