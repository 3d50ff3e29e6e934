"""End-to-end training speed against the train-step benchmark, in one process.

For a training config: real training runs (``train.train_and_evaluate``: real
CIFAR-10, augmentation, checkpoints, the final test evaluation) with each
input path of ``--modes``, and the train-step benchmark
(``benchmarks/train_step.py``: synthetic batches) of the same model, batch
size and compute dtype for each of ``--variants``. Prints the pipeline ratio
(end-to-end img/s over the benchmark's img/s), step and compile times,
achieved TFLOP/s (XLA's FLOP count of the benchmark step, at the run's
speed), test accuracy, and the windows cost (step time over grid 1x1);
writes ``end_to_end.json`` and copies each run's ``metrics.jsonl`` /
``summary.json`` to ``--out`` (default ``$OUT`` when set).

    python -m benchmarks.end_to_end --config=train/configs/quick.py \\
        --config.num_train_steps=40 --modes=grain,device --workdir=/tmp/e2e
    bash benchmarks/gpu_run.sh            # the prepared H200 run (docs/gpu.md)

``--deadline_s``: wall-clock budget of the whole command; benchmark variants
that would not fit (``--variant_s`` each) are skipped and said so.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time

_START = time.perf_counter()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from benchmarks import train_step as bench  # noqa: E402
from benchmarks.run_results import Results  # noqa: E402
from train import cli, device_input, train  # noqa: E402

FLAGS = flags.FLAGS
# Models of a training run: the config's (all of the paper's spiking machinery) and
# the same without windows (one window, no fusion, no dilated blocks).
TRAIN_VARIANTS = {
    "windows": {},
    "no windows": {"grid": (1, 1), "fusion": "none", "dilated": False},
}
BENCHMARK_OF = {"windows": "windows", "no windows": "grid 1x1"}


def define_flags() -> None:
    """The flags (only the entry point defines them: train.cli)."""
    config_flags.DEFINE_config_file(
        "config", "train/configs/gpu.py", "Training config.", lock_config=False
    )
    flags.DEFINE_string("workdir", "/tmp/end_to_end", "Base directory; one run per mode in it.")
    flags.DEFINE_list("modes", ["device"], "config.input of each training run.")
    flags.DEFINE_list(
        "train_variants",
        ["windows"],
        f"Models trained with each mode, in order: {list(TRAIN_VARIANTS)}.",
    )
    flags.DEFINE_float(
        "train_s",
        0.0,
        "config.time_limit_s of each training run (0: the config's); with --deadline_s "
        "also capped at the time left less --final_s.",
    )
    flags.DEFINE_float(
        "final_s", 90.0, "Reserved after a run's time limit: saving, the test evaluation."
    )
    flags.DEFINE_string(
        "require_backend",
        "",
        "Fail at once unless jax.default_backend() is this (e.g. gpu): no silent CPU run.",
    )
    flags.DEFINE_list(
        "variants",
        ["windows", "normal only", "grid 1x1"],
        "train_step.py variants to benchmark (windows = normal + dilated).",
    )
    flags.DEFINE_integer("repeats", 10, "Benchmark steps timed per variant (median).")
    flags.DEFINE_string("out", os.environ.get("OUT", ""), "Where to copy the results.")
    flags.DEFINE_float("deadline_s", 0.0, "Wall budget of the command (0: none).")
    flags.DEFINE_float("variant_s", 75.0, "Budget of one benchmark variant (compiles included).")
    flags.DEFINE_bool(
        "bracket",
        False,
        "Also benchmark the 'windows' variant before the training runs; the "
        "ratio is then to the mean of before and after (a machine whose load "
        "drifts, e.g. a shared CPU).",
    )
    flags.DEFINE_bool("fresh", True, "Delete each run's workdir first (no resume).")
    flags.DEFINE_bool(
        "program_step",
        False,
        "Also time the training program's own step (train.make_train_step: "
        "clipping, smoothing, non-finite guard, metrics) on one fixed batch: "
        "splits the ratio into input cost and step differences.",
    )


def _elapsed() -> float:
    return time.perf_counter() - _START


def run_name(mode: str, variant: str) -> str:
    return mode if variant == "windows" else f"{mode}_{variant.replace(' ', '_')}"


def run_training(config, mode: str, variant: str = "windows", deadline: float = 0.0) -> dict:
    config = config.copy_and_resolve_references()
    config.input = mode
    for field, value in TRAIN_VARIANTS[variant].items():
        config.model[field] = value
    limit = FLAGS.train_s or config.time_limit_s
    if deadline:
        left = deadline - _elapsed() - FLAGS.final_s
        if left <= 0:
            raise TimeoutError(f"{left + FLAGS.final_s:.0f} s left: no time to train")
        if limit and left < limit:
            print(
                f"[{_elapsed():.0f}s] {variant}: time limit {left:.0f} s, not {limit:.0f} "
                f"(the deadline less --final_s={FLAGS.final_s:.0f} s)",
                flush=True,
            )
        limit = min(limit, left) if limit else left
    config.time_limit_s = float(limit)
    name = run_name(mode, variant)
    workdir = os.path.join(FLAGS.workdir, name)
    if FLAGS.fresh and os.path.isdir(workdir):
        shutil.rmtree(workdir)
    device_input.STATS.clear()
    start = time.perf_counter()
    summary = train.train_and_evaluate(config, workdir)
    wall = time.perf_counter() - start
    copy_results(workdir, name)
    if summary is None:  # stopped by a signal: saved, not evaluated
        raise RuntimeError(f"run {name} stopped by a signal after {wall:.0f} s (no test result)")
    stats = dict(device_input.STATS)
    ips = summary.get("train_images_per_second", 0.0)
    result = {
        "mode": name,
        "variant": variant,
        "wall_s": wall,
        "train_wall_s": summary.get("train_wall_time_s"),
        "images_per_second": ips,
        "step_ms": 1e3 * config.batch_size / ips if ips else float("nan"),
        "accuracy": summary["accuracy"],
        "test_images": summary.get("num_images"),
        "steps": summary.get("steps"),
        "planned_steps": summary.get("planned_steps"),
        "stopped_by_time_limit": summary.get("stopped_by_time_limit"),
        "skipped_steps": summary.get("skipped_steps"),
        "train_step_compiles": summary.get("train_step_compiles"),
        "best_validation_accuracy": summary.get("best_validation_accuracy"),
        "workdir": workdir,
        **stats,
    }
    print(f"[{_elapsed():.0f}s] run {name}: {json.dumps(result)}", flush=True)
    return result


def copy_results(workdir: str, name: str) -> None:
    """The run's metrics and summary to ``--out`` as ``<name>_<file>``."""
    if not FLAGS.out:
        return
    os.makedirs(FLAGS.out, exist_ok=True)
    for file in ("metrics.jsonl", "summary.json"):
        path = os.path.join(workdir, file)
        if os.path.exists(path):
            shutil.copy(path, os.path.join(FLAGS.out, f"{name}_{file}"))


def time_program_step(config) -> dict:
    """The training program's step on one fixed synthetic batch (no input)."""
    import numpy as np

    mesh = train.create_mesh()
    per_epoch = train.steps_per_epoch(config)
    schedule = train.create_learning_rate_schedule(config, per_epoch)
    optimizer = train.create_optimizer(config, schedule)
    model, state = train.create_train_state(config, mesh, optimizer)
    step = train.make_train_step(model, mesh, optimizer, schedule, config)
    size, classes = model.config.image_size, model.config.num_classes
    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, config.batch_size).astype(np.int32)
    batch = train.global_batch(
        {
            "image": rng.standard_normal((config.batch_size, size, size, 3), np.float32),
            "label": labels,
            "label_onehot": np.eye(classes, dtype=np.float32)[labels],
        },
        mesh,
    )
    start = time.perf_counter()
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(FLAGS.repeats):
        start = time.perf_counter()
        state, metrics = step(state, batch)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
    step_ms = 1e3 * float(np.median(times))
    row = {
        "mode": "program step (fixed batch)",
        "step_ms": step_ms,
        "images_per_second": 1e3 * config.batch_size / step_ms,
        "first_step_s": compile_s,
    }
    print(f"[{_elapsed():.0f}s] {json.dumps(row)}", flush=True)
    return row


def run_benchmark(config, deadline: float, results: Results, key: str, variants) -> None:
    """Each train-step benchmark variant that fits the deadline, one row each in
    ``results[key]``; a failing variant is recorded and the next one runs."""
    name, cfg = train.model_config(config)
    fields = dataclasses.asdict(cfg)
    for derived in ("num_classes", "image_size", "dtype"):
        fields.pop(derived)
    dtype = jnp.bfloat16 if config.model.dtype == "bfloat16" else None
    for variant in variants:
        if deadline and _elapsed() + FLAGS.variant_s > deadline:
            print(
                f"[{_elapsed():.0f}s] benchmark {variant!r} skipped: "
                f"{deadline - _elapsed():.0f} s left < {FLAGS.variant_s:.0f} s",
                flush=True,
            )
            continue

        def measure(variant: str) -> dict:
            r = bench.measure(
                name,
                fields,
                variant,
                config.batch_size,
                FLAGS.repeats,
                image_size=cfg.image_size,
                dtype=dtype,
            )
            return {
                "variant": variant,
                "batch": r.batch,
                "compile_s": r.compile_s,
                "step_ms": r.step_ms,
                "images_per_second": r.train_ips,
                "flops_per_step": r.flops,
                "peak_mb": r.peak_mb,
            }

        row = results.guarded(f"benchmark {variant}", measure, variant)
        if row is not None:
            results.add(key, row)
            print(f"[{_elapsed():.0f}s] benchmark: {json.dumps(row)}", flush=True)


def report(config, runs: list[dict], benches: list[dict], before: list[dict]) -> str:
    by_variant = {b["variant"]: b for b in benches}
    windows = by_variant.get("windows")
    if windows and before:  # Bracketed: the mean speed of the two measurements.
        windows = dict(
            windows,
            images_per_second=(windows["images_per_second"] + before[0]["images_per_second"]) / 2,
        )
    lines = [
        f"# {jax.device_count()} x {jax.devices()[0].device_kind}, jax {jax.__version__}, "
        f"{config.model.name} preset, batch {config.batch_size}, compute "
        f"{config.model.dtype}, load average {os.getloadavg()[0]:.1f}",
        "",
        "| input | end-to-end img/s | step ms | / benchmark img/s | achieved TFLOP/s "
        "| train-step compile s | data load s | test accuracy | run wall s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        # A run's synthetic step: the same model's benchmark variant (the run
        # without windows against "grid 1x1", which still fuses: one elementwise op).
        ref = by_variant.get(BENCHMARK_OF.get(r.get("variant"))) if r.get("variant") else windows
        ref = windows if r.get("variant") == "windows" else ref
        if "wall_s" not in r:  # The program's step alone.
            ratio = f"{r['images_per_second'] / ref['images_per_second']:.3f}" if ref else "-"
            lines.append(
                f"| {r['mode']} | {r['images_per_second']:,.1f} | {r['step_ms']:.1f} | "
                f"{ratio} | - | {r['first_step_s']:.1f} | - | - | - |"
            )
            continue
        ratio = f"{r['images_per_second'] / ref['images_per_second']:.3f}" if ref else "-"
        tflops = (
            f"{ref['flops_per_step'] / config.batch_size * r['images_per_second'] / 1e12:.3g}"
            if ref and ref["flops_per_step"]
            else "-"
        )
        lines.append(
            f"| {r['mode']} | {r['images_per_second']:,.1f} | {r['step_ms']:.1f} | {ratio} | "
            f"{tflops} | {r.get('first_step_s', float('nan')):.1f} | "
            f"{r.get('load_s', float('nan')):.1f} | {100 * r['accuracy']:.2f} % | "
            f"{r['wall_s']:.0f} |"
        )
    if benches:
        base = by_variant.get("grid 1x1")
        lines += [
            "",
            "| benchmark variant | img/s | step ms | / grid 1x1 | compile s | achieved TFLOP/s |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for b in benches:
            ratio = f"{b['step_ms'] / base['step_ms']:.2f}x" if base else "-"
            tflops = b["flops_per_step"] / (b["step_ms"] * 1e-3) / 1e12
            lines.append(
                f"| {b['variant']} | {b['images_per_second']:,.1f} | "
                f"{b['step_ms']:.1f} | {ratio} | {b['compile_s']:.1f} | {tflops:.3g} |"
            )
        for b in before:
            lines.append(
                f"| {b['variant']} (before the runs) | {b['images_per_second']:,.1f} | "
                f"{b['step_ms']:.1f} | - | {b['compile_s']:.1f} | - |"
            )
    return "\n".join(lines)


def main(argv):
    cli.no_arguments(argv)
    if not any(a.startswith(("--verbosity", "-v")) for a in sys.argv[1:]):
        logging.set_verbosity(logging.WARNING)  # orbax is chatty (as train.main)
    config = FLAGS.config
    deadline = FLAGS.deadline_s
    backend = jax.default_backend()
    print(
        f"[{_elapsed():.0f}s] {jax.device_count()} x {jax.devices()[0].device_kind}, "
        f"backend {backend}",
        flush=True,
    )
    if FLAGS.require_backend and backend != FLAGS.require_backend:
        raise ValueError(
            f"backend is {backend!r}, --require_backend={FLAGS.require_backend!r}: "
            "stopping instead of training on the wrong device"
        )
    unknown = set(FLAGS.train_variants) - set(TRAIN_VARIANTS)
    if unknown:
        raise app.UsageError(
            f"unknown --train_variants {sorted(unknown)}; choose from {list(TRAIN_VARIANTS)}"
        )
    results = Results(config, FLAGS.out, _elapsed)
    if FLAGS.bracket:
        run_benchmark(config, deadline, results, "benchmarks_before", ["windows"])
    for variant in FLAGS.train_variants:
        for mode in FLAGS.modes:
            row = results.guarded(
                f"training {run_name(mode, variant)}",
                run_training,
                config,
                mode,
                variant,
                deadline,
            )
            if row is not None:
                results.add("runs", row)
    if FLAGS.program_step:
        row = results.guarded(
            "program step", time_program_step, config.copy_and_resolve_references()
        )
        if row is not None:
            results.add("runs", row)
    run_benchmark(config, deadline, results, "benchmarks", FLAGS.variants)
    text = report(config, results["runs"], results["benchmarks"], results["benchmarks_before"])
    print(text, flush=True)
    results.data["table"] = text
    results.save()
    print(f"[{_elapsed():.0f}s] done ({len(results['errors'])} error(s))", flush=True)
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    cli.run(main, define_flags)
