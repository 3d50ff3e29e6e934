"""Shared fixtures; XLA's quick compilation and one persistent compilation
cache for the whole suite (and its pytest-xdist workers)."""

import json
import os

import pytest
from train_utils import (
    QUICK_XLA_FLAGS,
    compilation_cache_in,
    once_per_run,
    shared_temp,
    tiny_run_config,
)

from snnjax import fusion, surrogate
from snnjax.nn import mixers

# Set before JAX starts its backend (importing jax does not read XLA_FLAGS), so
# that it holds here and in every subprocess (CLI, notebook kernels, workers).
if not os.environ.get("SNNJAX_TEST_XLA_OPT"):
    os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), *QUICK_XLA_FLAGS]).strip()


@pytest.fixture(scope="session", autouse=True)
def jax_compilation_cache(tmp_path_factory):
    """JAX's persistent compilation cache, for every test and (through the
    environment) every JAX subprocess: many tests build the same programs (the
    tiny model's steps above all; every train_and_evaluate call jits anew), and
    compiling dominates on a CPU. It lives in this run's temporary directory,
    shared by the xdist workers, so a new run starts empty."""
    directory = shared_temp(tmp_path_factory) / "jax_compilation_cache"
    directory.mkdir(exist_ok=True)
    with compilation_cache_in(str(directory)), pytest.MonkeyPatch.context() as env:
        env.setenv("JAX_COMPILATION_CACHE_DIR", str(directory))
        env.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
        yield str(directory)


@pytest.fixture(autouse=True)
def restore_registries():
    """Every test leaves the surrogate, fusion and mixer registries as it found them."""
    saved = [(r, r.snapshot()) for r in (surrogate.REGISTRY, fusion.REGISTRY, mixers.MIXERS)]
    yield
    for registry, snapshot in saved:
        registry.restore(snapshot)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> tuple[str, dict]:
    """``(workdir, summary)`` of one tiny training run on the shared CIFAR-10
    (:func:`train_utils.tiny_run_config`: 6 steps, checkpoints 4 and 6, best 6
    by validation, summary.json, metrics, TensorBoard), trained once per
    session (for all workers). Tests only read it; a test that changes a run works on
    :func:`train_utils.copy_run`."""
    from train import train

    config = tiny_run_config()  # skips the test without the shared CIFAR-10

    def make(path):
        summary = train.train_and_evaluate(config, str(path / "run"))
        (path / "summary.json").write_text(json.dumps(summary))

    # One run for all pytest-xdist workers; the others read the returned
    # summary back.
    path = once_per_run(tmp_path_factory, "tiny_run", make)
    return str(path / "run"), json.loads((path / "summary.json").read_text())
