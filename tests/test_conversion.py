"""The ANN counterpart and ANN -> SNN conversion with threshold balancing
(METHOD Sec. 7, Chowdhury et al. 2022; docs/conversion.md)."""

import functools
import json
import math

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from snnjax import conversion, models, window_lif
from snnjax.nn.sequencer import SpikingSequencer
from snnjax.windows import window_layout

# Two stages, N D | N: a normal and a dilated block and a stage boundary, no
# window of side <= 2 (whose im2col conv skips the padding taps, MACs below).
TINY = dict(widths=(8, 16), depths=(2, 1), dropout=0.0)
THRESHOLDS = dict(learnable_threshold=True, learnable_encoder_threshold=True)
Q = 90.0


def images(n=32, seed=0):
    return jax.random.normal(jax.random.key(seed), (n, 32, 32, 3))


def randomise_head(model, seed=1):
    """The head is zero-initialised, which blocks every other gradient."""
    k = model.head.kernel
    k[...] = jax.random.normal(jax.random.key(seed), k.shape) * 0.5
    return model


@functools.cache
def ann(mixer="conv", neuron="relu", **overrides):
    return randomise_head(models.create(mixer, neuron=neuron, rngs=1, **TINY, **overrides))


def snn(mixer="conv", **overrides):
    model = models.create(mixer, **TINY, **overrides)
    nnx.update(model, conversion.load_ann_params(model, ann(mixer)))
    return model


@functools.cache
def balanced(mode):
    model = snn(**THRESHOLDS) if mode == "threshold" else snn()
    before = nnx.state(model, nnx.Param)
    state, report = conversion.balance(model, images(), percentile=Q, mode=mode, ann=ann())
    assert jax.tree.all(jax.tree.map(np.array_equal, nnx.state(model, nnx.Param), before))
    nnx.update(model, state)
    return model, report


def tree(state):
    return jax.tree.structure(state), [x.shape for x in jax.tree.leaves(state)]


@pytest.mark.parametrize("mixer", ["conv", "lstm"])
@pytest.mark.parametrize("extra", [{}, THRESHOLDS])
def test_ann_tree_is_the_snn_tree(mixer, extra):
    def abstract(**kw):
        cfg = models.config(mixer, **extra, **kw)
        return nnx.state(nnx.eval_shape(lambda: SpikingSequencer(cfg, rngs=nnx.Rngs(0))))

    assert tree(abstract(neuron="relu")) == tree(abstract()) == tree(abstract(neuron="clip"))


def test_default_tree_has_no_encoder_threshold():
    params = nnx.to_flat_state(nnx.state(models.create("conv", **TINY), nnx.Param))
    assert not [p for p, _ in params if "encoder" in p or p[-1] == "vth"]


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="neuron"):
        models.config("conv", neuron="tanh")
    with pytest.raises(ValueError, match="learnable_encoder_threshold"):
        models.config("conv", encoder="bernoulli", learnable_encoder_threshold=True)
    x = jnp.ones((1, 8, 8, 2))
    with pytest.raises(ValueError, match="membrane must be None"):
        window_lif(x, lambda w: w, x, activation=jax.nn.relu)


def _conv(x, kernel, bias):
    """'SAME' conv by explicit taps, zero padding at the window border."""
    kh, kw = kernel.shape[:2]
    xp = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    h, w = x.shape[1:3]
    out = sum(xp[:, i : i + h, j : j + w] @ kernel[i, j] for i in range(kh) for j in range(kw))
    return out + bias


def _block_reference(block, x, layout):
    """One ANN block by hand: ReLU windows, no membrane, mean over overlaps."""
    p = lambda v: np.asarray(v[...], np.float64)
    relu = lambda v: np.maximum(v, 0)
    mixer, (h, w) = block.mixer, layout.window_shape
    total, count = np.zeros(x.shape), np.zeros(x.shape[1:3] + (1,))
    for r, c in layout.starts:
        a = relu(x[:, r : r + h, c : c + w])
        for syn in mixer.synapses:
            a = relu(_conv(a, p(syn.kernel), p(syn.bias)))
        total[:, r : r + h, c : c + w] += a
        count[r : r + h, c : c + w] += 1
    x = x + (total / count) @ p(mixer.proj.kernel) + p(mixer.proj.bias)
    fc1, fc2 = block.mlp.fc1, block.mlp.fc2
    z = x @ p(fc1.kernel) + p(fc1.bias)
    gelu = 0.5 * z * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z**3)))
    return x + gelu @ p(fc2.kernel) + p(fc2.bias)


@pytest.mark.parametrize("b", [0, 1])  # normal, dilated
def test_ann_block_equals_a_hand_written_reference(b):
    model = ann()
    block = model.stages[0][b]
    x = jax.random.normal(jax.random.key(2), (2, 16, 16, 8))
    out, membrane, _ = block(x, None)
    assert membrane is None
    layout = window_layout((16, 16), model.config.grid, block.dilated)
    assert layout.dilated == bool(b)
    ref = _block_reference(block, np.asarray(x, np.float64), layout)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def _macs(jaxpr, prims=None):
    """Multiply-accumulates of every dot_general and conv in a jaxpr (sub-jaxprs
    included, scans times their length); ``prims`` collects primitive names."""
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if prims is not None:
            prims.add(name)
        if name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[i] for i in contract)
        elif name == "conv_general_dilated":
            rhs = eqn.invars[1].aval.shape
            out_features = rhs[eqn.params["dimension_numbers"].rhs_spec[0]]
            total += math.prod(eqn.outvars[0].aval.shape) * math.prod(rhs) // out_features
        times = eqn.params.get("length", 1) if name == "scan" else 1
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            total += times * _macs(sub, prims)
    return total


def forward_macs(model, prims=None):
    graphdef, state = nnx.split(model)
    jaxpr = jax.make_jaxpr(lambda s, x: nnx.merge(graphdef, s)(x))(state, images(1))
    return _macs(jaxpr.jaxpr, prims)


def test_ann_macs_equal_the_energy_dense_row():
    prims = set()
    dense = sum(op.dense_ops for op in models.operations(ann().config))
    assert forward_macs(ann(), prims) == dense == forward_macs(snn())
    assert "scan" not in prims  # no membrane: no scan over the window groups


def test_lstm_ann_skips_only_the_membrane_merges():
    ops = models.operations(ann("lstm").config)
    merges = sum(op.dense_ops for op in ops if op.name.endswith("membrane_merge"))
    assert merges > 0
    assert forward_macs(ann("lstm")) == sum(op.dense_ops for op in ops) - merges


def test_load_ann_params_copies_them_exactly():
    model = snn(**THRESHOLDS)
    source = dict(nnx.to_flat_state(nnx.state(ann(), nnx.Param)))
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        if path[-1] == "vth":
            assert path not in source and float(var.get_value()) == 0.5
        else:
            np.testing.assert_array_equal(var.get_value(), source[path].get_value())
    pure = nnx.to_pure_dict(nnx.state(ann(), nnx.Param))  # arrays, as restored
    loaded = conversion.load_ann_params(model, pure)
    assert jax.tree.all(
        jax.tree.map(np.array_equal, loaded, conversion.load_ann_params(model, ann()))
    )
    other = models.create("conv", neuron="relu", widths=(8, 16), depths=(1, 1))
    with pytest.raises(ValueError, match="ann"):
        conversion.load_ann_params(model, other)


def _grads(model):
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    x, labels = images(4), jnp.arange(4)

    def loss(p):
        logits = nnx.merge(graphdef, p, rest)(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    return dict(nnx.to_flat_state(jax.grad(loss)(params)))


@pytest.mark.parametrize(
    "mixer, neuron, extra",
    [("conv", "relu", {}), ("lstm", "relu", {}), ("conv", "clip", THRESHOLDS)],
)
def test_ann_gradients_are_finite_and_non_zero(mixer, neuron, extra):
    grads = _grads(ann(mixer, neuron, **extra))
    for path, g in grads.items():
        g = np.asarray(g.get_value())
        assert np.all(np.isfinite(g)), path
        # The lstm preset's membrane merges carry the SNN's membrane: unused.
        assert (np.abs(g).max() > 0) != (path[0] == "membrane_merges"), path


@pytest.mark.parametrize("mode", ["threshold", "scale"])
def test_balancing_sets_each_layer_to_its_percentile(mode):
    model, report = balanced(mode)
    names = conversion.spiking_layers(model)
    assert [r.layer for r in report] == names
    # Layer l's pre-activations depend only on layers < l: collected from the
    # balanced model they are those balancing measured (scaled, in "scale").
    values = conversion.collect_preactivations(model, images())
    params = dict(nnx.to_flat_state(nnx.state(model, nnx.Param)))
    for r in report:
        v = values[r.layer]
        assert r.fraction_above == pytest.approx(1 - Q / 100, abs=0.005), r
        assert 0 <= r.ann_fraction_above <= 1 and 0 <= r.spike_rate <= 1
        s, b = int(r.layer[1]) - 1, int(r.layer[3]) - 1
        if r.method == "threshold":
            assert r.percentile == pytest.approx(np.percentile(v, Q), rel=1e-6)
            layer = r.layer.split(".")[1]
            key = ("encoder", "vth") if layer == "encoder" else ("lif", int(layer[-1]) - 1, "vth")
            vth = params[("stages", s, b, "mixer", *key)].get_value()
            assert float(vth) == pytest.approx(r.percentile, rel=1e-6) == r.threshold
            if layer == "encoder":  # its spikes are exactly x > vth
                assert r.spike_rate == pytest.approx(r.fraction_above, abs=1e-6)
        elif r.method == "scale":  # the percentile now lands on the fixed vth
            assert np.percentile(v, Q) == pytest.approx(0.5, rel=1e-5)
            assert r.threshold == 0.5 and r.scale == pytest.approx(0.5 / r.percentile)
        else:
            assert mode == "scale" and r.layer.endswith("encoder") and r.scale == 1.0
    assert json.loads(json.dumps([r.as_dict() for r in report]))[0]["layer"] == "s1b1.encoder"


def test_balance_errors_are_clear():
    with pytest.raises(ValueError, match="learnable_threshold"):
        conversion.balance(snn(), images(4))
    with pytest.raises(ValueError, match="learnable_encoder_threshold"):
        conversion.balance(snn(learnable_threshold=True), images(4))
    with pytest.raises(ValueError, match="linear synapses"):
        conversion.balance(models.create("lstm", **TINY), images(4), mode="scale")
    with pytest.raises(ValueError, match="percentile"):
        conversion.balance(snn(**THRESHOLDS), images(4), percentile=0)
    with pytest.raises(ValueError, match="snn must be spiking"):
        conversion.balance(ann(), images(4))
    with pytest.raises(ValueError, match="not spiking layers"):
        conversion.collect_preactivations(ann(), images(4), layers=["s9b1.lif1"])


def test_a_layer_with_no_positive_percentile_is_an_error_or_kept():
    """A synapse whose currents are all negative (bias -100): its percentile is
    <= 0; "error" names the layer, "keep" leaves it as it was (method "none")
    and balances the others."""
    model = snn()
    bias = model.stages[0][0].mixer.synapses[1].bias
    bias[...] = bias[...] - 100.0
    with pytest.raises(ValueError, match=r"s1b1\.lif2's pre-activations is .* <= 0"):
        conversion.balance(model, images(), mode="scale", percentile=Q)
    state, report = conversion.balance(
        model, images(), mode="scale", percentile=Q, nonpositive="keep"
    )
    by_layer = {r.layer: r for r in report}
    kept = by_layer["s1b1.lif2"]
    assert (kept.method, kept.scale, kept.threshold) == ("none", 1.0, 0.5)
    assert kept.percentile <= 0 and kept.spike_rate == 0.0
    assert by_layer["s1b1.lif1"].method == "scale"
    balanced_model = nnx.clone(model)
    nnx.update(balanced_model, state)
    kernel = balanced_model.stages[0][0].mixer.synapses[1].kernel[...]
    np.testing.assert_array_equal(kernel, model.stages[0][0].mixer.synapses[1].kernel[...])
    with pytest.raises(ValueError, match="nonpositive must be one of"):
        conversion.balance(model, images(4), mode="scale", nonpositive="skip")
