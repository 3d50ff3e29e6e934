"""Does the device recipe train? A CPU screen at reduced width and full depth.

The one-accelerator config (``train/configs/gpu.py``: SGD at lr 0.4, batch 1024,
a linear warm-up from 1e-4, cosine decay, bfloat16) has never trained on a
device, and the first device call is precious. This screen runs ``--steps``
steps of it on the CPU with the real CIFAR-10 input (the in-memory path of the
device run), the depth of the paper's model (blocks 2/2/6/2) and its widths
divided by ``--width_divisor``; the warm-up is compressed to ``--warmup_steps``
so that the screen spends its last steps at the peak lr (at batch 1024 a CPU
step takes seconds). For each candidate model:

* ``paper``: the model as the paper defines it (LeCun init, no normalisation);
* ``window init + pre-norm``: window-aware synapse init and a LayerNorm before
  each mixer and MLP (departures from the paper, docs/spiking_health.md).

It reports for each: steps skipped as non-finite, the training loss at the
first and last log, the largest gradient norm, and every LIF layer's spike
rate on 256 test images at the end (a layer below ``--silent`` is silent).
A candidate passes with no skipped step, a finite falling loss and no silent
layer. Writes ``stability_screen.json`` in ``--workdir`` (and ``--out``).

    python -m benchmarks.stability_screen --steps=160 --warmup_steps=100
"""

from __future__ import annotations

import json
import os
import shutil
import time

from absl import app, flags, logging
from ml_collections import config_flags

from snnjax import energy
from train import cli, probe, train

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The flags (only the entry point defines them: train.cli)."""
    config_flags.DEFINE_config_file("config", "train/configs/gpu.py", "The device run's config.")
    flags.DEFINE_string(
        "workdir", "/tmp/stability_screen", "One run directory per candidate in it."
    )
    flags.DEFINE_string("out", os.environ.get("OUT", ""), "Where to copy stability_screen.json.")
    flags.DEFINE_integer("steps", 160, "Steps per candidate.")
    flags.DEFINE_integer(
        "warmup_steps",
        100,
        "The warm-up, compressed from the config's 5 epochs (240 steps) so that the screen "
        "reaches the peak lr and stays there; the decay stays the config's (near the peak).",
    )
    flags.DEFINE_integer("width_divisor", 8, "The model's widths divided by this.")
    flags.DEFINE_float(
        "silent", energy.SILENT_RATE, "A LIF layer firing below this rate is silent."
    )
    flags.DEFINE_list("candidates", ["paper", "window init + pre-norm"], "Models to screen.")


# name -> (model overrides, config overrides).
CANDIDATES = {
    "paper": ({}, {}),
    "window init + pre-norm": ({"synapse_init": "window", "pre_norm": True}, {}),
    # The square-root scaling of the paper's lr 0.05 at batch 128 (0.05 x sqrt(8)).
    "window init + pre-norm at lr 0.14": (
        {"synapse_init": "window", "pre_norm": True},
        {"lr": 0.14},
    ),
    "paper at lr 0.14": ({}, {"lr": 0.14}),
}


def screen_config(config, candidate: str):
    config = config.copy_and_resolve_references()
    config.model.widths = tuple(w // FLAGS.width_divisor for w in config.model.widths)
    model, run = CANDIDATES[candidate]
    for field, value in model.items():
        config.model[field] = value
    for field, value in run.items():
        config[field] = value
    config.validation_examples = 0
    config.warmup_epochs = FLAGS.warmup_steps / train.steps_per_epoch(config)
    config.stop_after_steps = FLAGS.steps
    config.nonfinite = "skip"
    config.log_every_steps = 10
    config.checkpoint_every_steps = 0
    config.time_limit_s = 0.0
    return config


def screen(config, candidate: str) -> dict:
    slug = "".join(c if c.isalnum() or c in "._" else "_" for c in candidate)
    workdir = os.path.join(FLAGS.workdir, slug)
    shutil.rmtree(workdir, ignore_errors=True)
    start = time.perf_counter()
    train.train_and_evaluate(screen_config(config, candidate), workdir)  # stops, saved
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        logs = [r for r in map(json.loads, f) if "train/loss" in r]
    rates = {k: v["rate"] for k, v in probe.probe_checkpoint(workdir)["trained"].items()}
    lif_rates = {k: v for k, v in rates.items() if ".lif" in k}
    losses = [r["train/loss"] for r in logs]
    skipped = max((r.get("train/skipped_steps", 0) for r in logs), default=0)
    silent = sorted(k for k, v in lif_rates.items() if v < FLAGS.silent)
    finite_falling = all(map(_finite, losses)) and losses[-1] < losses[0]
    return {
        "candidate": candidate,
        "model_overrides": CANDIDATES[candidate][0],
        "config_overrides": CANDIDATES[candidate][1],
        "steps": logs[-1]["step"],
        "wall_s": time.perf_counter() - start,
        "skipped_steps": skipped,
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "max_grad_norm": max(r.get("train/grad_norm", 0.0) for r in logs),
        "min_lif_rate": min(lif_rates.values()),
        "silent_layers": silent,
        "rates": rates,
        "passed": skipped == 0 and finite_falling and not silent,
    }


def _finite(x: float) -> bool:
    return x == x and abs(x) != float("inf")


def main(argv):
    cli.no_arguments(argv)
    logging.set_verbosity(logging.WARNING)
    unknown = set(FLAGS.candidates) - set(CANDIDATES)
    if unknown:
        raise app.UsageError(f"unknown --candidates {sorted(unknown)}: {list(CANDIDATES)}")
    config = FLAGS.config
    results = [screen(config, c) for c in FLAGS.candidates]
    print(
        f"\nwidths {tuple(w // FLAGS.width_divisor for w in config.model.widths)}, depths "
        f"{tuple(config.model.depths)}, batch {config.batch_size}, lr {config.lr}, "
        f"{FLAGS.steps} steps, {config.model.dtype}"
    )
    print(
        "| candidate | skipped | loss first -> last | max grad norm | min LIF rate | silent | passed |"
    )
    print("|---|---:|---|---:|---:|---|---|")
    for r in results:
        print(
            f"| {r['candidate']} | {r['skipped_steps']} | {r['loss_first']:.3f} -> "
            f"{r['loss_last']:.3f} | {r['max_grad_norm']:.2f} | {r['min_lif_rate']:.4f} | "
            f"{', '.join(r['silent_layers']) or '-'} | {r['passed']} |"
        )
    for directory in {FLAGS.workdir, FLAGS.out} - {""}:
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "stability_screen.json"), "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    cli.run(main, define_flags)
