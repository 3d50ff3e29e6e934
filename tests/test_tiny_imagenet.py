"""Tests of the Tiny-ImageNet TFDS builder and its input pipeline.

The shared subset zip (../shared/data/manual/tiny_imagenet_subset relative to
the repository root: 20,000 train and 10,000 validation images of 200 classes)
is prepared once per test session into a temporary data directory (about 3 s).
The tests are skipped when the zip is absent.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from train import input_pipeline as ip
from train.datasets import tiny_imagenet

REPO = Path(__file__).resolve().parents[1]
MANUAL_DIR = REPO.parent / "shared" / "data" / "manual" / "tiny_imagenet_subset"
ZIP_PATH = MANUAL_DIR / tiny_imagenet.ZIP_NAME


@pytest.fixture(scope="module")
def archive():
    if not ZIP_PATH.is_file():
        pytest.skip(f"Tiny-ImageNet subset not found at {ZIP_PATH}")
    with zipfile.ZipFile(ZIP_PATH) as opened:
        yield opened


@pytest.fixture(scope="module")
def prepared(archive, tmp_path_factory) -> tuple[str, tfds.core.DatasetBuilder]:
    """(data_dir, builder) with the subset prepared into a temporary data_dir."""
    data_dir = tmp_path_factory.mktemp("tfds")
    start = time.perf_counter()
    builder = tiny_imagenet.prepare_tiny_imagenet(data_dir, MANUAL_DIR)
    print(f"Tiny-ImageNet subset prepared in {time.perf_counter() - start:.1f} s")
    return str(data_dir), builder


def _labels(data_dir: str, split: str) -> tuple[list[str], np.ndarray]:
    """(ids, labels) of a split, read without decoding the images."""
    source = tfds.data_source(
        "tiny_imagenet",
        split=split,
        data_dir=data_dir,
        decoders={"image": tfds.decode.SkipDecoding()},
    )
    examples = [source[i] for i in range(len(source))]
    ids = [e["id"].decode() if isinstance(e["id"], bytes) else e["id"] for e in examples]
    return ids, np.array([e["label"] for e in examples])


def test_builder_metadata(prepared, archive):
    _, builder = prepared
    assert builder.info.file_format.value == "array_record"
    assert {name: s.num_examples for name, s in builder.info.splits.items()} == {
        "train": 20_000,
        "validation": 10_000,
    }
    wnids = archive.read("tiny-imagenet-200/wnids.txt").decode().split()
    names = builder.info.features["label"].names
    assert len(names) == 200 and names == sorted(wnids)
    assert builder.info.features["image"].shape == (64, 64, 3)


def test_labels_follow_the_directories_and_annotations(prepared, archive):
    data_dir, builder = prepared
    names = builder.info.features["label"].names
    train_ids, train_labels = _labels(data_dir, "train")
    # 100 images per class in the subset; each labelled by its directory.
    assert Counter(train_labels.tolist()) == {label: 100 for label in range(200)}
    for example_id, label in zip(train_ids[:50], train_labels[:50]):
        assert example_id.split("_")[0] == names[label]
    val_ids, val_labels = _labels(data_dir, "validation")
    assert Counter(val_labels.tolist()) == {label: 50 for label in range(200)}
    annotations = archive.read("tiny-imagenet-200/val/val_annotations.txt").decode()
    expected = dict(line.split("\t")[:2] for line in annotations.splitlines() if line)
    assert {i: names[l] for i, l in zip(val_ids, val_labels)} == {
        os.path.splitext(f)[0]: wnid for f, wnid in expected.items()
    }


def test_images_decode_to_64x64_rgb_including_grayscale(prepared, archive):
    data_dir, _ = prepared
    ids, _ = _labels(data_dir, "validation")
    grayscale = next(
        name
        for name in archive.namelist()
        if name.startswith("tiny-imagenet-200/val/images/")
        and Image.open(io.BytesIO(archive.read(name))).mode == "L"
    )
    source = ip.load_source("tiny_imagenet", "validation", data_dir=data_dir)
    example = source[ids.index(os.path.splitext(os.path.basename(grayscale))[0])]
    image = example["image"]
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[..., 0], image[..., 1])
    original = np.asarray(Image.open(io.BytesIO(archive.read(grayscale))))
    np.testing.assert_array_equal(image[..., 0], original)


def test_train_and_eval_pipelines(prepared):
    data_dir, _ = prepared
    train = ip.create_train_iterator(
        "tiny_imagenet", data_dir=data_dir, global_batch_size=32, seed=0, mixup_alpha=0.2
    )
    batch = next(train)
    assert batch["image"].shape == (32, 64, 64, 3) and batch["image"].dtype == np.float32
    assert batch["label_onehot"].shape == (32, 200)
    np.testing.assert_allclose(batch["label_onehot"].sum(axis=1), 1, atol=1e-6)

    assert ip.num_examples("tiny_imagenet", data_dir=data_dir) == 10_000
    assert ip.num_eval_batches("tiny_imagenet", data_dir=data_dir, global_batch_size=500) == 20
    evaluation = ip.create_eval_iterator("tiny_imagenet", data_dir=data_dir, global_batch_size=500)
    first = next(evaluation)
    assert first["image"].shape == (500, 64, 64, 3)
    assert first["mask"].sum() == 500


def test_missing_zip_is_a_clear_error(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "other.txt").write_text("not the zip")
    with pytest.raises(FileNotFoundError, match="tiny-imagenet-200.zip"):
        tiny_imagenet.prepare_tiny_imagenet(tmp_path / "tfds", manual)


def test_command_line(prepared):
    data_dir, _ = prepared  # Already prepared: the command only reports it.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "train.datasets.tiny_imagenet",
            f"--data_dir={data_dir}",
            f"--manual_dir={MANUAL_DIR}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "'train': 20000, 'validation': 10000" in result.stdout
