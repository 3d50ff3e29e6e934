"""Tests of train/device_input.py: the in-memory training input.

Augmentation statistics on synthetic images whose pixels encode their own
coordinates (so every crop offset and flip can be read back exactly); the
epoch's examples on the shared real CIFAR-10 against the grain path; exact
resume of the training program mid-epoch; the sharded layout on 8 simulated
CPU devices (a subprocess: the device count is fixed before JAX starts).
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from train_utils import REPO, cifar10_dir, subprocess_env

from train import device_batch, device_input, input_pipeline, schema
from train.mesh import create_mesh

CIFAR10 = input_pipeline.get_dataset_info("cifar10")
MEAN = np.array(CIFAR10.mean, np.float32)
STD = np.array(CIFAR10.std, np.float32)


def _batch_fn(steps_per_epoch, batch_size, mixup_alpha=0.0, augment=True, seed=0, crop_padding=4):
    return jax.jit(
        lambda images, labels, step: device_batch.make_batch(
            images,
            labels,
            step,
            seed=seed,
            steps_per_epoch=steps_per_epoch,
            batch_size=batch_size,
            crop_padding=crop_padding,
            mean=CIFAR10.mean,
            std=CIFAR10.std,
            num_classes=10,
            mixup_alpha=mixup_alpha,
            augment=augment,
        )
    )


def _coordinate_images(count: int) -> np.ndarray:
    """uint8 (count, 32, 32, 3): channel 0 = row + 1, channel 1 = column + 1,
    channel 2 = 100 + example % 100 (zero only in the crop's padding)."""
    rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    image = np.stack([rows + 1, cols + 1, np.zeros_like(rows)], -1)
    images = np.repeat(image[None], count, 0)
    images[..., 2] = 100 + (np.arange(count) % 100)[:, None, None]
    return images.astype(np.uint8)


def _crop_flip(image: np.ndarray, top: int, left: int, flip: bool, pad: int = 4) -> np.ndarray:
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
    crop = padded[top : top + 32, left : left + 32]
    return crop[:, ::-1] if flip else crop


def _raw(image: np.ndarray) -> np.ndarray:
    """Normalised images back to uint8 values."""
    return np.rint((image * STD + MEAN) * 255).astype(np.int32)


@pytest.mark.parametrize("pad", [4, 2])  # CIFAR's default, the quick config's
def test_crop_offsets_uniform_flips_half_exact_normalisation(pad):
    count = 1024
    images = _coordinate_images(count)
    labels = (np.arange(count) % 10).astype(np.int32)
    fn = _batch_fn(steps_per_epoch=2, batch_size=512, crop_padding=pad)
    tops, lefts, flips = [], [], []
    for step in range(4):
        batch = jax.device_get(fn(images[None], labels[None], step))
        raw = _raw(batch["image"])
        for image, normalised, index in zip(raw, batch["image"], batch["index"]):
            flip = image[16, 17, 1] < image[16, 16, 1]
            top = image[16, 16, 0] - 17 + pad
            left = image[16, 16, 1] - (16 if flip else 17) + pad
            expected = _crop_flip(images[index], top, left, flip, pad)
            expected = (expected.astype(np.float32) / 255 - MEAN) / STD
            np.testing.assert_allclose(normalised, expected, atol=1e-5)
            tops.append(top), lefts.append(left), flips.append(flip)
        np.testing.assert_array_equal(batch["label"], labels[batch["index"]])
        np.testing.assert_array_equal(batch["label_onehot"], np.eye(10)[batch["label"]])
    samples, offsets_per_axis = len(tops), 2 * pad + 1  # 2048: pad 4: each ~228 +- 14 times
    for offsets in (tops, lefts):
        counts = np.bincount(offsets, minlength=offsets_per_axis)
        assert len(counts) == offsets_per_axis, counts
        assert counts.min() > 0.75 * samples / offsets_per_axis, counts
        assert counts.max() < 1.25 * samples / offsets_per_axis, counts
    assert 0.45 < np.mean(flips) < 0.55
    # The offsets of the two axes and the flips are independent draws.
    assert abs(np.corrcoef(tops, lefts)[0, 1]) < 0.1


def test_mixup_mixes_within_each_shard_with_soft_labels():
    """Each mixed row is ``lam x_i + (1 - lam) x_j`` with ``x_j`` a row of the
    same shard's batch, and its soft label ``lam e_i + (1 - lam) e_j``."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (256, 32, 32, 3), np.uint8)
    labels = (np.arange(256) % 10).astype(np.int32)
    fn = _batch_fn(steps_per_epoch=4, batch_size=64, mixup_alpha=0.4, augment=False)
    batch = jax.device_get(fn(images.reshape(4, 64, 32, 32, 3), labels.reshape(4, 64), 1))
    onehot = batch["label_onehot"]
    np.testing.assert_allclose(onehot.sum(-1), 1, rtol=1e-6)
    clean = (images.astype(np.float32) / 255 - MEAN) / STD
    mixed_rows = 0
    for shard in range(4):
        rows = np.arange(16 * shard, 16 * (shard + 1))
        own = clean[batch["index"][rows]]
        for i in rows:
            lam = onehot[i, batch["label"][i]]
            if (onehot[i] > 0).sum() != 2 or lam > 0.999:
                continue
            mixed_rows += 1
            partner = (batch["image"][i] - lam * clean[batch["index"][i]]) / (1 - lam)
            errors = np.abs(own - partner).reshape(16, -1).max(-1)
            assert errors.min() < 1e-2, errors.min()
    assert mixed_rows > 8


def test_same_seed_same_batches_other_seed_other_order():
    images, labels = _coordinate_images(64)[None], np.arange(64, dtype=np.int32)[None]
    fn = _batch_fn(4, 16)
    first = jax.device_get(fn(images, labels, 5))
    again = jax.device_get(fn(images, labels, 5))
    other = jax.device_get(_batch_fn(4, 16, seed=1)(images, labels, 5))
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["index"], other["index"])


@pytest.fixture(scope="module")
def cifar_rows():
    """The first 1,000 CIFAR-10 training images and labels, decoded by load_arrays."""
    data_dir = cifar10_dir()
    return data_dir, input_pipeline.load_arrays("cifar10", "train", 0, 1000, data_dir=data_dir)


def test_load_arrays_matches_the_source(cifar_rows):
    data_dir, (images, labels) = cifar_rows
    source = input_pipeline.load_source("cifar10", "train", data_dir=data_dir)
    assert images.shape == (1000, 32, 32, 3) and images.dtype == np.uint8
    for i in (0, 1, 500, 999):
        np.testing.assert_array_equal(images[i], source[i]["image"])
        assert labels[i] == source[i]["label"]


@pytest.mark.parametrize("num_shards", [1, 4])
def test_each_epoch_has_every_example_once_like_grain(cifar_rows, num_shards):
    """1,000 examples, batch 20, 50 steps per epoch: each epoch of the in-memory
    path holds each example once (the images themselves, before augmentation),
    the same multiset as a grain epoch over the same examples (grain's 1/50
    host slice), and epochs differ in order."""
    data_dir, (images, labels) = cifar_rows
    fn = _batch_fn(steps_per_epoch=50, batch_size=20, augment=False)
    shard_images = images.reshape((num_shards, -1) + images.shape[1:])
    shard_labels = labels.reshape(num_shards, -1)
    grain_iter = input_pipeline.create_train_iterator(
        "cifar10",
        global_batch_size=1000,
        seed=0,
        data_dir=data_dir,
        process_index=0,
        process_count=50,
    )
    orders = []
    for epoch in range(2):
        batches = [
            jax.device_get(fn(shard_images, shard_labels, epoch * 50 + k)) for k in range(50)
        ]
        index = np.concatenate([b["index"] for b in batches])
        np.testing.assert_array_equal(np.sort(index), np.arange(1000))
        image = np.concatenate([b["image"] for b in batches])
        np.testing.assert_array_equal(_raw(image), images[index])
        label = np.concatenate([b["label"] for b in batches])
        grain_labels = np.concatenate([next(grain_iter)["label"] for _ in range(50)])
        assert collections.Counter(label.tolist()) == collections.Counter(grain_labels.tolist())
        orders.append(index)
    assert not np.array_equal(orders[0], orders[1])


def test_validation_examples_are_never_loaded(cifar_rows):
    """With ``validation_examples`` = N, the device path uses rows [0, 50000 - N)."""
    data_dir, (images, labels) = cifar_rows
    config = _config(
        dataset="cifar10",
        data_dir=data_dir,
        seed=0,
        batch_size=100,
        mixup_alpha=0.0,
        validation_examples=49000,
        input="device",
        input_memory_mb=4096.0,
    )
    mesh = create_mesh(jax.devices()[:1])
    plan = device_input.choose(config, mesh)
    assert (plan.input, plan.placement, plan.num_examples) == ("device", "replicated", 1000)
    feed = device_input.DeviceInput(config, mesh, placement="replicated", steps_per_epoch=10)
    np.testing.assert_array_equal(np.asarray(feed.data["label"])[0], labels)
    np.testing.assert_array_equal(np.asarray(feed.data["image"])[0], images)


def test_choice_by_config_and_memory_budget():
    mesh = create_mesh(jax.devices()[:1])
    config = _config(dataset="cifar10", input="auto", input_memory_mb=4096.0)
    n = 50000  # 146 MiB
    plan = device_input.choose(config, mesh, n, backend="gpu")
    assert (plan.input, plan.placement) == ("device", "replicated")
    on_cpu = device_input.choose(config, mesh, n, backend="cpu")
    assert (on_cpu.input, on_cpu.in_memory) == ("grain", True)  # decoded once on the host
    config.input_memory_mb = 100
    too_big = device_input.choose(config, mesh, n, backend="gpu")
    assert (too_big.input, too_big.in_memory) == ("grain", False)
    config.input_memory_mb = 4096
    config.grain_in_memory = False
    assert not device_input.choose(config, mesh, n, backend="cpu").in_memory
    config.input_memory_mb = 100
    config.input = "device"
    with pytest.raises(ValueError, match="does not fit"):
        device_input.choose(config, mesh, n)
    config.input = "grain"
    assert device_input.choose(config, mesh, n, backend="gpu").input == "grain"


def test_crop_padding_is_the_configs_or_the_datasets():
    config = _config(dataset="cifar10", crop_padding=-1)
    assert device_input.crop_padding(config) == 4
    config.crop_padding = 2
    assert device_input.crop_padding(config) == 2
    assert device_input.crop_padding(_config(dataset="tiny_imagenet")) == 8


@pytest.mark.parametrize("variant,epochs", [("fast", 120), ("paper", 300)])
def test_gpu_config_keeps_the_paper_machinery_and_the_screened_departures(variant, epochs):
    from train import train
    from train.configs import gpu

    config = gpu.get_config(variant)
    train.validate_config(config)
    name, cfg = train.model_config(config)
    assert name == "conv" and cfg.widths == (48, 96, 192, 384) and cfg.depths == (2, 2, 6, 2)
    assert cfg.grid == (2, 2) and cfg.dilated and cfg.fusion == "omega"
    assert cfg.reset == "soft" and cfg.dtype == jnp.bfloat16 and cfg.dropout == 0.1
    assert config.input == "device"
    held_out = 5000 if variant == "fast" else 0  # fast: a validation curve every 10 epochs
    assert config.validation_examples == held_out and config.num_epochs == epochs
    assert config.eval_every_epochs == (10 if held_out else 0)
    assert config.optimizer == "sgd" and config.lr == pytest.approx(0.05 * (1024 / 128) ** 0.5)
    assert cfg.synapse_init == "window" and cfg.pre_norm  # the screen's departures
    steps = epochs * ((50000 - held_out) // config.batch_size)
    assert 0 < steps // config.checkpoint_every_steps <= 6  # Few saves: < 2 % of the run.


def test_resume_mid_epoch_reaches_the_same_parameters(tmp_path, monkeypatch):
    """The training program on the in-memory path, resumed from its checkpoint
    of step 2 (mid-epoch: 1,562 steps an epoch), ends with the parameters of
    the uninterrupted run: the batches are functions of the step only. Two
    runs: the uninterrupted one keeps its checkpoints; a copy of its workdir
    cut back to the step-2 checkpoint is resumed. Synthetic pixels stand in
    for decoding the 50,000 training images (18 s): the order, augmentation
    and mixup are what resume must reproduce. In this process (tests/conftest.py
    sets XLA's quick compilation for it): a subprocess would import JAX and the
    training program again for nothing."""
    from train_utils import final_params, tiny_config

    from train import checkpointing, train

    fake = {}

    def cached(name, split, start, stop, **kwargs):  # The same pixels for both runs.
        if (start, stop) not in fake:
            rng = np.random.default_rng(start)
            fake[(start, stop)] = (
                rng.integers(0, 256, (stop - start, 32, 32, 3), np.uint8),
                (np.arange(start, stop) % 10).astype(np.int32),
            )
        return fake[(start, stop)]

    monkeypatch.setattr(input_pipeline, "load_arrays", cached)
    config = tiny_config(num_train_steps=4, checkpoint_every_steps=2, keep_checkpoints=3)
    config.input = "device"
    config.validation_examples = 0
    whole = tmp_path / "whole"
    train.train_and_evaluate(config, str(whole))
    parts = tmp_path / "parts"
    shutil.copytree(whole, parts)
    checkpoints = parts / checkpointing.CHECKPOINT_DIR
    steps = sorted(int(p.name) for p in checkpoints.iterdir() if p.name.isdigit())
    assert 2 in steps and max(steps) == 4, steps
    for step in steps:
        if step > 2:
            shutil.rmtree(checkpoints / str(step))
    train.train_and_evaluate(config, str(parts))
    assert sorted(int(p.name) for p in checkpoints.iterdir() if p.name.isdigit())[-1] == 4
    first, second = final_params(str(whole)), final_params(str(parts))
    assert first.keys() == second.keys() and len(first) > 10
    for name in first:
        np.testing.assert_array_equal(second[name], first[name], err_msg=name)


_EIGHT_DEVICES = textwrap.dedent("""
    import jax, jax.numpy as jnp, ml_collections, numpy as np, flax
    from jax.sharding import NamedSharding, PartitionSpec as P
    from train import device_input, schema
    from train.mesh import DATA_AXIS, create_mesh
    assert jax.device_count() == 8
    mesh = create_mesh()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8 * 40, 32, 32, 3), np.uint8)
    labels = (np.arange(8 * 40) % 10).astype(np.int32)
    config = schema.defaults()
    config.update(dict(dataset="cifar10", seed=3, batch_size=64, mixup_alpha=0.1))

    @flax.struct.dataclass
    class State:
        step: jax.Array
        total: jax.Array

    def step_fn(state, batch):
        total = state.total + jnp.sum(batch["image"]) + jnp.sum(batch["label_onehot"])
        return state.replace(step=state.step + 1, total=total), {"sum": jnp.sum(batch["image"])}

    for placement, shards in (("sharded", 8), ("replicated", 1)):
        feed = device_input.DeviceInput(config, mesh, placement=placement,
                                        steps_per_epoch=5, arrays=(images, labels))
        assert feed.num_shards == shards
        pieces = feed.data["image"].addressable_shards
        assert len(pieces) == 8
        assert {p.data.shape for p in pieces} == {(1, 320 // shards, 32, 32, 3)}
        one = jax.devices()[0]
        ref = jax.jit(lambda x, y, s: feed.batch_fn(x, y, s))  # On x's one device.
        x = jax.device_put(images.reshape((shards, -1, 32, 32, 3)), one)
        y = jax.device_put(labels.reshape((shards, -1)), one)
        if placement == "replicated":  # One step's batch: as one device's.
            got, want = jax.device_get(feed.batch(6)), jax.device_get(ref(x, y, 6))
            for key in want:
                np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-6)
            continue
        replicated = NamedSharding(mesh, P())
        step = feed.jit_step(step_fn, replicated)
        state = jax.device_put(State(jnp.zeros((), jnp.int32), jnp.zeros(())), replicated)
        ref_total = 0.0
        for s in range(7):  # Crosses the epoch boundary at step 5.
            batch = feed.batch(s)
            assert batch["image"].sharding.spec == P(DATA_AXIS)
            got, want = jax.device_get(batch), jax.device_get(ref(x, y, s))
            for key in want:  # Floats: XLA may fuse the normalisation differently.
                np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-6,
                                           err_msg=key)
            # Device d's rows of the batch come from its own shard.
            np.testing.assert_array_equal(got["index"].reshape(8, 8) // 40,
                                          np.arange(8)[:, None] * np.ones((1, 8), int))
            state, metrics = step(state, feed.data)
            jax.block_until_ready(metrics)
            ref_total += np.sum(want["image"]) + np.sum(want["label_onehot"])
            np.testing.assert_allclose(metrics["sum"], np.sum(want["image"]), rtol=1e-5)
        np.testing.assert_allclose(state.total, ref_total, rtol=1e-5)
        assert int(state.step) == 7
    print("OK")
""")


def test_eight_devices_shard_the_split_and_match_one_device():
    result = subprocess.run(
        [sys.executable, "-c", _EIGHT_DEVICES],
        cwd=REPO,
        env=subprocess_env(8),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "OK" in result.stdout, result.stdout + result.stderr


def _config(**fields) -> ml_collections.ConfigDict:
    """A full config (train.schema's defaults) with ``fields``."""
    config = schema.defaults()
    for name, value in fields.items():
        config[name] = value
    return config
