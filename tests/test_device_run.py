"""The prepared device run (benchmarks/gpu_run.sh, docs/gpu.md): its GPU guard,
the training program's time limit, and end_to_end's guarded, incremental results.

A device call happens once; these make sure it fails in seconds on a machine
without a GPU, lands a tested summary when its time runs out, and keeps what it
measured when a later piece fails."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from absl import flags
from train_utils import REPO, cifar10_dir, subprocess_env, tiny_config

from benchmarks import end_to_end, preflight
from train import train
from train.configs import gpu


def test_preflight_refuses_the_wrong_backend(capsys):
    assert preflight.preflight("gpu") == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("preflight: JAX backend is 'cpu', expected 'gpu'")


def test_preflight_passes_and_reads_the_data(capsys):
    assert preflight.preflight("cpu", data=True, data_dir=cifar10_dir()) == 0
    out = capsys.readouterr().out
    assert "cifar10 train 50000, test 10000" in out
    for package in ("jax", "grain", "tensorflow-datasets", "tensorboardX", "protobuf"):
        assert f"{package} " in out


def test_gpu_run_without_a_gpu_stops_in_seconds(tmp_path):
    """The device command on a machine without CUDA: JAX_PLATFORMS=cuda makes
    JAX fail instead of training on the host, and the preflight says so in one
    line before anything is unpacked, compiled or trained."""
    env = subprocess_env(1)
    for name in ("JAX_PLATFORMS", "REQUIRE_BACKEND"):
        env.pop(name, None)
    env |= {"OUT": str(tmp_path / "out"), "TFDS_DATA_DIR": cifar10_dir(), "PYTHON": sys.executable}
    start = time.perf_counter()
    result = subprocess.run(
        ["bash", "benchmarks/gpu_run.sh"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert time.perf_counter() - start < 60
    lines = [line for line in result.stdout.splitlines() if line.startswith("preflight")]
    assert len(lines) == 1 and lines[0].startswith("preflight: JAX on gpu: ")
    assert not (tmp_path / "out" / "log.txt").exists()  # no training started


def test_time_limit_stops_saves_tests_and_summarises(tmp_path):
    config = tiny_config(num_train_steps=40, log_every_steps=2, time_limit_s=1e-3)
    summary = train.train_and_evaluate(config, str(tmp_path))
    assert summary["stopped_by_time_limit"] is True
    assert summary["steps"] == 2 and summary["planned_steps"] == 40  # the first log point
    assert summary["num_images"] == 64 and 0 <= summary["test_accuracy"] <= 1
    assert summary["train_step_compiles"] == 1
    with open(tmp_path / "summary.json") as f:
        assert json.load(f)["steps"] == 2
    assert (tmp_path / "checkpoints" / "2").is_dir()


def test_no_time_limit_runs_the_whole_schedule(tmp_path):
    summary = train.train_and_evaluate(tiny_config(), str(tmp_path))
    assert summary["stopped_by_time_limit"] is False
    assert summary["steps"] == summary["planned_steps"] == 6
    assert summary["train_step_compiles"] == 1


def test_time_limit_is_validated():
    with pytest.raises(train.ConfigError, match=r"config.time_limit_s=-1.0: must be >= 0"):
        train.validate_config(tiny_config(time_limit_s=-1.0))


@pytest.fixture
def out_flags(tmp_path):
    """end_to_end's flags parsed with ``--out`` in ``tmp_path``."""
    if "train_variants" not in flags.FLAGS:
        end_to_end.define_flags()
    if not flags.FLAGS.is_parsed():
        flags.FLAGS(["end_to_end"])
    saved = {name: flags.FLAGS[name].value for name in ("out", "variants", "repeats", "workdir")}
    flags.FLAGS.out = str(tmp_path)
    yield tmp_path
    for name, value in saved.items():
        flags.FLAGS[name].value = value


def test_benchmark_variants_are_guarded_and_saved_one_by_one(out_flags, monkeypatch):
    """A failing variant is recorded and the next one runs; end_to_end.json holds
    every row as soon as it is measured."""
    seen_on_disk = []

    def measure(name, fields, variant, batch, repeats, **kw):
        path = out_flags / "end_to_end.json"
        seen_on_disk.append(len(json.loads(path.read_text())["benchmarks"]))
        if variant == "normal only":
            raise RuntimeError("out of memory")
        return end_to_end.bench.Result(name, variant, batch, 1.0, 2.0, 3.0, 4.0, 5.0)

    monkeypatch.setattr(end_to_end.bench, "measure", measure)
    config = tiny_config()
    results = end_to_end.Results(config, str(out_flags), lambda: 0.0)
    variants = ["windows", "normal only", "grid 1x1"]
    end_to_end.run_benchmark(config, 0.0, results, "benchmarks", variants)
    saved = json.loads((out_flags / "end_to_end.json").read_text())
    assert [b["variant"] for b in saved["benchmarks"]] == ["windows", "grid 1x1"]
    assert saved["errors"] == [
        {"what": "benchmark normal only", "error": "RuntimeError: out of memory"}
    ]
    assert seen_on_disk == [0, 1, 1]  # each row written before the next variant


def test_a_stopped_training_run_is_an_error_not_a_crash(out_flags, monkeypatch):
    """train_and_evaluate returns None when a signal stopped it: recorded as an
    error of that run (end_to_end used to dereference it)."""
    monkeypatch.setattr(train, "train_and_evaluate", lambda config, workdir: None)
    config = tiny_config()
    results = end_to_end.Results(config, str(out_flags), lambda: 0.0)
    flags.FLAGS.workdir = str(out_flags / "runs")
    row = results.guarded("training device", end_to_end.run_training, config, "device")
    assert row is None
    assert results["errors"][0]["error"].startswith("RuntimeError: run device stopped")


def test_a_time_limit_cut_by_the_deadline_is_said_before_training(out_flags, monkeypatch, capsys):
    """--train_s is capped by the deadline less --final_s: the run's log says
    so at its start (the second H200 call lost its training to this unseen)."""
    limits = []
    monkeypatch.setattr(
        train, "train_and_evaluate", lambda config, workdir: limits.append(config.time_limit_s)
    )
    saved = flags.FLAGS.train_s, flags.FLAGS.final_s
    flags.FLAGS.train_s, flags.FLAGS.final_s = 165.0, 90.0
    flags.FLAGS.workdir = str(out_flags / "runs")
    try:
        with pytest.raises(RuntimeError, match="stopped by a signal"):
            end_to_end.run_training(tiny_config(), "device", deadline=end_to_end._elapsed() + 201)
    finally:
        flags.FLAGS.train_s, flags.FLAGS.final_s = saved
    assert 110 <= limits[0] <= 111
    out = capsys.readouterr().out
    assert "windows: time limit 111 s, not 165 (the deadline less --final_s=90 s)" in out


def test_no_windows_variant_is_the_issue_s_model():
    config = gpu.get_config()
    for field, value in end_to_end.TRAIN_VARIANTS["no windows"].items():
        config.model[field] = value
    name, cfg = train.model_config(config)
    assert (cfg.grid, cfg.fusion, cfg.dilated) == ((1, 1), "none", False)
    assert end_to_end.BENCHMARK_OF["no windows"] == "grid 1x1"


def test_gpu_config_is_set_for_the_device_run():
    config = gpu.get_config()
    train.validate_config(config)
    assert config.nonfinite == "skip"
    assert config.model.unroll == 4  # the 4 window groups of a 2x2 grid, unrolled
    assert config.model.dtype == "bfloat16" and config.batch_size == 1024
    per_epoch = (50_000 - config.validation_examples) // config.batch_size
    assert config.log_every_steps == 10 * per_epoch  # a log (host sync) every 10 epochs
    assert config.eval_every_epochs == 10 and config.validation_examples == 5000
    paper = gpu.get_config("paper")
    assert paper.validation_examples == 0 and paper.num_epochs == 300


def test_a_second_run_on_a_busy_workdir_stops_at_once(tmp_path):
    from train import rundir

    with rundir.lock(str(tmp_path)):
        with pytest.raises(train.ConfigError, match=r"is in use by another run \(pid \d+\)"):
            train.train_and_evaluate(tiny_config(), str(tmp_path))
    assert not (tmp_path / "checkpoints").exists()  # refused before anything was made


def test_no_validation_hold_out_leaves_no_empty_best_directory(tmp_path):
    train.train_and_evaluate(tiny_config(), str(tmp_path))  # validation_examples=0
    assert (tmp_path / "checkpoints").is_dir() and not (tmp_path / "best").exists()


def test_log_points_follow_log_every_steps_across_epochs():
    """gpu.py logs every 10 epochs: no host sync at the other epochs' ends; a
    config logging more often than once an epoch also logs at each epoch's end."""
    from train.run import is_log_point

    per_epoch = 43
    rare = [s for s in range(1, 1300) if is_log_point(s, per_epoch, 430)]
    assert rare == [430, 860, 1290]
    often = [s for s in range(1, 90) if is_log_point(s, per_epoch, 20)]
    assert often == [20, 40, 43, 60, 80, 86]
    assert [s for s in range(1, 90) if is_log_point(s, per_epoch, 50)] == [50]


def test_meter_times_steps_across_a_pause_without_a_flush():
    """With logs rarer than epochs, an epoch's end pauses the clock (evaluation
    is not training time) without a flush: the steps before it stay timed."""
    from train.metrics import TrainMeter

    meter = TrainMeter()
    for _ in range(3):
        meter.add({"loss": 1.0})
    time.sleep(0.05)
    meter.pause()
    time.sleep(0.3)  # "evaluation": not timed
    meter.resume()
    for _ in range(2):
        meter.add({"loss": 3.0})
    time.sleep(0.05)
    means, seconds_per_step = meter.flush()
    assert means == {"loss": 1.8}
    assert meter.steps == 5
    assert 0.1 <= meter.seconds < 0.25
    assert seconds_per_step == meter.seconds / 5
