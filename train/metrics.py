"""Metric output of a training run: JSON lines, TensorBoard events, the live
progress line, and the evaluation summary (accuracy, spikes, energy).

Files in the workdir (written by process 0 only):

* ``metrics.jsonl``: one JSON object per line, ``{"step": s, "time": t,
  "<group>/<name>": value, ...}``, groups ``train`` (every
  ``log_every_steps``), ``epoch`` (training averages over each epoch),
  ``eval`` (each evaluation on the validation examples held out of the
  training split) and ``test`` (the one evaluation on the test split, at the
  end). After a resume the file is cut back to its length at the restored
  checkpoint (:meth:`MetricWriter.truncate`), so each step is recorded once.
* ``tensorboard/``: the same scalars as TensorBoard event files
  (``tensorboard --logdir=<workdir>/tensorboard``). ``metrics.jsonl`` is the
  source of truth: :meth:`MetricWriter.truncate` replaces the event files by
  one fresh file holding the records kept (with their ``time`` as wall time),
  so after a resume TensorBoard, too, has each step once.
* ``summary.json`` (``summary_best.json`` for the best checkpoint): the final
  evaluation, see :func:`summarise`.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Mapping

import jax
import numpy as np
from tensorboardX import SummaryWriter

from snnjax import energy, models
from snnjax.nn.config import SequencerConfig
from snnjax.nn.layers import SpikeCount

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


class MetricWriter:
    """Writes scalars to ``metrics.jsonl`` and TensorBoard; does nothing where
    ``enabled`` is False (every process but the first)."""

    def __init__(self, workdir: str, *, enabled: bool = True):
        self._enabled = enabled
        if not enabled:
            return
        self._jsonl = open(os.path.join(workdir, METRICS_FILE), "a", buffering=1)
        self._tensorboard_dir = os.path.join(workdir, TENSORBOARD_DIR)
        self._tensorboard = SummaryWriter(self._tensorboard_dir)

    def size(self) -> int | None:
        """The length of ``metrics.jsonl`` in bytes, all records written
        (None where disabled); stored with each checkpoint."""
        if not self._enabled:
            return None
        self._jsonl.flush()
        return os.path.getsize(self._jsonl.name)

    def truncate(self, size: int | None, *, after_step: int | None = None) -> None:
        """Cuts ``metrics.jsonl`` back to ``size`` bytes, its length when the
        checkpoint being resumed was saved, so that the steps replayed since
        are not recorded twice. Without ``size`` (a checkpoint of an older
        version) keeps the complete records of steps up to ``after_step``.
        Then rewrites the TensorBoard events from the records kept."""
        if not self._enabled or (size is None and after_step is None):
            return
        path = self._jsonl.name
        self._jsonl.close()
        if size is not None:
            if os.path.getsize(path) > size:
                os.truncate(path, size)
        else:
            _keep_records_up_to(path, after_step)
        self._jsonl = open(path, "a", buffering=1)
        self._rewrite_tensorboard(os.path.dirname(path))

    def _rewrite_tensorboard(self, workdir: str) -> None:
        """Replaces the event files by a fresh one with the records of
        ``metrics.jsonl``."""
        self._tensorboard.close()
        for name in os.listdir(self._tensorboard_dir):
            if name.startswith("events.out.tfevents."):
                os.remove(os.path.join(self._tensorboard_dir, name))
        self._tensorboard = SummaryWriter(self._tensorboard_dir)
        for record in read_metrics(workdir):
            step, walltime = record.pop("step"), record.pop("time", None)
            self._add_scalars(step, record, walltime)

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        if not self._enabled:
            return
        scalars = {k: float(v) for k, v in scalars.items()}
        walltime = time.time()
        self._jsonl.write(json.dumps({"step": int(step), "time": walltime, **scalars}) + "\n")
        self._add_scalars(int(step), scalars, walltime)

    def _add_scalars(self, step: int, scalars: Mapping[str, float], walltime: float | None) -> None:
        for name, value in scalars.items():
            self._tensorboard.add_scalar(name, value, step, walltime=walltime)

    def flush(self) -> None:
        if self._enabled:
            self._jsonl.flush()
            self._tensorboard.flush()

    def close(self) -> None:
        if self._enabled:
            self._jsonl.close()
            self._tensorboard.close()

    def __enter__(self) -> MetricWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _keep_records_up_to(path: str, step: int) -> None:
    """Rewrites the JSON-lines file ``path`` with its complete records of
    steps up to ``step``."""
    keep = []
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # An incomplete last line.
            if record.get("step", 0) <= step:
                keep.append(line if line.endswith("\n") else line + "\n")
    with open(path, "w") as f:
        f.writelines(keep)


class TrainMeter:
    """Averages the per-step training metrics between log points and over
    each epoch, and times the steps.

    Call :meth:`restart_clock` after anything that is not training
    (compilation, evaluation, saving): steps since the last :meth:`flush`
    still count in the averages but not in the timing.
    """

    def __init__(self):
        self._pending: list[dict] = []
        self._epoch_sums: dict[str, float] = {}
        self._epoch_steps = 0
        self._clock = time.perf_counter()
        self._timed_steps = 0
        self._banked = 0.0  # Timed seconds before the last pause, not yet flushed.
        self.seconds = 0.0  # Timed training so far.
        self.steps = 0  # Steps in that time.

    def add(self, step_metrics: Mapping) -> None:
        """One step's metrics (device arrays; fetched at :meth:`flush`)."""
        self._pending.append(step_metrics)
        self._timed_steps += 1

    def restart_clock(self) -> None:
        """Times from now on; the steps added so far are not timed (compiling)."""
        self._clock = time.perf_counter()
        self._timed_steps = 0
        self._banked = 0.0

    def pause(self) -> None:
        """Stops timing until :meth:`resume` (evaluating and saving are not
        training time); the steps added so far stay timed, flushed or not."""
        self._banked += time.perf_counter() - self._clock

    def resume(self) -> None:
        self._clock = time.perf_counter()

    def flush(self) -> tuple[dict[str, float], float]:
        """The means of the metrics added since the last flush, and the mean
        seconds per timed step among them (0 if none was timed)."""
        fetched = jax.device_get(self._pending)
        means = {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0]}
        for k, v in means.items():
            self._epoch_sums[k] = self._epoch_sums.get(k, 0.0) + v * len(fetched)
        self._epoch_steps += len(fetched)
        elapsed = self._banked + time.perf_counter() - self._clock
        seconds_per_step = elapsed / self._timed_steps if self._timed_steps else 0.0
        self.seconds += elapsed if self._timed_steps else 0.0
        self.steps += self._timed_steps
        self._pending = []
        self.restart_clock()
        return means, seconds_per_step

    def epoch(self) -> dict[str, float]:
        """The means over the steps flushed since the last call."""
        means = {k: v / self._epoch_steps for k, v in self._epoch_sums.items()}
        self._epoch_sums, self._epoch_steps = {}, 0
        return means


def read_metrics(workdir: str) -> list[dict]:
    """The records of ``<workdir>/metrics.jsonl``, in order."""
    with open(os.path.join(workdir, METRICS_FILE)) as f:
        return [json.loads(line) for line in f if line.strip()]


class ProgressLine:
    """The live progress line: epoch, step, loss, accuracy, lr, img/s and ETA.

    On a terminal the line is rewritten in place; otherwise (a log file) each
    update is a new line.
    """

    def __init__(
        self,
        *,
        total_steps: int,
        steps_per_epoch: int,
        batch_size: int,
        enabled: bool = True,
        stream=None,
    ):
        self._total = total_steps
        self._per_epoch = steps_per_epoch
        self._batch_size = batch_size
        self._enabled = enabled
        self._stream = stream or sys.stdout
        self._live = self._stream.isatty()

    def update(
        self, step: int, *, loss: float, accuracy: float, lr: float, images_per_second: float
    ) -> None:
        if not self._enabled:
            return
        epoch = math.ceil(step / self._per_epoch)
        total_epochs = math.ceil(self._total / self._per_epoch)
        eta = (
            (self._total - step) * self._batch_size / images_per_second
            if images_per_second > 0
            else math.nan
        )
        line = (
            f"epoch {epoch}/{total_epochs}  step {step}/{self._total}  "
            f"loss {loss:.4f}  acc {100 * accuracy:5.1f}%  lr {lr:.2e}  "
            f"{images_per_second:7.1f} img/s  ETA {format_duration(eta)}"
        )
        if self._live:
            self._stream.write("\r\033[K" + line)
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def message(self, text: str) -> None:
        """A line of its own (ends the live line first)."""
        if not self._enabled:
            return
        self._stream.write(("\n" if self._live else "") + text + "\n")
        self._stream.flush()


def format_duration(seconds: float) -> str:
    """``h:mm:ss`` (or ``m:ss``); ``?`` for unknown."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def summarise(
    *,
    model_config: SequencerConfig,
    num_params: int,
    num_images: int,
    correct: float,
    loss_sum: float,
    spikes: Mapping[str, float],
    neurons: Mapping[str, int],
    **extra,
) -> dict:
    """The evaluation summary from totals over an evaluation set.

    Args:
      model_config: the evaluated model's configuration (for the op table).
      num_params: its parameter count.
      num_images: images evaluated (padding excluded).
      correct, loss_sum: correct predictions and summed cross-entropy.
      spikes: per spiking layer, total spikes over all ``num_images`` images.
      neurons: per spiking layer, its neuron count per image.
      **extra: further JSON-serialisable entries (dataset, step, ...).

    Returns:
      A JSON-serialisable dict: ``accuracy``, ``loss``, ``num_images``,
      ``mean_spike_rate`` (over the LIF layers), ``spikes_per_image`` (all
      spiking layers, each spike once), ``energy``: per accounting of
      :mod:`snnjax.energy` ("layerwise", "paper") the SNN and ANN energy per
      image in micro-joules, adds, MACs and the ANN's pJ per op;
      ``energy_mj_per_image`` / ``ann_energy_mj_per_image`` /
      ``adds_per_image`` / ``macs_per_image`` repeat the layerwise
      accounting (45 nm, METHOD Sec. 8); ``dense_macs_per_image``,
      ``num_params``, ``spike_rates`` (per layer; ``*.encoder_windows`` are the
      encoders' spikes as the dilated windows read them), and ``extra``.
    """
    if num_images <= 0:
        raise ValueError("no images were evaluated")
    counts = {
        name: SpikeCount(np.array([spikes[name] / num_images]), np.asarray(neurons[name]))
        for name in spikes
    }
    rates = energy.spike_rates(counts)
    ops = models.operations(model_config)
    reports = {name: energy.estimate(ops, rates, accounting=name) for name in energy.ACCOUNTINGS}
    report = reports["layerwise"]
    return {
        **extra,
        "num_images": int(num_images),
        "accuracy": float(correct / num_images),
        "loss": float(loss_sum / num_images),
        "mean_spike_rate": energy.mean_spike_rate(counts),
        "spikes_per_image": energy.spikes_per_image(counts),
        "energy": {
            name: {
                "snn_uj": r.energy_uj,
                "ann_uj": r.ann_energy_uj,
                "adds": r.adds,
                "macs": r.macs,
                "ann_pj_per_op": r.ann_pj_per_op,
            }
            for name, r in reports.items()
        },
        "energy_mj_per_image": report.energy_mj,
        "ann_energy_mj_per_image": report.ann_energy_mj,
        "adds_per_image": report.adds,
        "macs_per_image": report.macs,
        "dense_macs_per_image": report.dense_ops,
        "num_params": int(num_params),
        "spike_rates": rates,
        "spike_rate_warnings": energy.rate_warnings(rates),
    }


def format_summary(summary: Mapping) -> str:
    """A human-readable block of the main numbers of :func:`summarise`."""
    lines = [
        f"Summary ({summary.get('dataset', '?')} {summary.get('split', '')}, "
        f"model {summary.get('model', '?')}, step {summary.get('step', '?')}, "
        f"{summary.get('checkpoint', 'final')} parameters)",
        f"  test accuracy      {100 * summary['accuracy']:.2f} %  "
        f"({summary['num_images']} images, loss {summary['loss']:.4f})",
        f"  mean spike rate    {summary['mean_spike_rate']:.4f}",
        f"  spikes per image   {summary['spikes_per_image']:.4g}",
    ]
    if "accuracy_flip" in summary:
        lines.insert(
            2, f"  with flip TTA      {100 * summary['accuracy_flip']:.2f} % (image + mirror)"
        )
    if "final_iterate_accuracy" in summary:
        flip = summary.get("final_iterate_accuracy_flip")
        lines.insert(
            3 if "accuracy_flip" in summary else 2,
            f"  averaging          EMA (decay {summary['ema_decay']:g}); final iterate "
            f"{100 * summary['final_iterate_accuracy']:.2f} %"
            + (f" (flip TTA {100 * flip:.2f} %)" if flip is not None else ""),
        )
    for name, e in summary.get("energy", {}).items():
        lines.append(
            f"  energy ({name + ')':10s} {e['snn_uj']:.2f} uJ / image: "
            f"{e['adds'] / 1e6:.2f} M adds, {e['macs'] / 1e6:.2f} M MACs "
            f"(ANN {e['ann_uj']:.2f} uJ at {e['ann_pj_per_op']:g} pJ/op)"
        )
    lines += [
        f"  dense ops / image  {summary['dense_macs_per_image'] / 1e6:.2f} M",
        f"  parameters         {summary['num_params'] / 1e6:.3f} M",
    ]
    for warning in summary.get("spike_rate_warnings", []):
        lines.append(f"  WARNING: {warning}")
    if "train_wall_time_s" in summary:
        lines.append(
            f"  training           {format_duration(summary['train_wall_time_s'])} wall, "
            f"{summary['train_images_per_second']:.1f} img/s"
        )
    return "\n".join(lines)


def write_summary(workdir: str, summary: Mapping, filename: str = "summary.json") -> str:
    """Writes ``summary`` as JSON to ``<workdir>/<filename>``; returns the path."""
    path = os.path.join(workdir, filename)
    with open(path + ".tmp", "w") as f:
        json.dump(summary, f, indent=2, sort_keys=True)
    os.replace(path + ".tmp", path)
    return path
