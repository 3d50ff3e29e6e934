"""The spiking Sequencer models: sizes, gradients, ablation switches, causality,
statistics, determinism, shapes (METHOD Sec. 3-6)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import snnjax
from snnjax import energy, models
from snnjax.nn import create_mixer
from snnjax.nn.sequencer import SpikingSequencer

# Narrow models keep the suite fast; (1, 1, 2, 1) blocks keep one dilated block
# (stage 3, N D) and every kind of layer. TINY (two stages, N D | N) is enough
# for the ablation switches: a normal and a dilated block, a stage boundary.
NARROW = dict(widths=(8, 16, 32, 64), dropout=0.0)
SMALL = dict(NARROW, depths=(1, 1, 2, 1))
TINY = dict(widths=(8, 16), depths=(2, 1), dropout=0.0)


@functools.cache
def abstract(name):
    cfg = models.config(name)
    return nnx.eval_shape(lambda: SpikingSequencer(cfg, rngs=nnx.Rngs(0)))


def images(batch=2, size=32, seed=0):
    return jax.random.normal(jax.random.key(seed), (batch, size, size, 3))


def randomise_head(model, seed=1):
    """The head is zero-initialised (as in the paper), which blocks every other
    gradient at step 0 and makes all logits 0; tests that look past the head
    give it random weights."""
    k = model.head.kernel
    k[...] = jax.random.normal(jax.random.key(seed), k.shape) * 0.5
    return model


@functools.cache
def _model(name, size, **overrides):
    model = randomise_head(models.create(name, **{"small": SMALL, "tiny": TINY}[size], **overrides))
    model.eval()
    return model


def small(name, **overrides):
    return _model(name, "small", **overrides)


def tiny(name, **overrides):
    return _model(name, "tiny", **overrides)


# One jitted function each, so that a model (graph) seen before is not compiled again.
_FORWARD = {False: nnx.jit(lambda m, x: m(x)), True: nnx.jit(lambda m, x: m(x, stats=True))}


def forward(model, x, stats=False):
    return _FORWARD[stats](model, x)


@pytest.mark.parametrize(
    "name, params, tol_p, macs, tol_m",
    [
        ("conv", 13.9e6, 0.05, 247e6, 0.05),
        ("lstm", 14.9e6, 0.10, 250e6, 0.10),
    ],
)
def test_paper_sizes(name, params, tol_p, macs, tol_m):
    s = models.summary(abstract(name))
    assert abs(s.params - params) / params < tol_p, s.params
    assert abs(s.dense_macs - macs) / macs < tol_m, s.dense_macs


def test_block_pattern_of_the_12_block_model():
    s = models.summary(abstract("conv"))
    assert [p for _, p in s.stages] == ["ND", "ND", "NDNDND", "NN"]
    assert [shape for shape, _ in s.stages] == [(16, 16, 48), (8, 8, 96), (4, 4, 192), (2, 2, 384)]
    nodil = models.summary(nnx.eval_shape(lambda: models.create("conv", dilated=False)))
    assert [p for _, p in nodil.stages] == ["NN", "NN", "NNNNNN", "NN"]
    assert nodil.dense_macs < s.dense_macs  # dilated windows cover 2.25x pixels


@pytest.mark.parametrize("name", sorted(models.PRESETS))
def test_every_parameter_gets_a_gradient(name):
    # vth = 0.2 keeps every LIF layer of a narrow model firing at init on one
    # small batch (a silent layer passes no gradient to its projection). The
    # point here is that no path is cut (the authors' encoder cut every mixer's).
    # The two-stage TINY model (N D | N) has every kind of parameter the 12-block
    # model has: stem, normal and dilated blocks, (membrane) merging, head.
    model = randomise_head(models.create(name, vth=0.2, **TINY))
    x, y = images(4), jnp.array([0, 3, 5, 9])

    def loss(m):
        return optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean()

    grads = nnx.jit(nnx.grad(loss))(model)
    flat = jax.tree_util.tree_leaves_with_path(grads)
    assert flat
    dead = {jax.tree_util.keystr(p) for p, g in flat if not np.any(np.asarray(g) != 0)}
    assert not dead, f"zero gradient for {sorted(dead)}"


def test_learnable_threshold_and_leak_are_trained():
    model = randomise_head(
        models.create("conv", learnable_threshold=True, learnable_leak=True, **TINY)
    )
    x, y = images(4), jnp.array([0, 3, 5, 9])
    grads = nnx.jit(
        nnx.grad(lambda m: optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean())
    )(model)
    lif = grads["stages"][0][0]["mixer"]["lif"][0]
    assert float(jnp.abs(lif["vth"][...])) > 0 and float(jnp.abs(lif["alpha"][...])) > 0
    n_default = models.count_params(models.create("conv", **TINY))
    assert models.count_params(model) == n_default + 2 * 2 * 3  # 2 LIF layers x 3 blocks


SWITCHES = [
    dict(grid=(1, 1)),
    dict(grid=(1, 2)),
    dict(dilated=False),
    dict(fusion="linear"),
    dict(fusion="none"),
    dict(theta=0.9),
    dict(region_threshold=None),
    dict(reset="hard"),
    dict(reset="none"),
    dict(encoder="bernoulli"),
    dict(alpha=0.9),
    dict(vth=0.3),
]


@pytest.mark.parametrize("switch", SWITCHES, ids=lambda d: "-".join(map(str, d.items())))
def test_each_ablation_switch_changes_the_computation(switch):
    x = images(2)
    base = forward(tiny("conv"), x)
    changed = forward(tiny("conv", **switch), x)  # same seed, same parameters
    assert not np.allclose(base, changed), switch


@pytest.mark.parametrize("switch", [dict(pre_norm=True), dict(carry_membrane=True)])
def test_structural_switches_add_parameters(switch):
    assert models.count_params(tiny("conv", **switch)) > models.count_params(tiny("conv"))
    out = forward(tiny("conv", **switch), images(2))
    assert out.shape == (2, 10) and np.all(np.isfinite(out))


def test_surrogate_switch_changes_the_gradient():
    x = jax.random.normal(jax.random.key(6), (2, 8, 8, 8))

    def grad_of(surrogate):
        cfg = models.config("conv", surrogate=surrogate, **SMALL)
        mixer = create_mixer(cfg, 8, dilated=True, rngs=nnx.Rngs(0))
        g = nnx.jit(nnx.grad(lambda m: (m(x, None)[0] ** 2).sum()))(mixer)
        return np.asarray(g["synapses"][0]["kernel"][...])

    g_rect, g_atan = grad_of("rectangular"), grad_of("atan")
    assert np.any(g_rect != 0) and not np.allclose(g_rect, g_atan)


def test_grid_1x1_is_a_single_window():
    # A mixer with grid 1x1 equals conv -> LIF -> conv -> LIF on the whole map.
    cfg = models.config("conv", grid=(1, 1), **SMALL)
    mixer = create_mixer(cfg, 8, dilated=True, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(2), (2, 8, 8, 8))
    y, v, _ = mixer(x, None)
    s = snnjax.spike(x, 0.5)
    c1 = mixer.synapses[0](s)
    _, (s1, v1) = snnjax.lif_scan(c1[None], jnp.zeros_like(c1)[None])
    c2 = mixer.synapses[1](s1[0])
    _, (s2, v2) = snnjax.lif_scan(c2[None], v1)
    np.testing.assert_allclose(y, mixer.proj(s2[0]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(v, v2[0], rtol=1e-5, atol=1e-5)


def test_mixer_causality_across_windows():
    # Normal 2x2 windows: a change inside window 4 leaves windows 1-3 unchanged.
    cfg = models.config("conv", dilated=False, **SMALL)
    mixer = create_mixer(cfg, 8, dilated=False, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(3), (2, 8, 8, 8))
    m = jax.random.normal(jax.random.key(4), (2, 8, 8, 8))
    y0, v0, _ = mixer(x, m)
    y1, v1, _ = mixer(x.at[:, 5, 6].add(5.0), m)
    for out0, out1 in ((y0, y1), (v0, v1)):
        w0, w1 = snnjax.partition(out0, (2, 2)), snnjax.partition(out1, (2, 2))
        for p in range(3):
            np.testing.assert_array_equal(w0[p], w1[p])
        assert not np.array_equal(w0[3], w1[3])


def test_spike_statistics():
    model = small("conv")
    logits, counts = forward(model, images(3), stats=True)
    assert logits.shape == (3, 10)
    # encoder, encoder_windows, lif1, lif2, out per block
    assert len(counts) == 5 * 5
    c = counts["s3b2.lif1"]  # dilated 2x2 on 4x4: 4 windows of 3x3, 32 channels
    assert int(c.neurons) == 4 * 3 * 3 * 32 and c.spikes.shape == (3,)
    assert int(counts["s1b1.lif1"].neurons) == 16 * 16 * 8
    assert int(counts["s3b2.out"].neurons) == 4 * 4 * 32
    rates = energy.spike_rates(counts)
    assert all(0 <= r <= 1 for r in rates.values())
    assert 0 < energy.mean_spike_rate(counts) < 1
    # The plain call returns the logits only, equal to the stats call's.
    np.testing.assert_array_equal(forward(model, images(3)), logits)


def test_encoder_spikes_count_once_and_windowed_for_additions():
    # A dilated block (2x2 grid, 8x8 map -> four 6x6 windows at offsets 0 and 2):
    # spikes per image count each encoder spike once; the synapse's input counts
    # a pixel once per window covering it (1, 2 or 4 times).
    cfg = models.config("conv", **SMALL)
    mixer = create_mixer(cfg, 8, dilated=True, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(4), (2, 8, 8, 8))
    _, _, counts = mixer(x, None, stats=True)
    s = np.asarray(x > 0.5, np.float64)
    cover1d = np.array([1, 1, 2, 2, 2, 2, 1, 1])
    cover = cover1d[:, None] * cover1d[None, :]
    np.testing.assert_allclose(counts["encoder"].spikes, s.sum(axis=(1, 2, 3)))
    assert int(counts["encoder"].neurons) == 8 * 8 * 8
    np.testing.assert_allclose(
        counts["encoder_windows"].spikes, (s * cover[None, :, :, None]).sum(axis=(1, 2, 3))
    )
    assert int(counts["encoder_windows"].neurons) == 4 * 6 * 6 * 8
    assert energy.is_spiking_layer("s1b1.encoder")
    assert not energy.is_spiking_layer("s1b1.encoder_windows")


def test_stats_agree_with_a_direct_count():
    model = small("conv")
    x = images(2)
    _, counts = forward(model, x, stats=True)
    h = model.stem(x)  # the first block sees the stem output
    enc = snnjax.spike(h, 0.5)
    np.testing.assert_allclose(counts["s1b1.encoder"].spikes, enc.sum(axis=(1, 2, 3)))


def test_forward_is_deterministic_and_bernoulli_reproducible():
    x = images(2)
    a = forward(small("conv"), x)
    np.testing.assert_array_equal(a, forward(small("conv"), x))
    b1 = randomise_head(models.create("conv", encoder="bernoulli", rngs=nnx.Rngs(5), **TINY))
    b2 = randomise_head(models.create("conv", encoder="bernoulli", rngs=nnx.Rngs(5), **TINY))
    o1, o2 = forward(b1, x), forward(b2, x)
    np.testing.assert_array_equal(o1, o2)  # same key, same draws
    assert not np.array_equal(o1, forward(b1, x))  # the stream advances per call


@pytest.mark.parametrize("name", ["conv", "lstm"])
def test_shapes_32_and_64_and_bf16(name):
    assert forward(tiny(name), images(2, 32)).shape == (2, 10)
    m64 = tiny(name, image_size=64, num_classes=200)
    assert forward(m64, images(2, 64)).shape == (2, 200)
    bf = tiny(name, dtype=jnp.bfloat16)
    out = forward(bf, images(2, 32))
    assert out.shape == (2, 10) and np.all(np.isfinite(np.asarray(out, np.float32)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="resnet"), "unknown model"),
        (dict(name="conv", gird=(2, 2)), "unknown override"),
        (dict(name="conv", grid=(3, 3)), "grid"),
        (dict(name="conv", grid=(4, 4)), "impossible"),
        (dict(name="conv", image_size=48), "image_size"),
        (dict(name="conv", fusion="cosine"), "fusion"),
        (dict(name="conv", encoder="poisson"), "encoder"),
        (dict(name="conv", mixer="transformer"), "mixer"),
        (dict(name="conv", vth=-1.0), "vth"),
        (dict(name="conv", region_threshold=1.0), "region_threshold"),
        (dict(name="conv", widths=(48, 96, 200, 400)), "widths"),
    ],
)
def test_bad_configs_fail_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        models.config(**kwargs)


def test_wrong_image_shape():
    with pytest.raises(ValueError, match="images"):
        small("conv")(jnp.ones((2, 28, 28, 3)))
