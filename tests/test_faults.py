"""Faults a user meets, and what each gets (docs/faults.md): non-finite steps
(stop / skip), corrupt checkpoints (checksums, fallback), interrupted saves,
replayed steps in metrics.jsonl and TensorBoard after a kill, bad config
values, data that is not prepared, and the validation hold-out that picks the
best checkpoint."""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import time
import types

import jax
import numpy as np
import optax
import pytest
from tensorboardX.proto import event_pb2
from train_utils import (
    copy_run,
    final_params,
    flatten,
    restore_latest,
    tiny_config,
)

from train import checkpointing, input_pipeline, metrics, run, rundir, train


def _poison_training_batch(monkeypatch, number: int) -> None:
    """Makes the ``number``-th training batch (1-based) all NaN images (not
    counting the batch of zeros that compiles the step before training)."""
    calls = {"train": 0}
    global_batch = run.global_batch

    def poisoned(batch, mesh):
        if "label_onehot" in batch and batch["image"].any():
            calls["train"] += 1
            if calls["train"] == number:
                batch = dict(batch, image=np.full_like(batch["image"], np.nan))
        return global_batch(batch, mesh)

    monkeypatch.setattr(run, "global_batch", poisoned)  # where the loop looks it up


def _train_steps(workdir: str) -> list[int]:
    return [r["step"] for r in metrics.read_metrics(workdir) if "train/loss" in r]


def _tensorboard_scalars(workdir: str) -> dict[str, list[tuple[int, float]]]:
    """Per tag, the (step, value) of every scalar event in the workdir's event
    files, in file order (TFRecord framing: uint64 length, uint32 crc of it,
    the Event proto, uint32 crc of it; the crcs are not checked)."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    logdir = os.path.join(workdir, metrics.TENSORBOARD_DIR)
    for name in sorted(os.listdir(logdir)):
        with open(os.path.join(logdir, name), "rb") as f:
            data = f.read()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack_from("<Q", data, offset)
            event = event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def _jsonl_scalars(workdir: str) -> dict[str, list[tuple[int, float]]]:
    """The same from metrics.jsonl, values rounded to float32 as in the events."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    for record in metrics.read_metrics(workdir):
        for tag, value in record.items():
            if tag not in ("step", "time"):
                scalars.setdefault(tag, []).append((record["step"], float(np.float32(value))))
    return scalars


# --- Non-finite steps -------------------------------------------------------------


def test_nonfinite_step_stops_and_keeps_the_last_good_checkpoint(monkeypatch, tmp_path):
    _poison_training_batch(monkeypatch, 5)
    workdir = str(tmp_path)
    with pytest.raises(train.NonFiniteError, match=r"^step 5: non-finite loss \(nan\)") as info:
        train.train_and_evaluate(tiny_config(), workdir)
    assert "\n" not in str(info.value) and "checkpoint (step 4) is kept" in str(info.value)
    # Checkpoints every 2 steps: step 6 (after the NaN) is not saved; 4 stays the latest.
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4"]
    assert not os.path.exists(rundir.path(workdir, rundir.SUMMARY))
    assert _train_steps(workdir) == [2, 4]
    params = final_params(workdir)
    assert all(np.isfinite(v).all() for v in params.values())


@pytest.fixture(scope="module")
def skipped_run(tmp_path_factory) -> tuple[str, dict]:
    """A tiny run (checkpoints 4 and 6) whose 5th batch is NaN, in skip mode."""
    workdir = str(tmp_path_factory.mktemp("skipped"))
    with pytest.MonkeyPatch.context() as monkeypatch:
        _poison_training_batch(monkeypatch, 5)
        summary = train.train_and_evaluate(tiny_config(nonfinite="skip"), workdir)
    return workdir, summary


def test_skip_mode_counts_the_skipped_steps(skipped_run):
    workdir, summary = skipped_run
    assert summary["skipped_steps"] == 1 and summary["step"] == 6
    assert np.isfinite(summary["accuracy"])
    records = [r for r in metrics.read_metrics(workdir) if "train/skipped_steps" in r]
    assert [(r["step"], r["train/skipped_steps"]) for r in records] == [(2, 0), (4, 0), (6, 1)]
    assert all(np.isfinite(v).all() for v in final_params(workdir).values())


def test_a_nonfinite_step_leaves_parameters_and_optimiser_state_unchanged():
    config = tiny_config(model_widths=(8,), model_depths=(1,), model_dropout=0.0)
    chain = train.setup(config, devices=jax.devices()[:1], schedule=optax.constant_schedule(1e-2))
    mesh, state, step = chain.mesh, chain.state, chain.train_step(config)
    labels = np.arange(4, dtype=np.int32)
    batch = {
        "image": np.ones((4, 32, 32, 3), np.float32),
        "label": labels,
        "label_onehot": np.eye(10, dtype=np.float32)[labels],
    }
    before = flatten((state.params, state.opt_state))  # Copies: the state is donated.
    state, step_metrics = step(
        state, train.global_batch(dict(batch, image=np.full_like(batch["image"], np.inf)), mesh)
    )
    assert not bool(step_metrics["finite"]) and int(state.step) == 1
    after = flatten((state.params, state.opt_state))
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    state, step_metrics = step(state, train.global_batch(batch, mesh))
    assert bool(step_metrics["finite"])
    after = flatten((state.params, state.opt_state))
    assert any(not np.array_equal(after[k], before[k]) for k in before if k.startswith("[0]"))


# --- Checkpoints: checksums, fallback, interrupted saves, replayed metrics ------------


def _flip_bytes_of_the_array_files(checkpoint: str) -> None:
    """Bit rot: one flipped bit per KiB of every array data file. OCDBT files
    may hold bytes no array refers to (their layout varies between saves), so
    one flip may land where nothing reads it; one per KiB of every file does not."""
    files = [
        os.path.join(root, name)
        for root, _, names in os.walk(checkpoint)
        for name in names
        if os.sep + "d" + os.sep in os.path.join(root, name) and "ocdbt" in root
    ]
    assert files, checkpoint
    for name in files:
        with open(name, "r+b") as f:
            data = bytearray(f.read())
            for i in range(len(data) // 2 % 1024, len(data), 1024):
                data[i] ^= 0x01
            f.seek(0)
            f.write(data)


def _alter_a_saved_checksum(checkpoint: str) -> str:
    """Changes the saved checksum of one parameter array (a stand-in for its
    bytes changing on disk, with no effect on how the arrays decode)."""
    meta_file = os.path.join(checkpoint, "meta", "metadata")
    with open(meta_file) as f:
        meta = json.load(f)
    name = sorted(k for k in meta["checksums"] if k.startswith(".params"))[0]
    meta["checksums"][name] = "0" * 64
    with open(meta_file, "w") as f:
        json.dump(meta, f)
    return name


def test_a_checksum_mismatch_is_caught_and_resume_falls_back(skipped_run, tmp_path, caplog):
    workdir = copy_run(skipped_run[0], tmp_path)
    name = _alter_a_saved_checksum(os.path.join(workdir, "checkpoints", "6"))
    # Evaluation of the corrupt checkpoint: an error naming its step and the array.
    with pytest.raises(checkpointing.CheckpointError, match=r"\(step 6\) is corrupt") as error:
        final_params(workdir)
    assert "1 array(s) differ from their checksums" in str(error.value)
    assert name in str(error.value)
    # Resuming: a warning saying which and why, and the newest intact one.
    with caplog.at_level(logging.WARNING):
        state, meta = restore_latest(workdir, tiny_config(nonfinite="skip"))
    assert int(state.step) == meta["step"] == 4
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "Skipping the checkpoint of step 6" in warning
    assert "differ from their checksums" in warning and "corrupt_checkpoints" in warning
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["4"]
    assert [n.split("-")[0] for n in os.listdir(os.path.join(workdir, "corrupt_checkpoints"))] == [
        "6"
    ]


def test_flipped_bits_are_caught_and_resume_falls_back(skipped_run, tmp_path, caplog):
    """Flipped bits in the array files: depending on where they land (orbax's
    layout varies between saves), the read fails or the checksums catch it;
    both name the step, and resuming falls back to the older checkpoint."""
    workdir = copy_run(skipped_run[0], tmp_path)
    _flip_bytes_of_the_array_files(os.path.join(workdir, "checkpoints", "6", "state"))
    with pytest.raises(
        checkpointing.CheckpointError, match=r"\(step 6\) (is corrupt|cannot be read)"
    ):
        final_params(workdir)
    with caplog.at_level(logging.WARNING):
        state, meta = restore_latest(workdir, tiny_config(nonfinite="skip"))
    assert int(state.step) == meta["step"] == 4
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "Skipping the checkpoint of step 6" in warning and "corrupt_checkpoints" in warning
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["4"]


def test_every_checkpoint_corrupt_is_an_error(skipped_run, tmp_path):
    workdir = copy_run(skipped_run[0], tmp_path)
    for step in ("4", "6"):
        _flip_bytes_of_the_array_files(os.path.join(workdir, "checkpoints", step))
    with pytest.raises(checkpointing.CheckpointError, match="Every checkpoint .* was corrupt"):
        restore_latest(workdir, tiny_config(nonfinite="skip"))


def test_replayed_steps_are_recorded_once(skipped_run, monkeypatch, tmp_path):
    """kill -9 after step 6 was logged but before it was saved: the rerun
    resumes at 4, replays 5 and 6, and metrics.jsonl and the TensorBoard
    events have each step once."""
    workdir = copy_run(skipped_run[0], tmp_path)
    shutil.rmtree(os.path.join(workdir, "checkpoints", "6"))
    with open(os.path.join(workdir, metrics.METRICS_FILE), "a") as f:
        f.write('{"step": 6, "train/lo')  # A line cut by the kill.
    _poison_training_batch(monkeypatch, 1)  # The 5th batch: the 1st after the resume.
    summary = train.train_and_evaluate(tiny_config(nonfinite="skip"), workdir)
    assert summary["skipped_steps"] == 1
    assert _train_steps(workdir) == [2, 4, 6]
    records = metrics.read_metrics(workdir)
    assert [r["step"] for r in records if "test/accuracy" in r] == [6]
    # The skipped step 6 logs NaN, equal to NaN here.
    np.testing.assert_equal(_tensorboard_scalars(workdir), _jsonl_scalars(workdir))


# --- Config, data ---------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("lr", -0.1, "config.lr=-0.1: the learning rate must be > 0"),
        ("lr", float("nan"), "config.lr=nan: must be a finite number"),
        ("checkpoint_every_steps", -1, "config.checkpoint_every_steps=-1: must be >= 0"),
        ("log_every_steps", 0, "config.log_every_steps=0: must be >= 1"),
        ("keep_checkpoints", 0, "config.keep_checkpoints=0: must be >= 1"),
        ("batch_size", 0, "config.batch_size=0: must be a positive integer"),
        ("optimizer", "lamb", "config.optimizer='lamb': must be one of"),
        ("dataset", "mnist", "config.dataset='mnist': must be one of"),
        ("nonfinite", "ignore", "config.nonfinite='ignore': must be one of"),
        ("validation_examples", -1, "config.validation_examples=-1: must be >= 0"),
        ("model_name", "resnet", "config.model.name='resnet': must be one of"),
        ("model_grid", (3, 3), "config.model: "),
        ("stop_after_steps", 0, "config.stop_after_steps=0: must be -1"),
        ("seed", -1, "config.seed=-1: must be an integer in"),
        ("crop_padding", -2, "config.crop_padding=-2: must be >= 0, or -1"),
    ],
)
def test_bad_config_values_are_one_line_before_anything_is_created(field, value, match, tmp_path):
    config = tiny_config()
    if field.startswith("model_"):
        config.model[field.removeprefix("model_")] = value
    else:
        config[field] = value
    workdir = tmp_path / "run"
    with pytest.raises(train.ConfigError) as info:
        train.train_and_evaluate(config, str(workdir))
    assert str(info.value).startswith(match) and "\n" not in str(info.value)
    assert not workdir.exists()


def test_hold_out_larger_than_the_split_and_a_file_as_workdir(tmp_path):
    with pytest.raises(train.ConfigError, match=r"validation_examples=50000 must be in"):
        train.train_and_evaluate(tiny_config(validation_examples=50_000), str(tmp_path / "a"))
    assert not (tmp_path / "a").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(train.ConfigError, match="is a file, not a directory"):
        train.train_and_evaluate(tiny_config(num_train_steps=1), str(tmp_path / "file"))


def test_batch_size_not_divisible_by_the_devices_is_one_line():
    eight_devices = types.SimpleNamespace(size=8)  # check_batch_sizes reads mesh.size only.
    train.check_batch_sizes(tiny_config(batch_size=64, eval_batch_size=64), eight_devices)
    with pytest.raises(
        train.ConfigError,
        match=r"^config.batch_size=36 must be a positive "
        r"multiple of the number of devices \(8, ",
    ):
        train.check_batch_sizes(tiny_config(batch_size=36), eight_devices)


def test_metrics_of_an_old_checkpoint_are_cut_after_its_step(tmp_path):
    """Checkpoints without the stored metrics length: records after the step
    and a cut last line are dropped."""
    with metrics.MetricWriter(str(tmp_path)) as writer:
        for step in (2, 4, 6):
            writer.write(step, {"train/loss": 1.0})
        writer._jsonl.write('{"step": 8, "train/lo')
        writer.truncate(None, after_step=4)
        writer.write(6, {"train/loss": 2.0})
    assert [(r["step"], r["train/loss"]) for r in metrics.read_metrics(str(tmp_path))] == [
        (2, 1.0),
        (4, 1.0),
        (6, 2.0),
    ]


def test_replayed_steps_are_in_tensorboard_once(tmp_path):
    """A resume from the checkpoint of step 6 after steps up to 10 were
    logged: the event files hold steps 1 to 10 once, with the new values of
    the steps replayed."""
    workdir = str(tmp_path)
    with metrics.MetricWriter(workdir) as writer:
        for step in range(1, 11):
            writer.write(step, {"train/loss": step, "train/accuracy": -step})
            if step == 6:
                size = writer.size()
        writer.truncate(size, after_step=6)
        for step in range(7, 11):
            writer.write(step, {"train/loss": 10 * step, "train/accuracy": -10 * step})
    new = [(s, s) for s in range(1, 7)] + [(s, 10 * s) for s in range(7, 11)]
    assert _tensorboard_scalars(workdir) == {
        "train/loss": [(s, float(v)) for s, v in new],
        "train/accuracy": [(s, -float(v)) for s, v in new],
    }
    assert _tensorboard_scalars(workdir) == _jsonl_scalars(workdir)


@pytest.mark.parametrize("data", ["missing", "empty"])
def test_unprepared_data_fails_at_once_and_leaves_nothing(data, tmp_path):
    data_dir = tmp_path / "data"
    if data == "empty":
        data_dir.mkdir()
    workdir = tmp_path / "run"
    start = time.perf_counter()
    with pytest.raises(input_pipeline.DataError) as info:
        train.train_and_evaluate(tiny_config(data_dir=str(data_dir), download=False), str(workdir))
    assert time.perf_counter() - start < 10
    message = str(info.value)
    assert "\n" not in message and str(data_dir) in message and "download=true" in message
    assert not workdir.exists()
    assert (os.listdir(data_dir) == []) if data == "empty" else not data_dir.exists()


# --- Validation hold-out ----------------------------------------------------------


def test_held_out_indices_are_disjoint_from_training():
    """The last N training examples are held out (what each host then reads of
    the rest: test_input_pipeline.py::test_hosts_read_disjoint_slices_that_cover_the_data)."""
    train_range, held_out = input_pipeline.split_ranges(100, 20)
    assert set(train_range).isdisjoint(held_out) and set(train_range) | set(held_out) == set(
        range(100)
    )
    assert list(held_out) == list(range(80, 100))


def test_held_out_split_is_the_end_of_the_training_split():
    data_dir = tiny_config().data_dir
    held = input_pipeline.load_source(
        "cifar10", input_pipeline.HELD_OUT, data_dir=data_dir, validation_examples=5000
    )
    full = input_pipeline.load_source("cifar10", "train", data_dir=data_dir)
    assert len(held) == 5000
    for i in (0, 4999):
        np.testing.assert_array_equal(held[i]["image"], full[45_000 + i]["image"])
    assert (
        input_pipeline.num_eval_batches(
            "cifar10",
            global_batch_size=512,
            split=input_pipeline.HELD_OUT,
            data_dir=data_dir,
            validation_examples=5000,
        )
        == 10
    )


def test_best_is_chosen_on_validation_and_test_is_evaluated_once(monkeypatch, tmp_path):
    """64 training images (2 steps per epoch), the rest held out: validation
    after epochs 1 and 2 and at the end; the test split once, at the end.
    The held-out images are never trained on: 2 steps of batch 32 per epoch."""
    calls = []
    validation_accuracy = {2: 0.5, 4: 0.7, 6: 0.6}
    evaluate = run.evaluate

    def fake_evaluate(model, state, config, mesh, eval_step_fn=None, *, split=None, **extra):
        step = int(jax.device_get(state.step))
        calls.append((split, step))
        summary = evaluate(model, state, config, mesh, eval_step_fn, split=split, **extra)
        if split == input_pipeline.HELD_OUT:
            summary["accuracy"] = validation_accuracy[step]
        return summary

    monkeypatch.setattr(run, "evaluate", fake_evaluate)
    workdir = str(tmp_path)
    summary = train.train_and_evaluate(  # checkpoint_every_steps=0: only the final save.
        tiny_config(validation_examples=50_000 - 64, eval_every_epochs=1, checkpoint_every_steps=0),
        workdir,
    )
    held = input_pipeline.HELD_OUT
    assert calls == [(held, 2), (held, 4), (held, 6), (None, 6)]
    assert os.listdir(os.path.join(workdir, "best")) == ["4"]
    assert os.listdir(os.path.join(workdir, "checkpoints")) == ["6"]
    assert (summary["best_step"], summary["best_validation_accuracy"]) == (4, 0.7)
    assert summary["validation_accuracy"] == 0.6 and summary["split"] == "test"
    assert summary["test_accuracy"] == summary["accuracy"]
