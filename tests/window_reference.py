"""Moved to :mod:`snnjax.testing`; kept for benchmarks/train_step.py until it imports it."""

from snnjax.testing import window_lif_loop  # noqa: F401
