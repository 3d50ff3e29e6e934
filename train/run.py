"""A training run, start to end: :func:`train_and_evaluate`.

Check the config, the data and the workdir; build the mesh, the optimiser and
the model; compile the steps while the training data loads; restore the newest
checkpoint; train, logging, validating and saving at their intervals; evaluate
the final parameters on the validation examples and once on the test split;
write the summary. Faults (``docs/faults.md``): a non-finite step is never
applied (``config.nonfinite``: stop with :class:`NonFiniteError`, or skip and
count); SIGTERM / SIGINT and ``config.stop_after_steps`` save and stop;
``config.time_limit_s`` ends training early and still evaluates and summarises.
"""

from __future__ import annotations

import time

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from snnjax import models
from train import averaging, checkpointing, init_from, input_pipeline, rundir, schema
from train import metrics as metrics_lib
from train.evaluation import eval_scalars, evaluate
from train.mesh import check_batch_sizes, create_mesh, global_batch
from train.optim import steps_per_epoch, total_steps
from train.signals import StopRequest
from train.state import Setup, setup
from train.steps import Steps, compile_while_loading


class NonFiniteError(RuntimeError):
    """A training step gave a NaN or infinite loss or gradient norm (with
    ``config.nonfinite="stop"``)."""


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict | None:
    """Trains ``config``'s model on its dataset, resuming from ``workdir``'s
    newest checkpoint if there is one, and evaluates it.

    Saves a checkpoint every ``config.checkpoint_every_steps`` (0: never
    periodically), at the end, and on SIGTERM / SIGINT or at
    ``config.stop_after_steps`` (then it returns None); evaluates on the
    ``config.validation_examples`` held out of the training split every
    ``config.eval_every_epochs`` epochs and at the end, keeping the best
    checkpoint by validation accuracy. The test split is evaluated once, on
    the final parameters. On resume, ``metrics.jsonl`` is cut back to its length
    at the restored checkpoint and the TensorBoard events are rewritten from
    it, so replayed steps are not recorded twice.

    Returns:
      the final evaluation summary (also printed and written to
      ``<workdir>/summary.json``), or None if the run stopped early.

    Raises:
      ConfigError: a bad config value or workdir (nothing is created).
      input_pipeline.DataError: the dataset is not prepared (nothing is created).
      NonFiniteError: a non-finite step with ``config.nonfinite="stop"``.
      checkpointing.CheckpointError: ``workdir`` holds an unusable checkpoint.
    """
    run_start = time.perf_counter()
    schema.validate(config)
    mesh = create_mesh()
    check_batch_sizes(config, mesh)
    per_epoch = steps_per_epoch(config)
    workdir = rundir.prepare(workdir)
    with rundir.lock(workdir):  # a second run on this workdir stops here
        return _train_in(workdir, config, mesh, per_epoch, run_start)


def _train_in(workdir: str, config, mesh, per_epoch: int, run_start: float) -> dict | None:
    """:func:`train_and_evaluate` once the config, data and workdir are checked."""
    chain = setup(config, mesh=mesh, per_epoch=per_epoch)
    steps, train_iter = compile_while_loading(config, chain, per_epoch)
    lead = jax.process_index() == 0
    with (
        checkpointing.Checkpointer(workdir, config, keep=config.keep_checkpoints) as checkpointer,
        metrics_lib.MetricWriter(workdir, enabled=lead) as writer,
        StopRequest() as stop,
    ):
        loop = TrainingLoop(config, chain, steps, train_iter, per_epoch, checkpointer, writer)
        loop.restore(workdir)
        if lead:
            with open(rundir.path(workdir, rundir.CONFIG), "w") as f:
                f.write(config.to_json(indent=2))
        loop.announce()
        if not loop.train(stop, run_start):
            return None
        summary = loop.final_evaluation()
    conversion = init_from.read_report(workdir)
    if conversion is not None:
        summary["conversion"] = conversion
    summary["run_wall_time_s"] = time.perf_counter() - run_start
    if lead:
        metrics_lib.write_summary(workdir, summary)
        loop.progress.message(metrics_lib.format_summary(summary))
    return summary


class TrainingLoop:
    """The loop's state and its moments: restore, train (log, validate, save,
    stop), the final evaluation."""

    def __init__(self, config, chain: Setup, steps: Steps, train_iter, per_epoch, ckpt, writer):
        self.config, self.chain, self.steps = config, chain, steps
        self.model, self.mesh, self.state = chain.model, chain.mesh, chain.state
        self.train_iter, self.per_epoch = train_iter, per_epoch
        self.num_steps = total_steps(config, per_epoch)
        self.checkpointer, self.writer = ckpt, writer
        self.best_accuracy, self.best_step, self.skipped_steps = None, None, 0
        self.step = 0
        self.time_limited = False
        self.unchecked: list[tuple[int, dict]] = []  # steps whose finiteness is unknown
        self.meter = metrics_lib.TrainMeter()
        self.progress = metrics_lib.ProgressLine(
            total_steps=self.num_steps,
            steps_per_epoch=per_epoch,
            batch_size=config.batch_size,
            enabled=jax.process_index() == 0,
        )
        self._restore_message = ""

    def restore(self, workdir: str) -> None:
        """The newest checkpoint's state; else a fresh start (converted from the
        ANN run of ``config.init_from`` if there is one)."""
        restored = self.checkpointer.restore_latest(self.state, self.train_iter)
        if restored is None:
            self.writer.truncate(0)  # records of a run that left no checkpoint
            self._restore_message = (
                f"No checkpoint in {self.checkpointer.directory}: starting from scratch."
            )
            if self.config.init_from:
                self.state = init_from.convert(
                    self.config, self.chain, workdir, self.progress.message
                )
        else:
            self.state, meta = restored
            self.best_accuracy, self.best_step = meta["best_accuracy"], meta.get("best_step")
            self.skipped_steps = meta.get("skipped_steps", 0)
            self.writer.truncate(meta.get("metrics_bytes"), after_step=meta["step"])
            self._restore_message = (
                f"Resumed from {self.checkpointer.directory} at step {meta['step']}."
            )
        self.step = int(jax.device_get(self.state.step))

    def announce(self) -> None:
        config, held_out = self.config, self.config.validation_examples
        self.progress.message(
            f"{self._restore_message}\n{config.model.name} on {config.dataset}: "
            f"{models.count_params(self.state.params) / 1e6:.3f} M parameters, {self.num_steps} steps "
            f"({self.per_epoch} per epoch), batch {config.batch_size}, "
            f"{self.mesh.size} device(s), {jax.process_count()} process(es); "
            + (
                f"{held_out} training images held out for validation."
                if held_out
                else "no validation hold-out (no best checkpoint)."
            )
        )

    def train(self, stop: StopRequest, run_start: float) -> bool:
        """Steps until the schedule's end or the time limit (True), or until a
        stop request (saved; False)."""
        config, per_epoch, num_steps = self.config, self.per_epoch, self.num_steps
        # Many queued multi-device steps can hit XLA's CPU rendezvous timeout.
        block_each_step = jax.default_backend() == "cpu" and self.mesh.size > 1
        start_step = self.step
        while self.step < num_steps and not self.time_limited:
            batch = self.steps.feed.data if self.steps.feed else self._next_batch()
            self.state, step_metrics = self.steps.train(self.state, batch)
            if block_each_step:  # at most two steps queued: host work still overlaps
                jax.block_until_ready(self.unchecked[-1][1] if self.unchecked else step_metrics)
            self.step += 1
            step = self.step
            self.unchecked.append((step, step_metrics))
            self.meter.add({k: v for k, v in step_metrics.items() if k != "finite"})
            if step == start_step + 1:  # leave compilation out of the speed
                jax.block_until_ready(self.state)
                self.meter.restart_clock()
            end_of_epoch = step % per_epoch == 0
            stopping = step < num_steps and (step == config.stop_after_steps or stop.requested())
            last = step == num_steps
            log_now = is_log_point(step, per_epoch, config.log_every_steps) or stopping or last
            every = config.checkpoint_every_steps
            save_now = (every > 0 and step % every == 0) or stopping
            if log_now and not stopping and step < num_steps:
                self.time_limited = _out_of_time(config.time_limit_s, run_start)
            if log_now or save_now:
                self.check_finite()
            if log_now:
                self.log()
            if end_of_epoch or save_now:
                self.meter.pause()  # evaluating and saving are not training time
            if end_of_epoch:
                self.end_epoch()
            if save_now:
                self.save()
            if stopping:
                reason = stop.signal_name or f"stop_after_steps={config.stop_after_steps}"
                self.progress.message(
                    f"Stopped at step {step} ({reason}); checkpoint saved in "
                    f"{self.checkpointer.directory}. Run the same command to resume."
                )
                return False
            if self.time_limited:
                self.progress.message(
                    f"Time limit: {config.time_limit_s:.0f} s reached at step {step} of "
                    f"{num_steps}; stopping training, then the final evaluation."
                )
            if end_of_epoch or save_now:
                self.meter.resume()
        return True

    def _next_batch(self) -> dict:
        return global_batch(next(self.train_iter), self.mesh)

    def check_finite(self) -> None:
        """Looks at the flags of the steps since the last check (one transfer):
        stops on a non-finite step, or counts it (``nonfinite="skip"``)."""
        fetched = jax.device_get([m for _, m in self.unchecked])
        bad = [(s, m) for (s, _), m in zip(self.unchecked, fetched) if not m["finite"]]
        self.unchecked.clear()
        if not bad:
            return
        if self.config.nonfinite == "skip":
            self.skipped_steps += len(bad)
            self.progress.message(
                f"Skipped {len(bad)} step(s) with a non-finite loss or gradient norm "
                f"(first: step {bad[0][0]}); {self.skipped_steps} skipped in all."
            )
            return
        first, values = bad[0]
        latest = self.checkpointer.latest_step()
        kept = (
            f"the newest checkpoint (step {latest}) is kept as the last finite state"
            if latest is not None
            else "no checkpoint was saved"
        )
        raise NonFiniteError(
            f"step {first}: non-finite loss ({float(values['loss'])}) or gradient norm "
            f"({float(values['grad_norm'])}); stopped without saving ({kept}). Lower "
            "config.lr, or set config.nonfinite=skip to skip such steps."
        )

    def log(self) -> None:
        means, seconds = self.meter.flush()
        speed = self.config.batch_size / seconds if seconds else 0.0
        skipped = (
            {"train/skipped_steps": self.skipped_steps} if self.config.nonfinite == "skip" else {}
        )
        self.writer.write(
            self.step,
            {f"train/{k}": v for k, v in means.items()}
            | {"train/images_per_second": speed}
            | skipped,
        )
        self.progress.update(
            self.step,
            loss=means["loss"],
            accuracy=means["accuracy"],
            lr=means["lr"],
            images_per_second=speed,
        )

    def end_epoch(self) -> None:
        config, epoch = self.config, self.step // self.per_epoch
        self.writer.write(
            self.step,
            {f"epoch/train_{k}": v for k, v in self.meter.epoch().items()} | {"epoch": epoch},
        )
        every = config.eval_every_epochs
        if every > 0 and epoch % every == 0 and self.step < self.num_steps:
            summary = self.validate()
            if summary is not None:
                self.progress.message(
                    f"epoch {epoch}: validation accuracy {100 * summary['accuracy']:.2f} %, "
                    f"mean spike rate {summary['mean_spike_rate']:.3f}"
                )

    def validate(self) -> dict | None:
        """Evaluates on the held-out examples and keeps the best (None without)."""
        if not self.config.validation_examples:
            return None
        summary = evaluate(
            self.model,
            self.state,
            self.config,
            self.mesh,
            self.steps.eval,
            split=input_pipeline.HELD_OUT,
        )
        self.writer.write(self.step, eval_scalars(summary, self.step // self.per_epoch))
        if self.best_accuracy is None or summary["accuracy"] > self.best_accuracy:
            self.best_accuracy, self.best_step = summary["accuracy"], self.step
            self.checkpointer.save_best(self.state, self.best_accuracy)
        return summary

    def save(self) -> None:
        self.checkpointer.save(
            self.state,
            self.train_iter,
            best_accuracy=self.best_accuracy,
            best_step=self.best_step,
            skipped_steps=self.skipped_steps,
            metrics_bytes=self.writer.size(),
        )

    def final_evaluation(self) -> dict:
        """Saves; the final parameters on the validation examples (model
        selection), then once on the test split; the summary."""
        config, model, state, mesh, step = self.config, self.model, self.state, self.mesh, self.step
        self.check_finite()
        self.save()
        validation = self.validate()
        epoch = step // self.per_epoch
        summary = evaluate(
            model, state, config, mesh, self.steps.eval, checkpoint="final", step=step, epoch=epoch
        )
        self.writer.write(step, eval_scalars(summary, epoch, "test"))
        if averaging.averaged_params(state.opt_state) is not None:
            # The headline is the EMA's; the final iterate beside it.
            current = evaluate(model, state, config, mesh, self.steps.eval, averaged=False)
            summary["ema_decay"] = config.ema_decay
            summary["final_iterate_accuracy"] = current["accuracy"]
            if "accuracy_flip" in current:
                summary["final_iterate_accuracy_flip"] = current["accuracy_flip"]
        summary |= {
            "test_accuracy": summary["accuracy"],
            "validation_examples": config.validation_examples,
            "validation_accuracy": validation["accuracy"] if validation else None,
            "best_validation_accuracy": self.best_accuracy,
            "best_step": self.best_step,
            "skipped_steps": self.skipped_steps,
            "steps": step,
            "planned_steps": self.num_steps,
            "stopped_by_time_limit": self.time_limited,
            # Shapes, dtypes and shardings are fixed: anything but 1 is a recompile.
            "train_step_compiles": self.steps.train._cache_size(),
        }
        if self.meter.seconds:
            summary["train_wall_time_s"] = self.meter.seconds
            summary["train_images_per_second"] = (
                self.meter.steps * config.batch_size / self.meter.seconds
            )
        return summary


def is_log_point(step: int, per_epoch: int, log_every_steps: int) -> bool:
    """Whether ``step`` logs: every ``log_every_steps`` steps, and at an epoch's
    end when logs are at least that frequent (each log is a host sync: a GPU
    config logs every few epochs)."""
    end_of_epoch = step % per_epoch == 0
    return step % log_every_steps == 0 or (end_of_epoch and log_every_steps <= per_epoch)


def _out_of_time(limit_s: float, run_start: float) -> bool:
    """Whether the run is past ``limit_s`` (0: no limit); the lead process
    decides, so that every process stops at the same step."""
    late = bool(limit_s) and time.perf_counter() - run_start > limit_s
    if jax.process_count() == 1:
        return late
    return bool(multihost_utils.broadcast_one_to_all(np.int32(late)))
