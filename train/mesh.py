"""The device mesh of a run: one axis, ``"data"``, over every device of every
process; batches sharded along it, the train state replicated."""

from __future__ import annotations

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from train.schema import ConfigError

DATA_AXIS = "data"


def create_mesh(devices: list | None = None) -> Mesh:
    """A 1-D mesh with axis :data:`DATA_AXIS` over ``devices`` (default: all
    devices of all processes)."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def global_batch(batch: dict, mesh: Mesh) -> dict:
    """This process's rows of a batch -> global arrays sharded on ``"data"``."""
    sharding = NamedSharding(mesh, P(DATA_AXIS))
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)


def check_batch_sizes(config: ml_collections.ConfigDict, mesh: Mesh) -> None:
    """Batch sizes must split evenly over processes and devices."""
    for field in ("batch_size", "eval_batch_size"):
        size = config[field]
        if size <= 0 or size % mesh.size:
            raise ConfigError(
                f"config.{field}={size} must be a positive multiple of the number of "
                f"devices ({mesh.size}, over {jax.process_count()} process(es))"
            )
