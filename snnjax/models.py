"""The model factory, presets and summaries: :mod:`snnjax.nn.models` (Flax
code lives under :mod:`snnjax.nn`), here under the README's name.

    model = snnjax.models.create("conv", num_classes=10)
"""

from snnjax.nn.models import (
    PRESETS,
    ModelSummary,
    config,
    count_params,
    create,
    operations,
    summary,
)

__all__ = ["PRESETS", "ModelSummary", "config", "count_params", "create", "operations", "summary"]
