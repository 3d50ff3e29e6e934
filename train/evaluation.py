"""Evaluation of a train state on a split: the loop over its batches, with
spike statistics, and the summary (accuracy, spike rates, energy, ...)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh

from snnjax import models
from train import input_pipeline
from train import metrics as metrics_lib
from train.mesh import global_batch
from train.state import Model, TrainState, evaluation_params
from train.steps import make_eval_step


def evaluate(
    model: Model,
    state: TrainState,
    config: ml_collections.ConfigDict,
    mesh: Mesh,
    eval_step_fn: Callable | None = None,
    *,
    split: str | None = None,
    averaged: bool = True,
    **extra,
) -> dict:
    """Evaluates ``state`` on ``split`` (default: the evaluation split, i.e.
    the test set; :data:`train.input_pipeline.HELD_OUT`: the validation
    examples held out of the training split), the first
    ``config.max_eval_batches`` batches if > 0, with spike statistics; with
    ``config.eval_flip`` also ``accuracy_flip`` (see :func:`eval_step`), with
    the parameters of :func:`evaluation_params`.

    Returns:
      the summary of :func:`train.metrics.summarise` (accuracy, spike rates,
      spikes and energy per image, ...) with ``extra`` entries.
    """
    eval_step_fn = eval_step_fn or make_eval_step(
        model, mesh, flip=config.eval_flip, data_parallel=config.data_parallel
    )
    held_out = config.validation_examples
    data = dict(
        split=split,
        data_dir=config.data_dir or None,
        download=config.download,
        validation_examples=held_out,
    )
    iterator = input_pipeline.create_eval_iterator(
        config.dataset,
        global_batch_size=config.eval_batch_size,
        worker_count=config.worker_count,
        **data,
    )
    num_batches = input_pipeline.num_eval_batches(
        config.dataset, global_batch_size=config.eval_batch_size, **data
    )
    if config.max_eval_batches > 0:
        num_batches = min(num_batches, config.max_eval_batches)
    info = input_pipeline.get_dataset_info(config.dataset)
    params = evaluation_params(state, averaged)
    rest = state.rest
    totals, neurons = None, None
    for _, batch in zip(range(num_batches), iterator):
        sums, rest = eval_step_fn(params, rest, global_batch(batch, mesh))
        sums = jax.device_get(sums)
        neurons = sums.pop("neurons")
        sums = jax.tree.map(np.float64, sums)
        totals = sums if totals is None else jax.tree.map(np.add, totals, sums)
    if "correct_flip" in totals:  # the step evaluates the mirrored images too
        extra["accuracy_flip"] = float(totals["correct_flip"] / totals["count"])
    return metrics_lib.summarise(
        model_config=model.config,
        num_params=models.count_params(state.params),
        num_images=int(totals["count"]),
        correct=totals["correct"],
        loss_sum=totals["loss"],
        spikes=totals["spikes"],
        neurons={k: int(v) for k, v in neurons.items()},
        dataset=config.dataset,
        split=(
            f"validation (last {held_out} of {info.train_split})"
            if split == input_pipeline.HELD_OUT
            else split or info.eval_split
        ),
        model=config.model.name,
        **extra,
    )


def eval_scalars(summary: dict, epoch: int, group: str = "eval") -> dict:
    """The scalars of an evaluation summary that the metrics file records."""
    keys = ("accuracy", "loss", "mean_spike_rate", "spikes_per_image", "energy_mj_per_image")
    keys += ("accuracy_flip",) if "accuracy_flip" in summary else ()
    return {f"{group}/{k}": summary[k] for k in keys} | {"epoch": epoch}
