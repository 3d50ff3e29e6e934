"""Input pipelines: TFDS ``array_record`` data sources feeding grain.

Data: ``tfds.data_source`` reads a dataset prepared in the ``array_record``
file format with random access and without TensorFlow. Supported datasets
(:func:`get_dataset_info`): ``cifar10``, ``cifar100`` (stock TFDS builders) and
``tiny_imagenet`` (the builder in :mod:`train.datasets.tiny_imagenet`).

Data directory: the ``data_dir`` argument, else the ``TFDS_DATA_DIR``
environment variable, else a ``ValueError``; there is no fallback to fake data.
With ``download=False`` (what the training program passes unless
``config.download`` is set) a dataset that is not prepared in the data
directory is a :class:`DataError` at once, naming the directory and how to
prepare it, and nothing is created or downloaded. With ``download=True`` (the
default of these functions) it is prepared there first: the stock CIFAR builders download the archives and need TensorFlow to
prepare them (``pip install 'snnjax[prepare]'``, network required);
Tiny-ImageNet needs ``tiny-imagenet-200.zip`` in
``<data_dir>/downloads/manual/`` (see :mod:`train.datasets.tiny_imagenet`).

Validation hold-out: ``validation_examples=V`` keeps the last ``V`` examples
of the training split out of the training iterator; the evaluation iterator
of the split :data:`HELD_OUT` reads exactly those (:func:`split_ranges`).

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

import concurrent.futures
import dataclasses
import math
import os
from collections.abc import Sequence

import grain
import jax
import numpy as np
import tensorflow_datasets as tfds

import train.datasets.tiny_imagenet  # noqa: F401  (registers "tiny_imagenet" with TFDS)
from train.augment import authors_train_transform
from train.datasets.info import DatasetInfo, get_dataset_info, supported_datasets  # noqa: F401

DATA_DIR_ENV = "TFDS_DATA_DIR"
# The split name of the validation examples held out of the training split.
HELD_OUT = "held_out"


class DataError(FileNotFoundError):
    """The dataset is not prepared in the data directory (and downloading was
    not asked for)."""


# Batches processed in parallel threads, and batches read ahead, per process.
_READ_OPTIONS = grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)


def resolve_data_dir(data_dir: str | os.PathLike | None) -> str:
    """Returns ``data_dir``, else ``$TFDS_DATA_DIR``.

    Raises:
      ValueError: if neither is set, with instructions on where to put the data.
    """
    if data_dir is None or os.fspath(data_dir) == "":
        data_dir = os.environ.get(DATA_DIR_ENV)
    if not data_dir:
        raise ValueError(
            "No data directory: pass data_dir (--data_dir) or set the "
            f"{DATA_DIR_ENV} environment variable to a TFDS data directory. "
            "It must hold the dataset prepared in the array_record format "
            "(e.g. <data_dir>/cifar10/3.0.2/), or, on a machine with network "
            "access, it is where the dataset gets downloaded and prepared. For "
            "Tiny-ImageNet put tiny-imagenet-200.zip in <data_dir>/downloads/manual/."
        )
    return os.path.expanduser(os.fspath(data_dir))


def load_source(
    name: str,
    split: str,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    validation_examples: int = 0,
) -> Sequence[dict]:
    """Returns the random-access TFDS data source of ``name``'s ``split``.

    Elements are dicts of numpy values (``image`` uint8 HxWx3, ``label``, ...).

    Args:
      name: a dataset name accepted by :func:`get_dataset_info`.
      split: a TFDS split name, e.g. "train", "test", "validation", or
        :data:`HELD_OUT`: the last ``validation_examples`` of the training split.
      data_dir: the TFDS data directory (default: ``$TFDS_DATA_DIR``).
      download: if the dataset is not prepared in ``data_dir``, download and
        prepare it there (True) or raise a :class:`DataError` (False).
      validation_examples: the size of :data:`HELD_OUT`.

    Raises:
      DataError: the dataset is not prepared and ``download`` is False.
    """
    info = get_dataset_info(name)
    data_dir = resolve_data_dir(data_dir)
    # array_record: the random-access format that needs no TensorFlow to read
    # (tfds.data_source only defaults to it when data_dir is None).
    builder = tfds.builder(info.tfds_name, data_dir=data_dir, file_format="array_record")
    if download:
        builder.download_and_prepare()  # Does nothing if already prepared.
    elif not builder.is_prepared():
        how = (
            "put tiny-imagenet-200.zip in <data_dir>/downloads/manual/ and run once with "
            "--config.download=true"
            if name == "tiny_imagenet"
            else "run once with --config.download=true on a machine with network access "
            "(needs pip install 'snnjax[prepare]'), or point --config.data_dir / "
            f"${DATA_DIR_ENV} at a prepared copy"
        )
        raise DataError(
            f"Dataset {info.tfds_name!r} is not prepared in the data directory {data_dir} "
            f"(expected {builder.data_dir}); {how}."
        )
    if split != HELD_OUT:
        return builder.as_data_source(split=split)
    source = builder.as_data_source(split=info.train_split)
    held_out = split_ranges(len(source), validation_examples)[1]
    return _Subset(source, held_out.start, held_out.stop)


def load_arrays(
    name: str,
    split: str,
    start: int,
    stop: int,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``[start, stop)`` of ``name``'s ``split`` decoded to numpy:
    ``images`` uint8 (n, H, W, 3) and ``labels`` int32 (n,), in split order."""
    source = load_source(name, split, data_dir=data_dir, download=download)
    return _decode(source, start, stop, get_dataset_info(name).image_size, threads)


def load_train_images(
    name: str,
    count: int,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    validation_examples: int = 0,
) -> np.ndarray:
    """The first ``count`` training images of ``name`` (never the held-out
    validation examples; fewer if the training rows are fewer), float32
    ``(n, H, W, 3)`` normalised as the model sees them. The same rows on every
    host (data-dependent initialisation, :mod:`snnjax.whitening`)."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    info = get_dataset_info(name)
    source = load_source(name, info.train_split, data_dir=data_dir, download=download)
    rows = split_ranges(len(source), validation_examples)[0]
    images, _ = _decode(source, 0, min(count, len(rows)), info.image_size)
    return _normalise(images, info.mean, info.std)


def _decode(
    source: Sequence[dict], start: int, stop: int, size: int, threads: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``[start, stop)`` of an opened source, decoded by ``threads`` threads."""
    if not 0 <= start <= stop <= len(source):
        raise ValueError(f"rows [{start}, {stop}) outside the split of {len(source)}")
    images = np.empty((stop - start, size, size, 3), np.uint8)
    labels = np.empty((stop - start,), np.int32)
    chunk = 1000

    def read(begin: int) -> None:
        end = min(begin + chunk, stop)
        examples = source.__getitems__(list(range(begin, end)))
        for i, example in enumerate(examples):
            images[begin - start + i] = example["image"]
            labels[begin - start + i] = example["label"]

    threads = threads or min(16, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(read, range(start, stop, chunk)))
    return images, labels


@dataclasses.dataclass(frozen=True)
class _Decoded:
    """Decoded examples held in memory: the records of the TFDS source
    (``image``, ``label``) without decoding a PNG per access."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index], "label": self.labels[index]}


def split_ranges(num_examples: int, validation_examples: int) -> tuple[range, range]:
    """The indices of the training split used for training and those held
    out for validation (the last ``validation_examples``)."""
    if not 0 <= validation_examples < num_examples:
        raise ValueError(
            f"validation_examples={validation_examples} must be in "
            f"[0, {num_examples}) (the size of the training split)"
        )
    boundary = num_examples - validation_examples
    return range(0, boundary), range(boundary, num_examples)


@dataclasses.dataclass(frozen=True)
class _Subset:
    """Examples ``[start, stop)`` of ``source``."""

    source: Sequence[dict]
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range [0, {len(self)})")
        return self.source[self.start + index]


def num_examples(
    name: str,
    split: str | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    validation_examples: int = 0,
) -> int:
    """Number of examples in ``split`` (default: the evaluation split) of
    ``name`` (:data:`HELD_OUT`: ``validation_examples``)."""
    split = split or get_dataset_info(name).eval_split
    return len(
        load_source(
            name,
            split,
            data_dir=data_dir,
            download=download,
            validation_examples=validation_examples,
        )
    )


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
            _Decoded(*_decode(source, start, start + per_host, info.image_size))
        )
    else:
        rows = grain.MapDataset.source(source)[start : start + per_host]
    dataset = (
        rows.seed(_host_seed(seed, process_index))
        .shuffle()
        .map(_image_and_label)
        .batch(local_batch_size, drop_remainder=True)
        .random_map(
            _TrainBatch(
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
    padded = _PaddedSlice(
        source=source,
        start=count * process_index // process_count,
        stop=count * (process_index + 1) // process_count,
        length=math.ceil(count / global_batch_size) * local_batch_size,
        image_shape=(info.image_size, info.image_size, 3),
    )
    dataset = (
        grain.MapDataset.source(padded).batch(local_batch_size).map(_EvalBatch(info.mean, info.std))
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


def _normalise(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 images -> float32 ``(images / 255 - mean) / std`` per channel."""
    std = np.asarray(std, np.float32)
    scale = 1 / (255 * std)
    offset = np.asarray(mean, np.float32) / std
    return images.astype(np.float32) * scale - offset


def _image_and_label(example: dict) -> dict:
    return {"image": example["image"], "label": np.int32(example["label"])}


def _random_crop_flip(images: np.ndarray, padding: int, rng: np.random.Generator) -> np.ndarray:
    """Zero-pads each image by ``padding``, crops it back to size at a random
    offset and flips it horizontally with probability 1/2."""
    size, height, width, _ = images.shape
    padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    tops, lefts = rng.integers(0, 2 * padding + 1, size=(2, size))
    flips = rng.random(size) < 0.5
    out = np.empty_like(images)
    for i, (top, left, flip) in enumerate(zip(tops, lefts, flips)):
        crop = padded[i, top : top + height, left : left + width]
        out[i] = crop[:, ::-1] if flip else crop
    return out


@dataclasses.dataclass(frozen=True)
class _TrainBatch(grain.transforms.RandomMap):
    """Augments and normalises a uint8 batch, adds one-hot labels and, if
    ``mixup_alpha > 0``, applies mixup."""

    crop_padding: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    num_classes: int
    mixup_alpha: float
    augment: str = "crop_flip"

    def random_map(self, batch: dict, rng: np.random.Generator) -> dict:
        if self.augment == "authors":
            fill = tuple(round(255 * m) for m in self.mean)
            size = batch["image"].shape[1]
            image = np.stack(
                [authors_train_transform(x, rng, size, fill=fill) for x in batch["image"]]
            )
        else:
            image = _random_crop_flip(batch["image"], self.crop_padding, rng)
        image = _normalise(image, self.mean, self.std)
        onehot = np.eye(self.num_classes, dtype=np.float32)[batch["label"]]
        if self.mixup_alpha > 0:
            lam = np.float32(rng.beta(self.mixup_alpha, self.mixup_alpha))
            perm = rng.permutation(len(image))
            image = lam * image + (1 - lam) * image[perm]
            onehot = lam * onehot + (1 - lam) * onehot[perm]
        return {"image": image, "label": batch["label"], "label_onehot": onehot}


@dataclasses.dataclass(frozen=True)
class _EvalBatch(grain.transforms.Map):
    """Normalises a batch; padded images become zero."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def map(self, batch: dict) -> dict:
        image = _normalise(batch["image"], self.mean, self.std)
        image *= batch["mask"][:, None, None, None]
        return {"image": image, "label": batch["label"], "mask": batch["mask"]}


@dataclasses.dataclass(frozen=True)
class _PaddedSlice:
    """Examples ``[start, stop)`` of ``source`` with a ``mask`` of 1, followed
    by blank examples with a ``mask`` of 0 up to ``length`` in total."""

    source: Sequence[dict]
    start: int
    stop: int
    length: int
    image_shape: tuple[int, int, int]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range [0, {self.length})")
        if index < self.stop - self.start:
            example = self.source[self.start + index]
            return {
                "image": example["image"],
                "label": np.int32(example["label"]),
                "mask": np.float32(1),
            }
        return {
            "image": np.zeros(self.image_shape, np.uint8),
            "label": np.int32(0),
            "mask": np.float32(0),
        }
