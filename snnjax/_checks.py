"""Argument checks at the public boundaries: chex assertions turned into clear
ValueErrors that name the offending argument."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np


def rank(x, expected: int | set[int], name: str) -> None:
    try:
        chex.assert_rank(x, expected)
    except AssertionError:
        raise ValueError(f"{name} must have rank {expected}, got shape {jnp.shape(x)}") from None


def floating(x, name: str) -> None:
    dtype = jnp.result_type(x)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"{name} must be a floating array, got dtype {dtype}")


def same_shape(a, b, name_a: str, name_b: str) -> None:
    try:
        chex.assert_equal_shape([a, b])
    except AssertionError:
        raise ValueError(
            f"{name_b} must have the shape of {name_a} {jnp.shape(a)}, got {jnp.shape(b)}"
        ) from None


def positive(x, name: str) -> None:
    """Checks x > 0 where x is concrete; traced values (learnable) pass unchecked."""
    if isinstance(x, jax.core.Tracer):
        return
    value = np.asarray(x)
    if value.size and not np.all(value > 0):
        raise ValueError(
            f"{name} must be positive, got {value if value.size < 8 else 'an array with non-positive entries'}"
        )


def one_of(value, choices, name: str) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
