"""JAX against PyTorch, each framework alone in its own process: inference, train steps, scaling, peak.

    python bench/compare.py --suite official --official DIR   # every method, the issue-35 grid (below)
    python bench/compare.py --suite acceptance     # 16 x 16 LR, x4, 102 bands, batch 16 (the targets)
    python bench/compare.py --suite inference      # 16 x 16 LR at x4 / x8, bands 48 / 102 / 128; 128 x 128 x4
    python bench/compare.py --suite train          # LKCA-Net and LKCA-KD steps, batch 16 and 32
    python bench/compare.py --suite scaling --plots docs/img   # time and memory vs LR size, bands, scale
    python bench/compare.py --suite peak           # achieved GFLOP/s against the measured matmul peak (JAX only)
    python bench/compare.py --suite baselines      # VDSR, 3D-FCNN, SSPSR at the LKCA rows' shapes
    python bench/compare.py --suite claim [--scales 4,8] [--dtype bfloat16]   # every method, 512 x 512 x 128 HR
    python bench/compare.py --suite transformers   # MSDformer and ESSAformer at 16 x 16 and 64 x 64 LR, x4

**The PyTorch side.** With ``--official DIR``, SSPSR, MSDformer and ESSAformer run their public code:
``DIR/SSPSR`` (``SSPSR.py``, ``common.py``, ``loss.py`` of junjun-jiang/SSPSR), ``DIR/MSDformer``
(``MSDformer.py``, ``common.py``, ``loss.py`` of Tomchenshi/MSDformer; it needs ``pip install einops``,
and timm where it loads: see ``_timm_or_stand_in``) and ``DIR/ESSAformer`` (``ESSA.py`` of
Rexzhan/ESSAformer), built with the settings of their own ``demo.sh`` (the paper's widths), trained
with their own losses (``HybridLoss`` with both TV terms, ``HLoss(0.5, 0.1)``; ESSAformer released
none, so HLoss as the base recipe here) and Adam. The code is read from ``DIR`` at run time and not
changed; SSPSR's and MSDformer's forwards call ``.cuda()`` on the buffers they create, which on a
machine without CUDA is made a no-op (``torch.Tensor.cuda``) in the PyTorch worker only. Every other
method (and every method without ``--official``) runs the project's independent reference,
:mod:`lkca_jax.reference`.

**The same weights.** For each row the PyTorch worker draws PyTorch's default initialisation (seed 0) and
writes the state dict; the JAX worker converts it with :func:`lkca_jax.convert.torch_to_flax`, the
conversion ``python -m lkca_jax convert --from`` runs. Inference rows report the largest difference
between the two outputs on the row's input (their weights, input and model agree when it is at float
rounding). SSPSR's and MSDformer's public forwards take the bicubic image as a second input, which
their data loaders precompute; PyTorch gets it precomputed (not timed) and JAX computes it inside
its model (timed).

**How it is timed.** Both frameworks get the same shapes, batch, weights and threads
(``torch.set_num_threads`` = the CPU count XLA uses) and the same device: JAX's default backend,
PyTorch on CUDA when JAX runs on a GPU (there both may use TF32 for float32 convs and matmuls, XLA's
default, and cuDNN autotunes per shape as XLA does; no process preallocates the GPU's memory). Each
framework runs in its own worker process (this file with ``--worker``), started once per row and
warmed up (JAX's compile); both stay resident for the row, so their memory adds up, but only one
runs at a time: a round times ``--iters`` calls (or, with the default 0, as many as fill about
``--round-seconds``) in one worker and then in the other, the order alternating from round to round,
and the ratio PyTorch time / JAX time (JAX's speed-up) is taken per round; the table gives the min,
median and max of ``--rounds`` such ratios. ``--dtype bfloat16`` runs the inference suites in bfloat16:
JAX as it trains and evaluates in it (``build_model(..., dtype)``: float32 weights, input, bicubic
residual and normalisation statistics, the convolutions and products in bfloat16;
lkca_jax/precision.py), PyTorch with its module and input cast to bfloat16. Train steps are the full
update (forward, the method's loss, backward, Adam; for LKCA-KD also the frozen teacher's forward and
the KD loss); JAX's is the trainer's own (``training.assemble``). ``--accum K`` cuts a train row's
batch into K micro-batches in both frameworks (JAX: the trainer's ``train.grad_accum_steps``, a
``lax.scan``; PyTorch: K backward passes of the micro-batch loss over K, then one Adam step), for
steps whose whole batch does not fit in memory; the batch cell then reads ``16 (K x 16/K)``
(``32 (K x 32/K)`` for the train suite's batch-32 rows). LKCA models are the
paper's size (16 LKBs of 128 features) unless ``--depth``/``--features``; the JAX worker keeps the allocator setting
of the project's entry points (lkca_jax/hostmem.py; in train rows, like the trainer, it calls
``hostmem.bound_growth`` after the first step), the PyTorch worker the C library's default, as
each framework's users run them. Each row gives both workers' peak resident host memory (not GPU
memory) and the calls per round; a worker that dies (out of memory, say) gives a row that says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

DATASET_BY_BANDS = {48: "houston", 102: "pavia", 128: "chikusei"}
OFFICIAL = ("sspsr", "msdformer", "essaformer")  # methods whose public code --official runs
# the issue-35 grid: inference at 16 x 16 LR batch 1 and 16 and at 64 x 64 LR batch 1, the train
# step at 16 x 16 LR batch 16; x4 and x8; 128 bands
GRID = (("infer", 16, 1), ("infer", 16, 16), ("infer", 64, 1), ("train", 16, 16))


@dataclasses.dataclass(frozen=True)
class Case:
    """One row: ``kind`` infer | train, the method, its shapes, and where its PyTorch code comes from."""

    kind: str
    variant: str
    bands: int
    scale: int
    size: int
    batch: int
    dtype: str = "float32"
    official: str = ""  # the checkout folder of --official, for the methods in OFFICIAL
    depth: int | None = None
    features: int | None = None
    accum: int = 1  # train rows: the batch as this many micro-batches, one optimizer update

    @property
    def uses_official(self) -> bool:
        return bool(self.official) and self.variant in OFFICIAL


def make_config(variant: str, bands: int, scale: int, depth=None, features=None):
    from lkca_jax.config import load_config

    configs = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
    c = load_config(f"{configs}/{DATASET_BY_BANDS.get(bands, 'chikusei')}.py:x{scale},{variant}")
    c.model.bands = bands
    c.model.up_init_scale = 1.0
    if depth is not None:
        c.model.depth = depth
    if features is not None:
        c.model.features = features
    return c


def case_config(case: Case, variant: str | None = None):
    """The config of ``variant`` (default: the row's model; LKCA-KD's is its LKCA-LR student) at the
    row's bands, scale and width."""
    variant = variant or ("lr" if case.variant == "kd" else case.variant)
    return make_config(variant, case.bands, case.scale, case.depth, case.features)


def _save_state(net, path: str):
    np.savez(path, **{k: v.detach().cpu().numpy() for k, v in net.state_dict().items()})


def _warm_and_serve(call, info: dict, save_output=None):
    """Times the first call (JAX's compile) and a second, hands the first output to
    ``save_output`` (inference rows), then serves timing requests."""
    t = time.perf_counter()
    out = call()
    first = time.perf_counter() - t
    if save_output is not None:
        save_output(out)
    t = time.perf_counter()
    call()
    _serve(call, {**info, "first_s": first, "warm_s": time.perf_counter() - t})


# ---------------------------------------------------------------------------------------------------
# PyTorch worker


def _timm_or_stand_in():
    """MSDformer.py and ESSA.py import ``DropPath``, ``to_2tuple`` and ``trunc_normal_`` from
    ``timm.models.layers``. Where timm cannot be imported (it needs torchvision, and PyPI's
    torchvision wheels do not load with PyTorch's CPU wheel), these three names come from here:
    ``to_2tuple`` and ``trunc_normal_`` as timm defines them, and a ``DropPath`` that refuses to be
    built (the public code builds it only at a drop-path rate above 0, which it never passes)."""
    import types

    import torch

    try:
        importlib.import_module("timm.models.layers")
        return
    except Exception:  # ImportError, or torchvision's RuntimeError on a mismatched wheel
        pass

    class DropPath(torch.nn.Module):
        def __init__(self, *args, **kwargs):
            raise NotImplementedError("DropPath at a rate above 0 needs timm")

    layers = types.ModuleType("timm.models.layers")
    layers.DropPath, layers.trunc_normal_ = DropPath, torch.nn.init.trunc_normal_
    layers.to_2tuple = lambda x: tuple(x) if isinstance(x, (tuple, list)) else (x, x)
    for name in ("timm", "timm.models"):
        sys.modules[name] = types.ModuleType(name)
    sys.modules["timm.models.layers"] = layers


def _official_model(case: Case, c):
    """(module, loss, takes_lms) of the method's public code at ``case.official``, with its
    demo.sh settings (the widths and counts of ``c.model``, which are the paper's)."""
    import torch

    m = c.model
    folder = {"sspsr": "SSPSR", "msdformer": "MSDformer", "essaformer": "ESSAformer"}[case.variant]
    sys.path.insert(0, os.path.join(case.official, folder))
    _timm_or_stand_in()
    if not torch.cuda.is_available():  # their forwards put new buffers on CUDA; without one, a no-op
        torch.Tensor.cuda = lambda self, *args, **kwargs: self
    if case.variant == "sspsr":
        code, loss = importlib.import_module("SSPSR"), importlib.import_module("loss")
        net = code.SSPSR(n_subs=m.sspsr.subs, n_ovls=m.sspsr.overlap, n_colors=m.bands, n_blocks=m.sspsr.blocks,
                         n_feats=m.sspsr.features, n_scale=m.scale, res_scale=m.sspsr.res_scale, use_share=True)
        return net, loss.HybridLoss(spatial_tv=True, spectral_tv=True), True
    if case.variant == "msdformer":
        code, loss = importlib.import_module("MSDformer"), importlib.import_module("loss")
        net = code.MSDformer(n_subs=m.msdformer.subs, n_ovls=m.msdformer.overlap, n_colors=m.bands, scale=m.scale,
                             n_feats=m.msdformer.features, n_DCTM=m.msdformer.blocks)
        return net, loss.HLoss(0.5, 0.1), True
    from lkca_jax.reference import losses

    code = importlib.import_module("ESSA")
    return code.ESSA(inch=m.bands, dim=m.essaformer.features, upscale=m.scale), losses.training_loss(c.train), False


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def torch_worker(case: Case, folder: str, threads: int, device: str):
    """Builds the row's PyTorch model, writes its weights, then times calls on request."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    c = case_config(case)
    if case.uses_official:
        net, loss_fn, takes_lms = _official_model(case, c)
    else:
        from lkca_jax.reference import build_torch_model, losses

        net, loss_fn, takes_lms = build_torch_model(c), losses.training_loss(c.train), False
    _save_state(net, os.path.join(folder, "weights.npz"))
    teacher = None
    if case.kind == "train" and case.variant == "kd":  # LKCA-KD's frozen LKCA-Net teacher
        from lkca_jax.reference import build_torch_model

        teacher = build_torch_model(case_config(case, "net")).eval()
        _save_state(teacher, os.path.join(folder, "teacher.npz"))

    dev = device
    if dev == "cuda":  # float32 convs and matmuls may use TF32, as XLA's default on GPU does;
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True  # and cuDNN picks its algorithms per shape, as XLA autotunes
    dtype = getattr(torch, case.dtype) if case.kind == "infer" else torch.float32
    data = np.load(os.path.join(folder, "inputs.npz"))
    nchw = {k: torch.from_numpy(np.ascontiguousarray(v.transpose(0, 3, 1, 2))).to(dev, dtype) for k, v in data.items()}
    args = (nchw["lr"], nchw["lms"]) if takes_lms else (nchw["lr"],)
    net = net.to(dev, dtype)

    def sync():
        if dev == "cuda":
            torch.cuda.synchronize()

    if case.kind == "infer":
        net.eval()

        def call():
            with torch.inference_mode():
                out = _first(net(*args))
            sync()
            return out
    else:
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)
        if teacher is not None:
            teacher.to(dev)

        def call():
            torch_train_step(net, opt, loss_fn, args, nchw["hr"], case.accum, teacher)
            sync()

    save = None
    if case.kind == "infer":
        def save(out):
            np.save(os.path.join(folder, "torch_out.npy"), out.float().cpu().numpy().transpose(0, 2, 3, 1))
    _warm_and_serve(call, {}, save)


def torch_train_step(net, opt, loss_fn, args, hr, k: int = 1, teacher=None, kd_weight: float = 0.01):
    """One update of ``net`` on the batch ``args`` (its inputs, NCHW) and ``hr`` in ``k`` micro-batches:
    each one's loss (with ``teacher``, plus ``kd_weight`` times the KD loss on its features) over k,
    backward, then one ``opt.step()``. The losses are means over images, so without BatchNorm or
    dropout this is the whole batch's update, up to rounding."""
    import torch

    opt.zero_grad(set_to_none=True)
    m = hr.shape[0] // k
    for j in range(k):
        part = slice(j * m, (j + 1) * m)
        out = net(*(a[part] for a in args))
        loss = loss_fn(_first(out), hr[part])
        if teacher is not None:
            with torch.no_grad():
                _, features = teacher(args[0][part])
            loss = loss + kd_weight * kd_torch_loss(out[1], features)
        (loss / k).backward()
    opt.step()


def kd_torch_loss(s, t):
    """L1 + gradient loss + (1 - cosine) on NCHW features (docs/design.md section 4.3)."""
    import torch

    from lkca_jax.reference import losses

    cos = (s * t).sum(1) / torch.clamp(s.norm(dim=1) * t.norm(dim=1), min=1e-12)
    g = losses.gradient_magnitude
    return (s - t).abs().mean() + (g(s) - g(t)).abs().mean() + (1 - cos.mean())


# ---------------------------------------------------------------------------------------------------
# JAX worker


def jax_worker(case: Case, folder: str):
    """Converts the PyTorch worker's weights, compiles the row's JAX call and times it on request."""
    import jax

    from lkca_jax import convert, hostmem, precision
    from lkca_jax.models import build_model

    hostmem.keep_freed_memory()  # as the entry points do (lkca_jax/hostmem.py)
    c = case_config(case)
    variables = convert.torch_to_flax(dict(np.load(os.path.join(folder, "weights.npz"))), c)
    data = dict(np.load(os.path.join(folder, "inputs.npz")))
    info = {}
    if case.kind == "infer":
        model = build_model(c).clone(dtype=precision.resolve(case.dtype))
        variables, lr = jax.device_put(variables), jax.device_put(data["lr"])
        # compiled once: the same executable gives XLA's memory estimate and is what is timed
        predict = jax.jit(lambda v, x: model.apply(v, x, train=False)[0]).lower(variables, lr).compile()
        mem = predict.memory_analysis()
        if mem is not None:
            info["xla_mb"] = (mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes) / 2 ** 20

        def call():
            return jax.block_until_ready(predict(variables, lr))
    else:
        c.train.grad_accum_steps = case.accum  # the trainer's micro-batches (a lax.scan), one update
        teacher = None
        if case.variant == "kd":
            tc = case_config(case, "net")
            teacher = (build_model(tc), convert.torch_to_flax(dict(np.load(os.path.join(folder, "teacher.npz"))), tc))
        runner, state, host = jax_train_step(c, data["lr"], data["hr"], teacher, variables)
        box = {"state": state}

        def call():  # a host batch every step, as in training
            box["state"], metrics = runner.step(box["state"], host)
            jax.block_until_ready(metrics["loss"])
            if "bounded_heap" not in info:  # after the first step, as the trainer does
                info["bounded_heap"] = bool(hostmem.bound_growth())

    save = None
    if case.kind == "infer":
        def save(out):
            np.save(os.path.join(folder, "jax_out.npy"), np.asarray(out, np.float32))
    _warm_and_serve(call, info, save)


def jax_train_step(c, lr: np.ndarray, hr: np.ndarray, teacher=None, variables=None):
    """The trainer's own step, as train.py builds it (``training.assemble``: forward with drop path,
    the method's loss, backward, Adam on the config's schedule; with ``teacher = (model, variables)``
    the frozen teacher's forward and the KD loss weighted by its epoch schedule) under
    ``parallel.DataParallel`` on one device, starting from ``variables`` when given. Returns
    ``(runner, state, host_batch)``; one step is ``runner.step(state, host_batch) -> (state, metrics)``."""
    import jax

    from lkca_jax import training

    schedule = training.learning_rate_schedule(c.train, steps_per_epoch=100, total_steps=10_000)
    built = training.assemble(c, schedule, "pmap", jax.local_devices()[:1], teacher)
    state = built.state
    if variables is not None:
        state = state.replace(params=variables["params"], batch_stats=variables.get("batch_stats", state.batch_stats))
    batch = lr.shape[0]
    host = {"lr": lr[None], "hr": hr[None], "mask": np.ones((1, batch), np.float32),
            "epoch": np.zeros((1, batch), np.float32)}
    return built.runner, built.runner.put_state(state), host


def _peak_gib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # kB on Linux


def _serve(call, info: dict):
    """Reports ``info`` on stdout, then answers each ``run N`` on stdin with the seconds N calls
    took (and the process's peak resident memory so far)."""
    print(json.dumps({**info, "peak_gib": _peak_gib()}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] != "run":
            break
        n = int(words[1])
        t = time.perf_counter()
        for _ in range(n):
            call()
        print(json.dumps({"seconds": time.perf_counter() - t, "peak_gib": _peak_gib()}), flush=True)


# ---------------------------------------------------------------------------------------------------
# the parent: inputs, the two workers, the alternating rounds


class Worker:
    def __init__(self, framework: str, case: Case, folder: str):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", framework, "--case",
               json.dumps(dataclasses.asdict(case)), "--folder", folder, "--threads", str(ARGS.threads),
               "--torch-device", torch_device()]
        self.name = framework
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.peak_gib = float("nan")
        self.info = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            why = " (killed: out of memory?)" if code == -9 else ""
            raise RuntimeError(f"the {self.name} worker exited with {code}{why}")
        try:
            reply = json.loads(line)
        except ValueError:
            raise RuntimeError(f"the {self.name} worker wrote {line.strip()[:80]!r} where a reply was due") from None
        self.peak_gib = reply["peak_gib"]
        return reply

    def time(self, n: int) -> float:
        try:
            self.proc.stdin.write(f"run {n}\n")
            self.proc.stdin.flush()
        except OSError:  # it died while the other was timed
            raise RuntimeError(f"the {self.name} worker exited with {self.proc.wait()}") from None
        return self._read()["seconds"] / n

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:  # it has exited already
            pass
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclasses.dataclass
class Result:
    jax_s: float  # median seconds per call
    torch_s: float
    ratios: np.ndarray  # PyTorch time / JAX time, per round
    max_diff: float | None  # inference: max |JAX - PyTorch| over the output
    xla_mb: float | None
    jax_gib: float  # each worker's peak resident host memory
    torch_gib: float
    iters: int  # calls per round


def measure(case: Case) -> Result:
    """Times ``case`` in both frameworks, each in its own worker, rounds alternating."""
    from lkca_jax.ops.imresize import imresize_np

    with tempfile.TemporaryDirectory(prefix="compare_") as folder:
        rng = np.random.default_rng(0)
        lr = rng.random((case.batch, case.size, case.size, case.bands), np.float32)
        hr_side = case.size * case.scale
        np.savez(os.path.join(folder, "inputs.npz"), lr=lr,
                 lms=np.stack([imresize_np(x, case.scale) for x in lr]).astype(np.float32),
                 hr=rng.random((case.batch, hr_side, hr_side, case.bands), np.float32))
        torch_w = Worker("torch", case, folder)  # writes the weights the JAX worker converts
        try:
            jax_w = Worker("jax", case, folder)
        except BaseException:
            torch_w.close()
            raise
        try:
            iters = ARGS.iters or max(1, round(ARGS.round_seconds / max(jax_w.info["warm_s"],
                                                                        torch_w.info["warm_s"])))
            jt, tt = [], []
            for r in range(ARGS.rounds):
                for w in ((jax_w, torch_w) if r % 2 == 0 else (torch_w, jax_w)):
                    (jt if w is jax_w else tt).append(w.time(iters))
        finally:
            torch_w.close()
            jax_w.close()
        diff = None
        if case.kind == "infer":
            diff = float(np.abs(np.load(os.path.join(folder, "jax_out.npy"))
                                - np.load(os.path.join(folder, "torch_out.npy"))).max())
    ratios = np.asarray(tt) / np.asarray(jt)
    return Result(float(np.median(jt)), float(np.median(tt)), ratios, diff, jax_w.info.get("xla_mb"),
                  jax_w.peak_gib, torch_w.peak_gib, iters)


def attempt(case: Case):
    """``measure(case)``, or the error that stopped a worker (out of memory, say) as its message."""
    try:
        return measure(case)
    except (RuntimeError, OSError) as err:
        return f"failed: {err}"


def torch_device() -> str:
    """PyTorch's device: CUDA when JAX runs on a GPU, else the CPU (each framework on the same kind)."""
    import jax

    return "cuda" if jax.default_backend() == "gpu" else "cpu"


def cpu_model() -> str:
    """The CPU's name, family and model, and its widest vector extension (from /proc/cpuinfo on
    Linux): the same 'VM' can land on different hardware, and the numbers with it."""
    try:
        with open("/proc/cpuinfo") as f:
            info = dict(line.split(":", 1) for line in f.read().split("\n\n")[0].splitlines() if ":" in line)
    except OSError:
        return platform.processor() or platform.machine()
    info = {k.strip(): v.strip() for k, v in info.items()}
    flags = info.get("flags", "").split()
    vector = next((f for f in ("avx512f", "avx2", "avx", "sse4_2") if f in flags), "no AVX")
    name = info.get("model name", platform.machine())
    return f"{name} (family {info.get('cpu family')}, model {info.get('model')}, {vector})"


def machine() -> str:
    """The processor, device and versions, printed above every table and written on every figure."""
    from importlib import metadata

    import jax

    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "not installed"
    return (f"{cpu_model()}, {os.cpu_count()} CPU threads ({ARGS.threads} for "
            f"PyTorch); jax {jax.__version__} ({jax.default_backend()}, {jax.devices()[0].device_kind}), "
            f"torch {torch_version} ({torch_device()})")


def macs_of(case: Case) -> int:
    from lkca_jax.accounting import count
    from lkca_jax.models import build_model

    return count(build_model(case_config(case)), case.bands, case.size)["macs"]


def display(case: Case) -> str:
    from lkca_jax.methods import METHODS

    name = METHODS[case.variant].display
    return name + (" (official)" if case.uses_official else "")


ROW_HEAD = ("| model | PyTorch code | pass | batch | LR | scale | bands | JAX per s | PyTorch per s | JAX GFLOP/s "
            "| max diff | JAX host GiB | PyTorch host GiB | calls/round | ratio min | ratio median | ratio max |\n|"
            + "---|" * 17)


def grid_row(case: Case):
    """Prints the row of ``case``; a worker that fails (out of memory, say) gives a row that says so."""
    batch = str(case.batch) + (f" ({case.accum} x {case.batch // case.accum})" if case.accum > 1 else "")
    head = [display(case), "official" if case.uses_official else "reference",
            "inference" if case.kind == "infer" else "train step", batch, f"{case.size}x{case.size}",
            f"x{case.scale}", str(case.bands)]
    res = attempt(case)
    if isinstance(res, str):
        print("| " + " | ".join(head + [res] + ["-"] * 9) + " |", flush=True)
        return None
    per = case.batch
    gflops = 2 * macs_of(case) * case.batch / res.jax_s / 1e9 if case.kind == "infer" else None
    cells = head + [f"{per / res.jax_s:.2f}", f"{per / res.torch_s:.2f}",
                    "-" if gflops is None else f"{gflops:.1f}", "-" if res.max_diff is None else f"{res.max_diff:.1e}",
                    f"{res.jax_gib:.1f}", f"{res.torch_gib:.1f}", str(res.iters),
                    f"{res.ratios.min():.2f}", f"{np.median(res.ratios):.2f}", f"{res.ratios.max():.2f}"]
    print("| " + " | ".join(cells) + " |", flush=True)
    return res


def suite_rows(cases):
    print(ROW_HEAD)
    return [grid_row(case) for case in cases]


def suite_official(methods, scales):
    """The issue-35 grid: every method, inference and train step, x4 and x8, 128 bands."""
    if not ARGS.official:
        print("(no --official DIR: SSPSR, MSDformer and ESSAformer run the project's reference)")
    suite_rows([Case(kind, m, 128, s, size, batch, official=ARGS.official, depth=ARGS.depth, features=ARGS.features,
                     accum=ARGS.accum if kind == "train" else 1)
                for m in methods for s in scales for kind, size, batch in GRID if kind in ARGS.passes.split(",")])


def suite_scaling(plots):
    """JAX forward time and XLA's memory estimate (arguments + outputs + temporaries) against LR
    size, bands and scale; PyTorch's time beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lkca_jax.provenance import commit

    sweeps = {"LR size": [(128, 4, s) for s in (16, 32, 64, 128, 256)],
              "bands": [(b, 4, 32) for b in (31, 48, 102, 128, 224)],
              "scale": [(128, r, 32) for r in (2, 3, 4, 8)]}
    print("| sweep | bands | scale | LR | JAX ms | PyTorch ms | XLA memory MB |\n|" + "---|" * 7)
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), dpi=110)
    for col, (name, points) in enumerate(sweeps.items()):
        xs, jts, tts, mems = [], [], [], []
        for bands, scale, size in points:
            res = attempt(Case("infer", "net", bands, scale, size, 1, ARGS.dtype, depth=ARGS.depth,
                               features=ARGS.features))
            if isinstance(res, str):
                print(f"| {name} | {bands} | x{scale} | {size} | {res} | - | - |", flush=True)
                continue
            mb = "-" if res.xla_mb is None else f"{res.xla_mb:.0f}"
            print(f"| {name} | {bands} | x{scale} | {size} | {res.jax_s * 1e3:.1f} | {res.torch_s * 1e3:.1f} "
                  f"| {mb} |", flush=True)
            xs.append({"LR size": size, "bands": bands, "scale": scale}[name])
            jts.append(res.jax_s * 1e3)
            tts.append(res.torch_s * 1e3)
            mems.append(res.xla_mb)
        axes[0, col].plot(xs, jts, "o-", label="JAX")
        axes[0, col].plot(xs, tts, "s--", label="PyTorch")
        axes[0, col].set(xlabel=name, ylabel="ms per image", title=f"LKCA-Net forward vs {name}")
        axes[1, col].plot(xs, mems, "o-")
        axes[1, col].set(xlabel=name, ylabel="MB (XLA: args + out + temp)")
        if name == "LR size":
            for ax in axes[:, col]:
                ax.set_xscale("log", base=2)
                ax.set_yscale("log")
        axes[0, col].legend()
        for ax in axes[:, col]:
            ax.grid(alpha=0.3)
    fig.suptitle(f"{machine()}; commit {commit()}; batch 1, {ARGS.rounds} rounds", fontsize=8)
    fig.tight_layout()
    os.makedirs(plots, exist_ok=True)
    fig.savefig(os.path.join(plots, "scaling.png"))


def suite_peak():
    """JAX alone: the dense matmul peak of this device and LKCA-Net's achieved rate against it."""
    import jax

    from lkca_jax.accounting import count_config

    n = 2048 if jax.default_backend() == "cpu" else 8192
    a = jax.device_put(np.random.default_rng(0).random((n, n), np.float32).astype(ARGS.dtype))
    mm = jax.jit(lambda a: a @ a)
    jax.block_until_ready(mm(a))
    iters = ARGS.iters or 10
    t = time.perf_counter()
    for _ in range(iters):
        jax.block_until_ready(mm(a))
    peak = 2 * n ** 3 * iters / (time.perf_counter() - t) / 1e9
    print(f"dense {ARGS.dtype} matmul {n}x{n} (XLA): {peak:.1f} GFLOP/s, the practical peak of this device")
    from lkca_jax import precision
    from lkca_jax.models import build_model

    c = make_config("net", 102, 4, ARGS.depth, ARGS.features)
    model = build_model(c).clone(dtype=precision.resolve(ARGS.dtype))
    lr = np.random.default_rng(0).random((16, 16, 16, 102), np.float32)
    variables = model.init(jax.random.key(0), lr[:1])
    predict = jax.jit(lambda v, x: model.apply(v, x, train=False)[0])
    jax.block_until_ready(predict(variables, lr))
    t = time.perf_counter()
    for _ in range(iters):
        jax.block_until_ready(predict(variables, lr))
    dt = (time.perf_counter() - t) / iters
    flops = 2 * count_config(c)["macs"] * 16
    print(f"LKCA-Net x4, 102 bands, batch 16 of 16 x 16, {ARGS.dtype}: {flops / dt / 1e9:.1f} GFLOP/s "
          f"({100 * flops / dt / 1e9 / peak:.0f}% of the matmul peak)")


def suite_claim(scales):
    """The paper's claim checked directly: wall clock of one 512 x 512 x 128 HR image (x4: 128 x 128
    LR; x8: 64 x 64) for every method (LKCA-KD runs as its LKCA-LR student), in both frameworks,
    the first method's speed-up over each (JAX against JAX, PyTorch against PyTorch; LKCA-KD by
    default) and the ratio of their multiply-accumulates (fvcore's count) beside it."""
    variants = [m for m in ARGS.methods.split(",") if m]
    first = display(Case("infer", variants[0], 128, 4, 16, 1))
    print(f"| model | PyTorch code | HR | scale | bands | dtype | GMACs | JAX ms | PyTorch ms | ratio min "
          f"| ratio median | ratio max | MAC ratio to {first} | {first} speed-up JAX | {first} speed-up PyTorch |\n|"
          + "---|" * 15)
    for scale in scales:
        base = None
        for variant in variants:
            case = Case("infer", variant, 128, scale, 512 // scale, 1, ARGS.dtype, ARGS.official, ARGS.depth,
                        ARGS.features)
            macs = macs_of(case)
            res = attempt(case)
            if isinstance(res, str):
                print(f"| {display(case)} | - | 512x512 | x{scale} | 128 | {ARGS.dtype} | {macs / 1e9:.1f} | {res} "
                      + "| - " * 7 + "|", flush=True)
                continue
            base = base or (res.jax_s, res.torch_s, macs)
            print(f"| {display(case)} | {'official' if case.uses_official else 'reference'} | 512x512 | x{scale} "
                  f"| 128 | {ARGS.dtype} | {macs / 1e9:.1f} | {res.jax_s * 1e3:.1f} | {res.torch_s * 1e3:.1f} "
                  f"| {res.ratios.min():.2f} | {np.median(res.ratios):.2f} | {res.ratios.max():.2f} "
                  f"| {macs / base[2]:.2f} | {res.jax_s / base[0]:.2f} | {res.torch_s / base[1]:.2f} |", flush=True)


def main(argv=None):
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="acceptance",
                    choices=("official", "acceptance", "inference", "train", "scaling", "peak", "claim", "baselines",
                             "transformers"))
    ap.add_argument("--official", default="", metavar="DIR",
                    help="run SSPSR, MSDformer and ESSAformer's public code from DIR/{SSPSR,MSDformer,ESSAformer}")
    ap.add_argument("--methods", default="",
                    help="official, claim and baselines suites: methods in order (claim: the first is the "
                         "speed-up's base); default every method")
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                    help="weights and inputs of the inference suites (acceptance, inference, claim, peak)")
    ap.add_argument("--scales", default="4,8", help="official and claim suites: the scales")
    ap.add_argument("--passes", default="infer,train", help="official suite: the rows' passes (infer, train)")
    ap.add_argument("--accum", type=int, default=1, metavar="K",
                    help="official and train suites: each train step's batch as K micro-batches (gradients averaged, "
                         "one Adam update) in both frameworks, for steps that do not fit in memory at once")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=0, help="calls per round (0: as many as fill --round-seconds)")
    ap.add_argument("--round-seconds", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="PyTorch's threads (XLA uses every CPU)")
    ap.add_argument("--depth", type=int)
    ap.add_argument("--features", type=int)
    ap.add_argument("--plots", default="docs/img")
    ap.add_argument("--worker", choices=("jax", "torch"), help=argparse.SUPPRESS)
    ap.add_argument("--torch-device", default="cpu", help=argparse.SUPPRESS)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    ARGS = ap.parse_args(argv)
    if ARGS.rounds < 1:
        ap.error("--rounds must be at least 1")
    if ARGS.accum < 1 or 16 % ARGS.accum:
        ap.error(f"--accum must divide the train rows' batch of 16, got {ARGS.accum}")
    if not ARGS.passes or set(ARGS.passes.split(",")) - {"infer", "train"}:
        ap.error(f"--passes: a comma-separated subset of infer,train, got {ARGS.passes!r}")
    # on a GPU the two workers (and this process) share its memory: no process takes 75 % of it up front
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if ARGS.official and not os.path.isdir(ARGS.official):
        ap.error(f"--official {ARGS.official}: no such folder")
    if ARGS.worker:
        case = Case(**json.loads(ARGS.case))
        if ARGS.worker == "torch":
            return torch_worker(case, ARGS.folder, ARGS.threads, ARGS.torch_device)
        return jax_worker(case, ARGS.folder)
    every = "kd,net,vdsr,fcnn3d,sspsr,msdformer,essaformer"
    ARGS.methods = ARGS.methods or every
    methods = [m for m in ARGS.methods.split(",") if m]
    scales = [int(s) for s in ARGS.scales.split(",")]
    from lkca_jax import hostmem

    hostmem.keep_freed_memory()  # before JAX starts (the peak suite times JAX in this process)
    if ARGS.suite == "peak":
        print(f"{machine()}; JAX alone, in this process\n", flush=True)
    else:
        print(f"{machine()}; {ARGS.rounds} rounds, alternating; each framework in its own process (both "
              f"resident, one running at a time)\n", flush=True)
    kw = {"dtype": ARGS.dtype, "depth": ARGS.depth, "features": ARGS.features}
    if ARGS.suite == "official":
        suite_official(methods, scales)
    elif ARGS.suite == "acceptance":
        suite_rows([Case("infer", "net", 102, 4, 16, 16, **kw), Case("train", "net", 102, 4, 16, 16, **kw)])
    elif ARGS.suite == "inference":
        suite_rows([Case("infer", v, b, s, 16, 16, **kw) for v in ("net", "lr") for s in (4, 8) for b in (48, 102, 128)]
                   + [Case("infer", v, 102, 4, 128, 1, **kw) for v in ("net", "lr")])
    elif ARGS.suite == "train":
        suite_rows([Case("train", v, 102, 4, 16, b, accum=ARGS.accum, **kw) for v in ("net", "kd") for b in (16, 32)])
    elif ARGS.suite == "scaling":
        suite_scaling(ARGS.plots)
    elif ARGS.suite == "claim":
        suite_claim(scales)
    elif ARGS.suite == "transformers":  # the two sizes, batch 1, Chikusei's 128 bands
        suite_rows([Case("infer", m, 128, 4, size, 1, official=ARGS.official, **kw)
                    for m in ("msdformer", "essaformer") for size in (16, 64)])
    elif ARGS.suite == "baselines":  # SSPSR (36 GMACs per 16 x 16 LR image) at batch 2
        chosen = [m for m in methods if m in ("vdsr", "fcnn3d", "sspsr")]
        suite_rows([Case(kind, m, 102, 4, 16, 2 if m == "sspsr" else 16, official=ARGS.official, **kw)
                    for kind in ("infer", "train") for m in chosen])
    else:
        suite_peak()
    return 0


ARGS = None

if __name__ == "__main__":
    sys.exit(main())
