"""Evaluate a trained run (or Bicubic) on a split and print the paper's table.

    python evaluate.py --workdir runs/sample                      # the run's config and best checkpoint
    python evaluate.py --config configs/sample.py:bicubic --workdir runs/bicubic
    python evaluate.py --workdir runs/sample --save_images        # + PNG panels and spectra in eval/images
    python evaluate.py --workdir runs/sample --per_image          # + each image's rows under the table
    python evaluate.py --workdir runs/sample --weights raw --dtype bfloat16   # not the EMA; in bfloat16

Writes WORKDIR/eval/<split>.json and .md. With --config as well as a trained
workdir, the config's data and eval blocks are used with the run's model.
The same as ``python -m lkca_jax evaluate``.
"""

import sys

from lkca_jax import hostmem

if __name__ == "__main__":
    hostmem.keep_freed_memory()  # before JAX's first computation
    from lkca_jax.__main__ import main

    sys.exit(main(["evaluate", *sys.argv[1:]]))
