"""The command-line programs on bad input: one line on stderr, exit status 2
for usage errors and 1 for run errors, nothing created, no traceback unless
asked for (``--verbose`` / ``SNNJAX_TRACEBACK=1``). Each case fails before
JAX compiles anything, so each process takes seconds."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from train_utils import REPO

TIMEOUT_S = 60


def _run(module: str, *args: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=dict(os.environ, **env),
    )


def _error_lines(result: subprocess.CompletedProcess) -> list[str]:
    """stderr without the import-time noise of TensorFlow Datasets and absl."""
    return [
        line
        for line in result.stderr.splitlines()
        if line.startswith("error:") or "Traceback" in line
    ]


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--config.foo=1"], 2, "error: unknown config field 'foo' (--config.foo)"),
        (["--config=train/configs/missing.py"], 2, "error: cannot load --config: [Errno 2]"),
        (["--config.lr=-1"], 2, "error: config.lr=-1.0: the learning rate must be > 0"),
        (["--config.data_dir={tmp}/no_data"], 1, "error: Dataset 'cifar10' is not prepared"),
    ],
)
def test_train_main_bad_input_is_one_line(args, code, message, tmp_path):
    workdir = tmp_path / "run"
    args = [a.format(tmp=tmp_path) for a in args]
    result = _run("train.main", "--config=train/configs/quick.py", f"--workdir={workdir}", *args)
    assert result.returncode == code, result.stderr
    assert len(_error_lines(result)) == 1 and _error_lines(result)[0].startswith(message), (
        result.stderr
    )
    assert not workdir.exists() and not (tmp_path / "no_data").exists()


def test_evaluate_without_a_run_is_one_line_and_traceback_on_request(tmp_path):
    result = _run("train.evaluate", f"--workdir={tmp_path}")
    assert result.returncode == 1
    assert _error_lines(result) == [
        f"error: CheckpointError: No checkpoint directory {tmp_path}/checkpoints: is "
        f"--workdir={tmp_path} the workdir of a training run?"
    ]
    result = _run("train.evaluate", f"--workdir={tmp_path}", SNNJAX_TRACEBACK="1")
    assert result.returncode == 1 and "Traceback" in result.stderr
