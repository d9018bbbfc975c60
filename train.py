"""Train a model from an ml_collections config, then evaluate it on the test split.

    python train.py --config configs/sample.py --workdir runs/sample
    python train.py --config configs/chikusei.py:x4,lr --workdir runs/chikusei_x4_lr --config.train.batch_size 16

Any config field can be overridden on the command line (``--config.<field> value``).
Rerunning with the same workdir resumes from its latest checkpoint. Several
processes: ``--coordinator host:port --num_processes N --process_id i`` (or
JAX's environment variables) on each host.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from lkca_jax import hostmem, parallel
from lkca_jax.config import parse_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file, path/to/config.py[:scale,variant].")
flags.DEFINE_string("workdir", None, "Run directory: checkpoints, logs, evaluation.")
flags.DEFINE_string("coordinator", "", "host:port of process 0, for multi-process training.")
flags.DEFINE_integer("num_processes", 0, "Number of processes (multi-process training).")
flags.DEFINE_integer("process_id", -1, "This process's index (multi-process training).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    hostmem.keep_freed_memory()  # before JAX's first computation
    logging.set_verbosity(logging.WARNING)  # orbax logs every step of its work at INFO
    sys.stdout.reconfigure(line_buffering=True)  # progress lines reach logs as they happen
    parallel.initialize_distributed(FLAGS.coordinator, FLAGS.num_processes, FLAGS.process_id)
    from lkca_jax import training

    try:
        training.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except (ValueError, OSError, training.NonFiniteLoss) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2 if not isinstance(err, training.NonFiniteLoss) else 3)
    except training.Interrupted as err:  # Ctrl-C or SIGTERM: saved at a step boundary
        print(f"stopped: {err}", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:  # before the first step, or a second Ctrl-C
        print(f"stopped: interrupted; {FLAGS.workdir} keeps its last saved checkpoint", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
