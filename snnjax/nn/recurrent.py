"""Recurrent synaptic operators over a window's tokens (paper Sec. 3, Table 6).

The input projection of every token does not depend on the recurrent state, so
it runs as one matmul over all windows and tokens; only ``h @ W_rec`` is inside
the token scan (the same batching rule as :func:`snnjax.window_lif`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

CELLS = {"lstm": 4, "gru": 3, "rnn": 1}  # gates per cell


def _lstm(pre, c, h_rec, hidden):
    z = pre + h_rec
    i, f, g, o = jnp.split(z, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    return c, jax.nn.sigmoid(o) * jnp.tanh(c)


def _scan_tokens(cell, pre, w_rec, b_rec, hidden, unroll):
    """pre: (L, D, N, G*hidden) input projections, token-major, one slice per
    direction (each already in its own reading order); w_rec (D, hidden,
    G*hidden), b_rec (D, G*hidden). Both directions advance in the same scan
    step, one batched matmul for all: half the sequential steps of one scan per
    direction. Returns (L, D, N, hidden)."""
    h0 = jnp.zeros(pre.shape[1:-1] + (hidden,), pre.dtype)

    def step(carry, p):
        c, h = carry
        rec = jnp.einsum("dnh,dhg->dng", h, w_rec) + b_rec[:, None]
        if cell == "lstm":
            c, h = _lstm(p, c, rec, hidden)
        elif cell == "gru":
            xr, xz, xn = jnp.split(p, 3, axis=-1)
            hr, hz, hn = jnp.split(rec, 3, axis=-1)
            r, z = jax.nn.sigmoid(xr + hr), jax.nn.sigmoid(xz + hz)
            h = (1 - z) * jnp.tanh(xn + r * hn) + z * h
        else:
            h = jnp.tanh(p + rec)
        return (c, h), h

    _, hs = jax.lax.scan(step, (h0, h0), pre, unroll=unroll)
    return hs


class RecurrentSynapse(nnx.Module):
    """(Bi)LSTM / GRU / RNN over the tokens of each window, row-major order.

    Maps (N, h, w, C_in) -> (N, h, w, hidden * directions). The hidden-to-hidden
    weights and bias are real-valued inputs (MACs); the input weights see spikes.
    """

    def __init__(
        self,
        in_features: int,
        hidden: int,
        *,
        cell: str = "lstm",
        bidirectional: bool = True,
        unroll: int = 1,
        dtype=None,
        rngs: nnx.Rngs,
    ):
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
        self.cell, self.hidden, self.unroll = cell, hidden, unroll
        self.directions = 2 if bidirectional else 1
        gates = CELLS[cell] * hidden
        self.w_in = nnx.Linear(
            in_features, gates * self.directions, use_bias=False, dtype=dtype, rngs=rngs
        )
        orth = nnx.initializers.orthogonal()
        self.w_rec = nnx.Param(
            jnp.stack([orth(rngs.params(), (hidden, gates)) for _ in range(self.directions)])
        )
        bias = jnp.zeros((self.directions, gates))
        if cell == "lstm":  # forget-gate bias 1 (Jozefowicz et al. 2015)
            bias = bias.at[:, hidden : 2 * hidden].set(1.0)
        self.b_rec = nnx.Param(bias)
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        n, h, w, _ = x.shape
        pre = self.w_in(x.reshape(n, h * w, -1))  # (N, L, D*G)
        pre = jnp.swapaxes(pre, 0, 1)  # token-major (L, N, D*G)
        dtype = pre.dtype
        chunks = jnp.split(pre, self.directions, axis=-1)
        if self.directions == 2:
            chunks[1] = chunks[1][::-1]  # the backward direction reads the tokens reversed
        hs = _scan_tokens(
            self.cell,
            jnp.stack(chunks, axis=1),  # (L, D, N, G)
            self.w_rec[...].astype(dtype),
            self.b_rec[...].astype(dtype),
            self.hidden,
            self.unroll,
        )
        outs = [hs[:, 0]] if self.directions == 1 else [hs[:, 0], hs[::-1, 1]]
        out = jnp.concatenate(outs, axis=-1)  # (L, N, D*hidden)
        return jnp.swapaxes(out, 0, 1).reshape(n, h, w, -1)
