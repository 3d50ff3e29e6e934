"""What the device run needs that its machine lacks, packed under 64 MiB.

The device machine (docs/gpu.md) has jax, flax, optax, orbax and absl but not
grain, tensorflow-datasets, ml_collections or array_record, cannot reach any
network, and receives at most 64 MiB with the working tree. The shared
CIFAR-10 is 140 MB of array_record files (PNG images), so:

``pack`` (here, once; needs the shared CIFAR-10 and the package registry)
writes the git-ignored folder ``.gpu_carry/``:

* ``cifar10.npz``: every train and test image as a JPEG at quality 75 (the
  shared copy was made from quality-75 JPEGs, so re-encoding at the same
  quality nearly reproduces its pixels: the measured mean absolute difference
  is printed, about 0.16 levels of 255), stored without the JPEG header that
  all of them share (about 300 bytes an image instead of 2,400); labels, ids
  and the class names.
* ``wheels/``: Python 3.12 x86-64 wheels of the missing packages.

``unpack DIR`` (on the device machine) rebuilds ``DIR/cifar10/3.0.2/`` from
those pixels with :func:`train.datasets.cifar_writer.write_dataset`, the
dataset that TFDS prepares, which ``tfds.data_source`` and the training
program read as they read the shared copy (the same ids, labels and order).

    python -m benchmarks.gpu_carry pack [--data_dir=../shared/data/tfds]
    python -m benchmarks.gpu_carry unpack /tmp/tfds
"""

from __future__ import annotations

import concurrent.futures
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from absl import app, flags

from train import cli

ROOT = Path(__file__).resolve().parents[1]
CARRY = ROOT / ".gpu_carry"
SPLITS = ("train", "test")
WHEELS = (
    "grain==0.2.18",
    "tensorflow-datasets==4.9.10",
    "array_record==0.8.6",
    "ml_collections==1.1.0",
    "dm-tree==0.1.10",
    "simple-parsing==0.1.9",
    "tensorflow-metadata==1.21.0",
    "termcolor==3.3.0",
    "toml==0.10.2",
    "immutabledict==4.3.1",
    "googleapis-common-protos==1.76.0",
    "importlib_resources",
    "docstring-parser",
    "portpicker",
    # Not on the device image: train/metrics.py writes TensorBoard files with it.
    "tensorboardX==2.6.5",
    # The image's protobuf version is unknown; tensorflow-metadata needs a recent one.
    "protobuf==7.36.2",
)
# Built here as a wheel: promise publishes only a source archive.
SOURCE_ONLY = ("promise==2.3",)
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)
QUALITY = 75
_SOS = b"\xff\xda"


def _jpeg(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=QUALITY)
    return buffer.getvalue()


def _split_header(data: bytes) -> tuple[bytes, bytes]:
    """(everything up to the start-of-scan segment's end, the rest)."""
    sos = data.index(_SOS)
    length = int.from_bytes(data[sos + 2 : sos + 4], "big")
    cut = sos + 2 + length
    return data[:cut], data[cut:]


def pack(data_dir: str) -> None:
    import tensorflow_datasets as tfds

    from train import input_pipeline

    exclude = ROOT / ".git" / "info" / "exclude"
    if exclude.parent.parent.is_dir() and "/.gpu_carry/" not in (
        exclude.read_text() if exclude.exists() else ""
    ):
        exclude.parent.mkdir(exist_ok=True)
        with open(exclude, "a") as f:
            f.write("/.gpu_carry/\n")  # Ignored: it travels only when carried.
    CARRY.mkdir(exist_ok=True)
    arrays, header = {}, None
    for split in SPLITS:
        source = input_pipeline.load_source("cifar10", split, data_dir=data_dir)
        images, labels = input_pipeline.load_arrays(
            "cifar10", split, 0, len(source), data_dir=data_dir
        )
        ids = np.array([source[i]["id"] for i in range(len(source))])
        with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
            encoded = list(pool.map(_jpeg, images, chunksize=500))
        bodies = []
        for data in encoded:
            head, body = _split_header(data)
            if header is None:
                header = head
            if head != header:
                raise RuntimeError("JPEG headers differ between images; cannot share one")
            bodies.append(body)
        decoded = np.stack([_decode(header, b) for b in bodies])
        error = np.abs(decoded.astype(np.int16) - images).mean()
        print(
            f"{split}: {len(bodies)} images, {sum(map(len, bodies)) / len(bodies):.0f} "
            f"bytes each, mean |pixel difference| to the shared copy {error:.3f}"
        )
        offsets = np.cumsum([0] + [len(b) for b in bodies]).astype(np.int64)
        arrays |= {
            f"{split}_bodies": np.frombuffer(b"".join(bodies), np.uint8),
            f"{split}_offsets": offsets,
            f"{split}_labels": labels,
            f"{split}_ids": ids.astype(str),
        }
    arrays["jpeg_header"] = np.frombuffer(header, np.uint8)
    builder = tfds.builder("cifar10", data_dir=data_dir, file_format="array_record")
    arrays["label_names"] = np.array(builder.info.features["label"].names)
    np.savez(CARRY / "cifar10.npz", **arrays)
    wheels = CARRY / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    wheels.mkdir()
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.12",
            "--implementation",
            "cp",
            *platforms,
            "-d",
            str(wheels),
            *WHEELS,
        ],
        check=True,
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), *SOURCE_ONLY],
        check=True,
    )
    total = sum(f.stat().st_size for f in CARRY.rglob("*") if f.is_file())
    print(f"{CARRY}: {total / 2**20:.1f} MiB (the working tree may carry 64 MiB in all)")


def _decode(header: bytes, body: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(header + body)))


def unpack(target: str) -> None:
    from train.datasets import cifar_writer

    data = np.load(CARRY / "cifar10.npz")
    header = data["jpeg_header"].tobytes()
    splits = {}
    with concurrent.futures.ThreadPoolExecutor() as pool:
        for split in SPLITS:
            bodies, offsets = data[f"{split}_bodies"].tobytes(), data[f"{split}_offsets"]
            jpegs = [bodies[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
            images = np.stack(list(pool.map(lambda body: _decode(header, body), jpegs)))
            # The archive's order: an id is "<split>_<index in the archive>".
            index = np.array([int(i.rsplit("_", 1)[1]) for i in data[f"{split}_ids"]])
            order = np.argsort(index)
            splits[split] = {"image": images[order], "label": data[f"{split}_labels"][order]}
    folder = cifar_writer.write_dataset(
        target, "cifar10", splits, {"label": data["label_names"].tolist()}
    )
    print(f"{folder}: " + ", ".join(f"{s} {len(a['label'])}" for s, a in splits.items()))


def define_flags() -> None:
    flags.DEFINE_string(
        "data_dir",
        os.environ.get("TFDS_DATA_DIR", str(ROOT.parent / "shared" / "data" / "tfds")),
        "pack: the TFDS data directory holding CIFAR-10 (default: $TFDS_DATA_DIR, "
        "else ../shared/data/tfds).",
    )


def main(argv: list[str]) -> None:
    """``pack`` or ``unpack DIR`` (see the module docstring)."""
    command = argv[1:]
    if command == ["pack"]:
        pack(flags.FLAGS.data_dir)
    elif len(command) == 2 and command[0] == "unpack":
        unpack(command[1])
    else:
        raise app.UsageError(
            f"expected 'pack' or 'unpack DIR', got {' '.join(command) or 'nothing'!r}"
        )


if __name__ == "__main__":
    cli.run(main, define_flags)
