"""The windowed spiking layer as a function (paper Sec. 3, Eq. 4-5).

partition -> synaptic operator on every window -> LIF scan over the window groups
with membrane fusion -> recompose spikes and membrane.

With ``activation`` (the ANN counterpart used for conversion, METHOD Sec. 7) the
same windows and synapses run, but each LIF layer is replaced by an activation
of its currents: no membrane, so no scan over the window groups (every window is
independent) and no fusion; the maps are recomposed by the mean of overlapping
windows (no region threshold: the values are not spikes).

Performance rules: a synaptic operator does not depend on the carried membrane,
so it runs once, batched over all P * B windows; only the elementwise neuron
update is inside the scan. Each layer's spikes and membranes are materialised
(an optimisation barrier) before the next layer reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from snnjax import _checks
from snnjax.neuron import lif_scan
from snnjax.windows import partition, recompose, window_layout

Array = jax.Array
Synapse = Callable[[Array], Array]
Activation = Callable[[Array], Array]


class WindowLIFOutput(NamedTuple):
    """What :func:`window_lif` returns.

    spikes, membrane: (B, H, W, C) recomposed maps of the last LIF layer (with
      an activation: its activations, and membrane None).
    window_spikes, window_membranes, window_currents: per LIF layer, (P, B, h,
      w, C_l) before recompose (for spike statistics and threshold balancing;
      unused outputs cost nothing under jit). With an activation: the
      activations, and as membranes the currents (nothing is carried: V = I).
    """

    spikes: Array
    membrane: Array | None
    window_spikes: tuple[Array, ...]
    window_membranes: tuple[Array, ...]
    window_currents: tuple[Array, ...] = ()


def window_lif(
    x: Array,
    synapse: Synapse | Sequence[Synapse],
    membrane: Array | None = None,
    *,
    grid=(2, 2),
    dilated: bool = False,
    region_threshold: float | None = 0.1,
    per_layer: Sequence[Mapping[str, Any]] = (),
    activation: Activation | Sequence[Activation] | None = None,
    **neuron,
) -> WindowLIFOutput:
    """One windowed spiking layer, or a stack of them sharing the windows.

    Args:
      x: (B, H, W, C) input map (spikes or currents).
      synapse: a function (N, h, w, C_in) -> (N, h, w, C_out) applied to all
        windows at once (N = P * B), or a sequence of them: layer k's spikes feed
        synapse k + 1 inside the same windows (the conv mixer's conv -> LIF ->
        conv -> LIF), and layer k + 1 fuses layer k's membrane (Sec. 5).
      membrane: (B, H, W, C_out) membrane map of the previous spiking layer (the
        fused stream ``b`` of the first LIF layer), or None for b = 0.
      grid, dilated: the window layout (:func:`snnjax.partition`).
      region_threshold: for recomposing the spike map (:func:`snnjax.recompose`).
      per_layer: optional neuron options for each LIF layer (e.g. its own
        learnable ``alpha`` and ``vth``), overriding ``**neuron``.
      activation: None for LIF layers; else a function of the currents (or one
        per synapse) that replaces them: the ANN counterpart (module docstring).
        ``membrane`` must then be None.
      **neuron: options of :func:`snnjax.lif_scan` shared by all layers (alpha,
        vth, reset, fusion, theta, surrogate, surrogate_params, unroll, remat).

    Returns:
      :class:`WindowLIFOutput`.
    """
    _checks.rank(x, 4, "x (B, H, W, C)")
    synapses = (synapse,) if callable(synapse) else tuple(synapse)
    if not synapses or not all(callable(f) for f in synapses):
        raise ValueError("synapse must be a callable or a non-empty sequence of callables")
    if per_layer and len(per_layer) != len(synapses):
        raise ValueError(
            f"per_layer must hold one mapping per synapse ({len(synapses)}), got {len(per_layer)}"
        )
    activations = _activations(activation, len(synapses))
    if activations and membrane is not None:
        raise ValueError("membrane must be None with an activation (the ANN carries none)")
    B, H, W, _ = x.shape
    layout = window_layout((H, W), grid, dilated)
    P, (h, w) = layout.num_windows, layout.window_shape

    inputs = partition(x, grid, dilated).reshape(P * B, h, w, -1)
    fused = None if membrane is None else partition(membrane, grid, dilated)
    spikes, membranes, window_currents = [], [], []
    for k, syn in enumerate(synapses):
        currents = syn(inputs)
        if currents.shape[:3] != (P * B, h, w):
            raise ValueError(
                f"synapse {k} must keep the window shape {(P * B, h, w)}, returned {currents.shape}"
            )
        currents = currents.reshape(P, B, h, w, -1)
        window_currents.append(currents)
        if activations:
            s, v = activations[k](currents), currents
        else:
            if fused is None:
                fused = jnp.zeros_like(currents)
            elif fused.shape != currents.shape:
                what = "membrane" if k == 0 else f"layer {k - 1}'s membrane"
                raise ValueError(
                    f"{what} windows {fused.shape} must match synapse {k}'s currents "
                    f"{currents.shape}"
                )
            options = {**neuron, **(per_layer[k] if per_layer else {})}
            _, (s, v) = lif_scan(currents, fused, **options)
            # Materialise each layer's spikes and membranes. Without the barrier
            # XLA's CPU compiler fuses the chain of LIF layers (each fuses the
            # last one's membrane, Eq. 5) into loop fusions that recompute every
            # earlier step per element: the inference forward ran 4.5x slower
            # (docs/benchmarks.md). Training stores them for the backward anyway.
            s, v = jax.lax.optimization_barrier((s, v))
        spikes.append(s)
        membranes.append(v)
        inputs, fused = s.reshape(P * B, h, w, -1), v

    out_shape = (B, H, W, spikes[-1].shape[-1])
    return WindowLIFOutput(
        recompose(
            spikes[-1],
            grid,
            out_shape,
            dilated,
            spikes=not activations,
            region_threshold=region_threshold,
        ),
        None if activations else recompose(membranes[-1], grid, out_shape, dilated, spikes=False),
        tuple(spikes),
        tuple(membranes),
        tuple(window_currents),
    )


def _activations(activation, layers: int) -> tuple[Activation, ...]:
    """One activation per synapse, or () for LIF layers."""
    if activation is None:
        return ()
    activations = (activation,) * layers if callable(activation) else tuple(activation)
    if len(activations) != layers or not all(callable(f) for f in activations):
        raise ValueError(
            f"activation must be a callable or one callable per synapse ({layers}), "
            f"got {activation!r}"
        )
    return activations
