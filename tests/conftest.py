"""Shared fixtures."""

import pytest
from train_utils import compilation_cache_in, tiny_run_config

from snnjax import fusion, surrogate
from snnjax.nn import mixers


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
    session. Tests only read it; a test that changes a run works on
    :func:`train_utils.copy_run`."""
    from train import train

    config = tiny_run_config()  # skips the test without the shared CIFAR-10
    workdir = str(tmp_path_factory.mktemp("tiny_run"))
    cache = tmp_path_factory.getbasetemp() / "jax_compilation_cache"
    cache.mkdir(exist_ok=True)
    with compilation_cache_in(str(cache)):
        summary = train.train_and_evaluate(config, workdir)
    return workdir, summary
