"""Conversion-initialised training (the paper's conversion paragraph, METHOD Sec. 7):
an SNN run started from a trained ANN's run (``config.init_from``).

The ANN's parameters are copied into the SNN unchanged (the ANN counterpart has
the SNN's parameter tree: ``config.model.neuron`` "relu" or "clip"), then every
spiking layer's threshold (or its synapse's scale) is balanced, layer by layer,
to the ``config.balance_percentile`` of its pre-activations on the first
``config.balance_images`` training images (:func:`snnjax.conversion.balance`).
The report, one record per layer, is written to ``<workdir>/conversion.json``
and goes into the run's summary. Only a run that starts from scratch converts:
a resumed run restores its own checkpoint.
"""

from __future__ import annotations

import json
import os

import jax
import ml_collections
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from snnjax import conversion
from train import input_pipeline, rundir
from train.schema import ConfigError
from train.state import Setup, TrainState

REPORT = "conversion.json"


def convert(config: ml_collections.ConfigDict, chain: Setup, workdir: str, log=print) -> TrainState:
    """``chain.state`` with the parameters of the ANN run ``config.init_from``,
    balanced; a fresh optimiser state for them. Writes the report."""
    ann_run = rundir.load_run(config.init_from, mesh=chain.mesh)
    if ann_run.model.config.spiking:
        raise ConfigError(
            f"config.init_from={config.init_from!r} is a spiking run "
            f"(model.neuron={ann_run.model.config.neuron!r}): convert from an ANN run"
        )
    ann = nnx.merge(ann_run.model.eval_graphdef, ann_run.state.params, ann_run.state.rest)
    state = chain.state
    snn = nnx.merge(chain.model.eval_graphdef, state.params, state.rest, copy=True)
    nnx.update(snn, conversion.load_ann_params(snn, ann))
    images = input_pipeline.load_train_images(
        config.dataset,
        config.balance_images,
        data_dir=config.data_dir or None,
        download=config.download,
        validation_examples=config.validation_examples,
    )
    balanced, report = conversion.balance(
        snn,
        images,
        percentile=config.balance_percentile,
        mode=config.balance_mode,
        ann=ann,
        nonpositive=config.balance_nonpositive,
    )
    nnx.update(snn, balanced)
    replicated = NamedSharding(chain.mesh, P())
    params = jax.device_put(nnx.state(snn, nnx.Param), replicated)
    records = [r.as_dict() for r in report]
    if jax.process_index() == 0:
        with open(os.path.join(workdir, REPORT), "w") as f:
            json.dump({"init_from": config.init_from, "layers": records}, f, indent=1)
    if log:
        log(format_report(config, records))
    opt_state = jax.jit(chain.optimizer.init, out_shardings=replicated)(params)
    return state.replace(params=params, opt_state=opt_state)


def read_report(workdir: str) -> list[dict] | None:
    """The per-layer records of a converted run (None: not converted)."""
    path = os.path.join(workdir, REPORT)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)["layers"]


def format_report(config: ml_collections.ConfigDict, records: list[dict]) -> str:
    lines = [
        f"Converted from {config.init_from}: {config.balance_mode} balancing at the "
        f"{config.balance_percentile:g}th percentile of {config.balance_images} images",
        f"{'layer':16s} {'percentile':>10s} {'threshold':>9s} {'scale':>7s} "
        f"{'above':>6s} {'ANN above':>9s} {'rate':>6s}",
    ]
    for r in records:
        ann = "-" if r["ann_fraction_above"] is None else f"{r['ann_fraction_above']:.3f}"
        lines.append(
            f"{r['layer']:16s} {r['percentile']:10.4f} {r['threshold']:9.4f} {r['scale']:7.3f} "
            f"{r['fraction_above']:6.3f} {ann:>9s} {r['spike_rate']:6.3f}"
        )
    return "\n".join(lines)
