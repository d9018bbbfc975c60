"""Evaluate a trained run (or Bicubic) on a split and print the paper's table.

    python evaluate.py --workdir runs/sample                      # the run's config and best checkpoint
    python evaluate.py --config configs/sample.py:bicubic --workdir runs/bicubic
    python evaluate.py --workdir runs/sample --save_images        # + PNG panels and spectra in eval/images
    python evaluate.py --workdir runs/sample --per_image          # + each image's rows under the table
    python evaluate.py --workdir runs/sample --weights raw --dtype bfloat16   # not the EMA; in bfloat16

Writes WORKDIR/eval/<split>.json and .md. With --config as well as a trained
workdir, the config's data and eval blocks are used with the run's model.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from lkca_jax import hostmem
from lkca_jax.config import parse_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file (optional when --workdir holds a run).")
flags.DEFINE_string("workdir", None, "Run directory (checkpoints are read from it, results written to it).")
flags.DEFINE_enum("split", "test", ["test", "validation", "train"], "Which split to evaluate.")
flags.DEFINE_enum("which", "best", ["best", "last"], "The best-validation or the latest checkpoint.")
flags.DEFINE_bool("save_images", False, "Write a PNG panel and a spectra plot per image.")
flags.DEFINE_bool("per_image", False, "Print each image's MPSNR, SAM and ERGAS under the table.")
flags.DEFINE_enum("weights", "ema", ["ema", "raw"], "The EMA weights where the run kept them, or the raw ones.")
flags.DEFINE_enum("dtype", None, ["float32", "bfloat16", "float16"],
                  "Compute dtype of the forward pass (default: the config's eval.dtype, float32).")
flags.mark_flag_as_required("workdir")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    hostmem.keep_freed_memory()  # before JAX's first computation
    logging.set_verbosity(logging.WARNING)
    from lkca_jax import evaluation

    try:
        evaluation.evaluate_workdir(FLAGS.workdir, FLAGS.config, FLAGS.split, FLAGS.which, FLAGS.save_images,
                                    weights=FLAGS.weights, dtype=FLAGS.dtype, per_image=FLAGS.per_image)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("stopped: interrupted; each file already written is complete, the one being written is not left",
              file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
