"""Membrane health of a run's spiking layers, at initialisation and now.

    python -m train.probe --workdir=DIR [--checkpoint=latest|best] [--images=256]
                          [--ablate_mixers]

Restores the checkpoint (and the same config's initial state), runs
:func:`snnjax.nn.membrane_probe.membrane_stats` on the first ``--images`` test images
and the gradient norm of every block's mixer on one training batch, and writes
``DIR/membrane_health.json``::

    {"init": {"s1b1.lif1": {"rate", "v_mean", "v_std", "in_window"}, ...},
     "trained": {...}, "grad_norm": {"init": {"s1b1.mixer": ...}, "trained": ...},
     "step": N, "vth": ..., "surrogate": ...}

With ``--ablate_mixers`` it also writes ``"mixer_ablation"``: the test
accuracy with the spiking mixers' outputs zeroed (all, then each block),
against ``"none"`` (as trained): what the spiking path carries. The trained
state is the run's EMA of the parameters if it keeps one.

``python -m train.report`` draws it when present (docs/spiking_health.md
explains what to read in it).
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
from absl import flags, logging
from flax import nnx

from snnjax.counts import block_name
from snnjax.nn.membrane_probe import membrane_stats
from train import cli, input_pipeline, rundir, train


def mixer_grad_norms(
    model: train.Model,
    states: dict[str, train.TrainState],
    batch: dict,
    label_smoothing: float = 0.1,
) -> dict[str, dict[str, float]]:
    """For each named state: the gradient norm of each block's mixer (and of
    every other top-level module) for the loss on ``batch`` (one compilation
    for all the states)."""

    def loss_fn(params, rest):
        m = nnx.merge(model.train_graphdef, params, rest, copy=True)
        logits = m(batch["image"])
        return train.soft_cross_entropy(logits, batch["label_onehot"], label_smoothing).mean()

    grad_fn = jax.jit(jax.grad(loss_fn))
    norms = {}
    for name, state in states.items():
        squares: dict[str, float] = {}
        for path, value in nnx.to_flat_state(grad_fn(state.params, state.rest)):
            key = f"{_block_name(path)}.{path[3]}" if path[0] == "stages" else str(path[0])
            squares[key] = squares.get(key, 0.0) + float(jnp.sum(jnp.square(value[...])))
        norms[name] = {k: v**0.5 for k, v in squares.items()}
    return norms


def zero_mixers(params: nnx.State, blocks: list[str]) -> nnx.State:
    """``params`` with the output projection of the named blocks' mixers
    (``"s{stage}b{block}"``) set to zero: those mixers add nothing to the
    residual stream (their membranes still reach the next block's fusion)."""

    def zero(path, x):
        keys = [getattr(k, "key", getattr(k, "idx", None)) for k in path]
        hit = keys[0] == "stages" and _block_name(keys) in blocks and keys[3:5] == ["mixer", "proj"]
        return jnp.zeros_like(x) if hit else x

    return jax.tree_util.tree_map_with_path(zero, params)


def _block_name(keys) -> str:
    """``"s{stage}b{block}"`` of a parameter path under ``stages``."""
    return block_name(keys[1], keys[2])


def mixer_ablation(
    model: train.Model,
    state: train.TrainState,
    config,
    mesh,
) -> dict[str, float]:
    """Test accuracy of the trained model as it is (``"none"``), with every
    spiking mixer's output zeroed (``"all"``) and with each block's alone
    (``"s1b1"``, ...): how much of what the model learnt goes through the
    spiking token mixers (docs/spiking_health.md)."""
    blocks = [block_name(s, b) for s, d in enumerate(model.config.depths) for b in range(d)]
    eval_step = train.make_eval_step(model, mesh, flip=False, data_parallel=config.data_parallel)
    accuracy = {}
    for name, zeroed in [("none", []), ("all", blocks)] + [(b, [b]) for b in blocks]:
        ablated = state.replace(params=zero_mixers(state.params, zeroed))
        summary = train.evaluate(model, ablated, config, mesh, eval_step, averaged=False)
        accuracy[name] = summary["accuracy"]
    return accuracy


def _stats(model: train.Model, state: train.TrainState, images) -> dict:
    m = nnx.merge(model.eval_graphdef, state.params, state.rest, copy=True)
    return {
        name: {field: float(v) for field, v in stats._asdict().items()}
        for name, stats in membrane_stats(m, images).items()
    }


def probe_checkpoint(
    workdir: str, which: str = "latest", num_images: int = 256, ablate_mixers: bool = False
) -> dict:
    """Writes and returns ``<workdir>/membrane_health.json`` (see the module
    docstring); with ``ablate_mixers`` also its ``"mixer_ablation"``
    (:func:`mixer_ablation`, a test-set evaluation per block)."""
    config, model, state = rundir.load_run(workdir, which)
    state = state.replace(params=train.evaluation_params(state))  # the EMA if the run keeps one
    initial = train.setup(config).state
    data_dir = config.data_dir or None
    images = next(
        input_pipeline.create_eval_iterator(
            config.dataset, global_batch_size=num_images, data_dir=data_dir, download=False
        )
    )["image"]
    batch = next(
        input_pipeline.create_train_iterator(
            config.dataset,
            global_batch_size=config.batch_size,
            seed=config.seed,
            data_dir=data_dir,
            download=False,
        )
    )
    # The zero-initialised head passes no gradient at step 0: measure the
    # initial gradients with the trained head, which isolates the mixers.
    init_with_head = initial.replace(params=_with_head(initial.params, state.params))
    health = {
        "step": int(jax.device_get(state.step)),
        "vth": model.config.vth,
        "surrogate": model.config.surrogate,
        "init": _stats(model, initial, images),
        "trained": _stats(model, state, images),
        "grad_norm": mixer_grad_norms(
            model, {"init (trained head)": init_with_head, "trained": state}, batch
        ),
    }
    if ablate_mixers:
        health["mixer_ablation"] = mixer_ablation(model, state, config, train.create_mesh())
    with open(rundir.path(workdir, rundir.HEALTH), "w") as f:
        json.dump(health, f, indent=1)
    return health


def _with_head(params, source):
    params = jax.tree.map(lambda x: x, params)
    params["head"] = source["head"]
    return params


def define_flags() -> None:
    flags.DEFINE_string("workdir", None, "Workdir of a training run.", required=True)
    flags.DEFINE_enum(
        "checkpoint", "latest", list(rundir.WHICH), "Which checkpoint: the newest, or the best."
    )
    flags.DEFINE_integer("images", 256, "Test images to probe.", lower_bound=1)
    flags.DEFINE_bool(
        "ablate_mixers",
        False,
        "Also evaluate the test split with every block's mixer output zeroed, "
        "all at once and one block at a time.",
    )


def main(argv):
    cli.no_arguments(argv)
    logging.set_verbosity(logging.WARNING)
    health = probe_checkpoint(
        flags.FLAGS.workdir,
        flags.FLAGS.checkpoint,
        flags.FLAGS.images,
        ablate_mixers=flags.FLAGS.ablate_mixers,
    )
    print(f"{'layer':18s} {'rate':>13s} {'V mean':>15s} {'V std':>13s} {'in window':>13s}")
    for name, now in health["trained"].items():
        was = health["init"][name]
        print(
            f"{name:18s} "
            + " ".join(
                f"{was[k]:6.3f}>{now[k]:6.3f}" for k in ("rate", "v_mean", "v_std", "in_window")
            )
        )
    for name, accuracy in health.get("mixer_ablation", {}).items():
        label = "as trained" if name == "none" else f"mixers zeroed: {name}"
        print(f"test accuracy, {label:22s} {100 * accuracy:6.2f} %")
    print(
        f"(init > step {health['step']}); written to "
        f"{rundir.path(flags.FLAGS.workdir, rundir.HEALTH)}"
    )


if __name__ == "__main__":
    cli.run(main, define_flags)
