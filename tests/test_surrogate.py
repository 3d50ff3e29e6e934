"""spike(): exact Heaviside forward, surrogate derivative backward (Eq. 3)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import snnjax
from snnjax.surrogate import get_surrogate

V = jnp.linspace(-1.0, 2.0, 301)

# Hand-written derivatives (x = v - vth), independent of the library's code.
ANALYTIC = {
    "rectangular": lambda x: (np.abs(x) < 0.5).astype(np.float32),
    "triangle": lambda x: np.maximum(0, 1 - np.abs(x) / 0.5) / 0.5,
    "sigmoid": lambda x: 4 * np.exp(-4 * x) / (1 + np.exp(-4 * x)) ** 2,
    "fast_sigmoid": lambda x: 1 / (1 + 25 * np.abs(x)) ** 2,
    "atan": lambda x: 1.0 / (1 + (math.pi * x) ** 2),
}


def test_forward_is_strict_heaviside():
    v = jnp.array([-1.0, 0.49, 0.5, 0.5001, 3.0])
    np.testing.assert_array_equal(snnjax.spike(v), [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(snnjax.spike(v, vth=1.0), [0, 0, 0, 0, 1])


def test_builtin_names():
    assert set(ANALYTIC) <= set(snnjax.surrogate_names())


@pytest.mark.parametrize("name", sorted(ANALYTIC))
def test_gradient_is_the_analytic_surrogate(name):
    gv = jax.grad(lambda v: snnjax.spike(v, 0.5, name).sum())(V)
    np.testing.assert_allclose(gv, ANALYTIC[name](np.asarray(V) - 0.5), rtol=1e-5, atol=1e-6)
    # dS/dvth = -dS/dv, summed over the elements the scalar threshold serves.
    gth = jax.grad(lambda t: snnjax.spike(V, t, name).sum())(0.5)
    np.testing.assert_allclose(gth, -np.sum(gv), rtol=1e-5)


@pytest.mark.parametrize("name", sorted(ANALYTIC))
def test_primitive_differentiates_to_derivative(name):
    sg = get_surrogate(name)
    x = jnp.linspace(-1.3, 1.3, 263)  # avoids the kinks at +-width exactly
    dprim = jax.vmap(jax.grad(lambda x: sg.primitive(x, **sg.defaults)))(x)
    np.testing.assert_allclose(dprim, sg.derivative(x, **sg.defaults), rtol=1e-5, atol=1e-6)


def test_surrogate_parameters_change_the_gradient():
    g1 = jax.grad(lambda v: snnjax.spike(v, 0.5, "sigmoid", slope=10.0).sum())(V)
    x = np.asarray(V) - 0.5
    np.testing.assert_allclose(
        g1, 10 * np.exp(-10 * x) / (1 + np.exp(-10 * x)) ** 2, rtol=1e-4, atol=1e-6
    )


def test_custom_function_and_registry():
    def gauss(x, sigma=0.3):
        return jnp.exp(-x * x / (2 * sigma * sigma))

    g = jax.grad(lambda v: snnjax.spike(v, 0.5, gauss).sum())(V)
    np.testing.assert_allclose(g, np.exp(-((np.asarray(V) - 0.5) ** 2) / 0.18), rtol=1e-5)
    snnjax.register_surrogate("gauss_test", gauss, sigma=0.3)
    g2 = jax.grad(lambda v: snnjax.spike(v, 0.5, "gauss_test", sigma=0.3).sum())(V)
    np.testing.assert_allclose(g, g2)
    with pytest.raises(ValueError, match="already registered"):
        snnjax.register_surrogate("rectangular", gauss, sigma=0.3)
    assert snnjax.get_surrogate("rectangular").defaults == {"width": 0.5}


def test_array_threshold_gets_summed_gradient():
    v = jax.random.normal(jax.random.key(0), (4, 5, 3))
    vth = jnp.array([0.2, 0.5, 0.9])
    gth = jax.grad(lambda t: snnjax.spike(v, t).sum())(vth)
    expected = -np.sum(np.abs(np.asarray(v) - np.asarray(vth)) < 0.5, axis=(0, 1))
    np.testing.assert_allclose(gth, expected)
    assert gth.shape == vth.shape


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_transforms_and_dtypes(dtype):
    v = jax.random.normal(jax.random.key(1), (3, 16)).astype(dtype)
    f = lambda v: snnjax.spike(v, 0.5, "atan").sum()
    s = jax.jit(jax.vmap(snnjax.spike))(v)
    assert s.dtype == dtype
    np.testing.assert_array_equal(s, (np.asarray(v, np.float32) > 0.5))
    g = jax.jit(jax.grad(f))(v)
    g_remat = jax.grad(jax.checkpoint(f))(v)
    assert g.dtype == dtype
    np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(g_remat, np.float32))
    x = np.asarray(v, np.float32) - 0.5
    np.testing.assert_allclose(
        np.asarray(g, np.float32), 1 / (1 + (np.pi * x) ** 2), rtol=2e-2, atol=1e-2
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(surrogate="nope"), "surrogate"),
        (dict(surrogate="sigmoid", slop=3.0), "slop"),
        (dict(vth=-0.5), "vth"),
        (dict(surrogate=3), "surrogate"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        snnjax.spike(V, **kwargs)


def test_integer_membrane_rejected():
    with pytest.raises(ValueError, match="v must be a floating"):
        snnjax.spike(jnp.arange(3))
