"""In-memory training input: the split on the devices, augmentation in the step.

For a training split that fits in accelerator memory (CIFAR-10: 150 MB as
uint8; Tiny-ImageNet: 1.2 GB), the grain pipeline of
:mod:`train.input_pipeline` is replaced by:

* **Once**, at start-up: the TFDS source is decoded to uint8 arrays on the
  host (threads, :func:`train.input_pipeline.load_arrays`) and put on the devices, as ``S``
  *shards* of ``M = N // S`` consecutive rows, ``images (S, M, H, W, 3)``
  and ``labels (S, M)``. Placement ``"replicated"`` is ``S = 1`` on every
  device; ``"sharded"`` is ``S = mesh.size``, one shard per device of the
  ``data`` mesh axis (each device holds ``1/S`` of the split; each process
  decodes only its own devices' rows).
* **Every step**, inside the jitted train step (:func:`train.device_batch.make_batch`), from
  ``(seed, step)`` alone: the epoch's order of each shard (a permutation from
  a key folded from ``(seed, epoch, shard)``), the step's ``b = B // S`` rows
  of each shard, pad-4 (pad-8 at 64x64) random crop and horizontal flip,
  per-channel normalisation and mixup (one ``lam ~ Beta(a, a)`` per shard and
  step, mixing rows within the shard), from a key folded from
  ``(seed, step, shard)``.

So there is no iterator state: a run resumed from the checkpoint of step
``k`` sees exactly the batches of an uninterrupted run. The batches depend on
``(seed, step, S, steps_per_epoch)`` and the data, not on the devices: the
sharded layout on 8 devices computes what the same ``S = 8`` layout computes
on one device.

Epochs: each epoch takes ``steps_per_epoch * b`` rows of each shard's
permutation (``steps_per_epoch`` is the training program's, at most
``M // b``); the rest of each shard is dropped that epoch, the rows dropped
change from epoch to epoch (as the grain path drops the last partial batch
after its shuffle). Every row is seen at most once per epoch.

Validation hold-out: the last ``config.validation_examples`` (if the config
has that field) training images are never loaded.

Choice (``config.input``, :func:`choose`): ``"grain"`` the grain pipeline;
``"device"`` this module (an error if the split does not fit);
``"auto"``: this module when the training split fits
``config.input_memory_mb`` per device (replicated if the whole split fits,
else sharded) and the backend is an accelerator; grain otherwise. On a CPU
the "device" is the host, and the in-step augmentation there was slower than
grain's batches (quick model, quiet 2-core Intel Xeon, 600 steps: 404 img/s
against 473 from PNGs and 512 with the slice decoded once in memory,
``docs/benchmarks.md``), so ``auto`` keeps grain there, decoding the host's
slice once when it fits (``Plan.in_memory``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from train import input_pipeline
from train.device_batch import make_batch
from train.mesh import DATA_AXIS

PLACEMENTS = ("replicated", "sharded")
# Timings of the last DeviceInput in this process (benchmarks/end_to_end.py):
# "load_s" decoding and placing the split, "first_step_s" the first call of
# its jitted step (tracing and compilation; the step itself runs async).
STATS: dict[str, float] = {}


# --------------------------------------------------------------------------
# Choice of the input path.


@dataclasses.dataclass(frozen=True)
class Plan:
    """The chosen input path.

    Attributes:
      input: "device" or "grain".
      placement: "replicated" or "sharded" for "device", "" for "grain".
      num_examples: training examples used (after the validation hold-out).
      split_mb: size of those examples as uint8 images, MiB.
      reason: why, in words (printed at start-up).
      in_memory: for "grain": ``config.grain_in_memory`` is set and this
        host's training slice fits ``config.input_memory_mb``: it is decoded
        once, in host memory
        (``input_pipeline.create_train_iterator(in_memory=True)``: the same
        batches, a seventh of the CPU time per batch on a 2-core CPU).
    """

    input: str
    placement: str
    num_examples: int
    split_mb: float
    reason: str
    in_memory: bool = False


def num_train_examples(config: ml_collections.ConfigDict) -> int:
    """Training examples used: the train split less the validation hold-out
    (``config.validation_examples``)."""
    info = input_pipeline.get_dataset_info(config.dataset)
    total = input_pipeline.num_examples(
        config.dataset,
        info.train_split,
        data_dir=config.data_dir or None,
        download=config.download,
    )
    held_out = config.validation_examples
    if not 0 <= held_out < total:
        raise ValueError(f"config.validation_examples={held_out} must be in [0, {total})")
    train_rows = input_pipeline.split_ranges(total, held_out)[0]  # the grain path's
    if train_rows != range(len(train_rows)):
        raise ValueError(f"the training rows {train_rows} are not a prefix of the split")
    return len(train_rows)


def crop_padding(config: ml_collections.ConfigDict) -> int:
    """Pad-and-crop pixels per side for training: ``config.crop_padding``, or
    the dataset's (4 for CIFAR, 8 for Tiny-ImageNet) when it is -1."""
    padding = config.crop_padding
    return input_pipeline.get_dataset_info(config.dataset).crop_padding if padding < 0 else padding


def choose(
    config: ml_collections.ConfigDict,
    mesh: Mesh,
    num_examples: int | None = None,
    backend: str | None = None,
) -> Plan:
    """The input path for ``config`` on ``mesh`` (see the module docstring)."""
    mode = config.input  # one of schema.INPUT_MODES
    n = num_train_examples(config) if num_examples is None else num_examples
    info = input_pipeline.get_dataset_info(config.dataset)
    split_bytes = n * info.image_size**2 * 3
    split_mb = split_bytes / 2**20
    budget_mb = float(config.input_memory_mb)
    grain_plan = functools.partial(
        Plan,
        "grain",
        "",
        n,
        split_mb,
        in_memory=config.grain_in_memory and split_mb / jax.process_count() <= budget_mb,
    )
    if mode == "grain":
        return grain_plan("config.input='grain'")
    if config.augment != "crop_flip":  # only pad-crop-flip runs inside the step
        host_only = f"config.augment={config.augment!r} runs on the host, in the grain input"
        if mode == "device":
            raise ValueError(f"config.input='device' cannot run it: {host_only}; use 'grain'")
        return grain_plan(f"auto: {host_only}")
    if split_mb <= budget_mb:
        placement = "replicated"
    elif split_mb / mesh.size <= budget_mb:
        placement = "sharded"
    else:
        placement = ""
    fits = (
        f"{split_mb:.0f} MiB of uint8 images, budget {budget_mb:.0f} MiB per device, "
        f"{mesh.size} device(s)"
    )
    if mode == "device":
        if not placement:
            raise ValueError(
                f"config.input='device' but the training split does not fit: "
                f"{fits}; raise config.input_memory_mb or use 'grain'"
            )
        return Plan("device", placement, n, split_mb, f"config.input='device': {fits}")
    backend = backend or jax.default_backend()
    if not placement:
        return grain_plan(f"auto: does not fit ({fits})")
    if backend == "cpu":
        return grain_plan(
            f"auto: CPU backend (the in-step augmentation is slower there than "
            f"grain's batches of decoded images, docs/benchmarks.md), {fits}"
        )
    return Plan("device", placement, n, split_mb, f"auto: fits ({fits})")


# --------------------------------------------------------------------------
# The in-memory input of a training run.


class DeviceInput:
    """The training split on the devices of ``mesh`` and the step that makes
    its batches.

    Stands in for the grain iterator in checkpoints: ``get_state`` /
    ``set_state`` (the grain checkpoint handler's protocol) record only the
    layout, which a resumed run must share (the position is the state's step).

    Args:
      config: the training config (dataset, data_dir, seed, batch_size,
        mixup_alpha, validation_examples).
      mesh: the 1-D ``data`` mesh of the run.
      placement: "replicated" or "sharded".
      steps_per_epoch: the training program's steps per epoch.
      num_examples: training rows to use (default: :func:`num_train_examples`).
      arrays: ``(images, labels)`` of the training rows instead of decoding
        them (tests).
    """

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        mesh: Mesh,
        *,
        placement: str,
        steps_per_epoch: int,
        num_examples: int | None = None,
        arrays: tuple[np.ndarray, np.ndarray] | None = None,
    ):
        if placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
        start = time.perf_counter()
        info = input_pipeline.get_dataset_info(config.dataset)
        if arrays is not None:
            n = len(arrays[1])
        else:
            n = num_train_examples(config) if num_examples is None else num_examples
        self.mesh = mesh
        self.placement = placement
        self.num_shards = 1 if placement == "replicated" else mesh.size
        self.rows = n // self.num_shards
        self.steps_per_epoch = steps_per_epoch
        self.batch_fn = functools.partial(
            make_batch,
            seed=int(config.seed),
            steps_per_epoch=steps_per_epoch,
            batch_size=int(config.batch_size),
            crop_padding=crop_padding(config),
            mean=info.mean,
            std=info.std,
            num_classes=info.num_classes,
            mixup_alpha=float(config.mixup_alpha),
        )
        if config.batch_size % self.num_shards or (
            steps_per_epoch * (config.batch_size // self.num_shards) > self.rows
        ):
            raise ValueError(
                f"batch_size={config.batch_size} and {steps_per_epoch} steps per epoch do "
                f"not fit {self.num_shards} shard(s) of {self.rows} rows"
            )
        spec = P() if placement == "replicated" else P(DATA_AXIS)
        self.sharding = NamedSharding(mesh, spec)
        size = info.image_size
        used = self.num_shards * self.rows
        cache: dict = {}

        def host_rows(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
            if arrays is not None:
                return arrays[0][start:stop], arrays[1][start:stop]
            if (start, stop) not in cache:
                cache[(start, stop)] = input_pipeline.load_arrays(
                    config.dataset,
                    info.train_split,
                    start,
                    stop,
                    data_dir=config.data_dir or None,
                    download=config.download,
                )
            return cache[(start, stop)]

        def piece(index, which: int):
            shard_slice = index[0]
            first, last, _ = shard_slice.indices(self.num_shards)
            x = host_rows(first * self.rows, last * self.rows)[which]
            return x.reshape((last - first, self.rows) + x.shape[1:])

        self.data = {
            "image": jax.make_array_from_callback(
                (self.num_shards, self.rows, size, size, 3),
                self.sharding,
                lambda index: piece(index, 0),
            ),
            "label": jax.make_array_from_callback(
                (self.num_shards, self.rows), self.sharding, lambda index: piece(index, 1)
            ),
        }
        self.num_examples = used
        cache.clear()
        jax.block_until_ready(self.data)
        STATS["load_s"] = time.perf_counter() - start

    def batch(self, step) -> dict:
        """The (global) batch of ``step``, sharded on ``data`` (eager; tests)."""
        return self._batch_jit(self.data, step)

    @functools.cached_property
    def _batch_jit(self) -> Callable:
        return jax.jit(
            lambda data, step: self.batch_fn(data["image"], data["label"], step),
            in_shardings=(self.sharding, None),
            out_shardings=NamedSharding(self.mesh, P(DATA_AXIS)),
        )

    def jit_step(self, step_fn: Callable, state_sharding: NamedSharding) -> Callable:
        """``step_fn(state, batch)`` jitted as ``f(state, data)``: the batch of
        ``state.step`` is made inside the step from :attr:`data`; state
        replicated and donated, as the grain path's step."""
        batch_sharding = NamedSharding(self.mesh, P(DATA_AXIS))

        def step(state, data):
            batch = self.batch_fn(data["image"], data["label"], state.step)
            batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
            return step_fn(state, batch)

        jitted = jax.jit(
            step,
            in_shardings=(state_sharding, self.sharding),
            out_shardings=state_sharding,
            donate_argnums=0,
        )
        first = [True]

        def timed(state, data):
            if not first[0]:
                return jitted(state, data)
            first[0] = False
            start = time.perf_counter()
            out = jitted(state, data)
            STATS["first_step_s"] = time.perf_counter() - start
            return out

        timed._cache_size = jitted._cache_size  # the compile count, as a jitted function's
        return timed

    # The grain checkpoint handler's protocol (bytes: not a grain DatasetIterator).
    def _layout(self) -> dict:
        return {
            "input": "device",
            "placement": self.placement,
            "num_shards": self.num_shards,
            "rows": self.rows,
            "steps_per_epoch": self.steps_per_epoch,
        }

    def get_state(self) -> bytes:
        return json.dumps(self._layout()).encode()

    def set_state(self, state: bytes) -> None:
        saved = json.loads(state)
        if saved != self._layout():
            raise ValueError(
                f"the checkpoint's input layout {saved} differs from this run's "
                f"{self._layout()}: resume with the same config.input, placement and "
                "device count (the batches depend on them)"
            )

    def start_prefetch(self) -> None:
        pass


def create(
    config: ml_collections.ConfigDict,
    mesh: Mesh,
    steps_per_epoch: int,
    log: Callable[[str], None] | None = None,
    plan: Plan | None = None,
) -> DeviceInput | None:
    """The :class:`DeviceInput` of ``config`` on ``mesh``, or None when the
    plan (default: :func:`choose`) is grain. ``log`` receives one line on the
    choice."""
    plan = plan or choose(config, mesh)
    if log is not None:
        where = f"device ({plan.placement})" if plan.input == "device" else "grain"
        if plan.in_memory:
            where += ", decoded once in memory"
        log(f"Input: {where}; {plan.reason}.")
    if plan.input == "grain":
        return None
    return DeviceInput(
        config,
        mesh,
        placement=plan.placement,
        steps_per_epoch=steps_per_epoch,
        num_examples=plan.num_examples,
    )
