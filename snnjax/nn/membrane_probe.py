"""Membrane health of the spiking layers: why a layer fires, or goes silent.

A LIF layer whose membrane sits far below ``vth`` rarely fires (it passes little
signal forward) and, with a surrogate of bounded support (the paper's
rectangular ``|V - vth| < 0.5``), passes no gradient backward either. For every
spiking layer (the block's encoder, whose "membrane" is the block input, and
each LIF layer) :func:`membrane_stats` reports the spike rate (Eq. 13), the
mean and standard deviation of ``V``, and the fraction of neurons where the
surrogate derivative is at least 10 % of its peak (``in_window``: the neurons
that learn).

    stats = membrane_stats(model, images)   # {"s1b1.lif1": MembraneStats, ...}
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from snnjax.counts import block_name
from snnjax.surrogate import get_surrogate


class MembraneStats(NamedTuple):
    """Batch statistics of one spiking layer (scalars)."""

    rate: jax.Array
    v_mean: jax.Array
    v_std: jax.Array
    in_window: jax.Array


def measure(v: jax.Array, vth, surrogate: str, surrogate_params: dict) -> MembraneStats:
    """:class:`MembraneStats` of membrane values ``v`` (any shape)."""
    sur = get_surrogate(surrogate)
    params = sur.params(**surrogate_params)
    v = v.astype(jnp.float32)
    g = sur.derivative(v - vth, **params)
    peak = sur.derivative(jnp.zeros(()), **params)
    return MembraneStats(
        rate=jnp.mean(v > vth),
        v_mean=jnp.mean(v),
        v_std=jnp.std(v),
        in_window=jnp.mean(g >= 0.1 * peak),
    )


def membrane_stats(model: nnx.Module, images: jax.Array) -> dict[str, MembraneStats]:
    """Runs ``model`` on ``images`` with every mixer's probe on and returns
    ``"s{stage}b{block}.{layer}" -> MembraneStats`` in network order. The model
    is left as it was (probes off, no intermediates kept)."""
    model.set_attributes(probe=True, raise_if_not_found=False)
    try:
        sown = _probed_call(model, images)
    finally:
        model.set_attributes(probe=False, raise_if_not_found=False)
    out = {}
    for path, value in nnx.to_flat_state(sown):
        # path: ("stages", s, b, "mixer", "probe_<layer>"); sow keeps one entry
        # per call.
        layer = path[-1].removeprefix("probe_")
        out[f"{block_name(path[1], path[2])}.{layer}"] = MembraneStats(*value.get_value()[0])
    return out


@nnx.jit
def _probed_call(model: nnx.Module, images: jax.Array) -> nnx.State:
    """One jitted call with the probes on; returns what they sowed."""
    _, sown = nnx.capture(model, nnx.Intermediate)(images)
    return sown
