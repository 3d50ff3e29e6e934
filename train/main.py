"""Trains and evaluates a spiking Sequencer::

    python -m train.main --config=train/configs/quick.py --workdir=/tmp/quick_run
    python -m train.main --config=train/configs/paper.py:table1-cifar10-conv \\
        --workdir=runs/table1-cifar10-conv --config.data_dir=$TFDS_DATA_DIR

Config fields are overridden on the command line (``--config.lr=0.1``,
``--config.model.grid=1``); see :mod:`train.configs.default`. Rerunning the
same command on the same workdir resumes from its newest checkpoint; SIGTERM
or Ctrl-C saves a checkpoint and exits cleanly (status 0). Progress goes to
stdout; logs below WARNING only with ``--verbosity=0`` (orbax is chatty).

Errors are one line on stderr (see :mod:`train.cli` and ``docs/faults.md``):
status 2 for a usage error (bad flag, unknown config field, missing config
file, bad config value or workdir: checked before anything is compiled or
created), 1 for a run error (unusable checkpoint, dataset not prepared,
non-finite step). ``--verbose`` or ``SNNJAX_TRACEBACK=1`` shows tracebacks.

Several processes (one per host, or several on one machine): start the same
command in each process with

    --num_processes=N --process_id=I --coordinator_address=HOST:PORT

(process 0's address and a free port), or with ``--distributed`` alone where
``jax.distributed.initialize()`` detects the cluster itself (Cloud TPU, SLURM,
Open MPI). Each process reads its own slice of the data and feeds its local
devices; process 0 writes the logs and metrics. On CPU the processes exchange
data through gloo collectives.
"""

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from snnjax import rng
from train import cli, train


def define_flags() -> None:
    flags.DEFINE_string(
        "workdir", None, "Directory for checkpoints, metrics and the summary.", required=True
    )
    config_flags.DEFINE_config_file(
        "config", None, "Training config file, e.g. train/configs/quick.py.", lock_config=True
    )
    flags.mark_flag_as_required("config")
    flags.DEFINE_bool(
        "distributed",
        False,
        "Call jax.distributed.initialize() with the cluster's auto-detected "
        "settings (Cloud TPU, SLURM, Open MPI).",
    )
    flags.DEFINE_string(
        "coordinator_address", None, "HOST:PORT of process 0, for a multi-process run."
    )
    flags.DEFINE_integer("num_processes", None, "Number of processes of a multi-process run.")
    flags.DEFINE_integer("process_id", None, "This process's index in [0, num_processes).")


def initialize_distributed(
    *,
    auto: bool,
    coordinator_address: str | None,
    num_processes: int | None,
    process_id: int | None,
) -> None:
    """Joins a multi-process run if asked (explicit settings or ``auto``)."""
    explicit = (coordinator_address, num_processes, process_id)
    if all(v is None for v in explicit) and not auto:
        return
    if any(v is None for v in explicit) and not auto:
        raise app.UsageError(
            "--coordinator_address, --num_processes and --process_id "
            "go together (or use --distributed alone)"
        )
    # CPU devices of different processes talk through gloo (no effect on GPU/TPU).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id
    )


def main(argv):
    cli.no_arguments(argv)
    FLAGS = flags.FLAGS
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO.
    initialize_distributed(
        auto=FLAGS.distributed,
        coordinator_address=FLAGS.coordinator_address,
        num_processes=FLAGS.num_processes,
        process_id=FLAGS.process_id,
    )
    # The same random bits, about 5x faster on a CPU (dropout masks, augmentation).
    rng.unroll_threefry_on_cpu()
    logging.info(
        "JAX process %d/%d, local devices %s",
        jax.process_index(),
        jax.process_count(),
        jax.local_devices(),
    )
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
    cli.run(main, define_flags)
