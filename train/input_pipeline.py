"""Input pipelines: TFDS ``array_record`` data sources feeding grain.

The datasets, the data directory and the validation hold-out are
:mod:`train.datasets.source`'s (its names are this module's too); the batch
transforms (augmentation, normalisation, mixup, padding) are
:mod:`train.batch_transforms`'.

Pipelines (grain ``MapDataset``):

* Training (:func:`create_train_iterator`): this host's slice of the train
  split, shuffled with a new order every epoch, random crop after zero padding
  (4 pixels for 32x32 images, 8 for 64x64) and horizontal flip, per-channel
  normalisation, batches of ``global_batch_size // process_count`` with the
  last partial batch of each epoch dropped, optional mixup.
* Evaluation (:func:`create_eval_iterator`): this host's slice of the
  evaluation split, un-augmented, in order, padded to
  :func:`num_eval_batches` full batches. Each batch carries ``mask`` (1 for a
  real example, 0 for padding; padded images are all zero).

Multi-host: each host reads only its own contiguous slice of the split, chosen
by ``jax.process_index()`` / ``jax.process_count()`` (or the explicit
``process_index`` / ``process_count`` arguments). Every host yields the same
number of batches. Prepare the data once before a multi-host run (every host
would otherwise try to prepare it).

Determinism and checkpointing: the batches depend only on the arguments
(``seed`` included), not on ``worker_count``. The iterators are grain
``DatasetIterator`` objects: ``iterator.get_state()`` returns a JSON-serialisable
dict and ``iterator.set_state(state)`` resumes an iterator created with the
same arguments at exactly the next batch. With orbax, save and restore them
with ``grain.checkpoint.CheckpointSave(iterator)`` /
``grain.checkpoint.CheckpointRestore(iterator)`` (one file per process).

``worker_count > 0`` runs the pipeline in that many worker processes: the
program needs an ``if __name__ == "__main__":`` guard and parsed absl flags
(``absl.app.run`` or ``absl.flags.FLAGS.mark_as_parsed()``).
"""

from __future__ import annotations

import math
import os

import grain
import jax
import numpy as np

from train.batch_transforms import EvalBatch, PaddedSlice, TrainBatch, image_and_label
from train.datasets.info import DatasetInfo, get_dataset_info, supported_datasets  # noqa: F401
from train.datasets.source import (  # noqa: F401  (the input pipeline's public names)
    DATA_DIR_ENV,
    HELD_OUT,
    DataError,
    Decoded,
    decode,
    load_arrays,
    load_source,
    load_train_images,
    num_examples,
    resolve_data_dir,
    split_ranges,
)

# Batches processed in parallel threads, and batches read ahead, per process.
_READ_OPTIONS = grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)


def num_eval_batches(
    name: str,
    *,
    global_batch_size: int,
    split: str | None = None,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    validation_examples: int = 0,
) -> int:
    """Number of batches :func:`create_eval_iterator` yields on every host."""
    _check_positive("global_batch_size", global_batch_size)
    count = num_examples(
        name, split, data_dir=data_dir, download=download, validation_examples=validation_examples
    )
    return math.ceil(count / global_batch_size)


# Host augmentations of the training images (config.augment).
AUGMENTATIONS = ("crop_flip", "authors")


def create_train_iterator(
    name: str,
    *,
    global_batch_size: int,
    seed: int,
    data_dir: str | os.PathLike | None = None,
    mixup_alpha: float = 0.0,
    crop_padding: int | None = None,
    num_epochs: int | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
    worker_count: int = 0,
    download: bool = True,
    validation_examples: int = 0,
    in_memory: bool = False,
    augment: str = "crop_flip",
) -> grain.DatasetIterator:
    """Returns a checkpointable iterator over augmented training batches.

    Each batch is a dict of numpy arrays, with ``B = global_batch_size //
    process_count`` (this host's share):

    * ``image``: float32 (B, H, W, 3), augmented and normalised per channel.
    * ``label``: int32 (B,), the class of each image (with mixup: of the image
      weighted ``lam``).
    * ``label_onehot``: float32 (B, num_classes), one-hot labels, or with mixup
      the soft labels ``lam * onehot + (1 - lam) * onehot[perm]`` (rows sum
      to 1). Train on these.

    Each host takes an equal contiguous slice of the train split without its
    last ``validation_examples`` (up to ``process_count - 1`` examples left
    over are never used), reshuffled every epoch; each epoch yields
    ``len(slice) // B`` batches, dropping the rest.

    Args:
      name: a dataset name accepted by :func:`get_dataset_info`.
      global_batch_size: batch size summed over all hosts; a multiple of
        ``process_count``.
      seed: integer in [0, 2**32) fixing the order, the augmentation and mixup.
      data_dir: the TFDS data directory (default: ``$TFDS_DATA_DIR``).
      mixup_alpha: 0 disables mixup; > 0 mixes each batch with a permutation of
        itself, with a weight ``lam ~ Beta(mixup_alpha, mixup_alpha)`` drawn
        per batch.
      crop_padding: zero padding on each side before the random crop; None:
        the dataset's (4 for CIFAR, 8 for Tiny-ImageNet), 0: flips only.
      num_epochs: number of passes over the data; None repeats forever.
      process_index: this host's index (default: ``jax.process_index()``).
      process_count: number of hosts (default: ``jax.process_count()``).
      worker_count: number of worker processes; 0 runs in this process.
      download: see :func:`load_source`.
      validation_examples: the number of examples at the end of the train
        split held out for validation (never yielded here).
      in_memory: decode this host's slice once, at creation (as
        :func:`load_arrays` does), instead of one PNG per example and epoch: the
        same batches and iterator states, for a fraction of the CPU time per
        batch (CIFAR-10 at batch 64 on a 2-core Intel Xeon: 5 against 37 ms;
        decoding the 50,000 images once takes about 10 s there). Needs the
        slice's uint8 images in host memory (150 MB for CIFAR-10).
      augment: "crop_flip" (pad ``crop_padding``, random crop, flip: the
        paper's) or "authors" (timm's RandomResizedCrop + flip + AutoAugment
        "original", the authors' code: :func:`train.augment.authors_train_transform`,
        filled with the dataset's mean colour as timm fills with the normalisation
        mean); normalisation and mixup follow either.
    """
    info = get_dataset_info(name)
    _check_seed(seed)
    if mixup_alpha < 0:
        raise ValueError(f"mixup_alpha must be >= 0, got {mixup_alpha}")
    crop_padding = info.crop_padding if crop_padding is None else crop_padding
    if crop_padding < 0:
        raise ValueError(f"crop_padding must be >= 0, got {crop_padding}")
    if augment not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {augment!r}")
    if num_epochs is not None:
        _check_positive("num_epochs", num_epochs)
    process_index, process_count = _resolve_process(process_index, process_count)
    local_batch_size = _local_batch_size(global_batch_size, process_count)

    source = load_source(name, info.train_split, data_dir=data_dir, download=download)
    per_host = len(split_ranges(len(source), validation_examples)[0]) // process_count
    if per_host < local_batch_size:
        raise ValueError(
            f"global_batch_size={global_batch_size} is too large: each of the "
            f"{process_count} hosts has only {per_host} training examples"
        )
    start = process_index * per_host
    if in_memory:
        rows = grain.MapDataset.source(
            Decoded(*decode(source, start, start + per_host, info.image_size))
        )
    else:
        rows = grain.MapDataset.source(source)[start : start + per_host]
    dataset = (
        rows.seed(_host_seed(seed, process_index))
        .shuffle()
        .map(image_and_label)
        .batch(local_batch_size, drop_remainder=True)
        .random_map(
            TrainBatch(
                crop_padding,
                info.mean,
                info.std,
                info.num_classes,
                float(mixup_alpha),
                augment,
            )
        )
        .repeat(num_epochs)
    )
    return _iterate(dataset, worker_count)


def train_batch_spec(name: str, local_batch_size: int) -> dict[str, jax.ShapeDtypeStruct]:
    """The shapes and dtypes of one host's batch from :func:`create_train_iterator`
    (to compile a step before the first batch exists)."""
    info = get_dataset_info(name)
    size, b = info.image_size, local_batch_size
    return {
        "image": jax.ShapeDtypeStruct((b, size, size, 3), np.float32),
        "label": jax.ShapeDtypeStruct((b,), np.int32),
        "label_onehot": jax.ShapeDtypeStruct((b, info.num_classes), np.float32),
    }


def eval_batch_spec(name: str, local_batch_size: int) -> dict[str, jax.ShapeDtypeStruct]:
    """The shapes and dtypes of one host's batch from :func:`create_eval_iterator`."""
    size, b = get_dataset_info(name).image_size, local_batch_size
    return {
        "image": jax.ShapeDtypeStruct((b, size, size, 3), np.float32),
        "label": jax.ShapeDtypeStruct((b,), np.int32),
        "mask": jax.ShapeDtypeStruct((b,), np.float32),
    }


def create_eval_iterator(
    name: str,
    *,
    global_batch_size: int,
    split: str | None = None,
    data_dir: str | os.PathLike | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
    worker_count: int = 0,
    download: bool = True,
    validation_examples: int = 0,
) -> grain.DatasetIterator:
    """Returns an iterator over one pass of un-augmented evaluation batches.

    Yields :func:`num_eval_batches` batches on every host, each a dict of numpy
    arrays with ``B = global_batch_size // process_count``:

    * ``image``: float32 (B, H, W, 3), normalised per channel (zero for padding).
    * ``label``: int32 (B,) (0 for padding).
    * ``mask``: float32 (B,), 1 for real examples, 0 for padding.

    Over all hosts and batches every example of the split appears exactly once
    with mask 1.

    Args:
      name: a dataset name accepted by :func:`get_dataset_info`.
      global_batch_size: batch size summed over all hosts; a multiple of
        ``process_count``.
      split: the TFDS split (default: the dataset's ``eval_split``), or
        :data:`HELD_OUT` for the validation examples held out of training.
      data_dir: the TFDS data directory (default: ``$TFDS_DATA_DIR``).
      process_index: this host's index (default: ``jax.process_index()``).
      process_count: number of hosts (default: ``jax.process_count()``).
      worker_count: number of worker processes; 0 runs in this process.
      download: see :func:`load_source`.
      validation_examples: the size of :data:`HELD_OUT`.
    """
    info = get_dataset_info(name)
    split = split or info.eval_split
    process_index, process_count = _resolve_process(process_index, process_count)
    local_batch_size = _local_batch_size(global_batch_size, process_count)

    source = load_source(
        name, split, data_dir=data_dir, download=download, validation_examples=validation_examples
    )
    count = len(source)
    padded = PaddedSlice(
        source=source,
        start=count * process_index // process_count,
        stop=count * (process_index + 1) // process_count,
        length=math.ceil(count / global_batch_size) * local_batch_size,
        image_shape=(info.image_size, info.image_size, 3),
    )
    dataset = (
        grain.MapDataset.source(padded).batch(local_batch_size).map(EvalBatch(info.mean, info.std))
    )
    return _iterate(dataset, worker_count)


def _iterate(dataset: grain.MapDataset, worker_count: int) -> grain.DatasetIterator:
    if worker_count < 0:
        raise ValueError(f"worker_count must be >= 0, got {worker_count}")
    iter_dataset = dataset.to_iter_dataset(_READ_OPTIONS)
    if worker_count > 0:
        iter_dataset = iter_dataset.mp_prefetch(
            grain.MultiprocessingOptions(num_workers=worker_count)
        )
    return iter(iter_dataset)


def _check_positive(argument: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{argument} must be a positive integer, got {value!r}")


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")


def _resolve_process(process_index: int | None, process_count: int | None) -> tuple[int, int]:
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    _check_positive("process_count", process_count)
    if not 0 <= process_index < process_count:
        raise ValueError(
            f"process_index must be in [0, process_count={process_count}), got {process_index}"
        )
    return process_index, process_count


def _local_batch_size(global_batch_size: int, process_count: int) -> int:
    _check_positive("global_batch_size", global_batch_size)
    if global_batch_size % process_count:
        raise ValueError(
            f"global_batch_size={global_batch_size} must be a multiple of the "
            f"number of processes ({process_count})"
        )
    return global_batch_size // process_count


def _host_seed(seed: int, process_index: int) -> int:
    """A seed for this host's shuffle and augmentation, derived from ``seed``."""
    return int(np.random.SeedSequence([seed, process_index]).generate_state(1)[0])
