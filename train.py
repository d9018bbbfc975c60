"""Train a model from an ml_collections config, then evaluate it on the test split.

    python train.py --config configs/sample.py --workdir runs/sample
    python train.py --config configs/chikusei.py:x4,lr --workdir runs/chikusei_x4_lr --config.train.batch_size 16

Any config field can be overridden on the command line (``--config.<field> value``).
Rerunning with the same workdir resumes from its latest checkpoint (``python train.py --workdir RUN``
alone takes RUN's config.json; overrides apply to it). Several
processes: ``--coordinator host:port --num_processes N --process_id i`` (or
JAX's environment variables) on each host. The same as ``python -m lkca_jax train``.
"""

import sys

from lkca_jax import hostmem

if __name__ == "__main__":
    hostmem.keep_freed_memory()  # before JAX's first computation
    from lkca_jax.__main__ import main

    sys.exit(main(["train", *sys.argv[1:]]))
