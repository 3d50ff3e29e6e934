"""Shared fixtures."""

import pytest

from snnjax import fusion, surrogate
from snnjax.nn import mixers


@pytest.fixture(autouse=True)
def restore_registries():
  """Every test leaves the surrogate, fusion and mixer registries as it found them."""
  saved = [(r, r.snapshot()) for r in (surrogate.REGISTRY, fusion.REGISTRY, mixers.MIXERS)]
  yield
  for registry, snapshot in saved:
    registry.restore(snapshot)
