"""Over-activation analysis of a fusion function (paper Eq. 11-12, 20; Table 5).

Over [vth, 2 vth]^2 the linear plane x + y has area 3 vth^3; Omega's surface has
area S(theta) (Eq. 20); their difference nabla_D = S - 3 vth^3 measures how much
less the fusion over-activates than a linear sum.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from snnjax.fusion import FusionFn, get_fusion

METHODS = ("closed", "numeric")


def plane_area(vth: float = 0.5) -> float:
    """Area of x + y over [vth, 2 vth]^2: 3 vth^3 (Eq. 12)."""
    return 3.0 * vth**3


def _numeric_area(fusion: FusionFn, theta: float, vth: float, points: int) -> float:
    nodes, weights = np.polynomial.legendre.leggauss(points)
    half = vth / 2  # map [-1, 1] onto [vth, 2 vth]
    x = vth + half * (nodes + 1)
    a, b = np.meshgrid(x, x, indexing="ij")
    values = np.asarray(fusion(jnp.asarray(a), jnp.asarray(b), theta), np.float64)
    return float(half * half * weights @ values @ weights)


def omega_area(
    theta: float = 0.5,
    vth: float = 0.5,
    method: str = "closed",
    fusion: str | FusionFn = "omega",
    points: int = 64,
) -> float:
    """S(theta): the integral of the fusion over [vth, 2 vth]^2.

    ``method="closed"`` is Eq. 20 (Omega only):
    16 sin(3 theta pi vth / 2) sin(theta pi vth / 4)^2 / (theta pi)^2.
    ``method="numeric"`` integrates the implemented ``fusion`` (any registered one)
    by Gauss-Legendre quadrature with ``points`` nodes per axis.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    if not theta > 0:
        raise ValueError(f"theta must be positive, got {theta!r}")
    if not vth > 0:
        raise ValueError(f"vth must be positive, got {vth!r}")
    if method == "numeric":
        return _numeric_area(get_fusion(fusion), theta, vth, points)
    if fusion != "omega":
        raise ValueError(
            f"the closed form (Eq. 20) exists for fusion 'omega' only, "
            f"got {fusion!r}; use method='numeric'"
        )
    tp = theta * math.pi
    return 16 * math.sin(1.5 * tp * vth) * math.sin(tp * vth / 4) ** 2 / tp**2


def nabla_d(
    theta: float = 0.5,
    vth: float = 0.5,
    method: str = "closed",
    fusion: str | FusionFn = "omega",
    points: int = 64,
) -> float:
    """nabla_D = S(theta) - 3 vth^3 (Eq. 12, Table 5)."""
    return omega_area(theta, vth, method, fusion, points) - plane_area(vth)
