"""Tests of train/train.py, train/metrics.py and the configs: schedule,
optimiser, loss, the step on real CIFAR-10, the whole program end to end."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from train_utils import (
    cifar10_dir,
    copy_run,
    tiny_config,
    tiny_run_config,
)

from snnjax import energy, models
from train import evaluate, input_pipeline, metrics, train
from train.configs import default, paper, quick
from train.datasets.info import get_dataset_info

# --- Configs ------------------------------------------------------------------


@pytest.mark.parametrize("name", paper.EXPERIMENTS)
def test_every_paper_config_builds_a_valid_model(name):
    config = paper.get_config(name)
    train.validate_config(config)
    preset, cfg = train.model_config(config)
    assert preset == config.model.name
    assert config.num_epochs == (250 if config.dataset == "tiny_imagenet" else 300)
    assert (config.optimizer, config.lr, config.weight_decay, config.grad_clip_norm) == (
        "sgd",
        0.05,
        2e-5,
        20.0,
    )
    assert cfg.image_size == input_pipeline.get_dataset_info(config.dataset).image_size


def test_paper_configs_vary_what_the_paper_varies():
    assert paper.get_config("table1-cifar10-conv-msp").model.region_threshold is None
    assert paper.get_config("table1-cifar10-conv").model.region_threshold == 0.1
    _, lstm = train.model_config(paper.get_config("table1-cifar100-lstm"))
    assert (lstm.mixer, lstm.carry_membrane, lstm.num_classes) == ("lstm", True, 100)
    _, cfg = train.model_config(paper.get_config("table4-conv-g2-normal"))
    assert (cfg.grid, cfg.dilated) == ((1, 2), False)
    _, cfg = train.model_config(paper.get_config("fig5-lstm-theta0.7"))
    assert (cfg.fusion, cfg.theta) == ("omega", 0.7)
    _, cfg = train.model_config(paper.get_config("fig5-conv-fusion-tanh"))
    assert cfg.fusion == "tanh"
    assert "table6-cifar100-mlp" not in paper.EXPERIMENTS  # Not in the paper.


def test_unknown_experiment_lists_the_names():
    with pytest.raises(ValueError, match="table1-cifar10-conv"):
        paper.get_config("table9-foo")


def test_model_overrides_from_the_command_line_forms():
    config = default.get_config()
    config.model.grid = (1,)  # What --config.model.grid=1 gives.
    config.model.dtype = "bfloat16"
    _, cfg = train.model_config(config)
    assert cfg.grid == (1, 1) and cfg.dtype == jnp.bfloat16
    config.model.dtype = "float16"
    with pytest.raises(ValueError, match="dtype"):
        train.model_config(config)


def test_quick_keeps_the_spiking_machinery():
    train.validate_config(quick.get_config())
    _, cfg = train.model_config(quick.get_config())
    assert cfg.grid == (2, 2) and cfg.dilated and cfg.fusion == "omega"


# --- Schedule, optimiser, loss ---------------------------------------------------


def test_schedule_warmup_then_cosine():
    config = default.get_config()  # lr 0.05, from 1e-4 over 3 epochs, to 1e-6 at 300.
    schedule = train.create_learning_rate_schedule(config, steps_per_epoch=10)
    np.testing.assert_allclose(schedule(0), 1e-4, rtol=1e-4)
    np.testing.assert_allclose(schedule(15), (1e-4 + 0.05) / 2, rtol=1e-5)
    np.testing.assert_allclose(schedule(30), 0.05, rtol=1e-5)
    np.testing.assert_allclose(schedule(30 + (3000 - 30) // 2), (0.05 + 1e-6) / 2, rtol=1e-4)
    np.testing.assert_allclose(schedule(3000), 1e-6, rtol=1e-4)
    config.num_epochs = 3
    with pytest.raises(ValueError, match="warm-up"):
        train.create_learning_rate_schedule(config, steps_per_epoch=10)


def test_schedule_warmup_then_linear_decay():
    config = default.get_config()
    config.lr_decay = "linear"
    schedule = train.create_learning_rate_schedule(config, steps_per_epoch=10)
    np.testing.assert_allclose(schedule(15), (1e-4 + 0.05) / 2, rtol=1e-5)
    np.testing.assert_allclose(schedule(30), 0.05, rtol=1e-5)
    np.testing.assert_allclose(schedule(30 + 2970 // 3), 0.05 - (0.05 - 1e-6) / 3, rtol=1e-5)
    np.testing.assert_allclose(schedule(3000), 1e-6, rtol=1e-4)
    config.lr_decay = "staircase"
    with pytest.raises(train.ConfigError, match="config.lr_decay='staircase'"):
        train.validate_config(config)


def test_mixer_lr_scale_scales_only_the_mixers_updates():
    """The same gradients: the mixers' updates are ``scale`` times the plain
    optimiser's, every other update identical."""
    config = default.get_config()
    config.model = default.model_config("conv", widths=(8,), depths=(1,))
    config.optimizer = "adamw"
    params = train.setup(config, devices=jax.devices()[:1], per_epoch=10).state.params
    grads = jax.tree.map(lambda p: jnp.cos(p) + 0.1, params)
    schedule = optax.constant_schedule(1e-2)
    plain = train.create_optimizer(config, schedule)
    config.mixer_lr_scale = 3.0
    scaled = train.create_optimizer(config, schedule)
    a = plain.update(grads, plain.init(params), params)[0]
    b = scaled.update(grads, scaled.init(params), params)[0]
    paths = 0
    for (path, u), v in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves(b)):
        factor = 3.0 if "'mixer'" in jax.tree_util.keystr(path) else 1.0
        np.testing.assert_allclose(v, factor * u, rtol=1e-6)
        paths += factor == 3.0
    assert paths >= 4  # synapse kernels and biases, the projection
    config.mixer_lr_scale = 0.0
    with pytest.raises(train.ConfigError, match="mixer_lr_scale"):
        train.validate_config(config)


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_optimizer_decays_weights_but_not_biases(name):
    config = default.get_config()
    config.optimizer, config.weight_decay = name, 0.5
    optimizer = train.create_optimizer(config, optax.constant_schedule(0.1))
    model = nnx.Linear(3, 2, bias_init=nnx.initializers.ones, rngs=nnx.Rngs(0))
    params = nnx.state(model, nnx.Param)
    zero = jax.tree.map(jnp.zeros_like, params)
    updates, _ = optimizer.update(zero, optimizer.init(params), params)
    assert np.all(np.asarray(updates["bias"][...]) == 0)
    assert np.all(np.asarray(updates["kernel"][...]) != 0)


_DECAYED_COMMON = {
    "head.kernel",
    "merges.reduction.kernel",
    "stages.mixer.proj.kernel",
    "stages.mlp.fc1.kernel",
    "stages.mlp.fc2.kernel",
    "stem.kernel",
}
_DECAYED = {
    "conv": _DECAYED_COMMON | {"stages.mixer.synapses.kernel"},
    "mlp": _DECAYED_COMMON | {"stages.mixer.synapses.kernel", "membrane_merges.reduction.kernel"},
    **{
        name: _DECAYED_COMMON
        | {
            "stages.mixer.synapses.w_in.kernel",
            "stages.mixer.synapses.w_rec",
            "membrane_merges.reduction.kernel",
        }
        for name in ("lstm", "gru", "rnn", "birnn")
    },
}


def _decayed_names(model) -> tuple[set, set]:
    """(decayed, not decayed) parameter paths of ``model``, without indices."""
    mask = train.decay_mask(nnx.state(model, nnx.Param))
    names = {True: set(), False: set()}
    for path, decayed in jax.tree_util.tree_flatten_with_path(mask)[0]:
        keys = [k.key for k in path if isinstance(getattr(k, "key", None), str)]
        names[bool(decayed)].add(".".join(keys))
    return names[True], names[False]


@pytest.mark.parametrize("name", sorted(_DECAYED))
def test_weight_decay_applies_to_kernels_and_weight_matrices_only(name):
    model = nnx.eval_shape(
        lambda: models.create(  # Shapes only: no compute needed.
            name,
            rngs=0,
            widths=(8, 16, 32, 64),
            depths=(1, 1, 1, 1),
            learnable_threshold=True,
            learnable_leak=True,
            pre_norm=True,
        )
    )
    decayed, kept = _decayed_names(model)
    assert decayed == _DECAYED[name]
    # Biases (the recurrent b_rec is 2-D), LayerNorm scales, LIF thresholds and leaks.
    assert {n.rsplit(".", 1)[-1] for n in kept} <= {"bias", "b_rec", "scale", "vth", "alpha"}
    assert {"stages.norm1.scale", "stages.mixer.lif.vth", "stages.mixer.lif.alpha"} <= kept
    if name != "conv" and name != "mlp":
        assert "stages.mixer.synapses.b_rec" in kept


def test_recurrent_bias_is_not_decayed_by_the_optimizer():
    config = default.get_config()
    config.optimizer, config.weight_decay = "adamw", 0.5
    optimizer = train.create_optimizer(config, optax.constant_schedule(0.1))
    # The recurrent synapse's parameters (as in the lstm preset), as a plain tree.
    params = {
        "mixer": {
            "synapses": [
                {
                    "b_rec": jnp.ones((2, 8)),
                    "w_rec": jnp.ones((2, 4, 8)),
                    "w_in": {"kernel": jnp.ones((4, 16))},
                }
            ]
        }
    }
    zero = jax.tree.map(jnp.zeros_like, params)
    updates, _ = optimizer.update(zero, optimizer.init(params), params)
    synapse = updates["mixer"]["synapses"][0]
    assert np.all(np.asarray(synapse["b_rec"]) == 0)
    assert np.all(np.asarray(synapse["w_rec"]) != 0)
    assert np.all(np.asarray(synapse["w_in"]["kernel"]) != 0)


def test_clipping_bounds_the_update():
    config = default.get_config()
    config.weight_decay, config.momentum, config.grad_clip_norm = 0.0, 0.0, 1.0
    optimizer = train.create_optimizer(config, optax.constant_schedule(1.0))
    params = {"w": jnp.zeros(4)}
    updates, _ = optimizer.update({"w": jnp.full(4, 100.0)}, optimizer.init(params), params)
    np.testing.assert_allclose(optax.tree.norm(updates), 1.0, rtol=1e-6)


def test_soft_cross_entropy_with_smoothing():
    logits = jnp.array([[2.0, 0.0, -1.0]])
    onehot = jnp.array([[1.0, 0.0, 0.0]])
    targets = 0.9 * onehot + 0.1 / 3
    expected = -jnp.sum(targets * jax.nn.log_softmax(logits))
    np.testing.assert_allclose(
        train.soft_cross_entropy(logits, onehot, 0.1)[0], expected, rtol=1e-6
    )


def test_format_duration():
    assert metrics.format_duration(75) == "1:15"
    assert metrics.format_duration(3725) == "1:02:05"
    assert metrics.format_duration(float("nan")) == "?"


# --- Training on real CIFAR-10 ----------------------------------------------------


def test_a_few_steps_lower_the_loss_on_cifar10():
    config = tiny_config(model_dropout=0.0, lr=1e-2, num_train_steps=100)
    chain = train.setup(
        config, devices=jax.devices()[:1], schedule=optax.constant_schedule(config.lr)
    )
    mesh, state, step = chain.mesh, chain.state, chain.train_step(config)
    iterator = input_pipeline.create_train_iterator(
        "cifar10", global_batch_size=64, seed=0, data_dir=config.data_dir
    )
    batch = train.global_batch(next(iterator), mesh)
    losses = []
    for _ in range(12):
        state, step_metrics = step(state, batch)
        losses.append(float(step_metrics["loss"]))
    assert int(state.step) == 12
    assert losses[-1] < losses[0] - 0.15, losses
    assert np.isfinite(losses).all()


def _stem_covariance(images, kernel) -> np.ndarray:
    """The channel covariance of the stem's outputs (2x2 conv, stride 2) on ``images``."""
    y = jax.lax.conv_general_dilated(
        jnp.asarray(images),
        jnp.asarray(kernel),
        (2, 2),
        "VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision="highest",
    )
    y = np.asarray(y, np.float64).reshape(-1, y.shape[-1])
    return y.T @ y / len(y)


def test_stem_whitening_whitens_the_stem_on_training_images():
    config = tiny_config(
        model_widths=(16,), model_depths=(1,), stem_whitening=400, stem_whitening_eps=1e-8
    )
    chain = train.setup(config, devices=jax.devices()[:1], schedule=optax.constant_schedule(1e-3))
    params = nnx.to_flat_state(chain.state.params)
    plain = nnx.to_flat_state(nnx.state(train.create_model(config, nnx.Rngs(0)), nnx.Param))
    kernel = np.asarray(dict(params)[("stem", "kernel")][...])
    assert kernel.shape == (2, 2, 3, 16)
    np.testing.assert_array_equal(kernel[..., 1::2], -kernel[..., 0::2])  # +/- pairs
    images = input_pipeline.load_train_images("cifar10", 400, data_dir=config.data_dir)
    # The 8 directions of largest variance: decorrelated, unit variance (eps ~ 0).
    np.testing.assert_allclose(_stem_covariance(images, kernel[..., 0::2]), np.eye(8), atol=0.02)
    # The random stem is not white, and whitening changes nothing else.
    plain = dict(plain)
    assert np.abs(_stem_covariance(images, plain[("stem", "kernel")][...]) - np.eye(16)).max() > 0.1
    for path, value in params:
        if path != ("stem", "kernel"):
            np.testing.assert_array_equal(value[...], plain[path][...], err_msg=str(path))


def test_load_train_images_never_reads_held_out_rows():
    data_dir = cifar10_dir()
    kept = input_pipeline.load_train_images(
        "cifar10", 100, data_dir=data_dir, validation_examples=49_990
    )
    raw, _ = input_pipeline.load_arrays("cifar10", "train", 0, 10, data_dir=data_dir)
    info = get_dataset_info("cifar10")
    expected = (raw / 255 - np.asarray(info.mean)) / np.asarray(info.std)
    assert kept.shape == (10, 32, 32, 3) and kept.dtype == np.float32  # the 10 training rows
    np.testing.assert_allclose(kept, expected, rtol=1e-5, atol=1e-5)


def test_local_data_parallel_on_one_device_is_gspmd_bit_for_bit():
    """On one device "local" (shard_map) draws and computes as "gspmd": the
    tiny model's dropout and Bernoulli encoder included."""
    batch = None
    params = {}
    for mode in ("gspmd", "local"):
        config = tiny_config(data_parallel=mode)
        chain = train.setup(config, devices=jax.devices()[:1], per_epoch=1000)
        if batch is None:
            iterator = input_pipeline.create_train_iterator(
                "cifar10", global_batch_size=32, seed=0, data_dir=config.data_dir
            )
            batch = train.global_batch(next(iterator), chain.mesh)
        state, _ = chain.train_step(config)(chain.state, batch)
        params[mode] = nnx.to_flat_state(state.params)
    assert len(params["gspmd"]) > 10
    for (path, a), (_, b) in zip(params["gspmd"], params["local"], strict=True):
        np.testing.assert_array_equal(a[...], b[...], err_msg=str(path))


def test_bfloat16_compute_keeps_float32_parameters():
    config = tiny_config(model_dtype="bfloat16", model_widths=(8,), model_depths=(1,))
    chain = train.setup(config, devices=jax.devices()[:1], schedule=optax.constant_schedule(1e-3))
    mesh = chain.mesh
    batch = {
        "image": np.zeros((4, 32, 32, 3), np.float32),
        "label": np.zeros(4, np.int32),
        "label_onehot": np.eye(10, dtype=np.float32)[np.zeros(4, int)],
    }
    state, step_metrics = chain.train_step(config)(chain.state, train.global_batch(batch, mesh))
    assert {x.dtype for x in jax.tree.leaves(state.params)} == {jnp.dtype(jnp.float32)}
    assert np.isfinite(float(step_metrics["loss"]))


def test_train_and_evaluate_end_to_end(tiny_run, tmp_path):
    """The whole program on a tiny config (the shared run, tests/conftest.py):
    metrics files, checkpoints (last N and best, by validation), the summary
    with spikes and energy, validation and test accuracy apart, and
    evaluate.py agreeing."""
    workdir, summary = tiny_run

    assert summary["step"] == 6 and summary["num_images"] == 64
    assert summary["split"] == "test" and summary["checkpoint"] == "final"
    assert summary["test_accuracy"] == summary["accuracy"]
    assert summary["validation_examples"] == 5000 and summary["best_step"] == 6
    assert summary["validation_accuracy"] == summary["best_validation_accuracy"]
    for key in ("accuracy", "mean_spike_rate", "spikes_per_image", "energy_mj_per_image"):
        assert np.isfinite(summary[key]) and summary[key] >= 0, key
    assert 0 < summary["mean_spike_rate"] < 1
    assert summary["energy_mj_per_image"] < summary["ann_energy_mj_per_image"]
    with open(os.path.join(workdir, "summary.json")) as f:
        assert json.load(f)["accuracy"] == summary["accuracy"]
    # The EMA's accuracy is the headline; the final iterate's is beside it.
    assert summary["ema_decay"] == 0.5 and 0 <= summary["final_iterate_accuracy"] <= 1
    assert "final iterate" in metrics.format_summary(summary)

    records = metrics.read_metrics(workdir)
    assert [r["step"] for r in records if "train/loss" in r] == [2, 4, 6]
    assert [r["step"] for r in records if "eval/accuracy" in r] == [6]  # Validation.
    assert [r["test/accuracy"] for r in records if "test/accuracy" in r] == [summary["accuracy"]]
    assert os.listdir(os.path.join(workdir, "tensorboard"))
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["4", "6"]
    assert os.listdir(os.path.join(workdir, "best")) == ["6"]

    workdir = copy_run(workdir, tmp_path)  # Evaluating writes summary.json.
    again = evaluate.evaluate_checkpoint(workdir, max_eval_batches=1)
    assert again["accuracy"] == summary["accuracy"]
    assert again["spikes_per_image"] == pytest.approx(summary["spikes_per_image"], rel=1e-6)

    # Rerunning a finished run only evaluates again.
    assert train.train_and_evaluate(tiny_run_config(), workdir)["accuracy"] == summary["accuracy"]


def test_flip_tta_accuracy_is_that_of_the_summed_logits(tiny_run, tmp_path):
    """eval_flip: accuracy_flip counts the argmax of logits(image) +
    logits(horizontal mirror), computed here by hand; the plain figures stay."""
    workdir = copy_run(tiny_run[0], tmp_path)
    summary = evaluate.evaluate_checkpoint(workdir, max_eval_batches=1, eval_flip=True)
    assert summary["accuracy"] == tiny_run[1]["accuracy"]
    assert 0 <= summary["accuracy_flip"] <= 1
    assert "with flip TTA" in metrics.format_summary(summary)

    config, model, state = evaluate.load_checkpoint(workdir)
    batch = next(
        input_pipeline.create_eval_iterator(
            config.dataset,
            global_batch_size=config.eval_batch_size,
            data_dir=config.data_dir,
            download=False,
            validation_examples=config.validation_examples,
        )
    )
    # A copy: the tiny model's Bernoulli encoder draws from the RNG state in
    # ``rest``, which eval_step below must see unadvanced (then both draw alike).
    net = nnx.merge(model.eval_graphdef, state.params, state.rest, copy=True)
    logits = nnx.jit(lambda net, image: net(image, stats=True)[0])  # as eval_step runs it
    image = jnp.asarray(batch["image"])
    plain, mirrored, upside_down = (
        logits(net, image),
        logits(net, image[:, :, ::-1]),
        logits(net, image[:, ::-1]),
    )
    # Labels that the flip-averaged prediction gets all right, and that the
    # plain and the vertically flipped predictions do not.
    # Near-ties (top-2 margin < 1e-3) are masked out: rounding may break them.
    summed = np.sort(np.asarray(plain + mirrored), -1)
    mask = batch["mask"] * (summed[:, -1] - summed[:, -2] > 1e-3)
    labels = np.argmax(np.asarray(plain + mirrored), -1)
    assert (mask * (labels != np.argmax(np.asarray(plain), -1))).any()
    assert (mask * (labels != np.argmax(np.asarray(plain + upside_down), -1))).any()
    # The jitted step of evaluate_checkpoint above (its compiled program is
    # reused): eager, eval_step would dispatch the model's operations one by one.
    mesh = train.create_mesh()
    step = train.make_eval_step(model, mesh, flip=True)
    chosen = dict(
        batch,
        label=labels.astype(batch["label"].dtype),
        mask=mask.astype(batch["mask"].dtype),
    )
    sums, _ = step(state.params, state.rest, train.global_batch(chosen, mesh))
    assert int(sums["correct_flip"]) == int(mask.sum()) > 32
    assert int(sums["correct"]) < int(mask.sum())


def test_summary_matches_the_energy_module():
    cfg = models.config("conv", widths=(8, 16), depths=(2, 1))
    model = models.create("conv", rngs=0, widths=(8, 16), depths=(2, 1))
    model.eval()
    images = jax.random.normal(jax.random.key(0), (3, 32, 32, 3))
    _, counts = nnx.jit(lambda m, x: m(x, stats=True))(model, images)
    summary = metrics.summarise(
        model_config=cfg,
        num_params=1,
        num_images=3,
        correct=1.0,
        loss_sum=3.0,
        spikes={k: float(np.sum(c.spikes)) for k, c in counts.items()},
        neurons={k: int(c.neurons) for k, c in counts.items()},
    )
    report = energy.estimate(models.operations(cfg), energy.spike_rates(counts))
    assert summary["energy_mj_per_image"] == pytest.approx(report.energy_mj, rel=1e-6)
    assert summary["mean_spike_rate"] == pytest.approx(energy.mean_spike_rate(counts), rel=1e-6)
    assert summary["spikes_per_image"] == pytest.approx(energy.spikes_per_image(counts), rel=1e-6)
    assert metrics.format_summary(summary).count("\n") >= 5
