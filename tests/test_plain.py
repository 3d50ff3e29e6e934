"""snnjax.nn.plain / plain_graph: the classic T-step layers against slow numpy
reference loops and hand-computed values (no NIR needed)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from snnjax.nn import plain
from snnjax.nn.plain_graph import Graph, sequential


def _ref_lif(x, alpha, vth, gain, bias, v_reset, reset):
    """NIR's Euler LIF step by step: hard = set to v_reset after the spike; soft =
    subtract vth * S_{n-1} (snnTorch). Returns spikes and membranes before reset."""
    v, s_prev, spikes, mems = np.zeros(x.shape[1:]), np.zeros(x.shape[1:]), [], []
    for n in range(x.shape[0]):
        v = alpha * v + gain * x[n] + bias
        if reset == "soft":
            v = v - vth * s_prev
        s = (v > vth).astype(np.float32)
        mems.append(v.copy())
        spikes.append(s)
        if reset == "hard":
            v = np.where(s > 0, v_reset, v)
        s_prev = s
    return np.stack(spikes), np.stack(mems)


@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_lif_equals_reference_loop(reset):
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.3, 1.0, (20, 3, 4)).astype(np.float32)
    p = dict(
        alpha=np.array([0.5, 0.8, 0.9, 0.95], np.float32),
        vth=np.array([0.6, 1.0, 0.8, 1.2], np.float32),
        gain=np.float32(1.3),
        bias=np.float32(0.05),
        v_reset=np.array([0.0, -0.2, 0.1, 0.3], np.float32),
    )
    s, _, v = plain.LIF(**p, reset=reset)(jnp.asarray(x))
    s_ref, v_ref = _ref_lif(x, **p, reset=reset)
    np.testing.assert_array_equal(s, s_ref)
    np.testing.assert_allclose(v, v_ref, atol=1e-5)
    assert 0 < float(s.mean()) < 1


def test_hand_computed_hard_reset_to_v_reset_and_if():
    s, _, v = plain.LIF(0.5, 1.0, v_reset=0.25)(jnp.array([1.2, 0.5, 0.0])[:, None])
    # 1.2 -> spike, set to .25; .125 + .5 = .625; .3125
    np.testing.assert_allclose(v[:, 0], [1.2, 0.625, 0.3125], rtol=1e-6)
    np.testing.assert_array_equal(s[:, 0], [1, 0, 0])
    s, state, v = plain.IF(1.0, r=0.5)(jnp.array([1.0, 1.0, 1.0, 0.5])[:, None])
    # .5, 1.0 (not > 1), 1.5 -> spike -> 0, .25
    np.testing.assert_allclose(v[:, 0], [0.5, 1.0, 1.5, 0.25])
    np.testing.assert_array_equal(s[:, 0], [0, 0, 1, 0])
    np.testing.assert_allclose(state.v, [0.25])


def test_cuba_lif_and_integrators_equal_reference_loops():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (15, 2, 3)).astype(np.float32)
    i, i_ref = 0.0, []
    for n in range(15):
        i = 0.7 * i + 0.5 * x[n]
        i_ref.append(i)
    i_ref = np.stack(i_ref)
    s_ref, v_ref = _ref_lif(i_ref, 0.9, 0.4, 2.0, 0.0, 0.0, "hard")
    s, state, v = plain.CubaLIF(0.7, 0.9, 0.4, syn_gain=0.5, gain=2.0)(jnp.asarray(x))
    np.testing.assert_array_equal(s, s_ref)
    np.testing.assert_allclose(v, v_ref, atol=1e-5)
    np.testing.assert_allclose(state.i, i_ref[-1], atol=1e-6)
    li, _, _ = plain.LI(0.5, gain=2.0, bias=0.1)(jnp.array([1.0, 0.0, 0.0])[:, None])
    np.testing.assert_allclose(li[:, 0], [2.1, 1.15, 0.675])
    y, _, _ = plain.I(0.5)(jnp.array([1.0, 2.0, -1.0])[:, None])
    np.testing.assert_allclose(y[:, 0], [0.5, 1.5, 1.0])
    y, _, _ = plain.CubaLI(0.5, 0.5)(jnp.array([1.0, 0.0])[:, None])
    np.testing.assert_allclose(y[:, 0], [1.0, 1.0])  # i: 1, .5; v: 1, .5 + .5


def test_delay_shifts_each_element_and_continues_from_its_state():
    x = jnp.arange(1.0, 7.0)[:, None, None] * jnp.ones((1, 1, 3))
    delay = plain.Delay(np.array([0, 1, 3]))
    y, state, _ = delay(x)
    np.testing.assert_array_equal(y[:, 0, 0], [1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(y[:, 0, 1], [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(y[:, 0, 2], [0, 0, 0, 1, 2, 3])
    y1, st, _ = delay(x[:4])
    y2, _, _ = delay(x[4:], st)
    np.testing.assert_array_equal(jnp.concatenate([y1, y2]), y)


def test_flatten_uses_channels_first_order_and_pools_match_numpy():
    x = jax.random.normal(jax.random.key(0), (2, 3, 4, 6, 5))  # (T, B, H, W, C)
    y, _, _ = plain.Flatten()(x)
    cf = np.asarray(x).transpose(0, 1, 4, 2, 3)  # (T, B, C, H, W)
    np.testing.assert_array_equal(y, cf.reshape(2, 3, -1))
    y, _, _ = plain.Flatten(1, -1)(x)  # (C, H*W) channels-first -> (H*W, C)
    np.testing.assert_array_equal(y, cf.reshape(2, 3, 5, 24).transpose(0, 1, 3, 2))
    s, _, _ = plain.SumPool2d(2)(x)
    ref = np.asarray(x).reshape(2, 3, 2, 2, 3, 2, 5).sum(axis=(3, 5))
    np.testing.assert_allclose(s, ref, rtol=1e-5, atol=1e-6)
    a, _, _ = plain.AvgPool2d(3, 1, 1)(x)
    padded = np.pad(np.asarray(x), ((0, 0), (0, 0), (1, 1), (1, 1), (0, 0)))
    ref = np.stack(
        [
            [padded[:, :, i : i + 3, j : j + 3].sum(axis=(2, 3)) / 9 for j in range(6)]
            for i in range(4)
        ]
    ).transpose(2, 3, 0, 1, 4)
    np.testing.assert_allclose(a, ref, rtol=1e-5, atol=1e-6)
    t, _, _ = plain.Threshold(0.5)(jnp.array([0.4, 0.5, 0.6]))
    np.testing.assert_array_equal(t, [0, 0, 1])


def test_recurrent_graph_equals_reference_loop_and_continues():
    rngs = nnx.Rngs(0)
    rec = nnx.Linear(4, 4, rngs=rngs)
    graph = Graph(
        {"lif": plain.LIF(0.9, 0.5, reset="soft"), "rec": rec},
        [("input", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "output")],
    )
    x = np.random.default_rng(2).uniform(0, 0.6, (12, 2, 4)).astype(np.float32)
    w, b = np.asarray(rec.kernel[...]), np.asarray(rec.bias[...])
    v, s, spikes = np.zeros((2, 4)), np.zeros((2, 4)), []
    for n in range(12):  # snnTorch's RLeaky: input + W s_{n-1} + b
        v = 0.9 * v + x[n] + s @ w + b - 0.5 * s
        s = (v > 0.5).astype(np.float32)
        spikes.append(s)
    run = graph.run(jnp.asarray(x))
    np.testing.assert_array_equal(run.output, np.stack(spikes))
    assert 0 < float(run.output.mean()) < 1
    first = graph.run(jnp.asarray(x[:5]))
    second = graph.run(jnp.asarray(x[5:]), first.state)
    np.testing.assert_array_equal(jnp.concatenate([first.output, second.output]), run.output)
    jitted = nnx.jit(lambda m, x: m(x))(graph, jnp.asarray(x))
    np.testing.assert_array_equal(jitted, run.output)
    zeros = graph.init_state(jnp.asarray(x))
    np.testing.assert_array_equal(graph(jnp.asarray(x), zeros), run.output)


def test_sequential_conv_network_trains_and_checks_its_arguments():
    rngs = nnx.Rngs(1)
    model = sequential(
        nnx.Conv(2, 3, (3, 3), rngs=rngs),
        plain.LIF(0.8, 0.3),
        plain.Flatten(),
        nnx.Linear(48, 2, rngs=rngs),
    )
    x = jax.random.uniform(jax.random.key(1), (4, 2, 4, 4, 2))
    grads = nnx.grad(lambda m: m(x).sum())(model)
    assert float(jnp.abs(grads["nodes"]["0"]["kernel"][...]).sum()) > 0  # surrogate gradient flows
    with pytest.raises(ValueError, match="edge"):
        Graph({"a": plain.LI()}, [("input", "b"), ("a", "output")])
    with pytest.raises(ValueError, match="receives no input"):
        Graph({"a": plain.LI(), "b": plain.LI()}, [("a", "b"), ("b", "a"), ("a", "output")])
    with pytest.raises(ValueError, match="vth - v_reset must be positive"):
        plain.LIF(0.9, 0.5, v_reset=0.6)
    with pytest.raises(ValueError, match="reset must be one of"):
        plain.LIF(reset="none")
