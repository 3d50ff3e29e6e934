"""Evaluates a saved checkpoint and prints the summary of a training run.

    python -m train.evaluate --workdir=/tmp/quick_run [--checkpoint=best]

Reads the model and data config stored in the checkpoint, evaluates the whole
evaluation split (test set; Tiny-ImageNet: validation) with spike statistics,
prints test accuracy, mean spike rate, spikes per image and energy per image,
and writes them as JSON to ``<workdir>/summary.json`` (``summary_best.json``
for ``--checkpoint=best``, the parameters chosen on the validation examples).
The checkpoint's arrays are checked against their checksums first. Errors
are one line on stderr (status 2: usage, 1: no usable checkpoint or data);
``--verbose`` or ``SNNJAX_TRACEBACK=1`` shows tracebacks.
"""

from __future__ import annotations

import jax
from absl import flags, logging

from train import cli, rundir, train
from train import metrics as metrics_lib

# The loader of a run, kept under its old name for existing callers.
load_checkpoint = rundir.load_run


def define_flags() -> None:
    flags.DEFINE_string("workdir", None, "Workdir of a training run.", required=True)
    flags.DEFINE_enum(
        "checkpoint",
        "latest",
        list(rundir.WHICH),
        "Which checkpoint: the newest, or the best by validation accuracy.",
    )
    flags.DEFINE_string(
        "data_dir", None, "TFDS data directory (default: the run's, else $TFDS_DATA_DIR)."
    )
    flags.DEFINE_integer(
        "max_eval_batches", -1, "Evaluate only this many batches (-1: all).", lower_bound=-1
    )
    flags.DEFINE_bool(
        "eval_flip",
        False,
        "Also report accuracy_flip: the logits summed over each image and its mirror.",
    )


def evaluate_checkpoint(
    workdir: str,
    which: str = "latest",
    *,
    data_dir: str | None = None,
    max_eval_batches: int = -1,
    eval_flip: bool = False,
) -> dict:
    """Restores ``workdir``'s ``which`` checkpoint and evaluates it.

    Returns:
      the summary of :func:`train.train.evaluate`, also written to the workdir.

    Raises:
      train.checkpointing.CheckpointError: no usable checkpoint.
    """
    mesh = train.create_mesh()
    config, model, state = rundir.load_run(workdir, which, mesh=mesh)
    if data_dir is not None:
        config.data_dir = data_dir
    config.max_eval_batches = max_eval_batches
    config.eval_flip = eval_flip
    config.eval_batch_size = _fit(config.eval_batch_size, mesh.size)
    step = int(jax.device_get(state.step))
    per_epoch = train.steps_per_epoch(config)
    summary = train.evaluate(
        model, state, config, mesh, checkpoint=which, step=step, epoch=step // per_epoch
    )
    if jax.process_index() == 0:
        metrics_lib.write_summary(workdir, summary, rundir.summary_file(which))
    return summary


def _fit(batch_size: int, devices: int) -> int:
    """The nearest batch size >= ``batch_size`` that splits over ``devices``."""
    return -(-batch_size // devices) * devices


def main(argv):
    cli.no_arguments(argv)
    FLAGS = flags.FLAGS
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax logs every restore at INFO.
    summary = evaluate_checkpoint(
        FLAGS.workdir,
        FLAGS.checkpoint,
        data_dir=FLAGS.data_dir,
        max_eval_batches=FLAGS.max_eval_batches,
        eval_flip=FLAGS.eval_flip,
    )
    print(metrics_lib.format_summary(summary))


if __name__ == "__main__":
    cli.run(main, define_flags)
