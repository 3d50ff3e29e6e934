"""The discrete leaky integrate-and-fire neuron (paper Eq. 6/9, METHOD Sec. 2).

One step over "n", which is a time step (classic SNN, T > 1) or a window group
(this method, T = 1)::

    u   = fusion(V_{n-1}, B_n)        # Eq. 5; u = V_{n-1} when no stream B
    V_n = alpha * u + I_n - vth * S_{n-1}          # soft reset: Eq. 6/9 (default)
    V_n = alpha * u * (1 - S_{n-1}) + I_n          # hard reset (option)
    V_n = alpha * u + I_n                          # no reset (the authors' code)
    S_n = H(V_n - vth)                             # Eq. 3, surrogate backward

The paper's Eq. 9 with fusion is ``V_n = alpha * Omega(V_{n-1}, B_n) + I_n -
vth * S_{n-1}``: the default everywhere (functions, models, configs).

The state is an explicit pytree :class:`LIFState`; nothing is hidden.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp

from snnjax import _checks
from snnjax.fusion import FusionFn, get_fusion
from snnjax.surrogate import Surrogate, SurrogateFn, spike

Array = jax.Array
RESETS = ("soft", "hard", "none")

# The paper's LIF neuron (Sec. 4.1), the defaults of lif_step, lif_scan and
# snnjax.nn.SequencerConfig: leak, threshold, reset, fusion and its theta, and
# the surrogate gradient.
ALPHA = 0.4
VTH = 0.5
RESET = "soft"
FUSION = "omega"
THETA = 0.5
SURROGATE = "rectangular"


class LIFState(NamedTuple):
    """Membrane ``v`` and last spikes ``s`` (same shape)."""

    v: Array
    s: Array

    @classmethod
    def zeros(cls, shape, dtype=jnp.float32) -> LIFState:
        return cls(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))


def _validate(reset, vth, fusion, surrogate):
    _checks.one_of(reset, RESETS, "reset")
    _checks.positive(vth, "vth")
    get_fusion(fusion)  # raises a clear ValueError for unknown names


def lif_step(
    state: LIFState,
    current: Array,
    fused: Array | None = None,
    *,
    alpha: Array | float = ALPHA,
    vth: Array | float = VTH,
    reset: str = RESET,
    fusion: str | FusionFn = FUSION,
    theta: float = THETA,
    surrogate: str | SurrogateFn | Surrogate = SURROGATE,
    surrogate_params: Mapping[str, float] | None = None,
) -> tuple[LIFState, Array]:
    """One LIF update (Eq. 6, with the Omega fusion of Eq. 5 when ``fused`` is given).

    Args:
      state: the previous :class:`LIFState`.
      current: synaptic input ``I_n``, the shape of ``state.v``.
      fused: the second membrane stream ``B_n`` (previous layer, same window), or
        None for the plain neuron.
      alpha, vth: leak and threshold; floats or arrays broadcastable to the state
        (pass arrays to learn them).
      reset: "soft" (subtract vth * S: Eq. 6/9, the default), "hard" (multiply
        by 1 - S) or "none" (never reset within the scan: the authors' code).
      fusion, theta: the fusion function (name or callable) and its theta.
      surrogate, surrogate_params: the spike's surrogate gradient.

    Returns:
      ``(new_state, spikes)``.
    """
    _validate(reset, vth, fusion, surrogate)
    return _step(
        state,
        current,
        fused,
        alpha,
        vth,
        reset,
        get_fusion(fusion),
        theta,
        surrogate,
        dict(surrogate_params or {}),
    )


def _step(state, current, fused, alpha, vth, reset, fusion_fn, theta, surrogate, surrogate_params):
    u = state.v if fused is None else fusion_fn(state.v, fused, theta)
    if reset == "soft":
        v = alpha * u + current - vth * state.s
    elif reset == "hard":
        v = alpha * u * (1 - state.s) + current
    else:
        v = alpha * u + current
    v = v.astype(current.dtype)
    s = spike(v, vth, surrogate, **surrogate_params)
    return LIFState(v, s), s


def lif_scan(
    currents: Array,
    fused: Array | None = None,
    init: LIFState | None = None,
    *,
    alpha: Array | float = ALPHA,
    vth: Array | float = VTH,
    reset: str = RESET,
    fusion: str | FusionFn = FUSION,
    theta: float = THETA,
    surrogate: str | SurrogateFn | Surrogate = SURROGATE,
    surrogate_params: Mapping[str, float] | None = None,
    unroll: int | bool = 1,
    remat: bool = False,
) -> tuple[LIFState, tuple[Array, Array]]:
    """Scans :func:`lif_step` over the leading axis of ``currents`` (``jax.lax.scan``).

    The leading axis is time (T steps) or window groups (P windows, Sec. 3).

    Args:
      currents: ``(N, ...)`` input currents, one slice per step.
      fused: optional ``(N, ...)`` second membrane stream, same shape.
      init: initial state; zeros (group 1 starts from rest) when None.
      unroll: passed to ``lax.scan``.
      remat: rematerialise each step in the backward pass (``jax.checkpoint``),
        trading compute for memory on long scans.
      alpha, vth, reset, fusion, theta, surrogate, surrogate_params: as in
        :func:`lif_step`.

    Returns:
      ``(final_state, (spikes, membranes))`` with spikes and membranes ``(N, ...)``;
      membranes are ``V_n`` before reset.
    """
    _checks.floating(currents, "currents")
    _checks.rank(currents, set(range(1, 10)), "currents")
    if fused is not None:
        _checks.same_shape(currents, fused, "currents", "fused")
    _validate(reset, vth, fusion, surrogate)
    if init is None:
        init = LIFState.zeros(currents.shape[1:], currents.dtype)
    elif init.v.shape != currents.shape[1:] or init.s.shape != currents.shape[1:]:
        raise ValueError(
            f"init state must have shape {currents.shape[1:]} "
            f"(currents without the leading axis), got {init.v.shape}"
        )
    fusion_fn = get_fusion(fusion)
    params = dict(surrogate_params or {})

    def body(state, xs):
        current, b = xs
        state, s = _step(state, current, b, alpha, vth, reset, fusion_fn, theta, surrogate, params)
        return state, (s, state.v)

    if remat:
        body = jax.checkpoint(body)
    return jax.lax.scan(body, init, (currents, fused), unroll=unroll)
