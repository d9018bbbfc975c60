"""Evaluate a trained run (or Bicubic) on a split and print the paper's table.

    python evaluate.py --workdir runs/sample                      # the run's config and best checkpoint
    python evaluate.py --config configs/sample.py:bicubic --workdir runs/bicubic
    python evaluate.py --workdir runs/sample --save_images        # + PNG panels and spectra in eval/images
    python evaluate.py --workdir runs/sample --per_image          # + each image's rows under the table
    python evaluate.py --workdir runs/sample --self_ensemble      # mean over 8 flips/turns: eval/test+.json
    python evaluate.py --workdir runs/sample --weights raw --dtype bfloat16   # not the EMA; in bfloat16
    python evaluate.py --pretrained cave-x4-lkca-kd --config configs/cave.py:x4,kd,own \
        --config.data.path ~/data/my_cave_scenes --per_image --out scored   # a shipped model, every scene
    python evaluate.py --pretrained cave-x4-lkca-kd --config configs/cave.py:x4,kd \
        --config.data.path ../shared/data/cave --config.data.test_crop 256   # centre 256 x 256 crops

Writes WORKDIR/eval/<split>.json and .md, or to --out DIR (with --pretrained, only there: else the
table is printed, nothing written). With --config as well as a trained workdir or a shipped model,
the config's data and eval blocks are used with its model (a config of another scale or method is
refused).
The same as ``python -m lkca_jax evaluate``.
"""

import sys

from lkca_jax import hostmem

if __name__ == "__main__":
    hostmem.keep_freed_memory()  # before JAX's first computation
    from lkca_jax.__main__ import main

    sys.exit(main(["evaluate", *sys.argv[1:]]))
