"""Shared pieces of the training tests: a tiny config on the shared CIFAR-10,
and reading parameters back from a workdir.

The shared CIFAR-10 (array_record) is expected at ``<repo>/../shared/data/tfds``;
tests that need it are skipped with that reason when it is absent.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path

import jax
import ml_collections
import numpy as np
import pytest
from jax.experimental.compilation_cache import compilation_cache

from train.compilation import xla_flags

REPO = Path(__file__).resolve().parents[1]

# XLA's quick compilation for the suite and its JAX subprocesses, set by
# tests/conftest.py (train.compilation.FAST_COMPILE, as flags).
# SNNJAX_TEST_XLA_OPT=1 keeps XLA's defaults.
QUICK_XLA_FLAGS = xla_flags()
SHARED_TFDS = REPO.parent / "shared" / "data" / "tfds"


def cifar10_dir() -> str:
    """The shared TFDS data directory, or skip the test."""
    if not (SHARED_TFDS / "cifar10").is_dir():
        pytest.skip(f"shared CIFAR-10 not found at {SHARED_TFDS / 'cifar10'}")
    return str(SHARED_TFDS)


@contextlib.contextmanager
def compilation_cache_in(directory: str):
    """JAX's persistent compilation cache in ``directory`` for the duration:
    tests/conftest.py keeps one for the whole session."""
    settings = {
        "jax_compilation_cache_dir": directory,
        "jax_persistent_cache_min_compile_time_secs": 0,
    }
    previous = {name: getattr(jax.config, name) for name in settings}
    for name, value in settings.items():
        jax.config.update(name, value)
    compilation_cache.reset_cache()
    try:
        yield
    finally:
        for name, value in previous.items():
            jax.config.update(name, value)
        compilation_cache.reset_cache()


def shared_temp(tmp_path_factory) -> Path:
    """This run's temporary directory, the same for all pytest-xdist workers."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # .../pytest-N/popen-gw0 -> .../pytest-N
    return base


def once_per_run(tmp_path_factory, name: str, make) -> Path:
    """``<shared temp>/name``, made by ``make(path)`` once for all pytest-xdist
    workers of this run: the first worker to take the lock makes it, the
    others wait for it (an attempt that failed is made again)."""
    base = shared_temp(tmp_path_factory)
    path, done = base / name, base / f"{name}.done"
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir()
            make(path)
            done.touch()
    return path


def subprocess_env(devices: int) -> dict:
    """The environment of a JAX subprocess: ``devices`` CPU devices, the
    suite's XLA flags (tests/conftest.py sets them in this process's
    environment), the repo and tests/ on the path."""
    env = dict(os.environ)
    # The same flags as the test process: the persistent compilation cache's
    # key hashes XLA_FLAGS (the device count aside), so a program built here
    # and in the test process is compiled once.
    flags = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"
    env["XLA_FLAGS"] = flags.strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), str(REPO / "tests"), env.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep)
    return env


def tiny_config(**overrides) -> ml_collections.ConfigDict:
    """A fast config: the quick recipe with a one-stage model of a normal and
    a dilated block (every kind of layer of the mixer path; patch merging is
    tested on the models' own configs, tests/test_models.py), batch 32,
    6 steps and one evaluation batch, no validation hold-out; every RNG
    stream in use (dropout, Bernoulli encoder, mixup). ``model_*`` keys
    override ``config.model`` fields."""
    from train.configs import default, quick

    config = quick.get_config()
    config.data_dir = cifar10_dir()
    config.model = default.model_config(
        "conv", widths=(8,), depths=(2,), dropout=0.1, encoder="bernoulli"
    )
    config.mixup_alpha = 0.1
    # The schedule is pinned here, not inherited from quick's tuning: the tests
    # reason about what these 6-step models predict (test_train's flip test).
    config.mixer_lr_scale = 1.0
    config.lr_decay = "cosine"
    config.batch_size = 32
    config.eval_batch_size = 64
    config.max_eval_batches = 1
    config.eval_flip = False  # one forward pass per evaluation (the flip test turns it on)
    config.grain_in_memory = False  # a few steps: decoding the split would dominate
    config.num_train_steps = 6
    config.warmup_epochs = 0.0
    config.log_every_steps = 2
    config.eval_every_epochs = 0
    config.checkpoint_every_steps = 2
    config.keep_checkpoints = 2
    config.validation_examples = 0
    for key, value in overrides.items():
        if key.startswith("model_"):
            config.model[key.removeprefix("model_")] = value
        else:
            config[key] = value
    return config


# The shared tiny run (tests/conftest.py ``tiny_run``): tiny_config with a
# validation hold-out, so that it also has a best checkpoint, and a second
# stage (a normal block after patch merging): the report draws a stage
# boundary, and flip TTA needs predictions that change with the mirror (the
# one-stage model's pooled features barely do), and a parameter EMA (its
# evaluations use the average, the final one also reports the final iterate).
TINY_RUN = dict(validation_examples=5000, model_widths=(8, 16), model_depths=(2, 1), ema_decay=0.5)


def tiny_run_config(**overrides) -> ml_collections.ConfigDict:
    """The config of the shared tiny run (with ``overrides``)."""
    return tiny_config(**{**TINY_RUN, **overrides})


def copy_run(workdir: str, tmp_path) -> str:
    """A copy of a run's workdir under ``tmp_path``, for tests that change it."""
    copy = str(tmp_path / "copy")
    shutil.copytree(workdir, copy)
    return copy


def restore_latest(workdir: str, config: ml_collections.ConfigDict):
    """``(state, meta)`` of ``workdir``'s newest intact checkpoint, as a resume
    of ``config`` would restore it (None if there is none)."""
    from train import checkpointing, input_pipeline, train

    state = train.setup(config, devices=jax.devices()[:1], per_epoch=1562).state
    iterator = input_pipeline.create_train_iterator(
        "cifar10", global_batch_size=config.batch_size, seed=0, data_dir=config.data_dir
    )
    with checkpointing.Checkpointer(workdir, config) as checkpointer:
        return checkpointer.restore_latest(state, iterator)


def final_params(workdir: str, which: str = "latest") -> dict:
    """The parameters of ``workdir``'s ``which`` checkpoint as a flat dict of
    numpy arrays (path -> array)."""
    from train import evaluate, train

    _, _, state = evaluate.load_checkpoint(
        workdir, which, mesh=train.create_mesh(jax.devices()[:1])
    )
    return flatten(state.params)


def flatten(tree) -> dict:
    """path -> numpy array for every leaf of ``tree`` (PRNG keys as key data)."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(path): np.asarray(_data(leaf)) for path, leaf in leaves}


def _data(leaf):
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(leaf)
    return leaf
