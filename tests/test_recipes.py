"""The three recipes of train/configs/paper.py, each value against its source's
words (METHOD Sec. 7), and the schedule and optimiser pieces they added."""

from __future__ import annotations

import numpy as np
import optax
import pytest
from train_utils import cifar10_dir, tiny_config

from train import device_input, optim, schema
from train.configs import paper

# The paper's appendix (Sec. 5.2), as METHOD Sec. 7 quotes and reads it.
PAPER_TEXT = [
    ("optimizer", "sgd", "SGD"),
    ("momentum", 0.9, "momentum 0.9"),
    ("weight_decay", 2e-5, "weight decay 2e-5"),
    ("lr", 0.05, "lr 0.05"),
    ("lr_decay", "cosine", "cosine decay"),
    ("min_lr", 1e-6, "to 1e-6"),
    ("warmup_epochs", 3.0, "after 3 warm-up epochs"),
    ("warmup_lr", 1e-3, "warmup learning rate is 0.001"),
    ("num_epochs", 300, "300 epochs"),
    ("grad_clip_norm", 20.0, "global-norm gradient clip 20"),
    ("label_smoothing", 0.1, "label smoothing 0.1"),
    ("mixup_alpha", 0.1, "mixup alpha 0.1"),
    ("augment", "crop_flip", "pad 4 + random 32x32 crop + horizontal flip"),
    ("validation_examples", 0, "all 50,000 training images (no hold-out)"),
    ("cooldown_epochs", 0, "no cool-down in the text"),
]


@pytest.mark.parametrize("field, value, words", PAPER_TEXT)
def test_paper_text_recipe(field, value, words):
    config = paper.get_config("table1-cifar10-conv")
    assert config[field] == value, words


def test_paper_text_model_and_tiny_imagenet():
    config = paper.get_config("table1-tiny-conv")
    assert config.model.dropout == 0.1, "dropout 0.1 with a constant mask"
    assert config.num_epochs == 250, "250 for Tiny-ImageNet"
    assert config.batch_size == 128  # not stated: assumed
    assert set(paper.INACTIVE_TIMM_OPTIONS) == {"lr_noise_pct", "aug_splits"}
    assert paper.INACTIVE_TIMM_OPTIONS["lr_noise_pct"][0] == 0.67, "lr noise is limit in 0.67"


AUTHORS_CODE = [
    ("warmup_lr", 1e-4, "warm-up lr 1e-4"),
    ("cooldown_epochs", 10, "10 cool-down epochs at the minimum lr"),
    ("mixup_alpha", 0.0, "mixup 0"),
    ("augment", "authors", "RandomResizedCrop (0.08-1) + flip + AutoAugment 'original'"),
    ("input", "grain", "host augmentation"),
    ("seed", 42, "seed 42"),
    # The same SGD, lr, decay, clip, epochs and smoothing as the text:
    ("optimizer", "sgd", "SGD"),
    ("lr", 0.05, "lr 0.05"),
    ("grad_clip_norm", 20.0, "clip 20"),
    ("num_epochs", 300, "300 epochs"),
    ("label_smoothing", 0.1, "smoothing 0.1"),
]


@pytest.mark.parametrize("field, value, words", AUTHORS_CODE)
def test_authors_code_recipe(field, value, words):
    config = paper.get_config("authors-table4-conv-g4-dilated")
    assert config[field] == value, words


def test_authors_code_model():
    config = paper.get_config("authors-table1-cifar10-conv")
    assert config.model.dropout == 0.0, "dropout 0"
    assert config.model.encoder == "bernoulli", "every spiking block's input x > U(0, 1)"
    assert (config.model.vth, config.model.alpha) == (0.5, 0.4), "vth 0.5, decay 0.4"
    assert config.model.surrogate == "rectangular"
    assert paper.get_config("authors-table4-conv-g2-normal").model.grid == (1, 2)


def test_conversion_recipes():
    ann = paper.get_config("ann-table1-cifar10-conv")
    assert ann.model.neuron == "relu" and ann.optimizer == "sgd" and ann.lr == 0.05
    snn = paper.get_config("convert-table1-cifar10-conv")
    assert snn.model.neuron == "lif"
    assert snn.init_from == "runs/ann-table1-cifar10-conv"
    assert snn.balance_percentile == 90.0 and snn.balance_images == 512, "Chowdhury's code"
    assert (snn.optimizer, snn.weight_decay) == ("adam", 1e-4), "adam (weight decay=0.0001)"
    assert snn.lr == 1e-3, "Initial learning rate is chosen as 0.001"
    assert (snn.lr_decay, snn.lr_step_factor) == ("step", 0.1), "which is decayed by 0.1"
    assert snn.num_epochs == 300, "trained for 300 epochs"


def test_every_name_validates():
    assert len(paper.NAMES) == 4 * len(paper.EXPERIMENTS)
    for name in paper.NAMES:
        schema.validate(paper.get_config(name))
    with pytest.raises(ValueError, match="authors-, ann- or convert-"):
        paper.get_config("authors-table9")


def _lrs(config, per_epoch=10):
    schedule = optim.create_learning_rate_schedule(config, per_epoch)
    total = optim.total_steps(config, per_epoch)
    return np.array([float(schedule(s)) for s in range(total)]), total


def test_cooldown_holds_min_lr_after_the_decay():
    config = tiny_config(
        num_train_steps=-1,
        num_epochs=5,
        cooldown_epochs=2,
        warmup_epochs=1.0,
        lr=0.1,
        warmup_lr=1e-4,
        min_lr=1e-5,
    )
    lrs, total = _lrs(config)
    assert total == 70
    assert lrs[0] == pytest.approx(1e-4, rel=1e-4) and lrs[10] == pytest.approx(0.1)
    assert lrs[49] > 1e-5 and np.allclose(lrs[50:], 1e-5)  # the decay ends at epoch 5


def test_step_decay_multiplies_at_the_fractions():
    config = tiny_config(
        num_train_steps=-1,
        num_epochs=10,
        lr_decay="step",
        lr=1e-3,
        warmup_epochs=0.0,
        lr_steps=(0.6, 0.8, 0.9),
        lr_step_factor=0.1,
    )
    lrs, _ = _lrs(config)
    expected = np.repeat([1e-3, 1e-4, 1e-5, 1e-6], [60, 20, 10, 10])
    np.testing.assert_allclose(lrs, expected, rtol=1e-6)


def test_adam_couples_weight_decay_as_pytorch():
    """optimizer "adam": the decay is added to the gradient before Adam's
    normalisation (PyTorch's Adam(weight_decay=...)), unlike AdamW."""
    import jax.numpy as jnp

    config = tiny_config(optimizer="adam", weight_decay=0.5, grad_clip_norm=0.0, lr=1.0)
    tx = optim.create_optimizer(config, optax.constant_schedule(1.0))
    params = {"kernel": jnp.array([2.0])}
    updates, _ = tx.update({"kernel": jnp.array([0.0])}, tx.init(params), params)
    # Gradient 0 + 0.5 * 2 = 1: Adam's first step is -lr * sign = -1 (AdamW: -0.5 * 2 - 0).
    assert float(updates["kernel"][0]) == pytest.approx(-1.0, rel=1e-4)


def test_device_input_says_it_cannot_run_the_authors_augmentation():
    from train.mesh import create_mesh

    cifar10_dir()
    config = tiny_config(augment="authors", input="device")
    with pytest.raises(
        ValueError, match="cannot run it: config.augment='authors' runs on the host"
    ):
        device_input.choose(config, create_mesh(), num_examples=50_000, backend="gpu")
    config.input = "auto"
    plan = device_input.choose(config, create_mesh(), num_examples=50_000, backend="gpu")
    assert plan.input == "grain" and "runs on the host" in plan.reason


def test_threshold_balancing_needs_learnable_thresholds():
    config = paper.get_config("convert-table1-cifar10-conv")
    config.model.learnable_encoder_threshold = False
    with pytest.raises(schema.ConfigError, match="learnable_encoder_threshold=False"):
        schema.validate(config)


def test_conversion_run_starts_from_the_ann_and_reports_each_layer(tmp_path):
    """init_from: the ANN run's parameters, copied unchanged (thresholds
    aside), balanced per layer; the report lands in the summary."""
    from train_utils import flatten

    from train import init_from, rundir, state, train

    ann_dir = str(tmp_path / "ann")
    train.train_and_evaluate(tiny_config(model_neuron="relu"), ann_dir)
    config = tiny_config(
        init_from=ann_dir,
        balance_images=64,
        balance_percentile=80.0,
        model_learnable_threshold=True,
    )
    converted = init_from.convert(config, state.setup(config), str(tmp_path), log=None)
    ann = flatten(rundir.load_run(ann_dir).state.params)
    snn = flatten(converted.params)
    thresholds = {k for k in snn if "['vth']" in k}
    assert thresholds and set(snn) - thresholds == set(ann)
    for key in ann:
        np.testing.assert_array_equal(snn[key], ann[key], err_msg=key)
    records = init_from.read_report(str(tmp_path))
    assert [r["layer"] for r in records] == [
        "s1b1.encoder",
        "s1b1.lif1",
        "s1b1.lif2",
        "s1b2.encoder",
        "s1b2.lif1",
        "s1b2.lif2",
    ]
    for r in records:
        if r["method"] == "threshold":  # the LIF layers (the Bernoulli encoders: "none")
            assert r["threshold"] == pytest.approx(r["percentile"])
            assert r["fraction_above"] == pytest.approx(0.2, abs=0.02)
    vth = sorted(float(v) for k, v in snn.items() if k in thresholds)
    assert vth == sorted(r["threshold"] for r in records if r["method"] == "threshold")
    summary = train.train_and_evaluate(config, str(tmp_path / "snn"))
    assert [r["layer"] for r in summary["conversion"]] == [r["layer"] for r in records]


def test_quick_two_phase_variants():
    from train.configs import quick

    base, ann, convert = quick.get_config(), quick.get_config("ann3"), quick.get_config("convert3")
    assert ann.model.neuron == "relu" and ann.num_epochs == 3
    assert convert.init_from == "runs/quick-ann3" and convert.num_epochs == 5
    assert convert.balance_mode == "scale" and not convert.model.learnable_threshold
    for field in ("optimizer", "lr", "batch_size", "lr_decay", "weight_decay"):
        assert ann[field] == convert[field] == base[field], field
    assert quick.get_config("ann8").num_epochs == 8
    with pytest.raises(ValueError, match="convert<k>"):
        quick.get_config("convert8")


def test_scale_mode_conversion_keeps_fixed_thresholds(tmp_path):
    """balance_mode="scale" (quick's two-phase variant): the SNN's thresholds stay
    the config's; each LIF layer's synapse is scaled instead."""
    from train_utils import flatten

    from train import init_from, rundir, state, train

    ann_dir = str(tmp_path / "ann")
    model = dict(model_encoder="deterministic", model_synapse_init="window", model_pre_norm=True)
    train.train_and_evaluate(tiny_config(model_neuron="relu", **model), ann_dir)
    config = tiny_config(init_from=ann_dir, balance_images=64, balance_mode="scale", **model)
    converted = flatten(
        init_from.convert(config, state.setup(config), str(tmp_path), log=None).params
    )
    ann = flatten(rundir.load_run(ann_dir).state.params)
    assert set(converted) == set(ann)  # no threshold parameters
    records = init_from.read_report(str(tmp_path))
    lif = [r for r in records if ".lif" in r["layer"]]
    assert lif and all(r["method"] == "scale" and r["threshold"] == 0.5 for r in lif)
    key = "['stages'][0][0]['mixer']['synapses'][0]['kernel'].value"
    np.testing.assert_allclose(converted[key], ann[key] * lif[0]["scale"], rtol=1e-5)
