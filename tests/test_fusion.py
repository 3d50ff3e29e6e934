"""Fusion functions (Eq. 5, Fig. 5) and the Table 5 theory check (Eq. 12, 20)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import snnjax
from snnjax import theory

THETAS = [0.1, 0.3, 0.5, 0.7, 0.9]
TABLE5_S = [0.058, 0.162, 0.228, 0.243, 0.204]  # METHOD.md Sec. 5
TABLE5_NABLA = [-0.317, -0.213, -0.147, -0.132, -0.171]


def test_omega_hand_values():
    k = 0.5 * math.pi / 2
    a, b = 0.7, -0.4
    np.testing.assert_allclose(snnjax.omega(a, b), 2 * math.sin(k * a) * math.cos(k * b), rtol=1e-6)
    np.testing.assert_allclose(
        snnjax.omega(a, b, theta=0.9),
        2 * math.sin(0.45 * math.pi * a) * math.cos(0.45 * math.pi * b),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        snnjax.omega_code(a, b), 2 * math.sin(k * a * math.cos(k * b)), rtol=1e-6
    )


def test_omega_is_bounded_and_odd_in_a():
    a = jnp.linspace(-50, 50, 1001)
    b = jnp.linspace(-7, 9, 1001)
    out = snnjax.omega(a, b)
    assert float(jnp.abs(out).max()) <= 2.0 + 1e-6  # no drift to -infinity (Sec. 3.2)
    np.testing.assert_allclose(snnjax.omega(-a, b), -out, atol=1e-6)
    np.testing.assert_array_equal(snnjax.omega(jnp.zeros(3), jnp.ones(3)), 0.0)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("linear", 0.3),
        ("mean", 0.15),
        ("relu", 0.3),
        ("none", 0.7),
        ("sigmoid", 1 / (1 + math.exp(-0.3))),
        ("tanh", math.tanh(0.3)),
    ],
)
def test_other_fusions(name, expected):
    np.testing.assert_allclose(snnjax.get_fusion(name)(0.7, -0.4, 0.5), expected, rtol=1e-6)
    # Each applied to a negative sum a + b = -0.6.
    below = {
        "linear": -0.6,
        "mean": -0.3,
        "relu": 0.0,
        "none": -0.7,
        "sigmoid": 1 / (1 + math.exp(0.6)),
        "tanh": math.tanh(-0.6),
    }[name]
    np.testing.assert_allclose(snnjax.get_fusion(name)(-0.7, 0.1, 0.5), below, rtol=1e-6, atol=1e-7)


def test_registry():
    assert {"omega", "omega_code", "linear", "relu", "sigmoid", "tanh", "none"} <= set(
        snnjax.fusion_names()
    )
    snnjax.register_fusion("max_test", lambda a, b, theta: jnp.maximum(a, b))
    assert snnjax.get_fusion("max_test")(1.0, 2.0, 0.5) == 2.0
    with pytest.raises(ValueError, match="fusion"):
        snnjax.get_fusion("omgea")
    # A taken name is refused unless asked: "omega" stays the paper's.
    with pytest.raises(ValueError, match="already registered.*override=True"):
        snnjax.register_fusion("omega", snnjax.linear)
    assert snnjax.get_fusion("omega") is snnjax.omega
    snnjax.register_fusion("omega", snnjax.linear, override=True)
    assert snnjax.get_fusion("omega") is snnjax.linear


def test_registry_is_restored_between_tests():
    # The previous test registered "max_test" and overrode "omega".
    assert "max_test" not in snnjax.fusion_names()
    assert snnjax.get_fusion("omega") is snnjax.omega


def test_table5_closed_form():
    for theta, s, nabla in zip(THETAS, TABLE5_S, TABLE5_NABLA):
        assert abs(theory.omega_area(theta) - s) < 1e-3
        assert abs(theory.nabla_d(theta) - nabla) < 1e-3
    assert theory.plane_area(0.5) == 0.375


def test_table5_numeric_integration_of_the_implementation():
    for theta, s, nabla in zip(THETAS, TABLE5_S, TABLE5_NABLA):
        assert abs(theory.omega_area(theta, method="numeric") - s) < 1e-3
        assert abs(theory.nabla_d(theta, method="numeric") - nabla) < 1e-3
        np.testing.assert_allclose(
            theory.omega_area(theta, method="numeric"), theory.omega_area(theta), rtol=1e-5
        )
    # The numeric path integrates whatever fusion it is given: the plane.
    np.testing.assert_allclose(
        theory.omega_area(method="numeric", fusion="linear"), theory.plane_area(0.5), rtol=1e-6
    )
    # ... and the authors' bracket slip is a different surface.
    assert (
        abs(theory.omega_area(method="numeric", fusion="omega_code") - theory.omega_area()) > 4e-3
    )


def test_theory_bad_input():
    with pytest.raises(ValueError, match="method"):
        theory.omega_area(0.5, method="monte-carlo")
    with pytest.raises(ValueError, match="theta"):
        theory.omega_area(-0.5)
    with pytest.raises(ValueError, match="numeric"):
        theory.omega_area(0.5, fusion="linear")


def test_fusion_gradients_flow_through_both_streams():
    ga, gb = jax.grad(lambda a, b: snnjax.omega(a, b), argnums=(0, 1))(0.3, 0.6)
    k = math.pi / 4
    np.testing.assert_allclose(ga, 2 * k * math.cos(k * 0.3) * math.cos(k * 0.6), rtol=1e-5)
    np.testing.assert_allclose(gb, -2 * k * math.sin(k * 0.3) * math.sin(k * 0.6), rtol=1e-5)
