"""Tiny-ImageNet-200 as a TFDS dataset builder (array_record, no TensorFlow).

TFDS ships no Tiny-ImageNet builder, so this module defines one: ``TinyImagenet``
(TFDS name ``"tiny_imagenet"``). It reads the standard ``tiny-imagenet-200.zip``
(http://cs231n.stanford.edu/tiny-imagenet-200.zip) from the TFDS manual
directory without extracting it and writes the ``array_record`` file format,
which ``tfds.data_source`` reads with random access and without TensorFlow.

Splits:
  * ``train``: ``tiny-imagenet-200/train/<wnid>/images/*.JPEG`` (100,000 images
    in the full zip, 500 per class).
  * ``validation``: ``tiny-imagenet-200/val/images/*.JPEG`` labelled by
    ``val/val_annotations.txt`` (10,000 images, 50 per class).
The unlabelled ``test`` images are not used.

Features: ``image`` (64, 64, 3) uint8 (the original JPEG bytes are stored
unchanged; the few grayscale images decode to 3 identical channels), ``label``
(``ClassLabel`` over the 200 WordNet ids of ``wnids.txt`` in sorted order, the
order ``torchvision.datasets.ImageFolder`` uses too), ``id`` (the file name
without extension, e.g. ``n01443537_0`` or ``val_0``).

Prepare once from the command line::

    python -m train.datasets.tiny_imagenet --data_dir=$TFDS_DATA_DIR \\
        --manual_dir=/path/to/dir/containing/the/zip

or from Python with :func:`prepare_tiny_imagenet`. Alternatively put the zip in
``<data_dir>/downloads/manual/``: ``tfds.data_source("tiny_imagenet", ...)``
(and so the input pipeline) then prepares it on first use.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator

import tensorflow_datasets as tfds
from absl import app, flags
from PIL import Image

if __name__ == "__main__":
    # `python -m train.datasets.tiny_imagenet`: run the CLI of the importable
    # module. TFDS must register the builder under its package (it reads
    # metadata from there), and only once, so the class is not defined here.
    from train import cli
    from train.datasets import tiny_imagenet

    cli.run(tiny_imagenet.main, tiny_imagenet.define_flags)  # exits

ZIP_NAME = "tiny-imagenet-200.zip"
_ROOT = "tiny-imagenet-200"
IMAGE_SIZE = 64


class TinyImagenet(tfds.core.GeneratorBasedBuilder):
    """Tiny-ImageNet-200: 64x64 images of 200 ImageNet classes."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release (array_record, read from the zip)."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        f"Download {ZIP_NAME} from http://cs231n.stanford.edu/tiny-imagenet-200.zip "
        "and place it (unextracted) in the manual directory, by default "
        "<data_dir>/downloads/manual/, or pass another directory with "
        "`python -m train.datasets.tiny_imagenet --data_dir=... --manual_dir=...`."
    )

    def __init__(self, *, file_format=None, **kwargs):
        """Like the base builder, but defaults to the ``array_record`` format.

        ``array_record`` is the format that prepares and reads without
        TensorFlow (the TFDS default, ``tfrecord``, needs it).
        """
        super().__init__(file_format=file_format or "array_record", **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=(
                "Tiny-ImageNet-200 (Stanford CS231n): 200 ImageNet classes, "
                "64x64 RGB images, 500 training and 50 validation images per class."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(
                        shape=(IMAGE_SIZE, IMAGE_SIZE, 3), encoding_format="jpeg"
                    ),
                    "label": tfds.features.ClassLabel(num_classes=200),
                    "id": tfds.features.Text(),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="http://cs231n.stanford.edu/",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        zip_path = dl_manager.manual_dir / ZIP_NAME
        if not zip_path.exists():
            raise FileNotFoundError(f"{zip_path} not found. {self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
        with zipfile.ZipFile(os.fspath(zip_path)) as archive:
            wnids = _read_wnids(archive)
        self.info.features["label"].names = wnids
        return {
            "train": self._generate_examples(zip_path, "train"),
            "validation": self._generate_examples(zip_path, "validation"),
        }

    def _generate_examples(self, zip_path, split: str) -> Iterator[tuple[str, dict[str, object]]]:
        """Yields ``(id, example)`` for every image of ``split``."""
        with zipfile.ZipFile(os.fspath(zip_path)) as archive:
            if split == "train":
                labelled = _train_files(archive)
            else:
                labelled = _validation_files(archive)
            for member, wnid in labelled:
                image_bytes = archive.read(member)
                _check_image(member, image_bytes)
                example_id = os.path.splitext(os.path.basename(member))[0]
                yield (
                    example_id,
                    {
                        "image": image_bytes,
                        "label": wnid,
                        "id": example_id,
                    },
                )


def _read_wnids(archive: zipfile.ZipFile) -> list[str]:
    """The 200 WordNet ids of ``wnids.txt``, sorted."""
    text = archive.read(f"{_ROOT}/wnids.txt").decode("utf-8")
    return sorted(line.strip() for line in text.splitlines() if line.strip())


def _train_files(archive: zipfile.ZipFile) -> list[tuple[str, str]]:
    """``(member, wnid)`` for ``train/<wnid>/images/*.JPEG``."""
    files = []
    for member in archive.namelist():
        parts = member.split("/")
        if (
            len(parts) == 5
            and parts[1] == "train"
            and parts[3] == "images"
            and parts[4].endswith(".JPEG")
        ):
            files.append((member, parts[2]))
    return files


def _validation_files(archive: zipfile.ZipFile) -> list[tuple[str, str]]:
    """``(member, wnid)`` for ``val/images/*.JPEG`` from ``val_annotations.txt``."""
    text = archive.read(f"{_ROOT}/val/val_annotations.txt").decode("utf-8")
    files = []
    for line in text.splitlines():
        if line.strip():
            file_name, wnid = line.split("\t")[:2]
            files.append((f"{_ROOT}/val/images/{file_name}", wnid))
    return files


def _check_image(member: str, image_bytes: bytes) -> None:
    """Raises ValueError unless the image is a 64x64 RGB or grayscale image."""
    with Image.open(io.BytesIO(image_bytes)) as image:
        if image.size != (IMAGE_SIZE, IMAGE_SIZE) or image.mode not in ("RGB", "L"):
            raise ValueError(
                f"{member}: expected a {IMAGE_SIZE}x{IMAGE_SIZE} RGB or grayscale "
                f"image, got size {image.size} mode {image.mode}"
            )


def prepare_tiny_imagenet(data_dir: str | os.PathLike, manual_dir: str | os.PathLike):
    """Prepares Tiny-ImageNet into ``data_dir`` from the zip in ``manual_dir``.

    Args:
      data_dir: the TFDS data directory to write ``tiny_imagenet/1.0.0/`` into.
      manual_dir: the directory that contains ``tiny-imagenet-200.zip``.

    Returns:
      The prepared ``TinyImagenet`` builder. Preparing an already prepared
      dataset does nothing.
    """
    builder = TinyImagenet(data_dir=os.fspath(data_dir))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir))
    )
    return builder


def define_flags() -> None:
    flags.DEFINE_string(
        "data_dir",
        os.environ.get("TFDS_DATA_DIR"),
        "TFDS data directory to prepare into (default: $TFDS_DATA_DIR).",
    )
    flags.DEFINE_string("manual_dir", None, f"Directory containing {ZIP_NAME}.", required=True)


def main(argv: list[str]) -> None:
    """The command line (``define_flags``'s flags, run by :func:`train.cli.run`)."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not flags.FLAGS.data_dir:
        raise app.UsageError("--data_dir is required when TFDS_DATA_DIR is not set")
    builder = prepare_tiny_imagenet(flags.FLAGS.data_dir, flags.FLAGS.manual_dir)
    splits = {name: split.num_examples for name, split in builder.info.splits.items()}
    print(f"Prepared {builder.name} in {builder.data_dir}: {splits}")
