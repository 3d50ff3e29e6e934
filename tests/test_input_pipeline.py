"""Tests of train/input_pipeline.py on the shared real CIFAR-10 and mocked CIFAR-100.

The CIFAR-10 tests read ../shared/data/tfds (relative to the repository root)
and are skipped when it is absent. Tests that need many epochs or hosts use a
large ``process_count``: each simulated host then reads a small slice.
"""

from __future__ import annotations

import json
from pathlib import Path

import grain
import numpy as np
import pytest

from train import batch_transforms
from train import input_pipeline as ip
from train.datasets import source as dataset_source

SHARED_TFDS = Path(__file__).resolve().parents[2] / "shared" / "data" / "tfds"
CIFAR10 = ip.get_dataset_info("cifar10")


@pytest.fixture(scope="module")
def data_dir() -> str:
    if not (SHARED_TFDS / "cifar10").is_dir():
        pytest.skip(f"shared CIFAR-10 not found at {SHARED_TFDS / 'cifar10'}")
    return str(SHARED_TFDS)


@pytest.fixture(scope="module")
def test_images(data_dir) -> np.ndarray:
    """All 10,000 raw CIFAR-10 test images (uint8), in split order."""
    source = ip.load_source("cifar10", "test", data_dir=data_dir)
    return np.stack([source[i]["image"] for i in range(len(source))])


def _assert_normalised_equal(actual: np.ndarray, raw_images: np.ndarray) -> None:
    """``actual`` == ``(raw_images / 255 - mean) / std`` (CIFAR-10 constants)."""
    mean = np.array(CIFAR10.mean, np.float32)
    std = np.array(CIFAR10.std, np.float32)
    expected = (raw_images.astype(np.float32) / 255 - mean) / std
    assert actual.shape == expected.shape
    assert np.abs(actual - expected).max() < 1e-5


def _take(iterator, count: int) -> list[dict]:
    return [next(iterator) for _ in range(count)]


def _assert_batches_equal(first: list[dict], second: list[dict]) -> None:
    assert len(first) == len(second)
    for a, b in zip(first, second):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# --- Dataset info, data_dir resolution and argument checks -------------------


def test_dataset_info():
    names = ("cifar10", "cifar100", "tiny_imagenet")
    assert [ip.get_dataset_info(n).num_classes for n in names] == [10, 100, 200]
    assert ip.get_dataset_info("tiny_imagenet").image_size == 64
    assert ip.get_dataset_info("tiny_imagenet").crop_padding == 8
    assert ip.get_dataset_info("tiny_imagenet").eval_split == "validation"
    assert CIFAR10.image_size == 32 and CIFAR10.crop_padding == 4
    with pytest.raises(ValueError, match="name='mnist'"):
        ip.get_dataset_info("mnist")


def test_missing_data_dir_is_a_clear_error(monkeypatch):
    monkeypatch.delenv(ip.DATA_DIR_ENV, raising=False)
    with pytest.raises(ValueError, match="TFDS_DATA_DIR"):
        ip.create_train_iterator("cifar10", global_batch_size=8, seed=0)
    with pytest.raises(ValueError, match="data_dir"):
        ip.create_eval_iterator("cifar10", global_batch_size=8)


def test_data_dir_from_environment(monkeypatch, data_dir):
    monkeypatch.setenv(ip.DATA_DIR_ENV, data_dir)
    assert ip.num_examples("cifar10", "train") == 50_000
    assert ip.num_examples("cifar10") == 10_000  # The eval split.


def test_unprepared_dataset_without_download_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not prepared"):
        ip.create_train_iterator(
            "cifar10", data_dir=tmp_path, global_batch_size=8, seed=0, download=False
        )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"global_batch_size": 0}, "global_batch_size"),
        ({"global_batch_size": 10, "process_count": 4}, "global_batch_size"),
        ({"global_batch_size": 8, "process_index": 2, "process_count": 2}, "process_index"),
        ({"global_batch_size": 8, "seed": -1}, "seed"),
        ({"global_batch_size": 8, "mixup_alpha": -0.1}, "mixup_alpha"),
        ({"global_batch_size": 8, "num_epochs": 0}, "num_epochs"),
        ({"global_batch_size": 8, "worker_count": -1}, "worker_count"),
        ({"global_batch_size": 60_000, "process_count": 100}, "too large"),
    ],
)
def test_bad_arguments(data_dir, kwargs, match):
    kwargs = {"seed": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        ip.create_train_iterator("cifar10", data_dir=data_dir, **kwargs)


# --- Training pipeline --------------------------------------------------------


def test_train_batches_shapes_dtypes_and_ranges(data_dir):
    iterator = ip.create_train_iterator("cifar10", data_dir=data_dir, global_batch_size=64, seed=0)
    for batch in _take(iterator, 3):
        assert set(batch) == {"image", "label", "label_onehot"}
        assert batch["image"].shape == (64, 32, 32, 3) and batch["image"].dtype == np.float32
        assert batch["label"].shape == (64,) and batch["label"].dtype == np.int32
        assert batch["label_onehot"].shape == (64, 10)
        assert batch["label_onehot"].dtype == np.float32
        low = (0 - np.array(CIFAR10.mean)) / np.array(CIFAR10.std)
        high = (1 - np.array(CIFAR10.mean)) / np.array(CIFAR10.std)
        assert np.all(batch["image"] >= low - 1e-5) and np.all(batch["image"] <= high + 1e-5)
        assert np.all((batch["label"] >= 0) & (batch["label"] < 10))
        np.testing.assert_array_equal(batch["label_onehot"], np.eye(10)[batch["label"]])
        _assert_matches_spec(batch, ip.train_batch_spec("cifar10", 64))


def _assert_matches_spec(batch: dict, spec: dict) -> None:
    """A batch has exactly the arrays its spec announces (the steps are compiled
    from the spec before the first batch exists)."""
    assert {k: (v.shape, np.dtype(v.dtype)) for k, v in batch.items()} == {
        k: (s.shape, np.dtype(s.dtype)) for k, s in spec.items()
    }


def test_train_is_deterministic_given_the_seed(data_dir):
    def batches(seed):
        iterator = ip.create_train_iterator(
            "cifar10", data_dir=data_dir, global_batch_size=32, seed=seed, mixup_alpha=0.5
        )
        return _take(iterator, 3)

    first = batches(seed=7)
    _assert_batches_equal(first, batches(seed=7))
    other = batches(seed=8)
    assert not np.array_equal(first[0]["label"], other[0]["label"])
    assert not np.array_equal(first[0]["image"], other[0]["image"])


def test_epochs_are_reshuffled_and_finite(data_dir):
    # process_count=500: this host's slice holds 100 examples, 10 batches of 10.
    iterator = ip.create_train_iterator(
        "cifar10",
        data_dir=data_dir,
        global_batch_size=5000,
        seed=0,
        num_epochs=2,
        process_index=3,
        process_count=500,
    )
    batches = list(iterator)
    assert len(batches) == 20
    epochs = [np.concatenate([b["label"] for b in batches[i : i + 10]]) for i in (0, 10)]
    source = ip.load_source("cifar10", "train", data_dir=data_dir)
    slice_labels = sorted(source[i]["label"] for i in range(300, 400))
    for labels in epochs:
        assert sorted(labels) == slice_labels
    assert not np.array_equal(epochs[0], epochs[1])


def _crops_and_flips(images: np.ndarray, pad: int) -> np.ndarray:
    """All (2 * (2 * pad + 1) ** 2) crop/flip variants: (N, variants, H, W, C)."""
    n, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    variants = [
        padded[:, top : top + h, left : left + w][:, :, :: -1 if flip else 1]
        for flip in (False, True)
        for top in range(2 * pad + 1)
        for left in range(2 * pad + 1)
    ]
    return np.stack(variants, axis=1)


def _one_epoch_as_crops(data_dir, crop_padding, pad):
    """One epoch of a 100-example host slice, each training image matched to
    a crop/flip (``pad`` pixels) of a raw image of the slice with the same
    label: returns (matched originals, flipped count, unshifted count)."""
    process_index, per_host = 3, 100
    iterator = ip.create_train_iterator(
        "cifar10",
        data_dir=data_dir,
        global_batch_size=5000,
        seed=1,
        num_epochs=1,
        process_index=process_index,
        process_count=500,
        crop_padding=crop_padding,
    )
    batches = list(iterator)
    train_images = np.concatenate([b["image"] for b in batches])
    train_labels = np.concatenate([b["label"] for b in batches])
    assert len(train_images) == per_host
    raw = (train_images * np.array(CIFAR10.std) + np.array(CIFAR10.mean)) * 255
    np.testing.assert_allclose(raw, np.round(raw), atol=1e-3)
    raw = np.round(raw).astype(np.uint8)

    source = ip.load_source("cifar10", "train", data_dir=data_dir)
    start = process_index * per_host
    originals = [source[i] for i in range(start, start + per_host)]
    original_images = np.stack([o["image"] for o in originals])
    original_labels = np.array([o["label"] for o in originals])
    variants = _crops_and_flips(original_images, pad)  # (100, 2 * (2 pad + 1)^2, 32, 32, 3)
    half = variants.shape[1] // 2

    matched, flips, unshifted = set(), 0, 0
    for image, label in zip(raw, train_labels):
        equal = np.all(variants == image, axis=(2, 3, 4))
        candidates = np.argwhere(equal & (original_labels == label)[:, None])
        assert len(candidates), f"a training image is no crop/flip (pad {pad}) of the slice"
        original, variant = candidates[0]
        matched.add(original)
        flips += variant >= half
        unshifted += variant % half == half // 2  # top == left == pad
    assert len(matched) == per_host  # Each example exactly once per epoch.
    return matched, flips, unshifted


def test_train_images_are_shifted_and_flipped_crops_of_this_hosts_slice(data_dir):
    _, flips, unshifted = _one_epoch_as_crops(data_dir, None, pad=4)  # CIFAR's 4 pixels
    assert 25 <= flips <= 75  # Binomial(100, 1/2): mean 50, std 5.
    assert unshifted <= 10  # Expected 100 / 81.


@pytest.mark.parametrize("crop_padding", [0, 2])
def test_crop_padding_sets_the_largest_shift(data_dir, crop_padding):
    # config.crop_padding (quick uses 2; 0 is flips only): every image is a
    # crop of at most that shift, and with 2 most images are shifted.
    _, flips, unshifted = _one_epoch_as_crops(data_dir, crop_padding, pad=crop_padding)
    assert 25 <= flips <= 75
    if crop_padding == 0:
        assert unshifted == 100
    else:
        assert unshifted <= 15  # Expected 100 / 25.
    with pytest.raises(ValueError, match="crop_padding must be >= 0, got -2"):
        ip.create_train_iterator(
            "cifar10", data_dir=data_dir, global_batch_size=8, seed=0, crop_padding=-2
        )


def test_random_crop_flip_statistics():
    # Pixel (y, x) of image i holds (y, x, i): crops and flips are readable.
    n, size, pad = 2000, 32, 4
    ys, xs = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    images = np.zeros((n, size, size, 3), np.uint8)
    images[..., 0] = ys + 1
    images[..., 1] = xs + 1
    out = batch_transforms.random_crop_flip(images, pad, np.random.default_rng(0))
    assert out.shape == images.shape and out.dtype == np.uint8
    # The center pixel holds original coordinates + 1 (0 would be padding).
    center = out[:, size // 2, size // 2 - 1 : size // 2 + 1].astype(int)
    flipped = center[:, 1, 1] < center[:, 0, 1]
    dy = center[:, 0, 0] - 1 - size // 2
    # Flipped or not, the smaller x of the two pixels is original column 16 + dx.
    dx = center[:, :, 1].min(axis=1) - size // 2
    assert abs(flipped.mean() - 0.5) < 0.05
    for shift in (dy, dx):
        counts = np.bincount(shift + pad, minlength=2 * pad + 1)
        assert len(counts) == 2 * pad + 1  # All shifts within [-pad, pad]...
        assert np.all(np.abs(counts / n - 1 / 9) < 0.04)  # ...about uniform.
    # Padding shows up as zeros exactly where the crop leaves the image.
    zero_rows = np.all(out[..., 0] == 0, axis=2).sum(axis=1)
    np.testing.assert_array_equal(zero_rows, np.abs(dy))


def test_mixup_gives_soft_labels_and_mixes_images(data_dir):
    def first_batch(alpha):
        iterator = ip.create_train_iterator(
            "cifar10", data_dir=data_dir, global_batch_size=64, seed=3, mixup_alpha=alpha
        )
        return next(iterator)

    plain, mixed = first_batch(0.0), first_batch(0.4)
    np.testing.assert_array_equal(plain["label"], mixed["label"])
    soft = mixed["label_onehot"]
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, atol=1e-6)
    assert np.all((soft >= 0) & (soft <= 1))
    assert np.all((soft > 0).sum(axis=1) <= 2)
    two_classes = (soft > 0).sum(axis=1) == 2
    assert two_classes.any()
    # lam (the weight of the row's own label) is shared by the whole batch.
    lam = soft[np.arange(64), mixed["label"]][two_classes]
    np.testing.assert_allclose(lam, lam[0], atol=1e-6)
    lam = lam[0]
    # Each mixed image is lam * its own image + (1 - lam) * another batch image.
    for i in np.flatnonzero(two_classes):
        partner = (mixed["image"][i] - lam * plain["image"][i]) / (1 - lam)
        error = np.abs(plain["image"] - partner).max(axis=(1, 2, 3))
        j = int(np.argmin(error))
        assert error[j] < 1e-3 * max(1.0, 1 / (1 - lam))
        np.testing.assert_allclose(soft[i, plain["label"][j]], 1 - lam, atol=1e-6)


def test_iterator_state_restores_the_exact_next_batch(data_dir, tmp_path):
    def make():
        return ip.create_train_iterator(
            "cifar10", data_dir=data_dir, global_batch_size=32, seed=5, mixup_alpha=0.2
        )

    iterator = make()
    _take(iterator, 3)
    state = json.loads(json.dumps(iterator.get_state()))  # JSON-serialisable.
    expected = _take(iterator, 2)

    restored = make()
    restored.set_state(state)
    _assert_batches_equal(_take(restored, 2), expected)

    # The orbax handler grain provides for checkpoints (one file per process).
    handler = grain.checkpoint.CheckpointHandler()
    checkpointed = make()
    _take(checkpointed, 3)
    handler.save(tmp_path, args=grain.checkpoint.CheckpointSave(checkpointed))
    fresh = handler.restore(tmp_path, args=grain.checkpoint.CheckpointRestore(make()))
    _assert_batches_equal(_take(fresh, 2), expected)


def test_in_memory_gives_the_same_batches_and_states(data_dir):
    """Decoding the host's slice once (host 3 of 50: rows 3,000-3,999, so the
    slice offset matters) yields the lazy source's batches, and the iterator
    states carry over both ways (a run may switch on resume)."""

    def make(in_memory):
        return ip.create_train_iterator(
            "cifar10",
            data_dir=data_dir,
            global_batch_size=50 * 20,
            seed=3,
            mixup_alpha=0.2,
            process_index=3,
            process_count=50,
            in_memory=in_memory,
        )

    lazy, decoded = make(False), make(True)
    # 1,000 rows, 50 per batch: batch 20 is the first of the second epoch.
    first = _take(lazy, 22)
    _assert_batches_equal(_take(decoded, 22), first)
    state = json.loads(json.dumps(lazy.get_state()))
    expected = _take(lazy, 2)
    resumed = make(True)
    resumed.set_state(state)
    _assert_batches_equal(_take(resumed, 2), expected)
    back = make(False)
    back.set_state(json.loads(json.dumps(decoded.get_state())))
    _assert_batches_equal(_take(back, 2), expected)


def test_load_arrays_rejects_rows_outside_the_split(data_dir):
    with pytest.raises(ValueError, match=r"rows \[49990, 50010\) outside the split of 50000"):
        ip.load_arrays("cifar10", "train", 49990, 50010, data_dir=data_dir)


def test_hosts_read_disjoint_slices_that_cover_the_data(monkeypatch, tmp_path):
    # A synthetic 100-class source whose label is the example's index.
    examples = [{"image": np.full((32, 32, 3), i, np.uint8), "label": i} for i in range(100)]
    for module in (ip, dataset_source):  # (the iterators; num_examples)
        monkeypatch.setattr(module, "load_source", lambda *args, **kwargs: examples)

    train_labels, eval_labels, eval_batches = [], [], []
    for index in range(3):
        train = ip.create_train_iterator(
            "cifar100",
            data_dir=tmp_path,
            global_batch_size=9,
            seed=0,
            num_epochs=1,
            process_index=index,
            process_count=3,
        )
        train_labels.append({int(label) for batch in train for label in batch["label"]})
        evaluation = list(
            ip.create_eval_iterator(
                "cifar100",
                data_dir=tmp_path,
                global_batch_size=12,
                process_index=index,
                process_count=3,
            )
        )
        eval_batches.append(len(evaluation))
        eval_labels.append([int(l) for b in evaluation for l, m in zip(b["label"], b["mask"]) if m])
    # Training: 33 examples per host, the 100th is left over.
    assert [len(labels) for labels in train_labels] == [33, 33, 33]
    assert set.union(*train_labels) == set(range(99))
    # Evaluation: ceil(100 / 12) = 9 batches of 4 on every host; all 100 once.
    assert eval_batches == [9, 9, 9]
    assert ip.num_eval_batches("cifar100", global_batch_size=12, data_dir=tmp_path) == 9
    assert sorted(sum(eval_labels, [])) == list(range(100))
    # With the last 20 held out for validation: 80 // 3 = 26 per host, disjoint,
    # none of the held-out examples.
    seen = []
    for index in range(3):
        train = ip.create_train_iterator(
            "cifar100",
            data_dir=tmp_path,
            global_batch_size=3,
            seed=0,
            num_epochs=1,
            process_index=index,
            process_count=3,
            validation_examples=20,
        )
        seen += [int(label) for batch in train for label in batch["label"]]
    assert len(seen) == len(set(seen)) == 78 and max(seen) < 80


# --- Evaluation pipeline ------------------------------------------------------


def test_eval_covers_the_test_split_once_unaugmented(data_dir, test_images):
    assert ip.num_eval_batches("cifar10", data_dir=data_dir, global_batch_size=768) == 14
    iterator = ip.create_eval_iterator("cifar10", data_dir=data_dir, global_batch_size=768)
    batches = list(iterator)
    assert len(batches) == 14
    for batch in batches:
        assert set(batch) == {"image", "label", "mask"}
        assert batch["image"].shape == (768, 32, 32, 3) and batch["image"].dtype == np.float32
        assert batch["label"].dtype == np.int32 and batch["mask"].dtype == np.float32
        _assert_matches_spec(batch, ip.eval_batch_spec("cifar10", 768))
    mask = np.concatenate([b["mask"] for b in batches])
    images = np.concatenate([b["image"] for b in batches])
    assert mask.sum() == 10_000
    np.testing.assert_array_equal(mask, np.arange(14 * 768) < 10_000)
    _assert_normalised_equal(images[:10_000], test_images)
    assert np.all(images[10_000:] == 0)
    # The normalisation constants fit the data: about zero mean, unit std.
    np.testing.assert_allclose(images[:10_000].mean(axis=(0, 1, 2)), 0, atol=0.05)
    np.testing.assert_allclose(images[:10_000].std(axis=(0, 1, 2)), 1, atol=0.05)


def test_eval_sharded_over_hosts(data_dir, test_images):
    # Three hosts, local batches of 1000: each host yields ceil(10000 / 3000) = 4
    # batches; concatenating the real examples of hosts 0, 1, 2 gives the split.
    real = []
    for index in range(3):
        batches = list(
            ip.create_eval_iterator(
                "cifar10",
                data_dir=data_dir,
                global_batch_size=3000,
                process_index=index,
                process_count=3,
            )
        )
        assert len(batches) == 4
        for batch in batches:
            real.append(batch["image"][batch["mask"] == 1])
    _assert_normalised_equal(np.concatenate(real), test_images)


# --- CIFAR-100: a small copy written by our own writer (no real copy here) ---


def test_cifar100_through_the_pipeline(tmp_path):
    """A small CIFAR-100 written as a prepared TFDS dataset: 100-class one-hot
    labels with mixup, every test example once."""
    from train.datasets import cifar_writer

    rng = np.random.default_rng(0)

    def split(n):
        return {
            "image": rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
            "label": rng.integers(0, 100, n),
            "coarse_label": rng.integers(0, 20, n),
        }

    names = {"label": [f"c{i}" for i in range(100)], "coarse_label": [f"s{i}" for i in range(20)]}
    cifar_writer.write_dataset(tmp_path, "cifar100", {"train": split(64), "test": split(50)}, names)
    train = ip.create_train_iterator(
        "cifar100", data_dir=tmp_path, global_batch_size=16, seed=0, mixup_alpha=1.0, download=False
    )
    batch = next(train)
    assert batch["image"].shape == (16, 32, 32, 3)
    assert batch["label_onehot"].shape == (16, 100)
    np.testing.assert_allclose(batch["label_onehot"].sum(axis=1), 1, atol=1e-6)
    evaluation = list(
        ip.create_eval_iterator("cifar100", data_dir=tmp_path, global_batch_size=16, download=False)
    )
    assert len(evaluation) == 4
    assert sum(b["mask"].sum() for b in evaluation) == 50
    assert all(b["label"].max() < 100 for b in evaluation)
