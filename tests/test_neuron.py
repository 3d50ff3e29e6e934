"""lif_step / lif_scan: the discrete LIF of Eq. 6 with the fusion of Eq. 5."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import snnjax


def test_hand_computed_trace_of_every_reset():
    currents = jnp.array([0.3, 0.3, 0.6, 0.1])[:, None]
    _, (s, v) = snnjax.lif_scan(currents, reset="hard")
    # V1 = .3; V2 = .4*.3 + .3 = .42; V3 = .4*.42 + .6 = .768 -> spike;
    # hard: V4 = .4*.768*(1-1) + .1 = .1
    np.testing.assert_allclose(v[:, 0], [0.3, 0.42, 0.768, 0.1], rtol=1e-6)
    np.testing.assert_array_equal(s[:, 0], [0, 0, 1, 0])
    _, (s, v) = snnjax.lif_scan(currents, reset="soft")
    # soft (Eq. 6/9): V4 = .4*.768 + .1 - .5 = -.0928
    np.testing.assert_allclose(v[:, 0], [0.3, 0.42, 0.768, -0.0928], rtol=1e-5)
    _, (_, v_default) = snnjax.lif_scan(currents)
    np.testing.assert_array_equal(v_default, v)  # soft is the default
    _, (s, v) = snnjax.lif_scan(currents, reset="none")
    # none (the authors' code): V4 = .4*.768 + .1 = .4072
    np.testing.assert_allclose(v[:, 0], [0.3, 0.42, 0.768, 0.4072], rtol=1e-5)
    np.testing.assert_array_equal(s[:, 0], [0, 0, 1, 0])


def test_hand_computed_omega_fusion_step():
    state = snnjax.LIFState(jnp.array([0.6]), jnp.array([0.0]))
    new, s = snnjax.lif_step(state, jnp.array([0.1]), jnp.array([0.8]))
    k = math.pi / 4
    expected = 0.4 * 2 * math.sin(k * 0.6) * math.cos(k * 0.8) + 0.1
    np.testing.assert_allclose(new.v, [expected], rtol=1e-6)
    np.testing.assert_array_equal(s, [float(expected > 0.5)])


def _loop(currents, fused, **kw):
    state = snnjax.LIFState.zeros(currents.shape[1:])
    spikes, membranes = [], []
    for n in range(currents.shape[0]):
        state, s = snnjax.lif_step(state, currents[n], None if fused is None else fused[n], **kw)
        spikes.append(s)
        membranes.append(state.v)
    return state, jnp.stack(spikes), jnp.stack(membranes)


OPTIONS = [
    dict(),
    dict(reset="hard"),
    dict(reset="none", fusion="linear"),
    dict(fusion="omega", theta=0.3),
    dict(fusion="linear", reset="soft", alpha=0.9, vth=0.3),
    dict(fusion="omega_code"),
    dict(fusion="tanh", surrogate="atan"),
    dict(fusion="none"),
]


@pytest.mark.parametrize("kw", OPTIONS)
@pytest.mark.parametrize("with_fused", [False, True])
def test_scan_equals_python_loop(kw, with_fused):
    k1, k2 = jax.random.split(jax.random.key(0))
    currents = jax.random.uniform(k1, (7, 3, 5), minval=-0.2, maxval=0.8)
    fused = jax.random.normal(k2, (7, 3, 5)) if with_fused else None
    final, (s, v) = snnjax.lif_scan(currents, fused, **kw)
    final_ref, s_ref, v_ref = _loop(currents, fused, **kw)
    np.testing.assert_array_equal(s, s_ref)
    np.testing.assert_allclose(v, v_ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(final.v, final_ref.v, rtol=1e-6, atol=1e-6)
    assert 0 < float(s.mean()) < 1  # the test exercises both spikes and silence


def test_learnable_parameters_as_arrays():
    currents = jax.random.uniform(jax.random.key(3), (5, 4, 6))
    alpha = jnp.full((6,), 0.4)
    vth = jnp.linspace(0.3, 0.8, 6)
    _, (s, v) = snnjax.lif_scan(currents, alpha=alpha, vth=vth)
    _, s_ref, _ = _loop(currents, None, alpha=alpha, vth=vth)
    np.testing.assert_array_equal(s, s_ref)

    def loss(alpha, vth):
        return snnjax.lif_scan(currents, alpha=alpha, vth=vth)[1][0].sum()

    ga, gv = jax.grad(loss, argnums=(0, 1))(alpha, vth)
    assert ga.shape == alpha.shape and gv.shape == vth.shape
    assert np.all(np.asarray(gv) < 0)  # raising a threshold removes spikes
    assert np.any(np.asarray(ga) != 0)


def test_transforms_jit_vmap_grad_remat_unroll():
    currents = jax.random.uniform(jax.random.key(4), (6, 2, 8))
    fused = jax.random.normal(jax.random.key(5), (6, 2, 8))

    def loss(c, remat=False, unroll=1):
        _, (s, v) = snnjax.lif_scan(c, fused, remat=remat, unroll=unroll, surrogate="sigmoid")
        return (s * jnp.arange(8)).sum() + (v**2).sum()

    g = jax.jit(jax.grad(loss))(currents)
    for kw in (dict(remat=True), dict(unroll=3), dict(unroll=True)):
        np.testing.assert_allclose(
            jax.grad(functools.partial(loss, **kw))(currents), g, rtol=1e-5, atol=1e-6
        )
    # vmap over a batch axis placed first equals the unbatched scan.
    batched = jax.vmap(lambda c, b: snnjax.lif_scan(c, b)[1][0], in_axes=1, out_axes=1)(
        currents, fused
    )
    np.testing.assert_array_equal(batched, snnjax.lif_scan(currents, fused)[1][0])
    assert np.all(np.isfinite(g)) and np.any(g != 0)


def _triangle_primitive(x):
    z = np.clip(x / 0.5, -1, 1)
    return z - np.sign(z) * z * z / 2


# float64 primitives of the default surrogates (float32 is too coarse for FD).
PRIMITIVES_F64 = {
    "sigmoid": lambda x: 1 / (1 + np.exp(-4 * x)),
    "atan": lambda x: np.arctan(np.pi * x) / np.pi + 0.5,
    "fast_sigmoid": lambda x: x / (1 + 25 * np.abs(x)),
    "rectangular": lambda x: np.clip(x, -0.5, 0.5),
    "triangle": _triangle_primitive,
}


def _stand_in_loss(
    currents, fused, v_star, w_s, w_v, *, surrogate, alpha=0.4, vth=0.5, reset="soft", theta=0.5
):
    """float64 LIF in numpy where the spike is H(V*) + G(V - vth) - G(V* - vth):
    the surrogate's primitive G, anchored at the real trajectory V* so that the
    forward pass equals the real one and its derivative is the surrogate."""
    G = PRIMITIVES_F64[surrogate]
    v = np.zeros(currents.shape[1:])
    s = np.zeros_like(v)
    k = theta * np.pi / 2
    total = 0.0
    for n in range(currents.shape[0]):
        u = 2 * np.sin(k * v) * np.cos(k * fused[n])
        if reset == "hard":
            v = alpha * u * (1 - s) + currents[n]
        elif reset == "soft":
            v = alpha * u + currents[n] - vth * s
        else:
            v = alpha * u + currents[n]
        s = (v_star[n] > vth) + G(v - vth) - G(v_star[n] - vth)
        total += np.sum(w_s[n] * s) + np.sum(w_v[n] * v)
    return total


@pytest.mark.parametrize(
    "surrogate", ["sigmoid", "atan", "fast_sigmoid", "rectangular", "triangle"]
)
@pytest.mark.parametrize("reset", ["soft", "hard", "none"])
def test_scan_gradient_matches_finite_differences(surrogate, reset):
    ks = jax.random.split(jax.random.key(7), 4)
    shape = (5, 3, 4)
    currents = jax.random.uniform(ks[0], shape, minval=-0.3, maxval=0.9)
    fused = jax.random.normal(ks[1], shape)
    w_s = jax.random.normal(ks[2], shape)
    w_v = jax.random.normal(ks[3], shape)

    def loss(c):
        _, (s, v) = snnjax.lif_scan(c, fused, surrogate=surrogate, reset=reset)
        return (w_s * s).sum() + (w_v * v).sum()

    grad = np.asarray(jax.grad(loss)(currents))
    _, (_, v_star) = snnjax.lif_scan(currents, fused, reset=reset)
    c64, f64, vs64 = (np.asarray(a, np.float64) for a in (currents, fused, v_star))
    ws64, wv64 = np.asarray(w_s, np.float64), np.asarray(w_v, np.float64)
    f = lambda c: _stand_in_loss(c, f64, vs64, ws64, wv64, surrogate=surrogate, reset=reset)
    eps = 1e-6
    fd = np.zeros_like(c64)
    for idx in np.ndindex(c64.shape):
        d = np.zeros_like(c64)
        d[idx] = eps
        fd[idx] = (f(c64 + d) - f(c64 - d)) / (2 * eps)
    np.testing.assert_allclose(grad, fd, rtol=2e-3, atol=2e-3)
    assert np.abs(fd).max() > 0.1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(reset="sometimes"), "reset"),
        (dict(vth=-0.1), "vth"),
        (dict(vth=0.0), "vth"),
        (dict(fusion="median"), "fusion"),
        (dict(surrogate="box"), "surrogate"),
    ],
)
def test_bad_options_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        snnjax.lif_scan(jnp.ones((3, 2)), jnp.ones((3, 2)), **kwargs)


def test_bad_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="fused"):
        snnjax.lif_scan(jnp.ones((3, 2)), jnp.ones((3, 4)))
    with pytest.raises(ValueError, match="currents"):
        snnjax.lif_scan(jnp.ones(()))
    with pytest.raises(ValueError, match="currents"):
        snnjax.lif_scan(jnp.ones((3, 2), jnp.int32))
    with pytest.raises(ValueError, match="init"):
        snnjax.lif_scan(jnp.ones((3, 2)), init=snnjax.LIFState.zeros((5,)))
