"""window_lif: the windowed spiking layer against a slow per-window reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import snnjax
from snnjax.testing import window_lif_loop as reference


def conv(kernel):
    """A 3x3 'SAME' conv: the window border is zero padding (Sec. 3)."""
    return lambda x: jax.lax.conv_general_dilated(
        x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def kernels(key, cin, hidden):
    k1, k2 = jax.random.split(key)
    return (
        jax.random.normal(k1, (3, 3, cin, hidden)) * 0.5,
        jax.random.normal(k2, (3, 3, hidden, hidden)) * 0.3,
    )


CASES = [
    dict(grid=(2, 2), dilated=False),
    dict(grid=(2, 2), dilated=True),
    dict(grid=(1, 2), dilated=True, reset="soft", fusion="linear"),
    dict(grid=(1, 1), dilated=False, fusion="none", reset="hard"),
    dict(grid=(2, 2), dilated=True, reset="none"),
    dict(grid=(2, 2), dilated=True, region_threshold=None, theta=0.7),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("with_membrane", [False, True])
def test_matches_per_window_reference(case, layers, with_membrane):
    case = dict(case)
    grid, dilated = case.pop("grid"), case.pop("dilated")
    kx, km, kk = jax.random.split(jax.random.key(0), 3)
    x = (jax.random.uniform(kx, (2, 8, 8, 3)) > 0.5).astype(jnp.float32)
    synapses = [conv(k) for k in kernels(kk, 3, 4)[:layers]]
    membrane = jax.random.normal(km, (2, 8, 8, 4)) if with_membrane else None
    out = jax.jit(
        lambda x, m: snnjax.window_lif(x, synapses, m, grid=grid, dilated=dilated, **case)
    )(x, membrane)
    s_ref, v_ref = reference(x, synapses, membrane, grid, dilated, **case)
    np.testing.assert_array_equal(out.spikes, s_ref)
    np.testing.assert_allclose(out.membrane, v_ref, rtol=1e-5, atol=1e-5)
    assert len(out.window_spikes) == layers
    assert 0 < float(out.spikes.mean()) < 1


def test_omega_soft_reset_is_eq9_written_by_hand():
    # Two LIF layers in 2x2 normal windows, numpy loop of the paper's Eq. 9:
    # V_p = alpha * Omega(V_{p-1}, B_p) + I_p - vth * S_{p-1}, S_p = V_p > vth,
    # Omega(a, b) = 2 sin(theta pi/2 a) cos(theta pi/2 b); B of layer 1 is the
    # given membrane map, B of layer 2 is layer 1's membrane in the same window.
    alpha, vth, k = 0.4, 0.5, 0.5 * np.pi / 2
    kx, km, kk = jax.random.split(jax.random.key(3), 3)
    x = (jax.random.uniform(kx, (2, 8, 8, 3)) > 0.4).astype(jnp.float32)
    membrane = np.asarray(jax.random.normal(km, (2, 8, 8, 4)))
    k1, k2 = kernels(kk, 3, 4)
    out = snnjax.window_lif(
        x,
        [conv(k1), conv(k2)],
        jnp.asarray(membrane),
        grid=(2, 2),
        fusion="omega",
        theta=0.5,
        reset="soft",
    )

    v_map, s_map = np.zeros((2, 8, 8, 4)), np.zeros((2, 8, 8, 4))
    v1 = s1 = v2 = s2 = np.zeros((2, 4, 4, 4))
    for r, c in ((0, 0), (0, 4), (4, 0), (4, 4)):  # row-major groups
        win = np.s_[:, r : r + 4, c : c + 4]
        i1 = np.asarray(conv(k1)(x[win]), np.float64)
        v1 = alpha * 2 * np.sin(k * v1) * np.cos(k * membrane[win]) + i1 - vth * s1
        s1 = (v1 > vth).astype(np.float64)
        i2 = np.asarray(conv(k2)(jnp.asarray(s1, jnp.float32)), np.float64)
        v2 = alpha * 2 * np.sin(k * v2) * np.cos(k * v1) + i2 - vth * s2
        s2 = (v2 > vth).astype(np.float64)
        v_map[win], s_map[win] = v2, s2
    assert 0.05 < s_map.mean() < 0.95
    np.testing.assert_array_equal(out.spikes, s_map)
    np.testing.assert_allclose(out.membrane, v_map, rtol=1e-5, atol=1e-5)


def test_synapse_runs_once_batched_over_all_windows():
    calls = []

    def synapse(x):
        calls.append(x.shape)
        return x * 2.0

    x = jnp.ones((3, 8, 8, 2))
    jax.jit(lambda x: snnjax.window_lif(x, [synapse, synapse], grid=(2, 2), dilated=True).spikes)(x)
    assert calls == [(4 * 3, 6, 6, 2)] * 2  # one call per layer, P * B windows


@pytest.mark.parametrize("layers", [1, 2])
def test_each_layer_is_materialised_before_the_next_reads_it(layers):
    # Without a barrier per layer XLA's CPU compiler fused the chain of LIF
    # layers of a model's forward into loop fusions that recompute every earlier
    # step per element (inference 4.5x slower); the barrier must stay.
    x = jnp.ones((2, 8, 8, 2))
    lowered = jax.jit(
        lambda x: snnjax.window_lif(x, [lambda w: w * 2.0] * layers, grid=(2, 2), dilated=True)
    ).lower(x)
    assert lowered.as_text().count("optimization_barrier") == layers


def test_causality_of_the_group_scan():
    # Normal 2x2 windows, one layer: a change in window p changes nothing in 1..p-1.
    kx, kk = jax.random.split(jax.random.key(1))
    x = jax.random.uniform(kx, (1, 8, 8, 3))
    syn = conv(kernels(kk, 3, 4)[0])
    run = jax.jit(lambda x: snnjax.window_lif(x, syn, grid=(2, 2)))
    base = run(x)
    for p, (r, c) in enumerate(((0, 0), (0, 4), (4, 0), (4, 4))):
        changed = run(x.at[:, r : r + 4, c : c + 4].add(3.0))
        win = lambda m: snnjax.partition(m, (2, 2))
        for q in range(4):
            same = np.array_equal(win(changed.membrane)[q], win(base.membrane)[q])
            assert same == (q < p), (p, q)


def test_carry_links_windows():
    # With the fusion 'none', window 2 at rest receives alpha * V of window 1.
    x = jnp.zeros((1, 4, 4, 1)).at[:, :2, :2].set(0.3)
    out = snnjax.window_lif(x, lambda w: w, grid=(2, 2), fusion="none")
    np.testing.assert_allclose(out.membrane[0, :2, 2:, 0], 0.4 * 0.3, rtol=1e-6)
    np.testing.assert_allclose(out.membrane[0, 2:, :2, 0], 0.4**2 * 0.3, rtol=1e-6)


def test_gradients_reach_the_weights_and_the_input():
    kx, kk = jax.random.split(jax.random.key(2))
    x = jax.random.uniform(kx, (2, 8, 8, 3))
    k1, k2 = kernels(kk, 3, 4)

    def loss(k1, k2, x):
        out = snnjax.window_lif(x, [conv(k1), conv(k2)], grid=(2, 2), dilated=True)
        return out.spikes.sum() + (out.membrane**2).mean()

    grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(k1, k2, x)
    for g in grads:
        assert np.all(np.isfinite(g)) and np.any(np.asarray(g) != 0)


def test_bad_input_is_a_clear_error():
    x = jnp.ones((1, 8, 8, 3))
    with pytest.raises(ValueError, match="synapse"):
        snnjax.window_lif(x, [])
    with pytest.raises(ValueError, match="window shape"):
        snnjax.window_lif(x, lambda w: w[:, :2])
    with pytest.raises(ValueError, match="membrane"):
        snnjax.window_lif(x, lambda w: w, jnp.ones((1, 8, 8, 5)))
    with pytest.raises(ValueError, match="rank"):
        snnjax.window_lif(x[0], lambda w: w)
    with pytest.raises(ValueError, match="vth"):
        snnjax.window_lif(x, lambda w: w, vth=-1.0)
