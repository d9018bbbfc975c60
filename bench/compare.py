"""JAX vs the PyTorch reference, side by side in one run: inference, train steps, scaling, peak.

    python bench/compare.py --suite acceptance     # 16 x 16 LR, x4, 102 bands, batch 16 (the targets)
    python bench/compare.py --suite inference      # 16 x 16 LR at x4 / x8, bands 48 / 102 / 128; 128 x 128 x4
    python bench/compare.py --suite train          # LKCA-Net and LKCA-KD steps, batch 16 and 32
    python bench/compare.py --suite scaling --plots docs/img   # time and memory vs LR size, bands, scale
    python bench/compare.py --suite peak           # achieved GFLOP/s against the measured matmul peak
    python bench/compare.py --suite baselines      # VDSR, 3D-FCNN, SSPSR at the LKCA rows' shapes
    python bench/compare.py --suite claim [--scales 4,8] [--dtype bfloat16]   # every method, 512 x 512 x 128 HR
    python bench/compare.py --suite transformers   # MSDformer and ESSAformer at 16 x 16 and 64 x 64 LR, x4

Both frameworks get the same shapes, batch, weights (converted) and threads
(``torch.set_num_threads`` = the CPU count XLA uses), and the same device: JAX's default backend,
PyTorch on CUDA when JAX runs on a GPU (there both may use TF32 for float32 convs and matmuls,
XLA's default, and cuDNN autotunes per shape as XLA does). ``--dtype bfloat16`` runs the inference suites in
bfloat16: JAX as it trains and evaluates in it (``build_model(..., dtype)``: float32 weights, input, bicubic
residual and normalisation statistics, the convolutions and products in bfloat16; lkca_jax/precision.py),
PyTorch with its module and input cast to bfloat16 (rows measured before 2026-12-03 cast JAX's weights and
input too). Each comparison runs ``--rounds`` rounds;
a round times ``--iters`` calls of JAX and then of PyTorch, and the ratio JAX/PyTorch throughput
is taken per round; the table gives the min, median and max of the ratios. Train steps are the
full update (forward, HLoss, backward, Adam; for LKCA-KD also the frozen teacher's forward and the
KD loss). Models are the paper's size (16 LKBs of 128 features) unless ``--depth``/``--features``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch

from lkca_jax import convert, hostmem, precision, training
from lkca_jax.accounting import count, count_config
from lkca_jax.config import load_config
from lkca_jax.methods import METHODS
from lkca_jax.models import build_model
from lkca_jax.provenance import commit
from lkca_jax.reference import losses as torch_losses

DATASET_BY_BANDS = {48: "houston", 102: "pavia", 128: "chikusei"}


def machine() -> str:
    """The processor, device and versions, printed above every table and written on every figure."""
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads, "
            f"{jax.devices()[0].device_kind}; jax {jax.__version__} ({jax.default_backend()}), "
            f"torch {torch.__version__} ({torch_device()})")


def make_config(variant: str, bands: int, scale: int, args):
    c = load_config(f"configs/{DATASET_BY_BANDS.get(bands, 'chikusei')}.py:x{scale},{variant}")
    c.model.bands = bands
    c.model.up_init_scale = 1.0
    if args.depth is not None:
        c.model.depth = args.depth
    if args.features is not None:
        c.model.features = args.features
    return c


def flax_and_torch(c, seed=0):
    model = build_model(c)
    lr = np.zeros((1, 16, 16, c.model.bands), np.float32)
    variables = jax.device_get(model.init(jax.random.key(seed), lr))
    net = convert.torch_model(jax.tree.map(np.array, variables), c)
    return model, variables, net


def rounds(jax_fn, torch_fn, iters: int, n_rounds: int):
    """(jax seconds per call, torch seconds per call, ratios torch_time / jax_time) over rounds."""
    jax_fn(), torch_fn()  # compile / warm up
    jt, tt = [], []
    for _ in range(n_rounds):
        t = time.perf_counter()
        for _ in range(iters):
            jax_fn()
        jt.append((time.perf_counter() - t) / iters)
        t = time.perf_counter()
        for _ in range(iters):
            torch_fn()
        tt.append((time.perf_counter() - t) / iters)
    ratios = np.asarray(tt) / np.asarray(jt)
    return float(np.median(jt)), float(np.median(tt)), ratios


def torch_device() -> str:
    return "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"


def inference_pair(c, batch: int, size: int):
    model, variables, net = flax_and_torch(c)
    dev, dtype = torch_device(), ARGS.dtype
    net = net.eval().to(dev, getattr(torch, dtype))
    x = np.random.default_rng(0).random((batch, size, size, c.model.bands), np.float32)
    xj = jax.device_put(x)
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(dev, getattr(torch, dtype))
    model = model.clone(dtype=precision.resolve(dtype))  # float32 weights and input, computed in dtype
    predict = jax.jit(lambda v, lr: model.apply(v, lr, train=False)[0])
    variables = jax.device_put(variables)

    def run_jax():
        jax.block_until_ready(predict(variables, xj))

    def run_torch():
        with torch.inference_mode():
            net(xt)
        if dev == "cuda":
            torch.cuda.synchronize()

    return run_jax, run_torch


def kd_torch_loss(s, t):
    """L1 + gradient loss + (1 - cosine) on NCHW features (docs/design.md section 4.3)."""
    cos = (s * t).sum(1) / torch.clamp(s.norm(dim=1) * t.norm(dim=1), min=1e-12)
    g = torch_losses.gradient_magnitude
    return (s - t).abs().mean() + (g(s) - g(t)).abs().mean() + (1 - cos.mean())


def jax_train_step(c, batch: int, teacher=None, mode: str = "pmap"):
    """The trainer's own step, as train.py builds it (``training.assemble``: forward with drop
    path, HLoss, backward, Adam on the config's schedule; with ``teacher = (model, variables)`` the
    frozen teacher's forward and the KD loss weighted by its epoch schedule) under
    ``parallel.DataParallel`` on one device. Returns ``(runner, state, batch)``; one step is
    ``runner.step(state, batch) -> (state, metrics)``."""
    schedule = training.learning_rate_schedule(c.train, steps_per_epoch=100, total_steps=10_000)
    built = training.assemble(c, schedule, mode, jax.local_devices()[:1], teacher)
    runner, state = built.runner, built.state
    rng = np.random.default_rng(0)
    scale, bands = c.model.scale, c.model.bands
    host = {"lr": rng.random((1, batch, 16, 16, bands), np.float32),
            "hr": rng.random((1, batch, 16 * scale, 16 * scale, bands), np.float32),
            "mask": np.ones((1, batch), np.float32), "epoch": np.zeros((1, batch), np.float32)}
    return runner, runner.put_state(state), host


def train_pair(c, batch: int, kd: bool):
    """Full train steps (forward, the method's loss, backward, Adam) in both frameworks on the same batch."""
    scale, bands, dev = c.model.scale, c.model.bands, torch_device()
    rng = np.random.default_rng(0)
    lr = rng.random((batch, 16, 16, bands), np.float32)
    hr = rng.random((batch, 16 * scale, 16 * scale, bands), np.float32)
    if kd:
        c = make_config("lr", bands, scale, ARGS)
        teacher_c = make_config("net", bands, scale, ARGS)
        t_model, t_vars, t_net = flax_and_torch(teacher_c, seed=1)
        t_net.eval().to(dev)
    _, _, net = flax_and_torch(c)
    runner, state, host = jax_train_step(c, batch, (t_model, t_vars) if kd else None)
    box = {"state": state}

    def run_jax():  # a host batch every step, as in training
        box["state"], metrics = runner.step(box["state"], host)
        jax.block_until_ready(metrics["loss"])

    net.train().to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    lrt = torch.from_numpy(np.ascontiguousarray(lr.transpose(0, 3, 1, 2))).to(dev)
    hrt = torch.from_numpy(np.ascontiguousarray(hr.transpose(0, 3, 1, 2))).to(dev)

    def run_torch():
        opt.zero_grad(set_to_none=True)
        sr, feats = net(lrt)
        loss = torch_losses.training_loss(c.train)(sr, hrt)
        if kd:
            with torch.no_grad():
                _, tf = t_net(lrt)
            loss = loss + 0.01 * kd_torch_loss(feats, tf)
        loss.backward()
        opt.step()
        if dev == "cuda":
            torch.cuda.synchronize()

    return run_jax, run_torch


def row(name, c, batch, size, jt, tt, ratios, unit="images/s"):
    macs = count(build_model(c), c.model.bands, size)["macs"] * batch if unit == "images/s" else None
    out_mpx = batch * (size * c.model.scale) ** 2 / 1e6
    cells = [name, f"{batch}", f"{size}x{size}", f"x{c.model.scale}", f"{c.model.bands}",
             f"{batch / jt:.1f}", f"{batch / tt:.1f}"]
    if macs is not None:
        cells += [f"{out_mpx / jt:.2f}", f"{out_mpx / tt:.2f}", f"{2 * macs / jt / 1e9:.1f}"]
    cells += [f"{ratios.min():.2f}", f"{np.median(ratios):.2f}", f"{ratios.max():.2f}"]
    print("| " + " | ".join(cells) + " |", flush=True)


INFER_HEAD = ("| model | batch | LR | scale | bands | JAX img/s | PyTorch img/s | JAX out Mpx/s | PyTorch out Mpx/s "
              "| JAX GFLOP/s | ratio min | ratio median | ratio max |\n|" + "---|" * 13)
TRAIN_HEAD = ("| step | batch | LR | scale | bands | JAX patches/s | PyTorch patches/s | ratio min | ratio median "
              "| ratio max |\n|" + "---|" * 10)


def suite_inference(cases):
    print(INFER_HEAD)
    for variant, bands, scale, size, batch in cases:
        c = make_config(variant, bands, scale, ARGS)
        jt, tt, ratios = rounds(*inference_pair(c, batch, size), ARGS.iters, ARGS.rounds)
        row(METHODS[variant].display, c, batch, size, jt, tt, ratios)


def suite_train(cases):
    print(TRAIN_HEAD)
    for kd, bands, scale, batch in cases:
        c = make_config("net", bands, scale, ARGS)
        jt, tt, ratios = rounds(*train_pair(c, batch, kd), max(ARGS.iters // 2, 2), ARGS.rounds)
        row("LKCA-KD (teacher fwd incl.)" if kd else "LKCA-Net", c, batch, 16, jt, tt, ratios, unit="patches")


def suite_scaling(plots):
    """JAX forward time and XLA's memory estimate (arguments + outputs + temporaries) against LR
    size, bands and scale; PyTorch's time beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweeps = {"LR size": [(128, 4, s) for s in (16, 32, 64, 128, 256)],
              "bands": [(b, 4, 32) for b in (31, 48, 102, 128, 224)],
              "scale": [(128, r, 32) for r in (2, 3, 4, 8)]}
    print("| sweep | bands | scale | LR | JAX ms | PyTorch ms | XLA memory MB |\n|" + "---|" * 7)
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), dpi=110)
    for col, (name, points) in enumerate(sweeps.items()):
        xs, jts, tts, mems = [], [], [], []
        for bands, scale, size in points:
            c = make_config("net", bands, scale, ARGS)
            model, variables, _ = flax_and_torch(c)
            spec = jax.ShapeDtypeStruct((1, size, size, bands), jnp.float32)
            compiled = jax.jit(lambda v, x, m=model: m.apply(v, x, train=False)[0]).lower(variables, spec).compile()
            mem = compiled.memory_analysis()
            mb = (mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes) / 2 ** 20
            jt, tt, _ = rounds(*inference_pair(c, 1, size), max(ARGS.iters // 4, 1), 3)
            print(f"| {name} | {bands} | x{scale} | {size} | {jt * 1e3:.1f} | {tt * 1e3:.1f} | {mb:.0f} |", flush=True)
            xs.append({"LR size": size, "bands": bands, "scale": scale}[name])
            jts.append(jt * 1e3)
            tts.append(tt * 1e3)
            mems.append(mb)
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
    fig.suptitle(f"{machine()}; commit {commit()}; batch 1, 3 rounds", fontsize=8)
    fig.tight_layout()
    os.makedirs(plots, exist_ok=True)
    fig.savefig(os.path.join(plots, "scaling.png"))


def suite_peak():
    n = 2048 if jax.default_backend() == "cpu" else 8192
    a = jax.device_put(np.random.default_rng(0).random((n, n), np.float32).astype(ARGS.dtype))
    mm = jax.jit(lambda a: a @ a)
    jax.block_until_ready(mm(a))
    t = time.perf_counter()
    for _ in range(10):
        jax.block_until_ready(mm(a))
    peak = 2 * n ** 3 * 10 / (time.perf_counter() - t) / 1e9
    print(f"dense {ARGS.dtype} matmul {n}x{n} (XLA): {peak:.1f} GFLOP/s, the practical peak of this device")
    c = make_config("net", 102, 4, ARGS)
    run_jax, _ = inference_pair(c, 16, 16)
    run_jax()
    t = time.perf_counter()
    for _ in range(ARGS.iters):
        run_jax()
    dt = (time.perf_counter() - t) / ARGS.iters
    flops = 2 * count_config(c)["macs"] * 16
    print(f"LKCA-Net x4, 102 bands, batch 16 of 16 x 16, {ARGS.dtype}: {flops / dt / 1e9:.1f} GFLOP/s "
          f"({100 * flops / dt / 1e9 / peak:.0f}% of the matmul peak)")


def suite_claim(scales):
    """The paper's claim checked directly: wall clock of one 512 x 512 x 128 HR image (x4: 128 x 128
    LR; x8: 64 x 64) for every method with a PyTorch reference (LKCA-KD runs as its LKCA-LR
    student), in both frameworks, LKCA-KD's speed-up over each (JAX against JAX, PyTorch against
    PyTorch) and the ratio of their multiply-accumulates (fvcore's count) beside it."""
    print("| model | HR | scale | bands | dtype | GMACs | JAX ms | PyTorch ms | ratio min | ratio median | ratio max "
          "| MAC ratio to LKCA-KD | LKCA-KD speed-up JAX | LKCA-KD speed-up PyTorch |\n|" + "---|" * 14)
    for scale in scales:
        base = None
        for variant in [m for m in ARGS.methods.split(",") if m]:
            c = make_config(variant, 128, scale, ARGS)
            lr = 512 // scale
            macs = count(build_model(c), 128, lr)["macs"]
            jt, tt, ratios = rounds(*inference_pair(c, 1, lr), ARGS.iters, ARGS.rounds)
            base = base or (jt, tt, macs)
            print(f"| {METHODS[variant].display} | 512x512 | x{scale} | 128 | {ARGS.dtype} | {macs / 1e9:.1f} "
                  f"| {jt * 1e3:.1f} | {tt * 1e3:.1f} | {ratios.min():.2f} | {np.median(ratios):.2f} "
                  f"| {ratios.max():.2f} | {macs / base[2]:.2f} | {jt / base[0]:.2f} | {tt / base[1]:.2f} |",
                  flush=True)


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="acceptance",
                    choices=("acceptance", "inference", "train", "scaling", "peak", "claim", "baselines",
                             "transformers"))
    ap.add_argument("--methods", default="kd,net,vdsr,fcnn3d,sspsr,msdformer,essaformer",
                    help="claim and baselines suites: methods in order (claim: the first is the speed-up's base)")
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                    help="weights and inputs of the inference suites (acceptance, inference, claim, peak)")
    ap.add_argument("--scales", default="4,8", help="claim suite: the scales (HR stays 512 x 512)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--depth", type=int)
    ap.add_argument("--features", type=int)
    ap.add_argument("--plots", default="docs/img")
    ARGS = ap.parse_args()
    threads = os.cpu_count()
    torch.set_num_threads(threads)
    if torch_device() == "cuda":  # float32 convs and matmuls may use TF32, as XLA's default on GPU does;
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True  # and cuDNN picks its algorithms per shape, as XLA autotunes
    print(f"{machine()}; rounds {ARGS.rounds} x {ARGS.iters} calls\n")
    if ARGS.suite == "acceptance":
        suite_inference([("net", 102, 4, 16, 16)])
        print()
        suite_train([(False, 102, 4, 16)])
    elif ARGS.suite == "inference":
        suite_inference([(v, b, s, 16, 16) for v in ("net", "lr") for s in (4, 8) for b in (48, 102, 128)]
                        + [(v, 102, 4, 128, 1) for v in ("net", "lr")])
    elif ARGS.suite == "train":
        suite_train([(kd, 102, 4, b) for kd in (False, True) for b in (16, 32)])
    elif ARGS.suite == "scaling":
        suite_scaling(ARGS.plots)
    elif ARGS.suite == "claim":
        suite_claim([int(s) for s in ARGS.scales.split(",")])
    elif ARGS.suite == "transformers":  # the two sizes, batch 1, Chikusei's 128 bands
        suite_inference([(m, 128, 4, size, 1) for m in ("msdformer", "essaformer") for size in (16, 64)])
    elif ARGS.suite == "baselines":  # SSPSR (36 GMACs per 16 x 16 LR image) at batch 2
        cases = [(m, 102, 4, 16, 2 if m == "sspsr" else 16) for m in ARGS.methods.split(",")
                 if m in ("vdsr", "fcnn3d", "sspsr")]
        suite_inference(cases)
        print()
        print(TRAIN_HEAD)
        for variant, bands, scale, _, batch in cases:
            c = make_config(variant, bands, scale, ARGS)
            jt, tt, ratios = rounds(*train_pair(c, batch, False), ARGS.iters, ARGS.rounds)
            row(f"{METHODS[variant].display} train", c, batch, 16, jt, tt, ratios, unit="patches/s")
    else:
        suite_peak()


ARGS = None

if __name__ == "__main__":
    hostmem.keep_freed_memory()  # as the entry points do (lkca_jax/hostmem.py)
    main()
