"""The SHA-256 of every array of a train state, saved with each checkpoint
and compared at every restore (:func:`train.checkpointing.verify_checksums`)."""

from __future__ import annotations

import hashlib
from typing import Any

import jax
import numpy as np


def state_checksums(state: Any) -> dict[str, str]:
    """``{path: SHA-256 hex digest}`` of the bytes of every array of ``state``
    (PRNG keys as their key data; replicated arrays from their first local
    copy)."""
    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    return {
        jax.tree_util.keystr(path): hashlib.sha256(_leaf_bytes(leaf)).hexdigest()
        for path, leaf in leaves
    }


def _leaf_bytes(leaf: Any) -> bytes:
    if isinstance(leaf, jax.Array):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        if not leaf.is_fully_addressable:
            if not leaf.is_fully_replicated:
                raise ValueError("checksums need replicated or fully addressable arrays")
            leaf = leaf.addressable_shards[0].data
    array = np.ascontiguousarray(np.asarray(leaf))
    return str((array.dtype.str, array.shape)).encode() + array.tobytes()
