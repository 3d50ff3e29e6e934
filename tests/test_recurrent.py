"""RecurrentSynapse against a numpy loop over tokens."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from snnjax.nn.recurrent import RecurrentSynapse, lstm_scan


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def reference(x, w_in, w_rec, b_rec, cell, directions, hidden):
    n, h, w, _ = x.shape
    tokens = x.reshape(n, h * w, -1)
    pre_all = tokens @ w_in
    outs = []
    for d in range(directions):
        g = pre_all.shape[-1] // directions
        pre = pre_all[..., d * g : (d + 1) * g]
        order = range(h * w) if d == 0 else reversed(range(h * w))
        hs = np.zeros((n, h * w, hidden))
        c = np.zeros((n, hidden))
        hh = np.zeros((n, hidden))
        for t in order:
            rec = hh @ w_rec[d] + b_rec[d]
            p = pre[:, t]
            if cell == "lstm":
                i, f, gg, o = np.split(p + rec, 4, axis=-1)
                c = sigmoid(f) * c + sigmoid(i) * np.tanh(gg)
                hh = sigmoid(o) * np.tanh(c)
            elif cell == "gru":
                xr, xz, xn = np.split(p, 3, axis=-1)
                hr, hz, hn = np.split(rec, 3, axis=-1)
                r, z = sigmoid(xr + hr), sigmoid(xz + hz)
                hh = (1 - z) * np.tanh(xn + r * hn) + z * hh
            else:
                hh = np.tanh(p + rec)
            hs[:, t] = hh
        outs.append(hs)
    return np.concatenate(outs, -1).reshape(n, h, w, -1)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_matches_token_loop(cell, bidirectional):
    m = RecurrentSynapse(3, 5, cell=cell, bidirectional=bidirectional, rngs=nnx.Rngs(0))
    x = (jax.random.uniform(jax.random.key(1), (2, 3, 4, 3)) > 0.5).astype(jnp.float32)
    got = m(x)
    d = 2 if bidirectional else 1
    assert got.shape == (2, 3, 4, 5 * d)
    want = reference(
        np.asarray(x, np.float64),
        np.asarray(m.w_in.kernel[...], np.float64),
        np.asarray(m.w_rec[...], np.float64),
        np.asarray(m.b_rec[...], np.float64),
        cell,
        d,
        5,
    )
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_unknown_cell():
    with pytest.raises(ValueError, match="cell"):
        RecurrentSynapse(3, 5, cell="transformer", rngs=nnx.Rngs(0))


def lstm_loop(tokens, w_in, w_rec, b_rec):
    """A Python loop over tokens per direction (direction 1 reads backwards),
    differentiated by plain autodiff: the reference for lstm_scan's custom VJP."""
    length = tokens.shape[0]
    outs = []
    for d in range(w_rec.shape[0]):
        c = h = jnp.zeros(tokens.shape[1:-1] + (w_rec.shape[1],))
        hs = [None] * length
        for t in range(length) if d == 0 else reversed(range(length)):
            z = tokens[t] @ w_in[d] + h @ w_rec[d] + b_rec[d]
            i, f, g, o = jnp.split(z, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            hs[t] = h
        outs.append(jnp.stack(hs))
    return tuple(outs)


@pytest.mark.parametrize(("directions", "unroll"), [(1, 1), (2, 3)])
def test_lstm_scan_values_and_gradients_match_autodiff_of_a_token_loop(directions, unroll):
    length, n, channels, hidden = 6, 3, 2, 4
    keys = jax.random.split(jax.random.key(directions), 5)
    tokens = jax.random.normal(keys[0], (length, n, channels))
    w_in = jax.random.normal(keys[4], (directions, channels, 4 * hidden))
    w_rec = 0.5 * jax.random.normal(keys[1], (directions, hidden, 4 * hidden))
    b_rec = jax.random.normal(keys[2], (directions, 4 * hidden))
    cotangents = jax.random.split(keys[3], directions)
    cotangents = tuple(jax.random.normal(k, (length, n, hidden)) for k in cotangents)

    def loss(fn):
        return lambda *args: sum(jnp.sum(o * c) for o, c in zip(fn(*args), cotangents))

    args = (tokens, w_in, w_rec, b_rec)
    got = lstm_scan(*args, unroll)
    want = lstm_loop(*args)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    grads = jax.grad(loss(lambda *a: lstm_scan(*a, unroll)), argnums=(0, 1, 2, 3))(*args)
    ref = jax.grad(loss(lstm_loop), argnums=(0, 1, 2, 3))(*args)
    for g, w in zip(grads, ref):
        assert np.abs(w).max() > 1e-3  # every gradient is exercised
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_lstm_scan_rejects_three_directions():
    with pytest.raises(ValueError, match="one or two directions"):
        lstm_scan(
            jnp.zeros((2, 1, 3)), jnp.zeros((3, 3, 4)), jnp.zeros((3, 1, 4)), jnp.zeros((3, 4))
        )
