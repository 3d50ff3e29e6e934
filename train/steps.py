"""The pure training and evaluation steps and their jitted forms over the mesh.

The training step is one pure function of (:class:`train.state.TrainState`,
batch), jitted over the 1-D ``"data"`` mesh: the batch sharded along its leading
axis, the state replicated and donated; XLA inserts the all-reduce of the
gradients ("gspmd"), or each device runs its shard under ``shard_map`` and one
``pmean`` averages the gradients ("local"). A step whose loss or gradient norm
is not finite keeps the old parameters (a flag computed on the device).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from train import device_input, input_pipeline
from train.mesh import DATA_AXIS, global_batch
from train.state import Model, Setup, TrainState, evaluation_params


def soft_cross_entropy(
    logits: jax.Array, targets: jax.Array, label_smoothing: float = 0.0
) -> jax.Array:
    """Per-example cross-entropy against (soft, e.g. mixup) one-hot targets,
    smoothed: ``(1 - s) targets + s / K``."""
    targets = optax.smooth_labels(targets, label_smoothing) if label_smoothing else targets
    return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)


def train_step(
    state: TrainState,
    batch: dict,
    *,
    graphdef: nnx.GraphDef,
    optimizer: optax.GradientTransformation,
    schedule: optax.Schedule,
    label_smoothing: float,
    axis_name: str | None = None,
) -> tuple[TrainState, dict]:
    """One optimisation step on a (global) batch; returns the new state and the
    batch's loss, accuracy, gradient norm, learning rate and ``finite``.

    If the loss or the gradient norm is not finite, the step keeps the old
    parameters and optimiser state (``finite`` is False); the step counter and
    the RNG streams advance as usual.

    With ``axis_name`` (inside ``shard_map``, :func:`make_train_step`'s
    "local" mode) ``batch`` is this device's shard: the loss, accuracy and
    gradients are averaged over the axis (equal shards: the global batch's),
    and random draws use per-device streams (:func:`device_streams`)."""

    def loss_fn(params, rest):
        model = nnx.merge(graphdef, params, rest, copy=True)
        logits = model(batch["image"])
        loss = soft_cross_entropy(logits, batch["label_onehot"], label_smoothing).mean()
        return loss, (logits, nnx.state(model, nnx.Not(nnx.Param)))

    (loss, (logits, rest)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params, device_streams(state.rest, axis_name)
    )
    accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["label"])
    if axis_name is not None:
        loss, accuracy, grads = jax.lax.pmean((loss, accuracy, grads), axis_name)
        rest = _shared_keys(state.rest, rest)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    params, opt_state = jax.tree.map(
        lambda new, old: jnp.where(finite, new, old),
        (params, opt_state),
        (state.params, state.opt_state),
    )
    metrics = {
        "loss": loss,
        "accuracy": accuracy,
        "grad_norm": grad_norm,
        "lr": schedule(state.step),
        "finite": finite,
    }
    new_state = state.replace(step=state.step + 1, params=params, rest=rest, opt_state=opt_state)
    return new_state, metrics


def eval_step(
    params: nnx.State,
    rest: nnx.State,
    batch: dict,
    *,
    graphdef: nnx.GraphDef,
    flip: bool = False,
    axis_name: str | None = None,
) -> tuple[dict, nnx.State]:
    """Sums over the real (``mask`` 1) images of a batch: correct predictions,
    cross-entropy, image count, and spikes per spiking layer; also each
    layer's neuron count and the advanced RNG state. With ``flip`` also
    ``correct_flip``: correct predictions of the logits summed over each image
    and its horizontal mirror (test-time augmentation; the other sums are of
    the plain images only). With ``axis_name`` (inside ``shard_map``) the sums
    are over all devices' shards."""
    model = nnx.merge(graphdef, params, device_streams(rest, axis_name), copy=True)
    logits, counts = model(batch["image"], stats=True)
    mask = batch["mask"]
    onehot = jax.nn.one_hot(batch["label"], logits.shape[-1])
    totals = {
        "correct": jnp.sum((jnp.argmax(logits, -1) == batch["label"]) * mask),
        "loss": jnp.sum(soft_cross_entropy(logits, onehot) * mask),
        "count": jnp.sum(mask),
        "spikes": {k: jnp.sum(c.spikes.astype(jnp.float32) * mask) for k, c in counts.items()},
        "neurons": {k: c.neurons for k, c in counts.items()},
    }
    if flip:
        both = logits + model(batch["image"][:, :, ::-1])
        totals["correct_flip"] = jnp.sum((jnp.argmax(both, -1) == batch["label"]) * mask)
    new_rest = nnx.state(model, nnx.Not(nnx.Param))
    if axis_name is not None:
        neurons = totals.pop("neurons")  # per image: the same on every device
        totals = {**jax.lax.psum(totals, axis_name), "neurons": neurons}
        new_rest = _shared_keys(rest, new_rest)
    return totals, new_rest


def device_streams(rest: nnx.State, axis_name: str | None) -> nnx.State:
    """``rest`` with every RNG key folded with the device's index on
    ``axis_name``: each device draws its own random numbers (the same key on
    every device would repeat one dropout mask on every shard). Unchanged
    without ``axis_name`` or on one device (there "local" draws as "gspmd")."""
    if axis_name is None or jax.lax.axis_size(axis_name) == 1:
        return rest
    index = jax.lax.axis_index(axis_name)
    return jax.tree.map(lambda x: jax.random.fold_in(x, index) if _is_key(x) else x, rest)


def _shared_keys(before: nnx.State, after: nnx.State) -> nnx.State:
    """``after`` (a step's RNG state, advanced on per-device keys) with the
    shared keys of ``before``: the counters advance alike on every device, so
    the state stays replicated."""
    return jax.tree.map(lambda old, new: old if _is_key(old) else new, before, after)


def _is_key(x) -> bool:
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def make_train_step(
    model: Model,
    mesh: Mesh,
    optimizer: optax.GradientTransformation,
    schedule: optax.Schedule,
    config: ml_collections.ConfigDict,
    feed: device_input.DeviceInput | None = None,
) -> Callable:
    """:func:`train_step` jitted over ``mesh``: batch sharded on ``"data"``,
    state replicated and donated. With ``feed`` (the in-memory input) the
    step takes ``feed.data`` and makes the batch of ``state.step`` itself.

    ``config.data_parallel`` says how the step is split over the devices:
    "gspmd", XLA partitions the global step (bit for bit the step of one
    device, random draws included), or "local", each device runs the step on
    its shard (``shard_map``) and one ``pmean`` averages the gradients
    (:func:`train_step`'s ``axis_name``): the same values up to float
    rounding, random draws per device. On CPU host devices "local" is the
    fast one (docs/benchmarks.md: two host devices on two cores, 1.26x one
    device; GSPMD 0.73x). The in-memory ``feed`` always uses "gspmd"."""
    replicated = NamedSharding(mesh, P())
    step = functools.partial(
        train_step,
        graphdef=model.train_graphdef,
        optimizer=optimizer,
        schedule=schedule,
        label_smoothing=config.label_smoothing,
    )
    if feed is not None:
        return feed.jit_step(step, replicated)
    if config.data_parallel == "local":
        step = _local(functools.partial(step, axis_name=DATA_AXIS), mesh, (P(), P(DATA_AXIS)))
    return jax.jit(
        step,
        in_shardings=(replicated, NamedSharding(mesh, P(DATA_AXIS))),
        out_shardings=replicated,
        donate_argnums=0,
    )


def make_eval_step(
    model: Model, mesh: Mesh, *, flip: bool = False, data_parallel: str = "gspmd"
) -> Callable:
    """:func:`eval_step` jitted over ``mesh`` (batch sharded, sums replicated),
    split over the devices as :func:`make_train_step`'s ``data_parallel``."""
    replicated = NamedSharding(mesh, P())
    step = functools.partial(eval_step, graphdef=model.eval_graphdef, flip=flip)
    if data_parallel == "local":
        step = _local(functools.partial(step, axis_name=DATA_AXIS), mesh, (P(), P(), P(DATA_AXIS)))
    return jax.jit(
        step,
        in_shardings=(replicated, replicated, NamedSharding(mesh, P(DATA_AXIS))),
        out_shardings=replicated,
    )


def throwaway_copy(tree):
    """A copy of a state's arrays (keys included) that a step may consume."""
    return jax.tree.map(lambda x: x.copy(), tree)


def zeros_batch(spec: dict, mesh: Mesh) -> dict:
    return global_batch({k: np.zeros(v.shape, v.dtype) for k, v in spec.items()}, mesh)


def compile_by_running(
    pool: concurrent.futures.Executor, step: Callable, *args
) -> concurrent.futures.Future:
    """Compiles the jitted ``step`` for ``args`` in ``pool`` by running it once
    on them (throwaway arguments: a donated state is consumed): jit compiles on
    a first call, and the real first call then finds it compiled (an
    ahead-of-time ``lower().compile()`` does not fill jit's cache)."""
    return pool.submit(lambda: jax.block_until_ready(step(*args)))


def _local(step: Callable, mesh: Mesh, in_specs: tuple) -> Callable:
    """``step`` run by every device on its shard; outputs replicated (the step
    makes them equal with its collectives)."""
    return jax.shard_map(step, mesh=mesh, in_specs=in_specs, out_specs=P(), check_vma=False)


@dataclasses.dataclass
class Steps:
    """The jitted steps of a run."""

    train: Any
    eval: Any
    feed: device_input.DeviceInput | None  # the in-memory input, or None (grain)


def compile_while_loading(config, chain: Setup, per_epoch: int):
    """The steps, compiled in background threads while the training data loads
    (on a 2-core CPU the 25 + 10 s of compiling overlap the 19 s of decoding
    CIFAR-10), and the training iterator (grain's, or the in-memory feed)."""
    mesh, state = chain.mesh, chain.state
    plan = device_input.choose(config, mesh)
    eval_step = make_eval_step(
        chain.model, mesh, flip=config.eval_flip, data_parallel=config.data_parallel
    )

    def zeros(batch_spec, global_batch_size: int) -> dict:
        local = global_batch_size // jax.process_count()
        return zeros_batch(batch_spec(config.dataset, local), mesh)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        compiled = [
            compile_by_running(
                pool,
                eval_step,
                evaluation_params(state),
                throwaway_copy(state.rest),
                zeros(input_pipeline.eval_batch_spec, config.eval_batch_size),
            )
        ]
        if plan.input == "grain":
            train_step = chain.train_step(config)
            batch = zeros(input_pipeline.train_batch_spec, config.batch_size)
            compiled.append(compile_by_running(pool, train_step, throwaway_copy(state), batch))
        log = print if jax.process_index() == 0 else None
        feed = device_input.create(config, mesh, per_epoch, log=log, plan=plan)
        train_iter = feed or input_pipeline.create_train_iterator(
            config.dataset,
            global_batch_size=config.batch_size,
            seed=config.seed,
            data_dir=config.data_dir or None,
            mixup_alpha=config.mixup_alpha,
            crop_padding=device_input.crop_padding(config),
            augment=config.augment,
            worker_count=config.worker_count,
            download=config.download,
            validation_examples=config.validation_examples,
            in_memory=plan.in_memory,
        )
        if feed is not None:
            train_step = chain.train_step(config, feed)
        for future in compiled:
            future.result()
    return Steps(train_step, eval_step, feed), train_iter
