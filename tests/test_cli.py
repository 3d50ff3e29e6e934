"""The command-line programs on bad input: one line on stderr, exit status 2
for usage errors and 1 for run errors, nothing created, no traceback unless
asked for (``--verbose`` / ``SNNJAX_TRACEBACK=1``). Each case fails before
JAX compiles anything, so each process takes seconds."""

from __future__ import annotations

import os
import re
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
        (
            ["--config.data_dir={tmp}/no_data", "--config.download=false"],
            1,
            "error: Dataset 'cifar10' is not prepared",
        ),
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


# --- the one command-line convention (train.cli), for every entry point ------

# module -> the flags its --help lists (beside --verbose).
ENTRY_POINTS = {
    "train.main": ["config", "workdir", "distributed", "num_processes"],
    "train.evaluate": ["workdir", "checkpoint", "data_dir", "max_eval_batches", "eval_flip"],
    "train.probe": ["workdir", "checkpoint", "images", "ablate_mixers"],
    "train.report": ["workdir", "out_dir"],
    "train.datasets.tiny_imagenet": ["data_dir", "manual_dir"],
    "benchmarks.neuron_scan": ["neurons", "steps", "libraries", "inside", "smoke"],
    "benchmarks.train_step": ["models", "batch_sizes", "variants", "host_devices", "smoke"],
    "benchmarks.profile_step": ["model", "variant", "batch", "calls", "top"],
    "benchmarks.gpu_carry": ["data_dir"],
    "benchmarks.end_to_end": ["config", "modes", "train_variants", "train_s", "require_backend"],
    "benchmarks.preflight": ["backend", "data", "data_dir"],
    "benchmarks.stability_screen": ["config", "steps", "warmup_steps", "width_divisor"],
    "benchmarks.nir_speed": ["steps", "batch", "size", "hidden", "repeats", "smoke"],
}
# Entry points not on the convention yet (their owner moves them).
PENDING: set[str] = set()
BAD_FLAG = "--no_such_flag=1"


def _entry_point_modules() -> set[str]:
    """Every module of train/ and benchmarks/ with a ``__main__`` block."""
    found = set()
    for package in ("train", "benchmarks"):
        for path in (REPO / package).rglob("*.py"):
            if re.search(r'^if __name__ == "__main__":', path.read_text(), re.MULTILINE):
                found.add(".".join(path.relative_to(REPO).with_suffix("").parts))
    return found


@pytest.fixture(scope="module")
def entry_point_runs() -> dict[tuple[str, str], subprocess.CompletedProcess]:
    """``--help`` and an unknown flag for every entry point, 4 processes at a
    time (each imports JAX or TFDS: seconds)."""
    from concurrent.futures import ThreadPoolExecutor

    cases = [(m, arg) for m in ENTRY_POINTS for arg in ("--help", BAD_FLAG)]
    with ThreadPoolExecutor(4) as pool:
        results = pool.map(lambda case: _run(*case), cases)
        return dict(zip(cases, results, strict=True))


def test_every_entry_point_is_on_the_convention():
    assert _entry_point_modules() == set(ENTRY_POINTS) | PENDING


def test_no_sys_path_edits():
    for package in ("train", "benchmarks", "snnjax"):
        for path in (REPO / package).rglob("*.py"):
            text = path.read_text()
            assert "sys.path.insert" not in text and "sys.path.append" not in text, path


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_help_lists_the_flags(module, entry_point_runs):
    result = entry_point_runs[module, "--help"]
    assert result.returncode == 0, result.stderr
    for flag in ENTRY_POINTS[module] + ["verbose"]:
        assert re.search(rf"^  --(\[no\])?{flag}:", result.stdout, re.MULTILINE), (
            flag,
            result.stdout,
        )


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_an_unknown_flag_is_a_one_line_usage_error(module, entry_point_runs):
    result = entry_point_runs[module, BAD_FLAG]
    assert result.returncode == 2, result.stderr
    assert _error_lines(result) == ["error: Unknown command line flag 'no_such_flag'"], (
        result.stderr
    )


def test_importing_the_entry_points_defines_no_flag():
    """Flags belong to the program that runs: importing an entry point's
    module (to reuse its functions) defines none of them."""
    modules = ", ".join(ENTRY_POINTS)
    code = (
        f"import {modules}; from absl import flags; "
        "print(sorted(m for m in flags.FLAGS.flags_by_module_dict() "
        "if m.startswith(('train', 'benchmarks'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
