"""Training and evaluation of the spiking Sequencer.

Parallelism (what ``jax.pmap`` did, written the way JAX now recommends): the
training step is one pure function jitted over a 1-D device mesh with axis
``"data"``. Each batch is sharded along its leading axis over the mesh, the
train state (parameters, optimiser state, RNG streams) is replicated, and the
state's buffers are donated to the step. XLA inserts the all-reduce of the
gradients. With several processes (one per host, see :mod:`train.main`), each
process reads its own slice of the data and contributes its rows of the global
batch with ``jax.make_array_from_process_local_data``; the mesh spans all
devices of all processes.

Model state: Flax NNX. ``nnx.split`` gives the static graph definition (one
for training, dropout on, one for evaluation, dropout off), the parameters and
the remaining state: the RNG streams of dropout and of the Bernoulli encoder.
The step merges them into a model, runs it, and returns the advanced RNG
streams with the new parameters, so a step is a pure function of
(:class:`TrainState`, batch).

Entry point: :func:`train_and_evaluate` (called by ``python -m train.main``).

Faults (see ``docs/faults.md``): the config is checked by
:func:`validate_config` before anything is compiled or created; a step whose
loss or gradient norm is not finite is never applied (a flag computed on the
device selects the old parameters and optimiser state), and the host looks at
the flags at every log step and before every evaluation and save: with
``config.nonfinite="stop"`` the run ends with a :class:`NonFiniteError`
naming the step, saving nothing after the last finite state; with ``"skip"``
it counts the skipped steps and goes on. Model selection ("best") uses the
validation examples held out of the training split; the test split is
evaluated once, on the final parameters.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from snnjax import models, whitening
from snnjax.nn.config import SequencerConfig
from train import averaging, checkpointing, device_input, input_pipeline
from train import metrics as metrics_lib
from train.model import create_model, model_config  # noqa: F401  (re-exported)

DATA_AXIS = "data"
NONFINITE_MODES = ("stop", "skip")
DATA_PARALLEL_MODES = ("gspmd", "local")
OPTIMIZERS = ("sgd", "adamw")
LR_DECAYS = ("cosine", "linear")
_FAST_COMPILE = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
    "xla_cpu_use_fusion_emitters": False,
}


@flax.struct.dataclass
class TrainState:
    """Everything a training step reads and writes.

    Attributes:
      step: number of steps taken.
      params: the model's ``nnx.Param`` state.
      rest: the model's other state (RNG stream keys and counters).
      opt_state: the optax optimiser state.
    """

    step: jax.Array
    params: nnx.State
    rest: nnx.State
    opt_state: optax.OptState


class ConfigError(ValueError):
    """A config value that cannot work (raised before anything is compiled
    or created); the message is one line naming the field."""


class NonFiniteError(RuntimeError):
    """A training step gave a NaN or infinite loss or gradient norm (with
    ``config.nonfinite="stop"``)."""


@dataclasses.dataclass(frozen=True)
class Model:
    """The static parts of a model: its config and its graph definitions."""

    config: SequencerConfig
    train_graphdef: nnx.GraphDef
    eval_graphdef: nnx.GraphDef


# --------------------------------------------------------------------------
# Model and optimiser.


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Checks every field of a training config without touching the disk,
    the data or the compiler.

    Raises:
      ConfigError: one line naming the first bad field and what it accepts.
    """

    def check(ok: bool, field: str, expected: str) -> None:
        if not ok:
            value = config.get(field) if "." not in field else config.model.get(field[6:])
            raise ConfigError(f"config.{field}={value!r}: {expected}")

    def number(field: str) -> float:
        value = config.get(field)
        check(
            isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value),
            field,
            "must be a finite number",
        )
        return value

    def integer(field: str) -> int:
        value = config.get(field)
        check(isinstance(value, int) and not isinstance(value, bool), field, "must be an integer")
        return value

    check(
        config.get("dataset") in input_pipeline.supported_datasets(),
        "dataset",
        f"must be one of {list(input_pipeline.supported_datasets())}",
    )
    check(isinstance(config.get("data_dir"), str), "data_dir", "must be a path or ''")
    check(isinstance(config.get("download", False), bool), "download", "must be true or false")
    check(
        integer("validation_examples") >= 0 if "validation_examples" in config else True,
        "validation_examples",
        "must be >= 0 (0: no validation hold-out)",
    )
    check(integer("worker_count") >= 0, "worker_count", "must be >= 0")
    for field in ("batch_size", "eval_batch_size"):
        check(integer(field) >= 1, field, "must be a positive integer")
    check(
        integer("max_eval_batches") == -1 or config.max_eval_batches >= 1,
        "max_eval_batches",
        "must be -1 (all) or >= 1",
    )
    check(isinstance(config.get("eval_flip", False), bool), "eval_flip", "must be true or false")
    check(
        isinstance(config.get("grain_in_memory", True), bool),
        "grain_in_memory",
        "must be true or false",
    )
    check(
        integer("stem_whitening") >= 0 if "stem_whitening" in config else True,
        "stem_whitening",
        "must be >= 0 (the number of training images; 0: no whitening)",
    )
    check(
        number("stem_whitening_eps") > 0 if "stem_whitening_eps" in config else True,
        "stem_whitening_eps",
        "must be > 0",
    )
    check(
        config.get("data_parallel", "gspmd") in DATA_PARALLEL_MODES,
        "data_parallel",
        f"must be one of {list(DATA_PARALLEL_MODES)}",
    )
    check(number("mixup_alpha") >= 0, "mixup_alpha", "must be >= 0 (0: no mixup)")
    check(
        integer("crop_padding") >= -1 if "crop_padding" in config else True,
        "crop_padding",
        "must be >= 0, or -1 (the dataset's: 4 for CIFAR, 8 for Tiny-ImageNet)",
    )
    check(
        config.model.get("name") in models.PRESETS,
        "model.name",
        f"must be one of {sorted(models.PRESETS)}",
    )
    try:
        model_config(config)
    except (ValueError, TypeError, KeyError) as e:
        raise ConfigError(f"config.model: {str(e).splitlines()[0]}") from None
    check(config.get("optimizer") in OPTIMIZERS, "optimizer", f"must be one of {list(OPTIMIZERS)}")
    check(number("lr") > 0, "lr", "the learning rate must be > 0")
    for field in ("warmup_lr", "min_lr", "warmup_epochs", "weight_decay", "grad_clip_norm"):
        check(number(field) >= 0, field, "must be >= 0")
    for field in ("momentum", "adam_b1", "adam_b2", "label_smoothing"):
        check(0 <= number(field) < 1, field, "must be in [0, 1)")
    check(
        config.get("lr_decay", "cosine") in LR_DECAYS,
        "lr_decay",
        f"must be one of {list(LR_DECAYS)}",
    )
    if "mixer_lr_scale" in config:
        check(number("mixer_lr_scale") > 0, "mixer_lr_scale", "must be > 0 (1: no scaling)")
    if "ema_decay" in config:
        check(0 <= number("ema_decay") < 1, "ema_decay", "must be in [0, 1) (0: no EMA)")
    check(
        integer("num_train_steps") != 0,
        "num_train_steps",
        "must be >= 1, or -1 to train for num_epochs",
    )
    if config.num_train_steps < 0:
        check(integer("num_epochs") >= 1, "num_epochs", "must be >= 1")
    check(0 <= integer("seed") < 2**32, "seed", "must be an integer in [0, 2**32)")
    check(integer("log_every_steps") >= 1, "log_every_steps", "must be >= 1")
    check(
        integer("eval_every_epochs") >= 0,
        "eval_every_epochs",
        "must be >= 0 (0: only the final evaluation)",
    )
    check(
        integer("checkpoint_every_steps") >= 0,
        "checkpoint_every_steps",
        "must be >= 0 (0: save only at the end and when stopped)",
    )
    check(integer("keep_checkpoints") >= 1, "keep_checkpoints", "must be >= 1")
    check(
        integer("stop_after_steps") == -1 or config.stop_after_steps >= 1,
        "stop_after_steps",
        "must be -1 (never) or >= 1",
    )
    check(
        config.get("nonfinite", "stop") in NONFINITE_MODES,
        "nonfinite",
        f"must be one of {list(NONFINITE_MODES)}",
    )
    check(
        number("time_limit_s") >= 0 if "time_limit_s" in config else True,
        "time_limit_s",
        "must be >= 0 (0: no limit)",
    )
    check(
        config.get("input", "grain") in device_input.INPUT_MODES,
        "input",
        f"must be one of {list(device_input.INPUT_MODES)}",
    )


def prepare_workdir(workdir: str) -> str:
    """Creates ``workdir`` (after the config and the data were checked) and
    returns its absolute path.

    Raises:
      ConfigError: it is a file, or cannot be created or written.
    """
    path = os.path.abspath(workdir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"--workdir={workdir} is a file, not a directory")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--workdir={workdir} cannot be created: {e.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"--workdir={workdir} is not writable")
    return path


def steps_per_epoch(config: ml_collections.ConfigDict) -> int:
    """Training steps per epoch: what each process's iterator yields per pass
    (the training split without its ``validation_examples``).

    Raises:
      input_pipeline.DataError: the dataset is not prepared (and
        ``config.download`` is not set).
      ConfigError: the batch or the hold-out is larger than the split allows.
    """
    processes = jax.process_count()
    examples = input_pipeline.num_examples(
        config.dataset,
        input_pipeline.get_dataset_info(config.dataset).train_split,
        data_dir=config.data_dir or None,
        download=config.get("download", False),
    )
    try:
        examples = len(
            input_pipeline.split_ranges(examples, config.get("validation_examples", 0))[0]
        )
    except ValueError as e:
        raise ConfigError(f"config.{e}") from None
    steps = (examples // processes) // (config.batch_size // processes)
    if steps < 1:
        raise ConfigError(
            f"config.batch_size={config.batch_size} exceeds the training examples ({examples})"
        )
    return steps


def total_steps(config: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
    """``config.num_train_steps`` if positive, else ``num_epochs`` epochs."""
    if config.num_train_steps > 0:
        return config.num_train_steps
    return config.num_epochs * steps_per_epoch


def create_learning_rate_schedule(
    config: ml_collections.ConfigDict, steps_per_epoch: int
) -> optax.Schedule:
    """Linear warm-up from ``warmup_lr`` to ``lr`` over ``warmup_epochs``, then
    a decay to ``min_lr`` at the end of training, cosine or linear
    (``config.lr_decay``); per step."""
    total = total_steps(config, steps_per_epoch)
    warmup = int(round(config.warmup_epochs * steps_per_epoch))
    if not 0 <= warmup < total:
        raise ConfigError(
            f"config.warmup_epochs: the warm-up ({config.warmup_epochs} epochs = {warmup} steps) "
            f"must be >= 0 and shorter than training ({total} steps)"
        )
    if config.get("lr_decay", "cosine") == "linear":
        return optax.join_schedules(
            [
                optax.linear_schedule(config.warmup_lr, config.lr, warmup),
                optax.linear_schedule(config.lr, config.min_lr, total - warmup),
            ],
            [warmup],
        )
    return optax.warmup_cosine_decay_schedule(
        init_value=config.warmup_lr,
        peak_value=config.lr,
        warmup_steps=warmup,
        decay_steps=total,
        end_value=config.min_lr,
    )


# Parameters decayed, by name (the last key of their path): the kernels of
# linear and conv layers and the recurrent weight matrices. Not decayed: the
# biases (``bias``, the recurrent ``b_rec``), normalisation scales and the
# learnable LIF thresholds and leaks, whatever their shapes.
DECAYED_PARAMS = frozenset({"kernel", "w_rec"})


def _param_name(path) -> str:
    names = [k.key for k in path if isinstance(k, jax.tree_util.DictKey) and isinstance(k.key, str)]
    return names[-1] if names else ""


def _decay_mask(params: nnx.State) -> nnx.State:
    """Weight decay on kernels and weight matrices (:data:`DECAYED_PARAMS`),
    chosen by parameter name, not by shape."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: _param_name(path) in DECAYED_PARAMS, params
    )


def _mixer_mask(params: nnx.State) -> nnx.State:
    """True for the spiking mixers' parameters (every path through a ``mixer``)."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: any(
            isinstance(k, jax.tree_util.DictKey) and k.key == "mixer" for k in path
        ),
        params,
    )


def create_optimizer(
    config: ml_collections.ConfigDict, schedule: optax.Schedule
) -> optax.GradientTransformation:
    """Global-norm clipping followed by SGD with momentum and (coupled) weight
    decay, or by AdamW (decoupled weight decay); the spiking mixers' updates
    times ``config.mixer_lr_scale``; with ``config.ema_decay`` > 0
    it also keeps an EMA of the parameters (:mod:`train.averaging`)."""
    if config.optimizer == "sgd":
        optimizer = optax.chain(
            optax.add_decayed_weights(config.weight_decay, mask=_decay_mask),
            optax.sgd(schedule, momentum=config.momentum),
        )
    elif config.optimizer == "adamw":
        optimizer = optax.adamw(
            schedule,
            b1=config.adam_b1,
            b2=config.adam_b2,
            weight_decay=config.weight_decay,
            mask=_decay_mask,
        )
    else:
        raise ValueError(f"config.optimizer must be 'sgd' or 'adamw', got {config.optimizer!r}")
    if config.grad_clip_norm > 0:
        optimizer = optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), optimizer)
    if config.get("mixer_lr_scale", 1.0) != 1.0:
        # The mixers' learning rate (and decoupled weight decay) times the scale.
        scale_mixers = optax.masked(optax.scale(config.mixer_lr_scale), _mixer_mask)
        optimizer = optax.chain(optimizer, scale_mixers)
    if config.get("ema_decay", 0.0) > 0:
        optimizer = averaging.with_parameter_ema(optimizer, config.ema_decay)
    return optimizer


# --------------------------------------------------------------------------
# Mesh, state and steps.


def create_mesh(devices: list | None = None) -> Mesh:
    """A 1-D mesh with axis ``"data"`` over ``devices`` (default: all devices
    of all processes)."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def stem_whitening_filters(config: ml_collections.ConfigDict) -> np.ndarray | None:
    """The patch-whitening filters of ``config.stem_whitening`` training
    images (:mod:`snnjax.whitening`), or None when it is 0."""
    count = config.get("stem_whitening", 0)
    if not count:
        return None
    images = input_pipeline.load_train_images(
        config.dataset,
        count,
        data_dir=config.data_dir or None,
        download=config.get("download", False),
        validation_examples=config.get("validation_examples", 0),
    )
    _, cfg = model_config(config)
    return whitening.patch_whitening_filters(
        images, cfg.patch_size, config.get("stem_whitening_eps", whitening.DEFAULT_EPS)
    )


def create_train_state(
    config: ml_collections.ConfigDict,
    mesh: Mesh,
    optimizer: optax.GradientTransformation,
    stem_filters: np.ndarray | None = None,
) -> tuple[Model, TrainState]:
    """The model's static parts and its initial state, replicated over ``mesh``.

    Initialisation runs under ``jit`` with replicated outputs, so every
    process gets the same state (from ``config.seed``) without host copies.
    ``stem_filters`` (:func:`stem_whitening_filters`) replace the stem's
    initial kernel by their +/- pairs.
    """
    _, cfg = model_config(config)

    def init_model():
        model = create_model(config, nnx.Rngs(config.seed))
        if stem_filters is not None:
            kernel = model.stem.kernel
            kernel[...] = whitening.whitened_stem_kernel(stem_filters, kernel[...])
        return model

    abstract = nnx.eval_shape(init_model)
    abstract.train()
    train_graphdef = nnx.graphdef(abstract)
    abstract.eval()
    eval_graphdef = nnx.graphdef(abstract)

    def init() -> TrainState:
        _, params, rest = nnx.split(init_model(), nnx.Param, ...)
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            rest=rest,
            opt_state=optimizer.init(params),
        )

    init = jax.jit(init, out_shardings=NamedSharding(mesh, P())).lower()
    # Initialisation runs once: on CPU, XLA's backend optimisations would cost
    # ~10x the compile time (seconds) for nothing, its newer fusion emitters
    # another 1.3x.
    options = _FAST_COMPILE if jax.default_backend() == "cpu" else None
    state = init.compile(compiler_options=options)()
    return Model(cfg, train_graphdef, eval_graphdef), state


@dataclasses.dataclass(frozen=True)
class Setup:
    """The training state chain of a config: mesh -> schedule -> optimiser ->
    model and initial state (:func:`setup`); :meth:`train_step` jits the step."""

    mesh: Mesh
    schedule: optax.Schedule
    optimizer: optax.GradientTransformation
    model: Model
    state: TrainState

    def train_step(self, config: ml_collections.ConfigDict, feed=None) -> Callable:
        """:func:`make_train_step` over this setup's mesh, optimiser and schedule."""
        return make_train_step(self.model, self.mesh, self.optimizer, self.schedule, config, feed)


def setup(
    config: ml_collections.ConfigDict,
    *,
    mesh: Mesh | None = None,
    devices: list | None = None,
    per_epoch: int | None = None,
    schedule: optax.Schedule | None = None,
    data_init: bool = True,
) -> Setup:
    """Builds the chain every entry point needs, in one place: the mesh (over
    ``devices``, default all), the learning-rate schedule (``config``'s, with
    ``per_epoch`` steps per epoch, default :func:`steps_per_epoch`; or
    ``schedule``), the optimiser, and the model with its initial state
    replicated over the mesh (its data-dependent initialisation,
    :func:`stem_whitening_filters`, only with ``data_init``: a state that is
    restored from a checkpoint next does not need it)."""
    mesh = mesh if mesh is not None else create_mesh(devices)
    if schedule is None:
        per_epoch = steps_per_epoch(config) if per_epoch is None else per_epoch
        schedule = create_learning_rate_schedule(config, per_epoch)
    optimizer = create_optimizer(config, schedule)
    filters = stem_whitening_filters(config) if data_init else None
    model, state = create_train_state(config, mesh, optimizer, filters)
    return Setup(mesh, schedule, optimizer, model, state)


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
    and random draws use per-device streams (:func:`_device_streams`)."""

    def loss_fn(params, rest):
        model = nnx.merge(graphdef, params, rest, copy=True)
        logits = model(batch["image"])
        loss = soft_cross_entropy(logits, batch["label_onehot"], label_smoothing).mean()
        return loss, (logits, nnx.state(model, nnx.Not(nnx.Param)))

    (loss, (logits, rest)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params, _device_streams(state.rest, axis_name)
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
    model = nnx.merge(graphdef, params, _device_streams(rest, axis_name), copy=True)
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


def _device_streams(rest: nnx.State, axis_name: str | None) -> nnx.State:
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
    if config.get("data_parallel", "gspmd") == "local":
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


def _throwaway_copy(tree):
    """A copy of a state's arrays (keys included) that a step may consume."""
    return jax.tree.map(lambda x: x.copy(), tree)


def _zeros_batch(spec: dict, mesh: Mesh) -> dict:
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


def global_batch(batch: dict, mesh: Mesh) -> dict:
    """This process's rows of a batch -> global arrays sharded on ``"data"``."""
    sharding = NamedSharding(mesh, P(DATA_AXIS))
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)


def check_batch_sizes(config: ml_collections.ConfigDict, mesh: Mesh) -> None:
    """Batch sizes must split evenly over processes and devices."""
    for field in ("batch_size", "eval_batch_size"):
        size = config[field]
        if size <= 0 or size % mesh.size:
            raise ConfigError(
                f"config.{field}={size} must be a positive multiple of the number of "
                f"devices ({mesh.size}, over {jax.process_count()} process(es))"
            )


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
        model,
        mesh,
        flip=config.get("eval_flip", False),
        data_parallel=config.get("data_parallel", "gspmd"),
    )
    held_out = config.get("validation_examples", 0)
    data = dict(
        split=split,
        data_dir=config.data_dir or None,
        download=config.get("download", False),
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
        num_params=count_params(state),
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


def evaluation_params(state: TrainState, averaged: bool = True) -> nnx.State:
    """The parameters an evaluation uses: the state's EMA of the parameters
    if it keeps one (``config.ema_decay``) and ``averaged``, else the
    current ones."""
    ema = averaging.averaged_params(state.opt_state) if averaged else None
    return state.params if ema is None else ema


def count_params(state: TrainState) -> int:
    return sum(x.size for x in jax.tree.leaves(state.params))


def _eval_scalars(summary: dict, epoch: int, group: str = "eval") -> dict:
    keys = ("accuracy", "loss", "mean_spike_rate", "spikes_per_image", "energy_mj_per_image")
    keys += ("accuracy_flip",) if "accuracy_flip" in summary else ()
    return {f"{group}/{k}": summary[k] for k in keys} | {"epoch": epoch}


# --------------------------------------------------------------------------
# The training loop.


class _StopRequest:
    """Turns SIGTERM / SIGINT into a request to save and stop (a second SIGINT
    interrupts at once). Handlers are installed only in the main thread."""

    def __init__(self):
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        self.signal_name = signal.Signals(signum).name
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def requested(self) -> bool:
        """Whether any process received a signal (a collective with several
        processes, so that they all stop at the same step)."""
        local = self.signal_name is not None
        if jax.process_count() == 1:
            return local
        return bool(np.any(multihost_utils.process_allgather(np.int32(local))))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict | None:
    """Trains ``config``'s model on its dataset, resuming from ``workdir``'s
    newest checkpoint if there is one, and evaluates it.

    Saves a checkpoint every ``config.checkpoint_every_steps`` (0: never
    periodically), at the end, and on SIGTERM / SIGINT or at
    ``config.stop_after_steps`` (then it returns early); evaluates on the
    ``config.validation_examples`` held out of the training split every
    ``config.eval_every_epochs`` epochs and at the end, keeping the best
    checkpoint by validation accuracy (none without validation examples).
    The test split is evaluated once, on the final parameters.

    Before anything is compiled or created, the config, the data and the
    workdir are checked. On resume, ``metrics.jsonl`` is cut back to its
    length at the restored checkpoint, so replayed steps are not recorded twice.

    Returns:
      the final evaluation summary (test accuracy of the final parameters,
      validation accuracy, best validation accuracy and step, skipped steps;
      also printed and written to ``<workdir>/summary.json``), or None if the
      run stopped early.

    Raises:
      ConfigError: a bad config value or workdir (nothing is created).
      input_pipeline.DataError: the dataset is not prepared in the data
        directory (nothing is created).
      NonFiniteError: a non-finite step with ``config.nonfinite="stop"``.
      checkpointing.CheckpointError: ``workdir`` holds an unusable checkpoint
        (of another config, or no intact one).
    """
    run_start = time.perf_counter()
    validate_config(config)
    lead = jax.process_index() == 0
    mesh = create_mesh()
    check_batch_sizes(config, mesh)
    per_epoch = steps_per_epoch(config)
    num_steps = total_steps(config, per_epoch)
    workdir = prepare_workdir(workdir)
    chain = setup(config, mesh=mesh, per_epoch=per_epoch)
    model, state = chain.model, chain.state
    # The in-memory input (train/device_input.py) or None for grain; it stands
    # in for the grain iterator in checkpoints.
    plan = device_input.choose(config, mesh)
    p_eval_step = make_eval_step(
        model,
        mesh,
        flip=config.get("eval_flip", False),
        data_parallel=config.get("data_parallel", "gspmd"),
    )
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        # The steps compile while the training data loads (on a 2-core CPU the
        # 25 + 10 s of compiling overlap the 19 s of decoding CIFAR-10).
        def zeros(batch_spec: Callable, global_batch_size: int) -> dict:
            local = global_batch_size // jax.process_count()
            return _zeros_batch(batch_spec(config.dataset, local), mesh)

        compiled = [
            compile_by_running(
                pool,
                p_eval_step,
                evaluation_params(state),
                _throwaway_copy(state.rest),
                zeros(input_pipeline.eval_batch_spec, config.eval_batch_size),
            )
        ]
        if plan.input == "grain":
            p_train_step = chain.train_step(config)
            compiled.append(
                compile_by_running(
                    pool,
                    p_train_step,
                    _throwaway_copy(state),
                    zeros(input_pipeline.train_batch_spec, config.batch_size),
                )
            )
        feed = device_input.create(config, mesh, per_epoch, log=print if lead else None, plan=plan)
        train_iter = feed or input_pipeline.create_train_iterator(
            config.dataset,
            global_batch_size=config.batch_size,
            seed=config.seed,
            data_dir=config.data_dir or None,
            mixup_alpha=config.mixup_alpha,
            crop_padding=device_input.crop_padding(config),
            worker_count=config.worker_count,
            download=config.download,
            validation_examples=config.validation_examples,
            in_memory=plan.in_memory,
        )
        if feed is not None:
            p_train_step = chain.train_step(config, feed)
        for future in compiled:
            future.result()
    # Many queued multi-device steps can hit XLA's CPU rendezvous timeout.
    block_each_step = jax.default_backend() == "cpu" and mesh.size > 1
    progress = metrics_lib.ProgressLine(
        total_steps=num_steps, steps_per_epoch=per_epoch, batch_size=config.batch_size, enabled=lead
    )

    with (
        checkpointing.Checkpointer(workdir, config, keep=config.keep_checkpoints) as checkpointer,
        metrics_lib.MetricWriter(workdir, enabled=lead) as writer,
        _StopRequest() as stop,
    ):
        restored = checkpointer.restore_latest(state, train_iter)
        best_accuracy, best_step, skipped_steps = None, None, 0
        if restored is None:
            writer.truncate(0)  # Records of a run that left no checkpoint.
            message = f"No checkpoint in {checkpointer.directory}: starting from scratch."
        else:
            state, meta = restored
            best_accuracy, best_step = meta["best_accuracy"], meta.get("best_step")
            skipped_steps = meta.get("skipped_steps", 0)
            writer.truncate(meta.get("metrics_bytes"), after_step=meta["step"])
            message = f"Resumed from {checkpointer.directory} at step {meta['step']}."
        if lead:
            with open(os.path.join(workdir, "config.json"), "w") as f:
                f.write(config.to_json(indent=2))
        held_out = config.validation_examples
        progress.message(
            f"{message}\n{config.model.name} on {config.dataset}: "
            f"{count_params(state) / 1e6:.3f} M parameters, {num_steps} steps "
            f"({per_epoch} per epoch), batch {config.batch_size}, "
            f"{mesh.size} device(s), {jax.process_count()} process(es); "
            + (
                f"{held_out} training images held out for validation."
                if held_out
                else "no validation hold-out (no best checkpoint)."
            )
        )

        def validate() -> dict | None:
            """Evaluates on the held-out examples and keeps the best."""
            nonlocal best_accuracy, best_step
            if not held_out:
                return None
            summary = evaluate(
                model, state, config, mesh, p_eval_step, split=input_pipeline.HELD_OUT
            )
            writer.write(step, _eval_scalars(summary, step // per_epoch))
            if best_accuracy is None or summary["accuracy"] > best_accuracy:
                best_accuracy, best_step = summary["accuracy"], step
                checkpointer.save_best(state, best_accuracy)
            return summary

        def save() -> None:
            checkpointer.save(
                state,
                train_iter,
                best_accuracy=best_accuracy,
                best_step=best_step,
                skipped_steps=skipped_steps,
                metrics_bytes=writer.size(),
            )

        unchecked: list[tuple[int, dict]] = []  # Steps whose finiteness is not known yet.

        def check_finite() -> None:
            """Looks at the flags of the steps since the last check (one
            transfer): stops on a non-finite step, or counts it (skip)."""
            nonlocal skipped_steps
            fetched = jax.device_get([m for _, m in unchecked])
            bad = [(s, m) for (s, _), m in zip(unchecked, fetched) if not m["finite"]]
            unchecked.clear()
            if not bad:
                return
            if config.nonfinite == "skip":
                skipped_steps += len(bad)
                progress.message(
                    f"Skipped {len(bad)} step(s) with a non-finite loss or gradient norm "
                    f"(first: step {bad[0][0]}); {skipped_steps} skipped in all."
                )
                return
            first, values = bad[0]
            latest = checkpointer.latest_step()
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

        step = start_step = int(jax.device_get(state.step))
        meter = metrics_lib.TrainMeter()
        checkpoint_every = config.checkpoint_every_steps
        time_limited = None  # the step at which config.time_limit_s stopped training

        def out_of_time() -> bool:
            """Whether the run is past config.time_limit_s (the lead process
            decides, so that every process stops at the same step)."""
            limit = config.get("time_limit_s", 0.0)
            late = bool(limit) and time.perf_counter() - run_start > limit
            if jax.process_count() == 1:
                return late
            return bool(multihost_utils.broadcast_one_to_all(np.int32(late)))

        while step < num_steps and time_limited is None:
            batch = feed.data if feed else global_batch(next(train_iter), mesh)
            state, step_metrics = p_train_step(state, batch)
            if block_each_step:  # at most two steps queued: host work still overlaps
                jax.block_until_ready(unchecked[-1][1] if unchecked else step_metrics)
            step += 1
            unchecked.append((step, step_metrics))
            meter.add({k: v for k, v in step_metrics.items() if k != "finite"})
            if step == start_step + 1:  # Leave compilation out of the speed.
                jax.block_until_ready(state)
                meter.restart_clock()
            end_of_epoch = step % per_epoch == 0
            stopping = step < num_steps and (step == config.stop_after_steps or stop.requested())
            log_now = step % config.log_every_steps == 0 or end_of_epoch or stopping
            if log_now and not stopping and step < num_steps and out_of_time():
                time_limited = step  # ends the loop: saved, evaluated, summarised below
                progress.message(
                    f"Time limit: {config.time_limit_s:.0f} s reached at step {step} of "
                    f"{num_steps}; stopping training, then the final evaluation."
                )
            save_now = (checkpoint_every > 0 and step % checkpoint_every == 0) or stopping
            if log_now or save_now:
                check_finite()
            if log_now:
                means, seconds = meter.flush()
                speed = config.batch_size / seconds if seconds else 0.0
                skipped = (
                    {"train/skipped_steps": skipped_steps} if config.nonfinite == "skip" else {}
                )
                writer.write(
                    step,
                    {f"train/{k}": v for k, v in means.items()}
                    | {"train/images_per_second": speed}
                    | skipped,
                )
                progress.update(
                    step,
                    loss=means["loss"],
                    accuracy=means["accuracy"],
                    lr=means["lr"],
                    images_per_second=speed,
                )
            if end_of_epoch:
                epoch = step // per_epoch
                writer.write(
                    step,
                    {f"epoch/train_{k}": v for k, v in meter.epoch().items()} | {"epoch": epoch},
                )
                if (
                    config.eval_every_epochs > 0
                    and epoch % config.eval_every_epochs == 0
                    and step < num_steps
                    and held_out
                ):
                    summary = validate()
                    progress.message(
                        f"epoch {epoch}: validation accuracy {100 * summary['accuracy']:.2f} %, "
                        f"mean spike rate {summary['mean_spike_rate']:.3f}"
                    )
            if save_now:
                save()
            if stopping:
                reason = stop.signal_name or f"stop_after_steps={config.stop_after_steps}"
                progress.message(
                    f"Stopped at step {step} ({reason}); checkpoint saved in "
                    f"{checkpointer.directory}. Run the same command to resume."
                )
                return None
            if end_of_epoch or save_now:
                meter.restart_clock()  # Evaluating and saving are not training time.

        check_finite()
        save()
        # The final parameters: on the validation examples (model selection),
        # then once on the test split.
        validation = validate()
        summary = evaluate(
            model,
            state,
            config,
            mesh,
            p_eval_step,
            checkpoint="final",
            step=step,
            epoch=step // per_epoch,
        )
        writer.write(step, _eval_scalars(summary, step // per_epoch, "test"))
        if averaging.averaged_params(state.opt_state) is not None:
            # The headline is the EMA's; the final iterate beside it.
            current = evaluate(model, state, config, mesh, p_eval_step, averaged=False)
            summary["ema_decay"] = config.ema_decay
            summary["final_iterate_accuracy"] = current["accuracy"]
            if "accuracy_flip" in current:
                summary["final_iterate_accuracy_flip"] = current["accuracy_flip"]
    summary["test_accuracy"] = summary["accuracy"]
    summary["validation_examples"] = held_out
    summary["validation_accuracy"] = validation["accuracy"] if validation else None
    summary["best_validation_accuracy"] = best_accuracy
    summary["best_step"] = best_step
    summary["skipped_steps"] = skipped_steps
    summary["steps"] = step
    summary["planned_steps"] = num_steps
    summary["stopped_by_time_limit"] = time_limited is not None
    # Shapes, dtypes and shardings fixed: anything but 1 is a recompile per step kind.
    summary["train_step_compiles"] = p_train_step._cache_size()
    if meter.seconds:
        summary["train_wall_time_s"] = meter.seconds
        summary["train_images_per_second"] = meter.steps * config.batch_size / meter.seconds
    summary["run_wall_time_s"] = time.perf_counter() - run_start
    if lead:
        metrics_lib.write_summary(workdir, summary)
        progress.message(metrics_lib.format_summary(summary))
    return summary
