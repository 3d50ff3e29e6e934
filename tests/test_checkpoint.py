"""Tests of train/checkpointing.py through the training program: an interrupted
and resumed run ends bitwise where an uninterrupted one does; SIGTERM saves and
exits cleanly; corrupt or incomplete checkpoints are skipped with a warning;
missing or mismatched checkpoints are clear errors (more in test_faults.py)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from train_utils import (
    REPO,
    copy_run,
    final_params,
    flatten,
    restore_latest,
    subprocess_env,
    tiny_config,
    tiny_run_config,
)

from train import checkpointing, evaluate, metrics, schema, train

# Bernoulli encoder, dropout and mixup (tiny_config has them all): the RNG
# streams and the data position must all be restored for the runs to agree.
_run_config = tiny_run_config


@pytest.fixture
def uninterrupted(tiny_run) -> str:
    """The shared tiny run (tests/conftest.py), uninterrupted: read only."""
    return tiny_run[0]


def test_stopped_and_resumed_run_equals_uninterrupted_run(uninterrupted, tmp_path):
    workdir = str(tmp_path)
    config = _run_config()
    config.stop_after_steps = 3
    assert train.train_and_evaluate(config, workdir) is None
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "3"]
    config.stop_after_steps = -1  # A run-control field: may change on resume.
    summary = train.train_and_evaluate(config, workdir)
    assert summary["step"] == 6

    resumed, reference = final_params(workdir), final_params(uninterrupted)
    assert resumed.keys() == reference.keys()
    for name in reference:
        np.testing.assert_array_equal(resumed[name], reference[name], err_msg=name)
    steps = [r["step"] for r in metrics.read_metrics(workdir) if "train/loss" in r]
    assert steps == [2, 3, 4, 6]


def test_restore_gives_the_saved_state(uninterrupted):
    state, meta = restore_latest(uninterrupted, _run_config())
    assert int(state.step) == meta["step"] == 6
    reference = final_params(uninterrupted)
    for name, value in flatten(state.params).items():
        np.testing.assert_array_equal(value, reference[name])


def test_checkpoint_with_a_missing_item_is_skipped(uninterrupted, tmp_path, caplog):
    workdir = copy_run(uninterrupted, tmp_path)
    shutil.rmtree(os.path.join(workdir, "checkpoints", "6", "data"))
    with caplog.at_level(logging.WARNING):
        state, _ = restore_latest(workdir, _run_config())
    assert int(state.step) == 4 and "cannot be read" in caplog.text


def test_incomplete_checkpoint_is_removed_with_a_warning(uninterrupted, tmp_path, caplog):
    workdir = copy_run(uninterrupted, tmp_path)
    checkpoints = os.path.join(workdir, "checkpoints")
    os.rename(
        os.path.join(checkpoints, "6"), os.path.join(checkpoints, "6.orbax-checkpoint-tmp-1234")
    )
    with caplog.at_level(logging.WARNING):
        state, _ = restore_latest(workdir, _run_config())
    assert int(state.step) == 4 and os.listdir(checkpoints) == ["4"]
    assert "6.orbax-checkpoint-tmp-1234: the leftover of a save that was interrupted" in (
        caplog.text
    )


def test_checkpoint_of_another_config_is_a_clear_error(uninterrupted, tmp_path):
    workdir = copy_run(uninterrupted, tmp_path)
    other = _run_config()
    other.model.widths = (16, 32)
    other.lr = 0.1
    with pytest.raises(
        checkpointing.CheckpointError,
        match=r"another config(.|\n)*lr: 0.003 -> 0.1(.|\n)*model.widths",
    ):
        train.train_and_evaluate(other, workdir)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(checkpointing.CheckpointError, match="No checkpoint directory"):
        evaluate.evaluate_checkpoint(str(tmp_path))
    os.makedirs(tmp_path / "checkpoints")
    with pytest.raises(checkpointing.CheckpointError, match="No latest checkpoint"):
        evaluate.evaluate_checkpoint(str(tmp_path))


def test_config_differences_ignore_run_control_fields():
    saved = schema.config_to_dict(tiny_config())
    now = tiny_config(stop_after_steps=5, log_every_steps=9, data_dir="/elsewhere")
    assert schema.config_differences(saved, schema.config_to_dict(now)) == []
    now.model.theta = 0.3
    assert schema.config_differences(saved, schema.config_to_dict(now)) == [
        "model.theta: 0.5 -> 0.3"
    ]


def test_sigterm_saves_and_exits_cleanly(tmp_path):
    """``python -m train.main`` stops at the next step on SIGTERM, saves a
    checkpoint and exits with status 0."""
    workdir = tmp_path / "run"
    config = tiny_config()
    command = [
        sys.executable,
        "-m",
        "train.main",
        "--config=train/configs/quick.py",
        f"--workdir={workdir}",
        f"--config.data_dir={config.data_dir}",
        "--config.model.widths=(8,)",
        "--config.model.depths=(1,)",
        "--config.batch_size=32",
        "--config.num_train_steps=100000",
        "--config.log_every_steps=1",
        "--config.checkpoint_every_steps=100000",
        "--config.grain_in_memory=false",  # a few steps: decoding the split would dominate
    ]
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=subprocess_env(1),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    metrics_file = workdir / metrics.METRICS_FILE
    deadline = time.time() + 240
    while not (metrics_file.exists() and metrics_file.read_text().strip()):
        assert process.poll() is None, process.stdout.read()
        assert time.time() < deadline, "no training step within 240 s"
        time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output
    assert "(SIGTERM); checkpoint saved" in output, output
    saved = [int(n) for n in os.listdir(workdir / "checkpoints")]
    assert len(saved) == 1 and saved[0] >= 1
