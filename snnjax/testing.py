"""Independent references for tests and benchmarks (no Flax, no test code).

:func:`window_lif_loop`: the slow reference for :func:`snnjax.window_lif`, a
Python loop over windows, one synaptic call per window and layer, one
``lif_step`` per window. Used by tests/test_window_layer.py and by
benchmarks/train_step.py (the per-window loop baseline)."""

import jax.numpy as jnp

import snnjax


def window_lif_loop(x, synapses, membrane, grid, dilated, region_threshold=0.1, **neuron):
    """Python loop over windows, one synaptic call per window and layer."""
    B, H, W, _ = x.shape
    layout = snnjax.window_layout((H, W), grid, dilated)
    h, w = layout.window_shape
    crop = lambda m, r, c: m[:, r : r + h, c : c + w]
    states = [None] * len(synapses)
    out_s, out_v = [], []
    for r, c in layout.starts:
        inp = crop(x, r, c)
        b = None if membrane is None else crop(membrane, r, c)
        for k, syn in enumerate(synapses):
            current = syn(inp)
            if states[k] is None:
                states[k] = snnjax.LIFState.zeros(current.shape)
            if b is None:
                b = jnp.zeros_like(current)
            states[k], s = snnjax.lif_step(states[k], current, b, **neuron)
            inp, b = s, states[k].v
        out_s.append(inp)
        out_v.append(b)
    out_shape = (B, H, W, out_s[0].shape[-1])
    return (
        snnjax.recompose(
            jnp.stack(out_s), grid, out_shape, dilated, region_threshold=region_threshold
        ),
        snnjax.recompose(jnp.stack(out_v), grid, out_shape, dilated, spikes=False),
    )
