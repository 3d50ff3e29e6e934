"""Preparing CIFAR without TensorFlow (train/datasets/cifar_archive.py,
cifar_writer.py): from a download (a local HTTP server serving a small archive
in the official format), from an archive put in place by hand, and failing in
seconds with the how-to when the host cannot be reached; the written dataset
reads back through ``load_source`` exactly as the shared TFDS copy does."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import io
import pickle
import socket
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.core import hashing
from train_utils import cifar10_dir, tiny_config

from train import train
from train.datasets import cifar_archive, cifar_writer, source

CIFAR10_NAMES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """Connections go straight to the local server, whatever the machine's proxy."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def _fake_split(count: int, seed: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random images (n, 32, 32, 3) and labels."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 32, 32, 3), np.uint8), rng.integers(0, classes, count)


def _batch(images: np.ndarray, labels: dict[str, np.ndarray]) -> dict:
    """A pickled batch's contents as in the official archive (bytes keys,
    rows of 3072 bytes: the red plane, then green, then blue)."""
    data = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    return {b"data": data, **{key.encode(): list(map(int, v)) for key, v in labels.items()}}


def _write_tar(path: Path, members: dict[str, dict]) -> str:
    """Writes the pickled ``members`` as a .tar.gz; returns its MD5."""
    with tarfile.open(path, "w:gz") as tar:
        for name, contents in members.items():
            data = pickle.dumps(contents, protocol=2)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def cifar10_archive(tmp_path) -> tuple[Path, dict, str]:
    """(a CIFAR-10 python-version archive of 5 x 4 training and 6 test
    images, the arrays in it by split, its MD5)."""
    archive = cifar_archive.ARCHIVES["cifar10"]
    splits = {
        "train": _fake_split(20, 0, 10),
        "test": _fake_split(6, 1, 10),
    }
    members = {archive.meta: {b"label_names": [n.encode() for n in CIFAR10_NAMES]}}
    train_images, train_labels = splits["train"]
    for i, member in enumerate(archive.splits["train"]):
        rows = slice(4 * i, 4 * i + 4)
        members[member] = _batch(train_images[rows], {"labels": train_labels[rows]})
    members[archive.splits["test"][0]] = _batch(splits["test"][0], {"labels": splits["test"][1]})
    served = tmp_path / "served"
    served.mkdir()
    path = served / archive.file_name
    return path, splits, _write_tar(path, members)


@pytest.fixture
def server(cifar10_archive):
    """The URL of the archive on a local HTTP server."""
    path = cifar10_archive[0]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=path.parent)
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/{path.name}"
    httpd.shutdown()
    httpd.server_close()


def _closed_port_url(name: str = "cifar10") -> str:
    """An address of ``name``'s archive where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{cifar_archive.ARCHIVES[name].file_name}"


def _point_at(monkeypatch, url: str, md5: str, name: str = "cifar10") -> None:
    """Downloads of ``name`` come from ``url`` and must have ``md5``."""
    archive = dataclasses.replace(cifar_archive.ARCHIVES[name], url=url, md5=md5)
    monkeypatch.setitem(cifar_archive.ARCHIVES, name, archive)


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _assert_reads_back(data_dir: Path, splits: dict, name: str = "cifar10") -> None:
    """Every split reads back through load_source: each example's image and
    label are those of its index in the archive (its id), in TFDS's order
    (by the MD5 of the index salted with the split name)."""
    for split, (images, labels) in splits.items():
        rows = source.load_source(name, split, data_dir=data_dir)
        ids = [int(r["id"].decode().removeprefix(f"{split}_")) for r in rows]
        assert ids == sorted(range(len(images)), key=hashing.Hasher(split).hash_key)
        for row, index in zip(rows, ids):
            np.testing.assert_array_equal(row["image"], images[index])
            assert row["label"] == labels[index]


def test_no_network_fails_in_seconds_with_the_how_to_and_leaves_nothing(monkeypatch, tmp_path):
    """The default run (download=true) on a machine that cannot reach the host."""
    _point_at(monkeypatch, _closed_port_url(), "0" * 32)
    data_dir, workdir = tmp_path / "data", tmp_path / "run"
    config = tiny_config(data_dir=str(data_dir))
    assert config.download
    start = time.perf_counter()
    with pytest.raises(source.DataError) as info:
        train.train_and_evaluate(config, str(workdir))
    assert time.perf_counter() - start < 10
    message = str(info.value)
    assert "\n" not in message and "cannot reach 127.0.0.1:" in message
    assert str(cifar_archive.archive_path(data_dir, "cifar10")) in message
    assert "--config.data_dir" in message
    assert not data_dir.exists() and not workdir.exists()


def test_probe_gives_up_on_a_hanging_name_lookup(monkeypatch):
    released = threading.Event()

    def hang(*args, **kwargs):
        released.wait(30)
        raise OSError("released by the test")  # the probe's thread ends cleanly

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.perf_counter()
    try:
        with pytest.raises(ConnectionError, match="no answer within 0.5 s"):
            cifar_archive.probe("https://example.invalid/x.tar.gz", 0.5)
        assert time.perf_counter() - start < 2
    finally:
        released.set()


def test_probe_goes_to_the_proxy_if_one_is_set(monkeypatch):
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert cifar_archive.first_hop(url) == ("www.cs.toronto.edu", 443)
    proxy = _closed_port_url()
    monkeypatch.setenv("https_proxy", proxy)
    port = int(proxy.split(":")[2].split("/")[0])
    assert cifar_archive.first_hop(url) == ("127.0.0.1", port)
    with pytest.raises(ConnectionError, match=f"cannot reach 127.0.0.1:{port}"):
        cifar_archive.probe(url, 5.0)
    monkeypatch.setenv("no_proxy", "cs.toronto.edu")
    assert cifar_archive.first_hop(url) == ("www.cs.toronto.edu", 443)


def test_prepares_from_a_download(monkeypatch, tmp_path, cifar10_archive, server):
    _, splits, md5 = cifar10_archive
    _point_at(monkeypatch, server, md5)
    data_dir = tmp_path / "data"
    assert source.num_examples("cifar10", "train", data_dir=data_dir) == 20
    _assert_reads_back(data_dir, splits)
    builder = tfds.builder("cifar10", data_dir=str(data_dir), file_format="array_record")
    assert builder.info.features["label"].names == CIFAR10_NAMES  # the archive's meta
    assert _files(data_dir) == [
        "cifar10/3.0.2/cifar10-test.array_record-00000-of-00001",
        "cifar10/3.0.2/cifar10-train.array_record-00000-of-00001",
        "cifar10/3.0.2/dataset_info.json",
        "cifar10/3.0.2/features.json",
        "cifar10/3.0.2/label.labels.txt",
        "downloads/manual/cifar-10-python.tar.gz",
    ]


def test_prepares_from_an_archive_put_in_place_without_network(
    monkeypatch, tmp_path, cifar10_archive
):
    path, splits, md5 = cifar10_archive
    _point_at(monkeypatch, _closed_port_url(), md5)
    data_dir = tmp_path / "data"
    manual = cifar_archive.archive_path(data_dir, "cifar10")
    manual.parent.mkdir(parents=True)
    manual.write_bytes(path.read_bytes())
    _assert_reads_back(data_dir, splits)


@pytest.mark.parametrize("fault", ["damaged archive", "wrong download", "missing file"])
def test_a_bad_archive_is_one_line_and_leaves_nothing(
    fault, monkeypatch, tmp_path, cifar10_archive, server
):
    path, _, md5 = cifar10_archive
    data_dir = tmp_path / "data"
    if fault == "damaged archive":
        manual = cifar_archive.archive_path(data_dir, "cifar10")
        manual.parent.mkdir(parents=True)
        manual.write_bytes(path.read_bytes()[:-10])
        _point_at(monkeypatch, server, md5)
        left = ["downloads/manual/cifar-10-python.tar.gz"]
    else:
        url = server if fault == "wrong download" else server + ".missing"
        _point_at(monkeypatch, url, "0" * 32 if fault == "wrong download" else md5)
        left = []
    with pytest.raises(source.DataError) as info:
        source.load_source("cifar10", "test", data_dir=data_dir)
    message = str(info.value)
    expected = {
        "damaged archive": "delete it to download it again",
        "wrong download": "has MD5",
        "missing file": "HTTP Error 404",
    }[fault]
    assert "\n" not in message and expected in message and str(data_dir) in message
    assert _files(data_dir) == left


def test_cifar100_has_fine_and_coarse_labels(monkeypatch, tmp_path):
    archive = cifar_archive.ARCHIVES["cifar100"]
    splits = {"train": _fake_split(7, 2, 100), "test": _fake_split(3, 3, 100)}
    coarse = {split: labels // 5 for split, (_, labels) in splits.items()}
    fine_names = [f"fine_{i}" for i in range(100)]
    coarse_names = [f"coarse_{i}" for i in range(20)]
    members = {
        archive.meta: {
            b"fine_label_names": [n.encode() for n in fine_names],
            b"coarse_label_names": [n.encode() for n in coarse_names],
        }
    }
    for split, (images, labels) in splits.items():
        members[archive.splits[split][0]] = _batch(
            images, {"fine_labels": labels, "coarse_labels": coarse[split]}
        )
    data_dir = tmp_path / "data"
    path = cifar_archive.archive_path(data_dir, "cifar100")
    path.parent.mkdir(parents=True)
    _point_at(monkeypatch, _closed_port_url("cifar100"), _write_tar(path, members), "cifar100")
    features = source.prepare("cifar100", str(data_dir)).info.features
    assert features["label"].names == fine_names
    assert features["coarse_label"].names == coarse_names
    _assert_reads_back(data_dir, splits, "cifar100")
    for split in splits:
        rows = source.load_source("cifar100", split, data_dir=data_dir, download=False)
        for row in rows:
            assert row["coarse_label"] == coarse[split][int(row["id"].decode().split("_")[1])]


def test_tiny_imagenet_without_its_zip_says_where_to_put_it(tmp_path):
    data_dir = tmp_path / "data"
    with pytest.raises(source.DataError) as info:
        source.load_source("tiny_imagenet", "train", data_dir=data_dir)
    message = str(info.value)
    assert "\n" not in message
    assert f"put tiny-imagenet-200.zip in {cifar_archive.manual_dir(data_dir)}" in message
    assert not data_dir.exists()


def test_not_prepared_without_download_says_how(tmp_path):
    data_dir = tmp_path / "data"
    with pytest.raises(source.DataError) as info:
        source.load_source("cifar10", "test", data_dir=data_dir, download=False)
    message = str(info.value)
    assert "\n" not in message and "--config.download=true" in message
    assert str(cifar_archive.archive_path(data_dir, "cifar10")) in message
    assert not data_dir.exists()


@pytest.mark.parametrize("split", ["train", "test"])
def test_written_dataset_reads_back_as_the_shared_copy(split, tmp_path):
    """The shared copy's own pixels of the first 500 examples of the archive
    (``<split>_00000`` ...), written here, read back as the shared copy holds
    them (ids, labels, pixels, relative order) and with its metadata files:
    the pipeline cannot tell the two apart. (Both whole splits were checked
    so once; they take about a minute.)"""
    count = 500
    shared = source.load_source("cifar10", split, data_dir=cifar10_dir(), download=False)
    hasher = hashing.Hasher(split)
    ranks = np.argsort(np.argsort([hasher.hash_key(i) for i in range(len(shared))]))
    positions = sorted(ranks[:count])  # where TFDS put the archive's first rows
    rows = shared.__getitems__([int(p) for p in positions])
    index = [int(r["id"].decode().removeprefix(f"{split}_")) for r in rows]
    assert sorted(index) == list(range(count))
    order = np.argsort(index)
    arrays = {
        "image": np.stack([rows[i]["image"] for i in order]),
        "label": np.array([rows[i]["label"] for i in order]),
    }
    folder = cifar_writer.write_dataset(
        tmp_path, "cifar10", {split: arrays}, {"label": CIFAR10_NAMES}
    )
    ours = source.load_source("cifar10", split, data_dir=tmp_path, download=False)
    assert len(ours) == count
    for mine, theirs in zip(ours.__getitems__(list(range(count))), rows):
        assert mine["id"] == theirs["id"] and mine["label"] == theirs["label"]
        np.testing.assert_array_equal(mine["image"], theirs["image"])
    shared_folder = Path(cifar10_dir()) / "cifar10" / "3.0.2"
    for name in ("features.json", "label.labels.txt"):
        assert (folder / name).read_bytes() == (shared_folder / name).read_bytes()


def test_device_carry_unpacks_through_the_writer(monkeypatch, tmp_path):
    """benchmarks/gpu_carry.py's unpack: JPEG bodies stored in the shared
    copy's order come back in that order, with their ids and labels."""
    from benchmarks import gpu_carry

    images, labels = _fake_split(5, 4, 10)
    ids = np.array(["test_00003", "test_00000", "test_00004", "test_00001", "test_00002"])
    jpegs = [gpu_carry._split_header(gpu_carry._jpeg(images[int(i[-1])])) for i in ids]
    bodies = [body for _, body in jpegs]
    arrays = {
        "jpeg_header": np.frombuffer(jpegs[0][0], np.uint8),
        "label_names": np.array(CIFAR10_NAMES),
    }
    for split in gpu_carry.SPLITS:
        arrays |= {
            f"{split}_bodies": np.frombuffer(b"".join(bodies), np.uint8),
            f"{split}_offsets": np.cumsum([0] + [len(b) for b in bodies]),
            f"{split}_labels": labels[[int(i[-1]) for i in ids]],
            f"{split}_ids": np.char.replace(ids, "test", split),
        }
    np.savez(tmp_path / "cifar10.npz", **arrays)
    monkeypatch.setattr(gpu_carry, "CARRY", tmp_path)
    gpu_carry.unpack(str(tmp_path / "tfds"))
    decoded = {int(i[-1]): gpu_carry._decode(jpegs[0][0], b) for i, b in zip(ids, bodies)}
    for split in gpu_carry.SPLITS:
        rows = source.load_source("cifar10", split, data_dir=tmp_path / "tfds", download=False)
        assert len(rows) == 5
        for row in rows:
            index = int(row["id"].decode()[-1])
            assert row["label"] == labels[index]
            np.testing.assert_array_equal(row["image"], decoded[index])
