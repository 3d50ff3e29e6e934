"""The spike function: exact Heaviside forward, surrogate derivative backward.

Paper Eq. 3/6: ``S = H(V - vth)``, a spike where ``V > vth`` (strictly). The
Heaviside step has no useful derivative, so the backward pass uses a surrogate
``dS/dV ~= g(V - vth)`` (surrogate gradient learning). ``dS/dvth = -dS/dV``.

Surrogates follow snnTorch/SpikingJelly conventions; each is registered with its
derivative ``g(x)`` and a primitive ``G(x)`` (``G' = g``), the smooth stand-in for
the spike used to check gradients by finite differences.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

from snnjax import _checks
from snnjax._registry import Registry

Array = jax.Array
SurrogateFn = Callable[..., Array]


@dataclasses.dataclass(frozen=True)
class Surrogate:
    """A named surrogate: derivative ``g(x, **params)`` and primitive ``G``."""

    name: str
    derivative: SurrogateFn
    primitive: SurrogateFn | None
    defaults: Mapping[str, float]

    def params(self, **overrides: float) -> dict[str, float]:
        unknown = set(overrides) - set(self.defaults)
        if unknown:
            raise ValueError(
                f"surrogate {self.name!r} got unknown parameter(s) {sorted(unknown)}; "
                f"it accepts {sorted(self.defaults)}"
            )
        return {**self.defaults, **overrides}


REGISTRY: Registry[Surrogate] = Registry("surrogate")


def register_surrogate(
    name: str,
    derivative: SurrogateFn,
    primitive: SurrogateFn | None = None,
    *,
    override: bool = False,
    **defaults: float,
) -> Surrogate:
    """Adds a surrogate to the registry (``derivative(x, **params)``, x = V - vth);
    a taken name raises ValueError unless ``override=True``."""
    if not callable(derivative):
        raise ValueError(f"derivative for surrogate {name!r} must be callable")
    return REGISTRY.register(
        name, Surrogate(name, derivative, primitive, dict(defaults)), override=override
    )


def surrogate_names() -> tuple[str, ...]:
    return REGISTRY.names()


def get_surrogate(surrogate: str | SurrogateFn | Surrogate) -> Surrogate:
    """Resolves a name, a :class:`Surrogate`, or a bare derivative function."""
    if isinstance(surrogate, Surrogate):
        return surrogate
    if isinstance(surrogate, str):
        return REGISTRY.get(surrogate)
    if callable(surrogate):
        return Surrogate(getattr(surrogate, "__name__", "custom"), surrogate, None, {})
    raise ValueError(f"surrogate must be a name, a Surrogate or a callable, got {surrogate!r}")


# --- The built-in surrogates (x = V - vth) ------------------------------------


def _rectangular(x, width):
    # The authors' choice: 1{|x| < width} (height 1, so unit area for width 0.5).
    return (jnp.abs(x) < width).astype(x.dtype)


def _rectangular_primitive(x, width):
    return jnp.clip(x, -width, width)


def _triangle(x, width):
    # Peak 1/width at x = 0, zero beyond |x| >= width: unit area.
    return jnp.maximum(0.0, 1.0 - jnp.abs(x) / width) / width


def _triangle_primitive(x, width):
    z = jnp.clip(x / width, -1.0, 1.0)
    return z - jnp.sign(z) * z * z / 2


def _sigmoid(x, slope):
    s = jax.nn.sigmoid(slope * x)
    return slope * s * (1 - s)


def _sigmoid_primitive(x, slope):
    return jax.nn.sigmoid(slope * x)


def _fast_sigmoid(x, slope):
    # SuperSpike (Zenke & Ganguli 2018) as in snnTorch: 1 / (1 + slope |x|)^2.
    return 1.0 / (1.0 + slope * jnp.abs(x)) ** 2


def _fast_sigmoid_primitive(x, slope):
    return x / (1.0 + slope * jnp.abs(x))


def _atan(x, alpha):
    # SpikingJelly/snnTorch ATan: (alpha / 2) / (1 + (pi / 2 * alpha * x)^2).
    return (alpha / 2) / (1.0 + (math.pi / 2 * alpha * x) ** 2)


def _atan_primitive(x, alpha):
    return jnp.arctan(math.pi / 2 * alpha * x) / math.pi + 0.5


register_surrogate("rectangular", _rectangular, _rectangular_primitive, width=0.5)
register_surrogate("triangle", _triangle, _triangle_primitive, width=0.5)
register_surrogate("sigmoid", _sigmoid, _sigmoid_primitive, slope=4.0)
register_surrogate("fast_sigmoid", _fast_sigmoid, _fast_sigmoid_primitive, slope=25.0)
register_surrogate("atan", _atan, _atan_primitive, alpha=2.0)


# --- The spike function ---------------------------------------------------------


def _sum_to_shape(x: Array, shape: tuple[int, ...]) -> Array:
    """Sums a broadcast cotangent back to ``shape`` (numpy broadcasting rules)."""
    extra = x.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        extra + i for i, n in enumerate(shape) if n == 1 and x.shape[extra + i] != 1
    )
    return jnp.sum(x, axis=axes).reshape(shape) if axes else x.reshape(shape)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _heaviside(v, vth, derivative, params):
    return (v > vth).astype(v.dtype)


def _heaviside_fwd(v, vth, derivative, params):
    return _heaviside(v, vth, derivative, params), (v, vth)


def _heaviside_bwd(derivative, params, residuals, ct):
    v, vth = residuals
    g = ct * derivative(v - vth, **dict(params)).astype(ct.dtype)
    return (
        _sum_to_shape(g, v.shape).astype(v.dtype),
        -_sum_to_shape(g, vth.shape).astype(vth.dtype),
    )


_heaviside.defvjp(_heaviside_fwd, _heaviside_bwd)


def spike(
    v: Array,
    vth: Array | float = 0.5,
    surrogate: str | SurrogateFn | Surrogate = "rectangular",
    **params: float,
) -> Array:
    """Heaviside spike ``H(v - vth)`` (paper Eq. 3) with a surrogate gradient.

    Args:
      v: membrane potential, any shape, floating dtype.
      vth: threshold, a scalar or an array broadcastable to ``v`` (may be learnable;
        it receives ``-dS/dv``).
      surrogate: a registered name (see :func:`surrogate_names`), a
        :class:`Surrogate`, or a derivative function ``g(x, **params)``.
      **params: the surrogate's parameters (e.g. ``width=0.5``, ``slope=25``).

    Returns:
      0/1 spikes of ``v``'s dtype and the broadcast shape of ``v`` and ``vth``.
    """
    v = jnp.asarray(v)
    _checks.floating(v, "v")
    _checks.positive(vth, "vth")
    vth = jnp.asarray(vth, dtype=v.dtype)
    sg = get_surrogate(surrogate)
    p = tuple(sorted(sg.params(**params).items()))
    if v.shape != jnp.broadcast_shapes(v.shape, vth.shape):
        v = jnp.broadcast_to(v, jnp.broadcast_shapes(v.shape, vth.shape))
    return _heaviside(v, vth, sg.derivative, p)
