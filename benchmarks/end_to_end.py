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
from train import device_input, train  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", "train/configs/gpu.py", "Training config.", lock_config=False
)
flags.DEFINE_string("workdir", "/tmp/end_to_end", "Base directory; one run per mode in it.")
flags.DEFINE_list("modes", ["device"], "config.input of each training run.")
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


def run_training(config, mode: str) -> dict:
    config = config.copy_and_resolve_references()
    config.input = mode
    workdir = os.path.join(FLAGS.workdir, mode)
    if FLAGS.fresh and os.path.isdir(workdir):
        shutil.rmtree(workdir)
    device_input.STATS.clear()
    start = time.perf_counter()
    summary = train.train_and_evaluate(config, workdir)
    wall = time.perf_counter() - start
    stats = dict(device_input.STATS)
    ips = summary.get("train_images_per_second", 0.0)
    result = {
        "mode": mode,
        "wall_s": wall,
        "images_per_second": ips,
        "step_ms": 1e3 * config.batch_size / ips if ips else float("nan"),
        "accuracy": summary["accuracy"],
        "test_images": summary.get("num_images"),
        "workdir": workdir,
        **stats,
    }
    if FLAGS.out:
        os.makedirs(FLAGS.out, exist_ok=True)
        for name in ("metrics.jsonl", "summary.json"):
            path = os.path.join(workdir, name)
            if os.path.exists(path):
                shutil.copy(path, os.path.join(FLAGS.out, f"{mode}_{name}"))
    print(f"[{_elapsed():.0f}s] run {mode}: {json.dumps(result)}", flush=True)
    return result


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


def run_benchmark(config, deadline: float, variants=None) -> list[dict]:
    name, cfg = train.model_config(config)
    fields = dataclasses.asdict(cfg)
    for derived in ("num_classes", "image_size", "dtype"):
        fields.pop(derived)
    dtype = jnp.bfloat16 if config.model.dtype == "bfloat16" else None
    results = []
    for variant in FLAGS.variants if variants is None else variants:
        if deadline and _elapsed() + FLAGS.variant_s > deadline:
            print(
                f"[{_elapsed():.0f}s] benchmark {variant!r} skipped: "
                f"{deadline - _elapsed():.0f} s left < {FLAGS.variant_s:.0f} s",
                flush=True,
            )
            continue
        r = bench.measure(
            name,
            fields,
            variant,
            config.batch_size,
            FLAGS.repeats,
            image_size=cfg.image_size,
            dtype=dtype,
        )
        row = {
            "variant": variant,
            "batch": r.batch,
            "compile_s": r.compile_s,
            "step_ms": r.step_ms,
            "images_per_second": r.train_ips,
            "flops_per_step": r.flops,
            "peak_mb": r.peak_mb,
        }
        results.append(row)
        print(f"[{_elapsed():.0f}s] benchmark: {json.dumps(row)}", flush=True)
    return results


def report(config, runs: list[dict], benches: list[dict], before: list[dict]) -> str:
    by_variant = {b["variant"]: b for b in benches}
    ref = by_variant.get("windows")
    if ref and before:  # Bracketed: the mean speed of the two measurements.
        ref = dict(
            ref, images_per_second=(ref["images_per_second"] + before[0]["images_per_second"]) / 2
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
    del argv
    if not any(a.startswith(("--verbosity", "-v")) for a in sys.argv[1:]):
        logging.set_verbosity(logging.WARNING)  # orbax is chatty (as train.main)
    config = FLAGS.config
    deadline = FLAGS.deadline_s
    print(
        f"[{_elapsed():.0f}s] {jax.device_count()} x {jax.devices()[0].device_kind}, "
        f"backend {jax.default_backend()}",
        flush=True,
    )
    before = run_benchmark(config, deadline, ["windows"]) if FLAGS.bracket else []
    runs = [run_training(config, mode) for mode in FLAGS.modes]
    if FLAGS.program_step:
        runs.append(time_program_step(config.copy_and_resolve_references()))
    benches = run_benchmark(config, deadline)
    text = report(config, runs, benches, before)
    print(text, flush=True)
    result = {
        "runs": runs,
        "benchmarks": benches,
        "benchmarks_before": before,
        "table": text,
        "config": json.loads(config.to_json()),
        "wall_s": _elapsed(),
    }
    if FLAGS.out:
        os.makedirs(FLAGS.out, exist_ok=True)
        with open(os.path.join(FLAGS.out, "end_to_end.json"), "w") as f:
            json.dump(result, f, indent=1)
    print(f"[{_elapsed():.0f}s] done", flush=True)


if __name__ == "__main__":
    sys.exit(app.run(main))
