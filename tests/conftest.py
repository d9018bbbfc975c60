import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# The tests check what is computed, not how fast: XLA:CPU's LLVM backend at -O0 compiles the tiny
# test models' steps in about half the time (most of a test's time is compiling), which keeps CI
# within its budget. The processes the tests start inherit it (tests that set XLA_FLAGS for
# simulated devices add theirs to it: XLA_TEST_FLAGS). Entry points and benchmarks keep XLA's default.
#
# Two more flags, where this jaxlib knows them, cut compiling by about another third (jaxlib 0.10, a
# tiny run of recipes/paper.py, cold cache: MSDformer 21.7 s -> 13.5 s, LKCA-Net 12.5 s -> 8.0 s):
# XLA:CPU's older loop emitters in place of its fusion emitters, and LLVM without its expensive
# passes. Newer jaxlibs dropped the first, and XLA aborts the process on a flag it does not know, so
# the first process (pytest's, before its workers start) tries each in a child once.
OPT_FLAG = "--xla_backend_optimization_level=0"
FAST_COMPILE_FLAGS = ("--xla_cpu_use_fusion_emitters=false", "--xla_llvm_disable_expensive_passes=true")


def _xla_accepts(flags: str) -> bool:
    probe = "import jax.numpy as jnp; jnp.zeros(1).block_until_ready()"
    env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True).returncode == 0


if OPT_FLAG.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
    flags = f"{os.environ.get('XLA_FLAGS', '')} {OPT_FLAG}".strip()
    for flag in FAST_COMPILE_FLAGS:
        if flag.split("=")[0] not in flags and _xla_accepts(f"{flags} {flag}"):
            flags = f"{flags} {flag}"
    os.environ["XLA_FLAGS"] = flags
XLA_TEST_FLAGS = os.environ["XLA_FLAGS"]

# One JAX compilation cache for the tests, shared by both xdist workers and every process the tests
# start: many tests train the same tiny models, and the recipes' tiny runs compile the same metric and
# evaluation programs. Every program is cached (the default keeps only those taking 1 s), in pytest's
# own cache folder; a program's key is its HLO, the flags and the jax version, so a change of code
# compiles afresh. No size limit for JAX to enforce: its eviction lists the whole folder at every
# write (the suite ran several times slower with its ~12,000 entries); pytest_configure empties it
# instead when it has grown past CACHE_LIMIT over several sessions. Without a limit JAX writes an
# entry in place, unlocked: a process reading it while another writes it gets JAX's warning "Error
# reading persistent compilation cache entry" and compiles the program itself (JAX's default mode).
JAX_CACHE = ROOT / ".pytest_cache" / "jax"
CACHE_LIMIT = 2 << 30
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(JAX_CACHE)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

from lkca_jax import hostmem  # noqa: E402  (after the environment JAX reads at import)

hostmem.keep_freed_memory()  # as the entry points do, before JAX starts its threads

SHARED_DATA = ROOT.parent / "shared" / "data"


# A model small enough for unit tests (seconds on a CPU), any method; tests override what they vary.
TINY_MODEL = dict(features=16, depth=1, se_reduction=4, up_init_scale=1.0, vdsr=dict(features=8, depth=1))


def tiny_config(spec: str = "sample.py:x4,net", **model):
    """``configs/<spec>`` with a tiny model (:data:`TINY_MODEL`, then ``model``); ``up_init_scale=1``
    gives the SR branch random weights, so tests see a non-trivial upsampler. A dict value sets
    fields of an architecture's own block (``vdsr=dict(depth=3)``) where the config has that block
    (a config holds only its own architecture's), and is skipped where it has not."""
    from lkca_jax.config import load_config

    config = load_config(str(ROOT / "configs" / spec))
    for fields in (TINY_MODEL, model):
        for key, value in fields.items():
            if not isinstance(value, dict):
                config.model[key] = value
            elif key in config.model:
                config.model[key].update(value)
    return config


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def shared_data(*parts):
    """A path under ../shared/data, or skip when this checkout has none beside it."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            raise FileNotFoundError(f"{path} is missing; CI is expected to have ../shared/data")
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny VDSR run on the sample: config.json and a checkpoint, as train.py writes them."""
    import jax
    import jax.numpy as jnp

    from lkca_jax import checkpoint
    from lkca_jax.models import build_model

    workdir = tmp_path_factory.mktemp("run")
    c = tiny_config("sample.py:vdsr", vdsr=dict(depth=3))
    c.data.normalisation, c.data.norm_value = "constant", 2.0
    model = build_model(c)
    variables = model.init(jax.random.key(1), jnp.zeros((1, 8, 8, 102)))
    checkpoint.save_run(workdir, c, jax.tree.map(np.asarray, variables))
    return workdir, model, variables


# The heaviest tests (15-80 s each on 2 cores: whole trainings, several processes, dataset builders,
# the large models). CI's first leg runs them with everything else (the README's test command);
# its second leg, on the newest Python and JAX, skips them (-m "not slow") to keep CI within 30
# minutes: a lighter sibling of each stays there (the float32 pmap/jit test, the two-process test on
# files, VDSR's sr and export, LKCA's forward in float16, a tiny training and its resume).
SLOW = (
    "test_baselines.py::test_sr_and_export_through_the_registry[sspsr]",
    "test_baselines.py::test_sr_and_export_through_the_registry[msdformer]",
    "test_baselines.py::test_sr_and_export_through_the_registry[essaformer]",
    "test_baselines.py::test_tiny_trained_runs_rank_and_lowrank[sspsr]",
    "test_baselines.py::test_tiny_trained_runs_rank_and_lowrank[msdformer]",
    "test_baselines.py::test_tiny_trained_runs_rank_and_lowrank[essaformer]",
    "test_baselines.py::test_bicubic_residual_starts_at_bicubic_learns_and_matches_the_reference",
    "test_pretrained.py::test_a_shipped_model_reproduces_its_test_table_on_cave",
    "test_precision.py::test_low_precision_forward_agrees_with_float32[msdformer",
    "test_precision.py::test_low_precision_forward_agrees_with_float32[essaformer",
    "test_evaluation.py::test_tiled_evaluation_equals_whole_images[lkca]",
    "test_evaluation.py::test_tiled_evaluation_equals_whole_images[fcnn3d]",
    "test_evaluation.py::test_self_ensemble_evaluation_and_tiles_match_the_eight_passes_by_hand[lkca]",
    "test_parallel.py::test_pmap_and_jit_agree_on_two_devices[float16-ema-accum]",
    "test_multiprocess.py::test_two_processes_match_one_process_with_two_devices[pmap-tfds]",
    "test_training.py::test_loss_falls_on_real_cave_scenes",
    "test_training.py::test_kill_ctrl_c_and_resume_match_an_uninterrupted_run",
    "test_tfds.py::test_chikusei_builder_on_a_full_size_standin",
    "test_tfds.py::test_cave_builder_prepares_all_16_scenes_without_tensorflow",
    "test_metrics.py::test_real_pairs",
    "test_methods.py::test_every_method_builds_counts_and_names_itself[msdformer]",
    "test_distillation.py::test_kd_step_updates_only_the_student",
    "test_accounting.py::test_parameters_by_part_the_papers_fig1",
    "test_recipes.py::test_tables_i_to_v_at_tiny_in_one_folder",
    "test_recipes.py::test_table_vi_at_tiny_interrupted_and_resumed",
    "test_recipes.py::test_table_vii_at_tiny_in_two_concurrent_shards",
    "test_accounting.py::test_param_and_flops_to_the_printed_digits",
    "test_multiprocess.py::test_two_processes_match_one_process_with_two_devices[jit-files]",
    "test_failures.py::test_a_damaged_newest_checkpoint_is_moved_aside_and_the_run_finishes",
    "test_failures.py::test_a_run_none_of_whose_checkpoints_fits_is_refused_and_nothing_moved",
    "test_failures.py::test_a_reader_lists_again_when_training_replaces_the_step_it_chose",
    "test_evaluation.py::test_tiled_evaluation_equals_whole_images[vdsr]",
    "test_evaluation.py::test_tiled_equals_untiled_when_overlap_covers_the_receptive_field",
    "test_accounting.py::test_count_cli_overrides_as_train_py",
    "test_baselines.py::test_several_upsampler_stages_start_with_only_the_last_at_zero",
    "test_baselines.py::test_tiny_trained_runs_rank_and_lowrank[fcnn3d]",
    "test_distillation.py::test_student_can_start_from_the_teachers_backbone",
    "test_distillation.py::test_teacher_frozen_student_trained",
    "test_precision.py::test_low_precision_forward_agrees_with_float32[sspsr-bfloat16]",
    # issue 32's session: the tables' tiny runs took leg 1 past its share; these leave leg 2 with a
    # lighter sibling each (the forward at float16, the float16 overflow step, the rank/lowrank
    # commands, VDSR's and LKCA's builds, the allocator's opt-out, the sr command's other failures)
    "test_methods.py::test_every_method_builds_counts_and_names_itself[essaformer]",
    "test_methods.py::test_every_method_builds_counts_and_names_itself[sspsr]",
    "test_precision.py::test_low_precision_forward_agrees_with_float32[net-bfloat16]",
    "test_precision.py::test_a_float16_run_with_ema_logs_its_scale_and_serves_the_ema",
    "test_precision.py::test_accumulated_micro_batches_equal_one_batch",
    "test_precision.py::test_parameters_stay_float32_after_a_bfloat16_step",
    "test_baselines.py::test_tiny_trained_runs_rank_and_lowrank[vdsr]",
    "test_hostmem.py::test_freed_buffers_are_reused_not_faulted_in_again",
    "test_failures.py::test_sr_killed_then_rerun_leaves_no_temporary_file_and_sigterm_cleans_up",
)


def pytest_configure(config):
    if not hasattr(config, "workerinput") and JAX_CACHE.is_dir():  # the main process, before any worker
        if sum(f.stat().st_size for f in JAX_CACHE.iterdir()) > CACHE_LIMIT:
            shutil.rmtree(JAX_CACHE, ignore_errors=True)
    config.addinivalue_line("markers", "slow: one of the heaviest tests (tests/conftest.py SLOW); "
                                       "CI's second leg skips them")


# The longest single tests (minutes: recipes/paper.py's tiny tables run many train.py processes in
# a row), started first so that the other test process works through the rest meanwhile instead of
# waiting for them at the end.
FIRST = ("test_recipes.py::test_tables_i_to_v_at_tiny_in_one_folder",
         "test_recipes.py::test_table_vi_at_tiny_interrupted_and_resumed",
         "test_recipes.py::test_table_vii_at_tiny_in_two_concurrent_shards")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.split("/")[-1].startswith(SLOW):
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: not item.nodeid.split("/")[-1].startswith(FIRST))  # stable: the rest keep order
