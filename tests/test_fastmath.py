"""fastmath.sin / cos against numpy in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax import fastmath


@pytest.mark.parametrize("name", ["sin", "cos"])
def test_accuracy_over_a_wide_range(name):
    x = np.linspace(-1e4, 1e4, 400_001).astype(np.float32)
    x = np.concatenate([x, np.float32([0.0, np.pi / 4, -np.pi / 2, np.pi, 1e-8])])
    got = np.asarray(getattr(fastmath, name)(jnp.asarray(x)), np.float64)
    err = np.abs(got - getattr(np, name)(x.astype(np.float64)))
    assert err.max() < 1e-7


@pytest.mark.parametrize("name, derivative", [("sin", np.cos), ("cos", lambda x: -np.sin(x))])
def test_gradient(name, derivative):
    x = jnp.linspace(-20, 20, 4001)
    g = jax.vmap(jax.grad(getattr(fastmath, name)))(x)
    np.testing.assert_allclose(g, derivative(np.asarray(x, np.float64)), atol=3e-7)


def test_dtype_is_preserved():
    x = jnp.linspace(-3, 3, 7, dtype=jnp.bfloat16)
    out = fastmath.sin(x)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(
        np.asarray(out, np.float32), np.sin(np.asarray(x, np.float32)), atol=1e-2
    )
