"""Recurrent synaptic operators over a window's tokens (paper Sec. 3, Table 6).

All directions advance in one token scan (one batched matmul per step). The
LSTM (:func:`lstm_scan`) computes its input projection inside the scan, one
matmul of [x_t, h] per step, and has a hand-written backward pass whose loop
carries only what is sequential: the weight gradients are one matmul over all
tokens after it. GRU and RNN project all tokens in one matmul before the scan
and are differentiated by autodiff.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

CELLS = {"lstm": 4, "gru": 3, "rnn": 1}  # gates per cell


def _lstm_gates(z):
    """Activated gates (input, forget, cell, output) of pre-activations ``z``."""
    i, f, g, o = jnp.split(z, 4, axis=-1)
    return jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)


def _token(direction, step, length):
    """The token that ``direction`` reads at scan ``step``: 0 reads forward, 1 backward."""
    return step if direction == 0 else length - 1 - step


def _read(per_direction, step):
    """(D, ...) stack of each direction's row at ``step`` of its (L, ...) array."""
    length = per_direction[0].shape[0]
    return jnp.stack(
        [
            jax.lax.dynamic_index_in_dim(a, _token(d, step, length), keepdims=False)
            for d, a in enumerate(per_direction)
        ]
    )


def _write(per_direction, rows, step):
    """Each direction's (L, ...) array with ``rows[d]`` written at its token of ``step``."""
    length = per_direction[0].shape[0]
    return tuple(
        jax.lax.dynamic_update_index_in_dim(a, rows[d], _token(d, step, length), 0)
        for d, a in enumerate(per_direction)
    )


def _check_directions(count):
    if count not in (1, 2):
        raise ValueError(f"one or two directions expected, got {count}")


def _lstm_forward(tokens, w_in, w_rec, b_rec, unroll):
    """The LSTM recurrence; returns the hidden states (token order) and, per scan
    step, the cell states and activated gates (the backward pass's residuals)."""
    directions, hidden = w_rec.shape[:2]
    _check_directions(directions)
    length, n, _ = tokens.shape
    w_cat = jnp.concatenate([w_in, w_rec], axis=1)  # (D, C + H, 4H): one matmul per step
    zeros = jnp.zeros((directions, n, hidden), tokens.dtype)
    per_direction = (tokens,) * directions

    def step(carry, s):
        c, h, outs = carry
        xh = jnp.concatenate([_read(per_direction, s), h], axis=-1)
        i, f, g, o = _lstm_gates(jnp.einsum("dnk,dkg->dng", xh, w_cat) + b_rec[:, None])
        c = f * c + i * g
        h = o * jnp.tanh(c)
        return (c, h, _write(outs, h, s)), (c, jnp.concatenate([i, f, g, o], axis=-1))

    outs = tuple(jnp.zeros((length, n, hidden), tokens.dtype) for _ in range(directions))
    (_, _, outs), (cs, gates) = jax.lax.scan(
        step, (zeros, zeros, outs), jnp.arange(length), unroll=unroll
    )
    return outs, cs, gates


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def lstm_scan(tokens, w_in, w_rec, b_rec, unroll=1):
    """LSTM over tokens from zero states, one or two directions advancing together.

    ``tokens`` (L, N, C): the inputs in token order; direction 0 reads tokens
    0..L-1, direction 1 (if there are two) L-1..0. ``w_in`` (D, C, 4H),
    ``w_rec`` (D, H, 4H), ``b_rec`` (D, 4H), gates i, f, g, o. Returns per
    direction the hidden states (L, N, H), in token order.

    Each step is one matmul of [x_t, h] with [w_in; w_rec], so no (L, N, 4H)
    projection is written to memory; the backward pass (hand-written) carries
    only (dh, dc) through the reversed loop, and the weight gradients are one
    matmul per direction over all tokens after the loop (autodiff of the scan
    accumulates a small matmul per token). No array is reversed or transposed:
    each direction indexes its own tokens. Tests compare it with autodiff of a
    token loop."""
    return _lstm_forward(tokens, w_in, w_rec, b_rec, unroll)[0]


def _lstm_scan_fwd(tokens, w_in, w_rec, b_rec, unroll):
    outs, cs, gates = _lstm_forward(tokens, w_in, w_rec, b_rec, unroll)
    return outs, (tokens, outs, cs, gates, w_in, w_rec)


def _lstm_scan_bwd(unroll, residuals, d_outs):
    tokens, outs, cs, gates, w_in, w_rec = residuals
    channels = tokens.shape[-1]
    zeros = jnp.zeros_like(cs[0])
    c_prev = jnp.concatenate([zeros[None], cs[:-1]])  # the cell state each step read
    w_cat_t = jnp.swapaxes(jnp.concatenate([w_in, w_rec], axis=1), 1, 2)  # (D, 4H, C + H)

    def step(carry, xs):
        dh, dc, d_tokens, d_z = carry
        s, c, c_before, gate = xs
        i, f, g, o = jnp.split(gate, 4, axis=-1)
        dh = dh + _read(d_outs, s)
        tanh_c = jnp.tanh(c)
        dc = dc + dh * o * (1 - tanh_c**2)
        dz = jnp.concatenate(
            [
                dc * g * i * (1 - i),
                dc * c_before * f * (1 - f),
                dc * i * (1 - g**2),
                dh * tanh_c * o * (1 - o),
            ],
            axis=-1,
        )
        dxh = jnp.einsum("dng,dgk->dnk", dz, w_cat_t)
        d_tokens = _write(d_tokens, dxh[..., :channels], s)
        return (dxh[..., channels:], dc * f, d_tokens, _write(d_z, dz, s)), None

    directions = len(outs)
    d_tokens = tuple(jnp.zeros_like(tokens) for _ in range(directions))
    d_z = tuple(jnp.zeros(gates.shape[:1] + gates.shape[2:], gates.dtype) for _ in outs)
    (_, _, d_tokens, d_z), _ = jax.lax.scan(
        step,
        (zeros, zeros, d_tokens, d_z),
        (jnp.arange(cs.shape[0]), cs, c_prev, gates),
        reverse=True,
        unroll=unroll,
    )
    d_w_in = jnp.stack([jnp.einsum("lnc,lng->cg", tokens, d) for d in d_z])
    # The hidden state each token's step read: its predecessor in reading order.
    d_w_rec = [jnp.einsum("lnh,lng->hg", outs[0][:-1], d_z[0][1:])]
    if directions == 2:
        d_w_rec.append(jnp.einsum("lnh,lng->hg", outs[1][1:], d_z[1][:-1]))
    d_b = jnp.stack([d.sum(axis=(0, 1)) for d in d_z])
    return sum(d_tokens), d_w_in, jnp.stack(d_w_rec), d_b


lstm_scan.defvjp(_lstm_scan_fwd, _lstm_scan_bwd)


def _scan_tokens(cell, pres, w_rec, b_rec, unroll):
    """GRU or vanilla RNN (the LSTM: :func:`lstm_scan`), with the arguments and
    result of :func:`lstm_scan` (G gates per direction); plain autodiff."""
    _check_directions(len(pres))
    length, n, _ = pres[0].shape
    h0 = jnp.zeros((len(pres), n, w_rec.shape[1]), pres[0].dtype)

    def step(carry, s):
        h, outs = carry
        p = _read(pres, s)
        rec = jnp.einsum("dnh,dhg->dng", h, w_rec) + b_rec[:, None]
        if cell == "gru":
            xr, xz, xn = jnp.split(p, 3, axis=-1)
            hr, hz, hn = jnp.split(rec, 3, axis=-1)
            r, z = jax.nn.sigmoid(xr + hr), jax.nn.sigmoid(xz + hz)
            h = (1 - z) * jnp.tanh(xn + r * hn) + z * h
        else:
            h = jnp.tanh(p + rec)
        return (h, _write(outs, h, s)), None

    outs = tuple(jnp.zeros((length,) + h0.shape[1:], h0.dtype) for _ in pres)
    (_, outs), _ = jax.lax.scan(step, (h0, outs), jnp.arange(length), unroll=unroll)
    return outs


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
        self.cell, self.unroll = cell, unroll
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
        n, h, w, c = x.shape
        kernel = self.w_in.kernel[...]
        dtype = self.dtype or jnp.result_type(x.dtype, kernel.dtype)
        # Token-major before the projection (C channels, not D x G): no
        # (L, N, D x G) array is transposed, split or reversed.
        tokens = jnp.swapaxes(x.reshape(n, h * w, c), 0, 1).astype(dtype)  # (L, N, C)
        kernel = kernel.astype(dtype)
        gates = kernel.shape[-1] // self.directions
        w_rec, b_rec = self.w_rec[...].astype(dtype), self.b_rec[...].astype(dtype)
        if self.cell == "lstm":  # the input projection runs inside the token scan
            w_in = jnp.swapaxes(kernel.reshape(c, self.directions, gates), 0, 1)
            outs = lstm_scan(tokens, w_in, w_rec, b_rec, self.unroll)
        else:
            pres = tuple(
                tokens @ kernel[:, d * gates : (d + 1) * gates] for d in range(self.directions)
            )
            outs = _scan_tokens(self.cell, pres, w_rec, b_rec, self.unroll)
        out = jnp.concatenate(outs, axis=-1)  # (L, N, D x hidden)
        return jnp.swapaxes(out, 0, 1).reshape(n, h, w, -1)
