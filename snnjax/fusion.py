"""Fusing two membrane streams before leaky integration (paper Eq. 5, Fig. 5).

``a`` is the membrane left by the previous window of this layer (the scan carry),
``b`` the membrane of the previous spiking layer at the same window. A fusion
function maps ``(a, b, theta)`` to the membrane that leaks into the next step.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from snnjax import fastmath
from snnjax._registry import Registry

Array = jax.Array
FusionFn = Callable[[Array, Array, float], Array]

REGISTRY: Registry[FusionFn] = Registry("fusion")


def register_fusion(name: str, fn: FusionFn, *, override: bool = False) -> FusionFn:
    """Adds ``fn(a, b, theta) -> fused`` to the registry under ``name``; a taken
    name raises ValueError unless ``override=True``."""
    if not callable(fn):
        raise ValueError(f"fusion {name!r} must be callable, got {fn!r}")
    return REGISTRY.register(name, fn, override=override)


def fusion_names() -> tuple[str, ...]:
    return REGISTRY.names()


def get_fusion(fusion: str | FusionFn) -> FusionFn:
    if isinstance(fusion, str):
        return REGISTRY.get(fusion)
    if callable(fusion):
        return fusion
    raise ValueError(f"fusion must be a name or a callable, got {fusion!r}")


def omega(a: Array, b: Array, theta: float = 0.5) -> Array:
    """Omega projection, paper Eq. 5: 2 sin(theta pi/2 a) cos(theta pi/2 b).

    The backward pass reuses the forward's sines and cosines (custom VJP):
    dOmega/da = 2k cos(ka) cos(kb), dOmega/db = -2k sin(ka) sin(kb), k = theta pi/2.
    """
    a, b = jnp.broadcast_arrays(jnp.asarray(a), jnp.asarray(b))
    return _omega(a, b, theta * math.pi / 2)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _omega(a, b, k):
    return _omega_fwd(a, b, k)[0]


def _omega_fwd(a, b, k):
    sin_a, cos_a = fastmath.sincos(k * a)
    sin_b, cos_b = fastmath.sincos(k * b)
    return 2 * sin_a * cos_b, (sin_a, cos_a, sin_b, cos_b)


def _omega_bwd(k, residuals, g):
    sin_a, cos_a, sin_b, cos_b = residuals
    return 2 * k * g * cos_a * cos_b, -2 * k * g * sin_a * sin_b


_omega.defvjp(_omega_fwd, _omega_bwd)


def omega_code(a: Array, b: Array, theta: float = 0.5) -> Array:
    """The authors' code (bracket slip, METHOD Sec. 10): 2 sin(k a cos(k b)).

    For comparison only; it is not Eq. 5.
    """
    k = theta * math.pi / 2
    return 2 * fastmath.sin(k * a * fastmath.cos(k * b))


def linear(a: Array, b: Array, theta: float = 0.5) -> Array:
    """Plain sum a + b (Fig. 5 baseline, the plane of Eq. 12)."""
    del theta
    return a + b


def mean(a: Array, b: Array, theta: float = 0.5) -> Array:
    """(a + b) / 2, the authors' CIFAR-100 conv model."""
    del theta
    return (a + b) / 2


def relu(a: Array, b: Array, theta: float = 0.5) -> Array:
    del theta
    return jax.nn.relu(a + b)


def sigmoid(a: Array, b: Array, theta: float = 0.5) -> Array:
    del theta
    return jax.nn.sigmoid(a + b)


def tanh(a: Array, b: Array, theta: float = 0.5) -> Array:
    del theta
    return jnp.tanh(a + b)


def none(a: Array, b: Array, theta: float = 0.5) -> Array:
    """Ignore ``b``: the plain one-direction group scan."""
    del b, theta
    return a


for _fn in (omega, omega_code, linear, mean, relu, sigmoid, tanh, none):
    register_fusion(_fn.__name__, _fn)
