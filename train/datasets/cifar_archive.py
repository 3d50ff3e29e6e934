"""CIFAR-10 and CIFAR-100 prepared from the official python-version archives,
without TensorFlow.

:func:`prepare` reads the archive at :func:`archive_path`
(``<data_dir>/downloads/manual/cifar-10-python.tar.gz``, or
``cifar-100-python.tar.gz``) and writes the dataset that TFDS would prepare
(:mod:`train.datasets.cifar_writer`). If the archive is not there, it is
downloaded there first from its URL in :data:`ARCHIVES`, after a probe of the
host that fails within :data:`PROBE_TIMEOUT_S` seconds, name lookup included.
A downloaded or hand-placed archive must have the published MD5 (checked
before anything in it is unpickled). Network faults raise ``ConnectionError``,
a wrong archive :class:`ArchiveError`, both one line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import os
import pickle
import socket
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from train.datasets import cifar_writer

PROBE_TIMEOUT_S = 5.0
# Per read of the download (a stalled connection fails after this long).
READ_TIMEOUT_S = 60.0
_CHUNK = 1 << 20


class ArchiveError(ValueError):
    """The archive is not the published one (another MD5, a member missing)."""


@dataclasses.dataclass(frozen=True)
class Archive:
    """A CIFAR python-version archive.

    Attributes:
      url: where to download it; its last part is the file name.
      md5: the published MD5 of the file.
      splits: split name -> the members (pickled batches) of the split, in order.
      meta: the member that holds the class names.
      labels: label feature -> (the key of the labels in a batch, the key of
        their class names in ``meta``).
    """

    url: str
    md5: str
    splits: Mapping[str, tuple[str, ...]]
    meta: str
    labels: Mapping[str, tuple[str, str]]

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


_KRIZ = "https://www.cs.toronto.edu/~kriz"
ARCHIVES = {
    "cifar10": Archive(
        url=f"{_KRIZ}/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        splits={
            "train": tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)),
            "test": ("cifar-10-batches-py/test_batch",),
        },
        meta="cifar-10-batches-py/batches.meta",
        labels={"label": ("labels", "label_names")},
    ),
    "cifar100": Archive(
        url=f"{_KRIZ}/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
        splits={"train": ("cifar-100-python/train",), "test": ("cifar-100-python/test",)},
        meta="cifar-100-python/meta",
        labels={
            "label": ("fine_labels", "fine_label_names"),
            "coarse_label": ("coarse_labels", "coarse_label_names"),
        },
    ),
}


def manual_dir(data_dir: str | os.PathLike) -> Path:
    """TFDS's folder of archives put in place by hand (``manual_dir``)."""
    return Path(data_dir) / "downloads" / "manual"


def archive_path(data_dir: str | os.PathLike, name: str) -> Path:
    """Where :func:`prepare` looks for ``name``'s archive (and downloads it to)."""
    return manual_dir(data_dir) / _archive(name).file_name


def prepare(name: str, data_dir: str | os.PathLike) -> Path:
    """Prepares ``name`` in ``data_dir`` from its archive, downloading the
    archive first if it is not at :func:`archive_path`; returns the dataset's
    folder.

    Raises:
      ConnectionError: the archive is missing and its host cannot be reached
        or the download fails (nothing is left of it).
      ArchiveError: the archive is not the published one.
    """
    archive = _archive(name)
    path = archive_path(data_dir, name)
    if path.exists():
        with open(path, "rb") as f:
            md5 = hashlib.file_digest(f, "md5").hexdigest()
        _check_md5(md5, archive, path, "; delete it to download it again")
    else:
        probe(archive.url, PROBE_TIMEOUT_S)
        print(f"Downloading {archive.url} to {path}", flush=True)
        download(archive, path)
    start = time.perf_counter()
    splits, label_names = read_archive(path, archive)
    folder = cifar_writer.write_dataset(data_dir, name, splits, label_names)
    sizes = ", ".join(f"{split} {len(arrays['label'])}" for split, arrays in splits.items())
    print(f"Prepared {folder} ({sizes}) in {time.perf_counter() - start:.0f} s", flush=True)
    return folder


def probe(url: str, timeout_s: float) -> None:
    """Raises ``ConnectionError`` unless a TCP connection to ``url``'s host
    (or to its proxy, if one applies) opens within ``timeout_s`` seconds. The
    attempt runs in a thread, so that a name lookup that hangs cannot hold it
    up longer."""
    address = first_hop(url)
    outcome: list[OSError | None] = []

    def connect() -> None:
        try:
            socket.create_connection(address, timeout=timeout_s).close()
            outcome.append(None)
        except OSError as e:
            outcome.append(e)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout_s)
    where = f"{address[0]}:{address[1]}"
    if not outcome:
        raise ConnectionError(f"cannot reach {where}: no answer within {timeout_s:g} s")
    if outcome[0] is not None:
        raise ConnectionError(f"cannot reach {where}: {outcome[0]}")


def first_hop(url: str) -> tuple[str, int]:
    """(host, port) that a download of ``url`` connects to: its proxy's if
    the environment sets one for it (``https_proxy``, ``no_proxy``, ...)."""
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname):
        parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def download(archive: Archive, path: Path) -> None:
    """Downloads ``archive`` to ``path``; it lands there only complete and
    with the published MD5 (a partial file is removed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, part = tempfile.mkstemp(prefix=f"{path.name}.", suffix=".part", dir=path.parent)
    try:
        digest = hashlib.md5()
        with (
            os.fdopen(handle, "wb") as out,
            urllib.request.urlopen(archive.url, timeout=READ_TIMEOUT_S) as response,
        ):
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        _check_md5(digest.hexdigest(), archive, archive.url)
        os.replace(part, path)
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as e:
        raise ConnectionError(f"downloading {archive.url} failed: {e}") from e
    finally:
        if os.path.exists(part):
            os.remove(part)


def read_archive(
    path: Path, archive: Archive
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, list[str]]]:
    """``(splits, label_names)`` of the archive as
    :func:`~train.datasets.cifar_writer.write_dataset` takes them."""
    wanted = {archive.meta, *(m for members in archive.splits.values() for m in members)}
    with tarfile.open(path, "r:gz") as tar:  # one pass: a gzip stream cannot seek back
        found = {
            m.name: pickle.load(tar.extractfile(m), encoding="bytes")
            for m in tar
            if m.name in wanted
        }
    missing = sorted(wanted - set(found))
    if missing:
        raise ArchiveError(f"{path} lacks {missing}: not the CIFAR python-version archive")
    meta = found[archive.meta]
    label_names = {
        feature: [n.decode() for n in meta[names.encode()]]
        for feature, (_, names) in archive.labels.items()
    }
    splits = {}
    for split, members in archive.splits.items():
        batches = [found[member] for member in members]
        images = np.concatenate([b[b"data"] for b in batches]).reshape(-1, 3, 32, 32)
        splits[split] = {"image": images.transpose(0, 2, 3, 1)} | {
            feature: np.concatenate([b[key.encode()] for b in batches])
            for feature, (key, _) in archive.labels.items()
        }
    return splits, label_names


def _archive(name: str) -> Archive:
    try:
        return ARCHIVES[name]
    except KeyError:
        raise ValueError(f"name={name!r}: expected one of {sorted(ARCHIVES)}") from None


def _check_md5(md5: str, archive: Archive, where: str | os.PathLike, fix: str = "") -> None:
    """An :class:`ArchiveError` (ending with ``fix``) unless ``md5`` is the published one."""
    if md5 != archive.md5:
        raise ArchiveError(
            f"{where} has MD5 {md5}, expected {archive.md5} (damaged, or not "
            f"{archive.file_name}){fix}"
        )
