"""RecurrentSynapse against a numpy loop over tokens."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from snnjax.nn.recurrent import RecurrentSynapse


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
