"""CIFAR-10 and CIFAR-100 written as TFDS prepares them, without TensorFlow.

:func:`write_dataset` writes the splits of a CIFAR dataset, given as arrays in
the order of the official archive, to ``<data_dir>/<name>/3.0.2/`` as the
stock TFDS builders ``cifar10`` and ``cifar100`` prepare it in the
``array_record`` file format: the same features (``id`` ``"train_00000"`` ...,
``image`` stored as PNG, ``label``, CIFAR-100's ``coarse_label``), the same
order (TFDS sorts a split by the MD5 of each example's index salted with the
split name) and the same metadata files. ``tfds.data_source`` and
:func:`train.datasets.source.load_source` read it as they read a copy that
TFDS prepared. (The stock builders need TensorFlow to encode the PNGs; here
Pillow does.)

The dataset is written to a temporary folder beside its place and renamed
into place when complete: an interrupted write never looks prepared, and
nothing of it is left behind.
"""

from __future__ import annotations

import concurrent.futures
import io
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from array_record.python.array_record_module import ArrayRecordWriter
from PIL import Image
from tensorflow_datasets.core import hashing, naming

NAMES = ("cifar10", "cifar100")
IMAGE_SHAPE = (32, 32, 3)
# The file format that TFDS reads without TensorFlow.
FILE_FORMAT = "array_record"


def write_dataset(
    data_dir: str | os.PathLike,
    name: str,
    splits: Mapping[str, Mapping[str, np.ndarray]],
    label_names: Mapping[str, Sequence[str]],
) -> Path:
    """Writes ``splits`` as TFDS's prepared ``name`` in ``data_dir``.

    Args:
      data_dir: the TFDS data directory.
      name: "cifar10" or "cifar100".
      splits: split name -> arrays in the archive's order: ``image`` uint8
        (n, 32, 32, 3) and each label feature (n,) (``label``; CIFAR-100 also
        ``coarse_label``).
      label_names: each label feature's class names, in label order.

    Returns:
      The dataset's folder ``<data_dir>/<name>/<version>``. If another
      process prepared it meanwhile, its copy is kept.
    """
    if name not in NAMES:
        raise ValueError(f"name={name!r}: expected one of {list(NAMES)}")
    builder = tfds.builder(name, data_dir=os.fspath(data_dir), file_format=FILE_FORMAT)
    features = builder.info.features
    label_keys = sorted(set(features) - {"id", "image"})
    if sorted(label_names) != label_keys:
        raise ValueError(f"label_names has {sorted(label_names)}; {name} needs {label_keys}")
    for key, names in label_names.items():
        features[key].names = list(names)
    final = Path(builder.data_dir)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f"incomplete.{final.name}.", dir=final.parent))
    try:
        template = naming.ShardedFileTemplate(
            data_dir=final, dataset_name=name, filetype_suffix=FILE_FORMAT
        )
        infos = [
            _write_split(temporary, template.replace(split=split), features, label_keys, arrays)
            for split, arrays in splits.items()
        ]
        builder.info.set_splits(tfds.core.SplitDict(infos))
        builder.info.write_to_directory(temporary)
        _publish(temporary, final)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return final


def _write_split(
    folder: Path,
    template: naming.ShardedFileTemplate,
    features: tfds.features.FeaturesDict,
    label_keys: list[str],
    arrays: Mapping[str, np.ndarray],
) -> tfds.core.SplitInfo:
    """Writes one split's examples in TFDS's order to one shard in ``folder``."""
    split = template.split
    _check_arrays(split, arrays, ["image", *label_keys])
    images = arrays["image"]
    order = sorted(range(len(images)), key=hashing.Hasher(split).hash_key)
    with concurrent.futures.ThreadPoolExecutor() as pool:  # Pillow encodes without the GIL
        pngs = pool.map(lambda i: _png(images[i]), order)
        path = folder / template.sharded_filepath(shard_index=0, num_shards=1).name
        writer = ArrayRecordWriter(os.fspath(path), "group_size:1")
        num_bytes = 0
        for index, png in zip(order, pngs):
            labels = {key: int(arrays[key][index]) for key in label_keys}
            record = features.serialize_example(
                {"id": f"{split}_{index:05d}", "image": png, **labels}
            )
            writer.write(record)
            num_bytes += len(record)
        writer.close()
    return tfds.core.SplitInfo(
        name=split, shard_lengths=[len(order)], num_bytes=num_bytes, filename_template=template
    )


def _check_arrays(split: str, arrays: Mapping[str, np.ndarray], keys: list[str]) -> None:
    if sorted(arrays) != sorted(keys):
        raise ValueError(f"splits[{split!r}] has {sorted(arrays)}; expected {sorted(keys)}")
    images = arrays["image"]
    if images.dtype != np.uint8 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(
            f"splits[{split!r}]['image']: expected uint8 (n, 32, 32, 3), "
            f"got {images.dtype} {images.shape}"
        )
    for key in keys:
        if len(arrays[key]) != len(images):
            raise ValueError(
                f"splits[{split!r}][{key!r}] has {len(arrays[key])} rows; the images {len(images)}"
            )


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _publish(temporary: Path, final: Path) -> None:
    """Renames ``temporary`` to ``final`` unless another process prepared it."""
    try:
        os.rename(temporary, final)
    except OSError:
        if not (final / "dataset_info.json").exists():
            raise
