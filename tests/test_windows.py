"""partition / recompose: layouts and the weighted condense (Sec. 3-4, Alg. 1)."""

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import snnjax


def test_row_major_order_normal_windows():
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    w = snnjax.partition(x, (2, 2))
    assert w.shape == (4, 1, 2, 2, 1)
    np.testing.assert_array_equal(w[0, 0, :, :, 0], [[0, 1], [4, 5]])  # top-left
    np.testing.assert_array_equal(w[1, 0, :, :, 0], [[2, 3], [6, 7]])  # top-right
    np.testing.assert_array_equal(w[2, 0, :, :, 0], [[8, 9], [12, 13]])  # bottom-left
    np.testing.assert_array_equal(w[3, 0, :, :, 0], [[10, 11], [14, 15]])


def test_dilated_windows_sit_at_the_corners():
    x = jnp.arange(64.0).reshape(1, 8, 8, 1)
    layout = snnjax.window_layout((8, 8), (2, 2), dilated=True)
    assert layout.window_shape == (6, 6)  # 3L/4
    assert layout.starts == ((0, 0), (0, 2), (2, 0), (2, 2))  # offset L/4
    w = snnjax.partition(x, (2, 2), dilated=True)
    for p, (r, c) in enumerate(layout.starts):
        np.testing.assert_array_equal(w[p, 0, :, :, 0], x[0, r : r + 6, c : c + 6, 0])
    cov = layout.coverage()
    assert cov[0, 0] == 1 and cov[0, 4] == 2 and cov[4, 4] == 4 and cov[7, 7] == 1


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(
    b=st.integers(1, 3),
    c=st.integers(1, 4),
    gh=st.integers(1, 4),
    gw=st.integers(1, 4),
    h=st.integers(1, 5),
    w=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_partition_recompose_is_identity(b, c, gh, gw, h, w, seed):
    shape = (b, gh * h, gw * w, c)
    x = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    windows = snnjax.partition(x, (gh, gw))
    assert windows.shape == (gh * gw, b, h, w, c)
    np.testing.assert_array_equal(snnjax.recompose(windows, (gh, gw), shape, spikes=False), x)
    spikes = (x > 0).astype(np.float32)
    np.testing.assert_array_equal(
        snnjax.recompose(snnjax.partition(spikes, (gh, gw)), (gh, gw), shape[1:3]), spikes
    )


@hypothesis.settings(max_examples=30, deadline=None)
@hypothesis.given(
    g=st.sampled_from([(2, 2), (1, 2), (2, 1), (3, 3), (2, 3)]),
    unit=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_dilated_partition_recompose_is_identity(g, unit, seed):
    # Every window agrees on the overlaps, so the mean restores the map.
    shape = (2, 4 * g[0] * unit, 4 * g[1] * unit, 3)
    x = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    windows = snnjax.partition(x, g, dilated=True)
    np.testing.assert_allclose(
        snnjax.recompose(windows, g, shape, dilated=True, spikes=False), x, rtol=1e-6, atol=1e-6
    )


def algorithm1(G1, G2, G3, G4, L):
    """The paper's Algorithm 1, transcribed with NHWC slicing (numpy)."""
    M = 3 * L // 4
    wo = 2 * M - L
    h = wo // 2

    def pair(a, b):  # along width (axis 2)
        cover = (a[:, :, h : 3 * h] + b[:, :, 0:wo]) / 2
        return np.concatenate([a[:, :, 0:h], cover, b[:, :, wo : 3 * h]], axis=2)

    top, bottom = pair(G1, G2), pair(G3, G4)
    cover = (top[:, h : 3 * h] + bottom[:, 0:wo]) / 2
    return np.concatenate([top[:, 0:h], cover, bottom[:, wo : 3 * h]], axis=1)


@pytest.mark.parametrize("L", [8, 16])
@pytest.mark.parametrize("kind", ["membrane", "median_spikes", "region_threshold"])
def test_dilated_recompose_equals_algorithm1(L, kind):
    M = 3 * L // 4
    rng = np.random.default_rng(L)
    if kind == "membrane":
        windows = rng.normal(size=(4, 2, M, M, 3)).astype(np.float32)
    else:
        windows = (rng.random((4, 2, M, M, 3)) < 0.3).astype(np.float32)
    expected = algorithm1(*windows, L)
    if kind == "membrane":
        got = snnjax.recompose(windows, (2, 2), (L, L), dilated=True, spikes=False)
    elif kind == "median_spikes":
        got = snnjax.recompose(windows, (2, 2), (L, L), dilated=True, region_threshold=None)
        assert set(np.unique(np.asarray(got))) <= {0, 0.25, 0.5, 0.75, 1}
        assert len(np.unique(np.asarray(got))) >= 4
    else:
        got = snnjax.recompose(windows, (2, 2), (L, L), dilated=True)
        expected = (expected > 0.1).astype(np.float32)
        # Above Th_R = 0.1 equals the logical OR of the overlapping spikes.
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_region_threshold_gives_binary_spikes_and_straight_through_gradient():
    rng = np.random.default_rng(0)
    windows = jnp.asarray((rng.random((4, 1, 6, 6, 2)) < 0.2).astype(np.float32))
    out = snnjax.recompose(windows, (2, 2), (8, 8), dilated=True)
    assert set(np.unique(np.asarray(out))) == {0.0, 1.0}
    g = jax.grad(lambda w: snnjax.recompose(w, (2, 2), (8, 8), dilated=True).sum())(windows)
    # Straight-through: the gradient of the mean, 1 / coverage at each pixel.
    cov = snnjax.window_layout((8, 8), (2, 2), True).coverage()
    for p, (r, c) in enumerate(((0, 0), (0, 2), (2, 0), (2, 2))):
        np.testing.assert_allclose(g[p, 0, :, :, 0], 1.0 / cov[r : r + 6, c : c + 6])


def test_grid_1x1_dilated_is_normal():
    x = jnp.ones((2, 8, 8, 3))
    assert snnjax.window_layout((8, 8), (1, 1), True) == snnjax.window_layout((8, 8), 1)
    np.testing.assert_array_equal(snnjax.partition(x, (1, 1), True), x[None])


def test_one_by_two_dilated_splits_width_only():
    layout = snnjax.window_layout((8, 8), (1, 2), dilated=True)
    assert layout.window_shape == (8, 6) and layout.starts == ((0, 0), (0, 2))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: snnjax.partition(jnp.ones((8, 8, 3))), "rank"),
        (lambda: snnjax.partition(jnp.ones((1, 8, 6, 3)), (2, 4)), "width"),
        (lambda: snnjax.partition(jnp.ones((1, 9, 8, 3)), (2, 2)), "height"),
        (lambda: snnjax.partition(jnp.ones((1, 6, 6, 3)), (2, 2), dilated=True), "dilated"),
        (lambda: snnjax.partition(jnp.ones((1, 2, 2, 3)), (2, 2), dilated=True), "dilated"),
        (lambda: snnjax.partition(jnp.ones((1, 8, 8, 3)), (0, 2)), "grid"),
        (lambda: snnjax.partition(jnp.ones((1, 8, 8, 3)), "2x2"), "grid"),
        (lambda: snnjax.recompose(jnp.ones((3, 1, 4, 4, 1)), (2, 2), (8, 8)), "windows"),
        (lambda: snnjax.recompose(jnp.ones((4, 1, 4, 4, 1)), (2, 2), (8,)), "out_shape"),
        (
            lambda: snnjax.recompose(
                jnp.ones((4, 1, 6, 6, 1)), (2, 2), (8, 8), True, region_threshold=1.5
            ),
            "region_threshold",
        ),
    ],
)
def test_bad_input_is_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
