"""The datasets on disk: the data directory, TFDS ``array_record`` sources,
the validation hold-out and decoding rows to numpy arrays.

Data: ``tfds.data_source`` reads a dataset prepared in the ``array_record``
file format with random access and without TensorFlow. Supported datasets
(:func:`get_dataset_info`): ``cifar10``, ``cifar100`` (stock TFDS builders) and
``tiny_imagenet`` (the builder in :mod:`train.datasets.tiny_imagenet`).

Data directory: the ``data_dir`` argument, else the ``TFDS_DATA_DIR``
environment variable, else a ``ValueError``; there is no fallback to fake data.
A dataset that is not prepared in the data directory is prepared there
(:func:`prepare`) with ``download=True`` (the default of these functions and
of ``config.download``): CIFAR from the official archive, downloaded unless it
is already in ``<data_dir>/downloads/manual/``, without TensorFlow
(:mod:`train.datasets.cifar_archive`); Tiny-ImageNet from
``tiny-imagenet-200.zip``, which must be in ``<data_dir>/downloads/manual/``
(:mod:`train.datasets.tiny_imagenet`). Without network, or with
``download=False``, it is a :class:`DataError` within seconds, one line naming
the directory and how to prepare it, and nothing is left in the directory.

Validation hold-out: ``validation_examples=V`` keeps the last ``V`` examples
of the training split out of the training iterator; the evaluation iterator
of the split :data:`HELD_OUT` reads exactly those (:func:`split_ranges`).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
from collections.abc import Sequence

import numpy as np
import tensorflow_datasets as tfds

from train.batch_transforms import normalise
from train.datasets import cifar_archive, tiny_imagenet
from train.datasets.info import get_dataset_info

DATA_DIR_ENV = "TFDS_DATA_DIR"
# The last way out of every "not prepared" error.
_PREPARED = f"or point --config.data_dir / ${DATA_DIR_ENV} at a prepared copy"
# The split name of the validation examples held out of the training split.
HELD_OUT = "held_out"


class DataError(FileNotFoundError):
    """The dataset is not prepared in the data directory, and preparing it was
    not asked for (``download=False``) or cannot be done here (no network, no
    archive, a damaged archive)."""


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
      download: if the dataset is not prepared in ``data_dir``, prepare it
        there (True, :func:`prepare`) or raise a :class:`DataError` (False).
      validation_examples: the size of :data:`HELD_OUT`.

    Raises:
      DataError: the dataset is not prepared and ``download`` is False, or it
        cannot be prepared (:func:`prepare`).
    """
    info = get_dataset_info(name)
    data_dir = resolve_data_dir(data_dir)
    builder = _builder(name, data_dir)
    if not builder.is_prepared():
        if not download:
            raise DataError(
                f"Dataset {info.tfds_name!r} is not prepared in the data directory {data_dir} "
                f"(expected {builder.data_dir}); run with --config.download=true (the "
                f"default) to prepare it there ({_manual_step(name, data_dir)}), {_PREPARED}."
            )
        builder = prepare(name, data_dir)
    if split != HELD_OUT:
        return builder.as_data_source(split=split)
    source = builder.as_data_source(split=info.train_split)
    held_out = split_ranges(len(source), validation_examples)[1]
    return _Subset(source, held_out.start, held_out.stop)


def prepare(name: str, data_dir: str) -> tfds.core.DatasetBuilder:
    """Prepares ``name`` in ``data_dir`` and returns its builder: CIFAR from
    the official archive (:func:`train.datasets.cifar_archive.prepare`),
    Tiny-ImageNet from the zip in ``<data_dir>/downloads/manual/``.

    Raises:
      DataError: the archive is missing and cannot be downloaded, or it is
        damaged; one line saying how to get it (nothing is left behind).
    """
    info = get_dataset_info(name)
    where = f"Dataset {info.tfds_name!r} is not prepared in the data directory {data_dir}"
    if name == "tiny_imagenet":
        zip_path = cifar_archive.manual_dir(data_dir) / tiny_imagenet.ZIP_NAME
        if not zip_path.exists():
            raise DataError(f"{where}; {_manual_step(name, data_dir)}, {_PREPARED}.")
        _builder(name, data_dir).download_and_prepare()
    else:
        try:
            cifar_archive.prepare(info.tfds_name, data_dir)
        except (ConnectionError, cifar_archive.ArchiveError) as e:
            raise DataError(
                f"{where} and cannot be prepared: {e}; {_manual_step(name, data_dir)}, {_PREPARED}."
            ) from e
    return _builder(name, data_dir)


def _builder(name: str, data_dir: str) -> tfds.core.DatasetBuilder:
    # array_record: the random-access format that needs no TensorFlow to read
    # (tfds.data_source only defaults to it when data_dir is None).
    tfds_name = get_dataset_info(name).tfds_name
    return tfds.builder(tfds_name, data_dir=data_dir, file_format="array_record")


def _manual_step(name: str, data_dir: str) -> str:
    """How to put ``name``'s archive in place by hand, for an error message."""
    if name == "tiny_imagenet":
        return f"put {tiny_imagenet.ZIP_NAME} in {cifar_archive.manual_dir(data_dir)} first"
    tfds_name = get_dataset_info(name).tfds_name
    path = cifar_archive.archive_path(data_dir, tfds_name)
    return f"without network, put {cifar_archive.ARCHIVES[tfds_name].url} at {path} first"


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
    return decode(source, start, stop, get_dataset_info(name).image_size, threads)


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
    images, _ = decode(source, 0, min(count, len(rows)), info.image_size)
    return normalise(images, info.mean, info.std)


def decode(
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
class Decoded:
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
