"""The model of a training config: the preset of ``config.model`` with its
overrides, on ``config.dataset``'s classes and image size. Imports neither the
data pipeline nor the training loop (``train.report`` reads a run's model
through it)."""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections
from flax import nnx

from snnjax import models
from snnjax.nn.config import SequencerConfig
from snnjax.nn.sequencer import SpikingSequencer
from train.datasets.info import get_dataset_info

DTYPES = {"float32": None, "bfloat16": jnp.bfloat16}


def model_config(config: ml_collections.ConfigDict) -> tuple[str, SequencerConfig]:
    """The preset name and validated :class:`SequencerConfig` of
    ``config.model`` on ``config.dataset``."""
    name, overrides = _model_overrides(config)
    info = get_dataset_info(config.dataset)
    return name, models.config(name, info.num_classes, info.image_size, **overrides)


def create_model(config: ml_collections.ConfigDict, rngs: nnx.Rngs) -> SpikingSequencer:
    """The model of ``config.model`` for ``config.dataset``."""
    name, overrides = _model_overrides(config)
    info = get_dataset_info(config.dataset)
    return models.create(name, info.num_classes, info.image_size, rngs=rngs, **overrides)


def _model_overrides(config: ml_collections.ConfigDict) -> tuple[str, dict]:
    fields = config.model.to_dict()
    name = fields.pop("name")
    if fields["carry_membrane"] is None:
        del fields["carry_membrane"]  # The preset's choice.
    if fields["dtype"] not in DTYPES:
        raise ValueError(
            f"config.model.dtype must be one of {sorted(DTYPES)}, got {fields['dtype']!r}"
        )
    fields["dtype"] = DTYPES[fields["dtype"]]
    grid = tuple(fields["grid"])
    fields["grid"] = grid * 2 if len(grid) == 1 else grid  # --config.model.grid=2 -> (2, 2)
    return name, fields
