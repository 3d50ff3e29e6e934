"""Shared fixtures."""

import pytest

from snnjax import fusion, surrogate


@pytest.fixture(autouse=True)
def restore_registries():
  """Every test leaves the surrogate and fusion registries as it found them."""
  saved = [(r, r.snapshot()) for r in (surrogate.REGISTRY, fusion.REGISTRY)]
  yield
  for registry, snapshot in saved:
    registry.restore(snapshot)
