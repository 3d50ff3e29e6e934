"""Checkpoints of a training run (orbax-checkpoint), with clear errors.

Layout of a workdir::

    <workdir>/checkpoints/<step>/   periodic and final saves, the last
                                    ``keep_checkpoints`` kept; items:
        state/   the TrainState (step, parameters, RNG streams, optimiser state)
        data/    the grain iterator position, one JSON file per process
        meta/    JSON: the config, the step, the best evaluation accuracy so far
    <workdir>/best/<step>/          the best checkpoint by evaluation accuracy
                                    (items state and meta)

Resuming restores everything a run depends on, so a run stopped at step k and
resumed reaches exactly the parameters of an uninterrupted run.

Every problem is a :class:`CheckpointError` that says what to do, never a
silent fresh start:

* an interrupted save (an orbax ``*.orbax-checkpoint-tmp-*`` directory);
* a checkpoint that cannot be read (missing items or files, corrupt data,
  arrays of other shapes);
* a checkpoint of another run: its config differs from the current one in a
  field other than the run-control fields of :data:`RUN_CONTROL_FIELDS`;
* no checkpoint where one is required (evaluation).

Saves are synchronous: when :meth:`Checkpointer.save` returns, the checkpoint
is complete on disk.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import grain
import jax
import ml_collections
import orbax.checkpoint as ocp

CHECKPOINT_DIR = "checkpoints"
BEST_DIR = "best"
# Config fields that may differ between a checkpoint and the run resuming it:
# they change how the run is observed or stopped, not the parameters it reaches.
RUN_CONTROL_FIELDS = frozenset({
    "data_dir", "worker_count", "eval_batch_size", "max_eval_batches",
    "log_every_steps", "eval_every_epochs", "checkpoint_every_steps",
    "keep_checkpoints", "stop_after_steps",
})
_PARTIAL = re.compile(r".*\.orbax-checkpoint-tmp.*")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: missing, partial, corrupt or of another run."""


def config_to_dict(config: ml_collections.ConfigDict) -> dict:
    """``config`` as plain JSON data (tuples become lists)."""
    return json.loads(config.to_json())


def config_differences(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """``"field: saved -> current"`` for every field that differs, ignoring
    :data:`RUN_CONTROL_FIELDS` at the top level."""
    differences = []
    for key in sorted(set(saved) | set(current)):
        if not prefix and key in RUN_CONTROL_FIELDS:
            continue
        old, new = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if isinstance(old, dict) and isinstance(new, dict):
            differences += config_differences(old, new, f"{prefix}{key}.")
        elif old != new:
            differences.append(f"{prefix}{key}: {old!r} -> {new!r}")
    return differences


def _abstract(tree: Any) -> Any:
    """Shapes, dtypes and shardings of ``tree`` (the restore target)."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def _check_not_partial(directory: str) -> None:
    if not os.path.isdir(directory):
        return
    partial = sorted(n for n in os.listdir(directory) if _PARTIAL.fullmatch(n))
    if partial:
        paths = ", ".join(os.path.join(directory, n) for n in partial)
        raise CheckpointError(
            f"Found an incomplete checkpoint (a save that was interrupted): {paths}. "
            "Delete it to resume from the last complete checkpoint in "
            f"{directory}, or use a new --workdir."
        )


class Checkpointer:
    """Saves and restores the checkpoints of one workdir.

    Args:
      workdir: the run's directory.
      config: the current run's config; a checkpoint of a different config
        (outside :data:`RUN_CONTROL_FIELDS`) is refused.
      keep: how many periodic checkpoints to keep (the newest).
    """

    def __init__(self, workdir: str, config: ml_collections.ConfigDict, *, keep: int = 3):
        if keep < 1:
            raise ValueError(f"keep_checkpoints must be >= 1, got {keep}")
        self.directory = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)
        self.best_directory = os.path.join(os.path.abspath(workdir), BEST_DIR)
        self._config = config_to_dict(config)
        _check_not_partial(self.directory)
        _check_not_partial(self.best_directory)
        self._manager = _manager(self.directory, with_data=True, keep=keep)
        self._best = _manager(self.best_directory, with_data=False, keep=1)

    def save(self, state: Any, data_iterator: grain.DatasetIterator, *,
             best_accuracy: float | None) -> None:
        """Saves ``state`` (a TrainState), the data position and the best
        accuracy so far, at ``state.step``. Every process must call it."""
        step = int(jax.device_get(state.step))
        if step in self._manager.all_steps():
            return
        meta = {"config": self._config, "step": step, "best_accuracy": best_accuracy}
        self._manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=grain.checkpoint.CheckpointSave(data_iterator),
            meta=ocp.args.JsonSave(meta),
        ))
        self._manager.wait_until_finished()

    def save_best(self, state: Any, accuracy: float) -> None:
        """Replaces the best checkpoint with ``state`` (its evaluation
        accuracy ``accuracy``)."""
        step = int(jax.device_get(state.step))
        if step in self._best.all_steps():
            return
        meta = {"config": self._config, "step": step, "best_accuracy": accuracy}
        self._best.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
        self._best.wait_until_finished()

    def restore_latest(self, state: Any, data_iterator: grain.DatasetIterator
                       ) -> tuple[Any, dict] | None:
        """Restores the newest checkpoint into ``state``'s structure and
        shardings and moves ``data_iterator`` to its position.

        Returns:
          ``(state, meta)``, or None if there is no checkpoint yet.

        Raises:
          CheckpointError: the checkpoint is unreadable or of another config.
        """
        step = self._manager.latest_step()
        if step is None:
            return None
        path = os.path.join(self.directory, str(step))
        meta = _restore_meta(self._manager, step, path)
        self._check_config(meta, path)
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(_abstract(state)),
                data=grain.checkpoint.CheckpointRestore(data_iterator),
            ))
        except Exception as e:
            raise _unreadable(path, e) from e
        return restored["state"], meta

    def _check_config(self, meta: dict, path: str) -> None:
        differences = config_differences(meta["config"], self._config)
        if differences:
            raise CheckpointError(
                f"The checkpoint {path} belongs to a run with another config; "
                "differences (checkpoint -> now):\n  " + "\n  ".join(differences)
                + "\nResume with the checkpoint's config, or use a new --workdir."
            )

    def close(self) -> None:
        self._manager.close()
        self._best.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _manager(directory: str, *, with_data: bool, keep: int | None = None,
             create: bool = True) -> ocp.CheckpointManager:
    """A synchronous orbax manager of items state, meta (and data)."""
    handlers = {
        "state": ocp.StandardCheckpointHandler(),
        "meta": ocp.JsonCheckpointHandler(),
    }
    if with_data:
        handlers["data"] = grain.checkpoint.CheckpointHandler()
    return ocp.CheckpointManager(
        directory,
        item_names=tuple(handlers),
        item_handlers=handlers,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=False, create=create),
    )


def _restore_meta(manager: ocp.CheckpointManager, step: int, path: str) -> dict:
    try:
        meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        meta = meta["meta"]
        if not isinstance(meta, dict) or not {"config", "step"} <= set(meta):
            raise ValueError(f"unexpected metadata {meta!r}")
    except Exception as e:
        raise _unreadable(path, e) from e
    return meta


def _unreadable(path: str, error: Exception) -> CheckpointError:
    return CheckpointError(
        f"The checkpoint {path} cannot be read ({type(error).__name__}: "
        f"{str(error)[:500]}). It is corrupt, incomplete or of another model. "
        "Delete it to fall back to an older checkpoint, or use a new --workdir."
    )


def read_checkpoint_config(workdir: str, which: str = "latest") -> tuple[dict, int]:
    """The config (as a dict) and step of a workdir's ``which`` checkpoint
    ("latest" or "best"), for evaluation.

    Raises:
      CheckpointError: there is no such checkpoint, or it cannot be read.
    """
    manager, directory = _manager_for(workdir, which)
    step = manager.latest_step()
    if step is None:
        raise CheckpointError(
            f"No {which} checkpoint in {directory}: nothing to evaluate. "
            "Train first (python -m train.main --workdir=...)."
        )
    meta = _restore_meta(manager, step, os.path.join(directory, str(step)))
    manager.close()
    return meta["config"], step


def restore_state(workdir: str, which: str, state: Any, step: int) -> Any:
    """The TrainState of the ``which`` checkpoint at ``step``, restored into
    ``state``'s structure and shardings (the data position is not needed)."""
    manager, directory = _manager_for(workdir, which)
    path = os.path.join(directory, str(step))
    try:
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(_abstract(state))))
    except Exception as e:
        raise _unreadable(path, e) from e
    finally:
        manager.close()
    return restored["state"]


def _manager_for(workdir: str, which: str) -> tuple[ocp.CheckpointManager, str]:
    if which not in ("latest", "best"):
        raise ValueError(f"which must be 'latest' or 'best', got {which!r}")
    directory = os.path.join(os.path.abspath(workdir),
                             CHECKPOINT_DIR if which == "latest" else BEST_DIR)
    if not os.path.isdir(directory):
        raise CheckpointError(
            f"No checkpoint directory {directory}: is --workdir={workdir} the "
            "workdir of a training run?"
        )
    _check_not_partial(directory)
    manager = _manager(directory, with_data=which == "latest", create=False)
    return manager, directory
