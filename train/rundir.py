"""The workdir of a training run: its file names, and the one loader of a run.

    <workdir>/config.json             the config, as JSON (for people; programs
                                      read the checkpoint's copy: read_config)
    <workdir>/metrics.jsonl           train.metrics (METRICS)
    <workdir>/tensorboard/            train.metrics (TENSORBOARD)
    <workdir>/summary.json            the final evaluation (summary_best.json:
                                      of the best checkpoint), train.evaluate
    <workdir>/membrane_health.json    train.probe
    <workdir>/report/                 train.report
    <workdir>/checkpoints/, best/, corrupt_checkpoints/   train.checkpointing

The config of a run is the one stored in its checkpoints (their metadata,
:mod:`train.checkpointing`): :func:`read_config` and :func:`load_run` read it
from there, so evaluation, the probe, the report and the benchmarks see the
config the parameters were trained with.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from typing import Any, NamedTuple

import ml_collections

CONFIG = "config.json"
SUMMARY = "summary.json"
SUMMARY_BEST = "summary_best.json"
HEALTH = "membrane_health.json"
REPORT_DIR = "report"
WHICH = ("latest", "best")
# Names owned by the modules that write those files, re-exported here on first
# use (importing this module stays light, and those modules may import it).
_OWNED = {
    "METRICS": ("train.metrics", "METRICS_FILE"),
    "TENSORBOARD": ("train.metrics", "TENSORBOARD_DIR"),
    "CHECKPOINT_DIR": ("train.checkpointing", "CHECKPOINT_DIR"),
    "BEST_DIR": ("train.checkpointing", "BEST_DIR"),
    "CORRUPT_DIR": ("train.checkpointing", "CORRUPT_DIR"),
}


def __getattr__(name: str) -> str:
    if name in _OWNED:
        import importlib

        module, attr = _OWNED[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def path(workdir: str, name: str) -> str:
    """``<workdir>/<name>`` (``name``: one of this module's file names)."""
    return os.path.join(workdir, name)


def summary_file(which: str = "latest") -> str:
    """The summary's file name for the ``which`` checkpoint."""
    _check_which(which)
    return SUMMARY if which == "latest" else SUMMARY_BEST


def read_config(workdir: str, which: str = "latest") -> ml_collections.ConfigDict:
    """The config of ``workdir``'s ``which`` checkpoint ("latest" or "best").

    Raises:
      train.checkpointing.CheckpointError: no such checkpoint, or unreadable.
    """
    from train import checkpointing

    _check_which(which)
    saved, _ = checkpointing.read_checkpoint_config(workdir, which)
    return ml_collections.ConfigDict(saved)


class Run(NamedTuple):
    """A restored run: its config, model and train state."""

    config: ml_collections.ConfigDict
    model: Any  # train.train.Model
    state: Any  # train.train.TrainState


def load_run(workdir: str, which: str = "latest", *, mesh=None) -> Run:
    """The config, model and train state of ``workdir``'s ``which`` checkpoint
    ("latest" or "best"), replicated over ``mesh`` (default: all devices);
    the arrays are checked against their checksums.

    Raises:
      train.checkpointing.CheckpointError: no usable checkpoint.
    """
    from train import checkpointing, train

    _check_which(which)
    saved, step = checkpointing.read_checkpoint_config(workdir, which)
    config = ml_collections.ConfigDict(saved)
    chain = train.setup(config, mesh=mesh, data_init=False)  # restored next
    state = checkpointing.restore_state(workdir, which, chain.state, step)
    return Run(config, chain.model, state)


def _check_which(which: str) -> None:
    if which not in WHICH:
        raise ValueError(f"which must be 'latest' or 'best', got {which!r}")


def prepare(workdir: str) -> str:
    """Creates ``workdir`` (after the config and the data were checked) and
    returns its absolute path.

    Raises:
      ConfigError: it is a file, or cannot be created or written.
    """
    from train.schema import ConfigError  # the config program's error (heavy import)

    path = os.path.abspath(workdir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"--workdir={workdir} is a file, not a directory")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--workdir={workdir} cannot be created: {e.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"--workdir={workdir} is not writable")
    return path


LOCK = ".lock"


@contextlib.contextmanager
def lock(workdir: str):
    """Holds ``<workdir>/.lock`` for a run (process 0 only: the processes of one
    run share the workdir); a second run on the same workdir stops at once.

    Raises:
      ConfigError: another run holds the workdir.
    """
    import jax

    from train.schema import ConfigError

    if jax.process_index() != 0:
        yield
        return
    with open(os.path.join(workdir, LOCK), "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "?"
            raise ConfigError(
                f"--workdir={workdir} is in use by another run (pid {holder}); "
                "wait for it or use another --workdir"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
