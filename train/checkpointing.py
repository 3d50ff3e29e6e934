"""Checkpoints of a training run (orbax-checkpoint), with clear errors.

Layout of a workdir::

    <workdir>/checkpoints/<step>/   periodic and final saves, the last
                                    ``keep_checkpoints`` kept; items:
        state/   the TrainState (step, parameters, RNG streams, optimiser state)
        data/    the grain iterator position, one JSON file per process
        meta/    JSON: the config, the step, the best validation accuracy so
                 far, the SHA-256 of every array of ``state``, the length of
                 metrics.jsonl at the save, the number of skipped steps
    <workdir>/best/<step>/          the best checkpoint by validation accuracy
                                    (items state and meta)
    <workdir>/corrupt_checkpoints/  checkpoints found corrupt, moved aside

Resuming restores everything a run depends on: a run stopped at step k and
resumed reaches exactly the parameters of an uninterrupted run. Every restore
recomputes the SHA-256 of each restored array and compares it with the one
stored at the save: a changed byte is an error, not silently different
parameters (checkpoints from before checksums are restored with a warning).

Problems are never a silent fresh start: an interrupted save is deleted with
a warning (evaluation ignores it), an unreadable or corrupt checkpoint is a
:class:`CheckpointError` naming the step (resuming moves it to
``corrupt_checkpoints/`` and falls back to the newest intact one), and a
checkpoint of another config (outside :data:`train.schema.RUN_CONTROL_FIELDS`)
is refused; ``docs/faults.md`` has the messages and the tests.

Saves are synchronous: when :meth:`Checkpointer.save` returns, the checkpoint
is complete on disk.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from typing import Any

import grain
import jax
import ml_collections
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils

from train import schema
from train.checksums import state_checksums

CHECKPOINT_DIR = "checkpoints"
BEST_DIR = "best"
CORRUPT_DIR = "corrupt_checkpoints"
_PARTIAL = re.compile(r".*\.orbax-checkpoint-tmp.*")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: missing, partial, corrupt or of another run."""


def _abstract(tree: Any) -> Any:
    """Shapes, dtypes and shardings of ``tree`` (the restore target)."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def verify_checksums(state: Any, meta: dict, path: str) -> None:
    """Raises :class:`CheckpointError` if an array of the restored ``state``
    differs from the checksums saved in ``meta`` (warns if there are none)."""
    saved = meta.get("checksums")
    if saved is None:
        logging.warning(
            "The checkpoint %s has no checksums (saved by an older version): "
            "its contents are not verified.",
            path,
        )
        return
    now = state_checksums(state)
    changed = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k))
    if changed:
        shown = ", ".join(changed[:3]) + (
            f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        )
        raise CheckpointError(
            f"The checkpoint {path} (step {meta.get('step')}) is corrupt: the contents of "
            f"{len(changed)} array(s) differ from their checksums at the save ({shown})."
        )


def _partial_saves(directory: str) -> list[str]:
    if not os.path.isdir(directory):
        return []
    return sorted(
        os.path.join(directory, n) for n in os.listdir(directory) if _PARTIAL.fullmatch(n)
    )


def _remove_partial_saves(directory: str) -> None:
    """Deletes the leftovers of interrupted saves (process 0), with a warning."""
    partial = _partial_saves(directory)
    if not partial:
        return
    if jax.process_index() == 0:
        for path in partial:
            logging.warning(
                "Deleting %s: the leftover of a save that was interrupted (it "
                "never completed; the complete checkpoints are kept).",
                path,
            )
            shutil.rmtree(path, ignore_errors=True)
    _sync("snnjax_remove_partial_saves")


def _warn_partial_saves(directory: str) -> None:
    for path in _partial_saves(directory):
        logging.warning("Ignoring %s: an interrupted or ongoing save.", path)


def _sync(name: str) -> None:
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


class Checkpointer:
    """Saves and restores the checkpoints of one workdir.

    Args:
      workdir: the run's directory.
      config: the current run's config; a checkpoint of a different config
        (outside :data:`train.schema.RUN_CONTROL_FIELDS`) is refused.
      keep: how many periodic checkpoints to keep (the newest).
    """

    def __init__(self, workdir: str, config: ml_collections.ConfigDict, *, keep: int = 3):
        if keep < 1:
            raise ValueError(f"keep_checkpoints must be >= 1, got {keep}")
        self.directory = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)
        self.best_directory = os.path.join(os.path.abspath(workdir), BEST_DIR)
        self.corrupt_directory = os.path.join(os.path.abspath(workdir), CORRUPT_DIR)
        self._config = schema.config_to_dict(config)
        _remove_partial_saves(self.directory)
        _remove_partial_saves(self.best_directory)
        self._manager = _manager(self.directory, with_data=True, keep=keep)
        self._best_manager = None  # made on the first save_best: no empty best/

    def save(
        self,
        state: Any,
        data_iterator: grain.DatasetIterator,
        *,
        best_accuracy: float | None,
        **extra,
    ) -> None:
        """Saves ``state`` (a TrainState), the data position, the best
        validation accuracy so far and the JSON values ``extra``, at
        ``state.step``, with the checksums of ``state``. Every process must
        call it."""
        step = int(jax.device_get(state.step))
        if step in self._manager.all_steps():
            return
        meta = {
            "config": self._config,
            "step": step,
            "best_accuracy": best_accuracy,
            "checksums": state_checksums(state),
            **extra,
        }
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                data=grain.checkpoint.CheckpointSave(data_iterator),
                meta=ocp.args.JsonSave(meta),
            ),
        )
        self._manager.wait_until_finished()

    @property
    def _best(self) -> ocp.CheckpointManager:
        if self._best_manager is None:
            self._best_manager = _manager(self.best_directory, with_data=False, keep=1)
        return self._best_manager

    def save_best(self, state: Any, accuracy: float) -> None:
        """Replaces the best checkpoint with ``state`` (its validation
        accuracy ``accuracy``)."""
        step = int(jax.device_get(state.step))
        if step in self._best.all_steps():
            return
        meta = {
            "config": self._config,
            "step": step,
            "best_accuracy": accuracy,
            "checksums": state_checksums(state),
        }
        self._best.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
            ),
        )
        self._best.wait_until_finished()

    def restore_latest(
        self, state: Any, data_iterator: grain.DatasetIterator
    ) -> tuple[Any, dict] | None:
        """Restores the newest intact checkpoint into ``state``'s structure
        and shardings and moves ``data_iterator`` to its position.

        A checkpoint that cannot be read or fails its checksums is moved to
        ``<workdir>/corrupt_checkpoints/`` with a warning naming it and the
        reason, and the next older one is tried.

        Returns:
          ``(state, meta)``, or None if there is no checkpoint yet.

        Raises:
          CheckpointError: the newest readable checkpoint is of another
            config, or every checkpoint was corrupt (they were moved aside).
        """
        corrupt = []
        for step in sorted(self._manager.all_steps(), reverse=True):
            path = os.path.join(self.directory, str(step))
            try:
                meta = _restore_meta(self._manager, step, path)
            except CheckpointError as e:
                corrupt.append(self._set_aside(step, e))
                continue
            self._check_config(meta, path)
            try:
                try:
                    restored = self._manager.restore(
                        step,
                        args=ocp.args.Composite(
                            state=ocp.args.StandardRestore(_abstract(state)),
                            data=grain.checkpoint.CheckpointRestore(data_iterator),
                        ),
                    )
                except Exception as e:
                    raise _unreadable(path, step, e) from e
                verify_checksums(restored["state"], meta, path)
            except CheckpointError as e:
                corrupt.append(self._set_aside(step, e))
                continue
            if corrupt:
                logging.warning(
                    "Resuming from the newest intact checkpoint, %s (step %d).", path, step
                )
            return restored["state"], meta
        if corrupt:
            raise CheckpointError(
                f"Every checkpoint in {self.directory} was corrupt; they were moved to "
                f"{self.corrupt_directory}. Run again to start from scratch, or use a new "
                "--workdir."
            )
        return None

    def _set_aside(self, step: int, error: CheckpointError) -> str:
        """Moves the corrupt checkpoint of ``step`` out of the way (process 0)
        and warns; returns its new path."""
        source = os.path.join(self.directory, str(step))
        target = os.path.join(self.corrupt_directory, f"{step}-{time.strftime('%Y%m%d-%H%M%S')}")
        logging.warning(
            "Skipping the checkpoint of step %d: %s Moved it to %s.",
            step,
            str(error).split(". Delete it")[0],
            target,
        )
        if jax.process_index() == 0:
            os.makedirs(self.corrupt_directory, exist_ok=True)
            shutil.move(source, target)
        _sync(f"snnjax_set_aside_{step}")
        self._manager.reload()
        return target

    def latest_step(self) -> int | None:
        """The step of the newest periodic checkpoint (None if none)."""
        return self._manager.latest_step()

    def _check_config(self, meta: dict, path: str) -> None:
        differences = schema.config_differences(meta["config"], self._config)
        if differences:
            raise CheckpointError(
                f"The checkpoint {path} belongs to a run with another config; "
                "differences (checkpoint -> now):\n  "
                + "\n  ".join(differences)
                + "\nResume with the checkpoint's config, or use a new --workdir."
            )

    def close(self) -> None:
        self._manager.close()
        if self._best_manager is not None:
            self._best_manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _manager(
    directory: str, *, with_data: bool, keep: int | None = None, create: bool = True
) -> ocp.CheckpointManager:
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
            max_to_keep=keep, enable_async_checkpointing=False, create=create
        ),
    )


def _restore_meta(manager: ocp.CheckpointManager, step: int, path: str) -> dict:
    try:
        meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        meta = meta["meta"]
        if not isinstance(meta, dict) or not {"config", "step"} <= set(meta):
            raise ValueError(f"unexpected metadata {meta!r}")
    except Exception as e:
        raise _unreadable(path, step, e) from e
    return meta


def _unreadable(path: str, step: int, error: Exception) -> CheckpointError:
    return CheckpointError(
        f"The checkpoint {path} (step {step}) cannot be read ({type(error).__name__}: "
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
    return schema.upgrade(meta["config"]), step


def restore_state(workdir: str, which: str, state: Any, step: int) -> Any:
    """The TrainState of the ``which`` checkpoint at ``step``, restored into
    ``state``'s structure and shardings (the data position is not needed)
    and checked against its checksums.

    Raises:
      CheckpointError: it cannot be read or its contents changed.
    """
    manager, directory = _manager_for(workdir, which)
    path = os.path.join(directory, str(step))
    try:
        meta = _restore_meta(manager, step, path)
        try:
            restored = manager.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(_abstract(state)))
            )
        except Exception as e:
            raise _unreadable(path, step, e) from e
    finally:
        manager.close()
    verify_checksums(restored["state"], meta, path)
    return restored["state"]


def _manager_for(workdir: str, which: str) -> tuple[ocp.CheckpointManager, str]:
    if which not in ("latest", "best"):
        raise ValueError(f"which must be 'latest' or 'best', got {which!r}")
    directory = os.path.join(
        os.path.abspath(workdir), CHECKPOINT_DIR if which == "latest" else BEST_DIR
    )
    if not os.path.isdir(directory):
        raise CheckpointError(
            f"No checkpoint directory {directory}: "
            + (
                "the run kept no best checkpoint (it held out no validation examples)"
                if which == "best" and os.path.isdir(os.path.join(workdir, CHECKPOINT_DIR))
                else f"is --workdir={workdir} the workdir of a training run?"
            )
        )
    _warn_partial_saves(directory)
    manager = _manager(directory, with_data=which == "latest", create=False)
    return manager, directory
