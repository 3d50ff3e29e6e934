"""The optimisation of a run: its length in steps, the learning-rate schedule,
and the optimiser (clipping, SGD or AdamW, weight decay by parameter name, the
mixers' learning-rate scale, the parameter EMA); METHOD Sec. 7."""

from __future__ import annotations

import jax
import ml_collections
import optax
from flax import nnx

from train import averaging, input_pipeline
from train.schema import ConfigError


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
        download=config.download,
    )
    try:
        examples = len(input_pipeline.split_ranges(examples, config.validation_examples)[0])
    except ValueError as e:
        raise ConfigError(f"config.{e}") from None
    steps = (examples // processes) // (config.batch_size // processes)
    if steps < 1:
        raise ConfigError(
            f"config.batch_size={config.batch_size} exceeds the training examples ({examples})"
        )
    return steps


def total_steps(config: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
    """``config.num_train_steps`` if positive, else ``num_epochs`` epochs of
    decay and ``cooldown_epochs`` at ``min_lr`` after them."""
    if config.num_train_steps > 0:
        return config.num_train_steps
    return (config.num_epochs + config.cooldown_epochs) * steps_per_epoch


def create_learning_rate_schedule(
    config: ml_collections.ConfigDict, steps_per_epoch: int
) -> optax.Schedule:
    """Linear warm-up from ``warmup_lr`` to ``lr`` over ``warmup_epochs``; a
    decay (``config.lr_decay``): "cosine" or "linear" to ``min_lr``, or "step"
    (times ``lr_step_factor`` at each fraction ``lr_steps`` of the decay's
    length: Rathi et al.'s hybrid-training schedule, 0.6/0.8/0.9, that
    Chowdhury et al.'s conversion code builds on); then ``cooldown_epochs`` at
    ``min_lr`` (timm's cool-down); per step."""
    total = total_steps(config, steps_per_epoch)
    decay_end = total - config.cooldown_epochs * steps_per_epoch
    warmup = int(round(config.warmup_epochs * steps_per_epoch))
    if not 0 <= warmup < decay_end:
        raise ConfigError(
            f"config.warmup_epochs: the warm-up ({config.warmup_epochs} epochs = {warmup} steps) "
            f"must be >= 0 and shorter than the decay ({decay_end} steps)"
        )
    warm = optax.linear_schedule(config.warmup_lr, config.lr, warmup)
    if config.lr_decay == "linear":
        decay = optax.linear_schedule(config.lr, config.min_lr, decay_end - warmup)
        schedule = optax.join_schedules([warm, decay], [warmup])
    elif config.lr_decay == "step":
        boundaries = sorted({int(f * decay_end) - warmup for f in config.lr_steps})
        scales = {b: config.lr_step_factor for b in boundaries if b > 0}
        decay = optax.piecewise_constant_schedule(config.lr, scales)
        schedule = optax.join_schedules([warm, decay], [warmup])
    else:
        schedule = optax.warmup_cosine_decay_schedule(
            init_value=config.warmup_lr,
            peak_value=config.lr,
            warmup_steps=warmup,
            decay_steps=decay_end,
            end_value=config.min_lr,
        )
    if decay_end == total:
        return schedule
    return optax.join_schedules([schedule, optax.constant_schedule(config.min_lr)], [decay_end])


# Parameters decayed, by name (the last key of their path): the kernels of
# linear and conv layers and the recurrent weight matrices. Not decayed: the
# biases (``bias``, the recurrent ``b_rec``), normalisation scales and the
# learnable LIF thresholds and leaks, whatever their shapes.
DECAYED_PARAMS = frozenset({"kernel", "w_rec"})


def _param_name(path) -> str:
    names = [k.key for k in path if isinstance(k, jax.tree_util.DictKey) and isinstance(k.key, str)]
    return names[-1] if names else ""


def decay_mask(params: nnx.State) -> nnx.State:
    """Weight decay on kernels and weight matrices (:data:`DECAYED_PARAMS`),
    chosen by parameter name, not by shape."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: _param_name(path) in DECAYED_PARAMS, params
    )


def mixer_mask(params: nnx.State) -> nnx.State:
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
    decay, Adam with (coupled, L2) weight decay, or AdamW (decoupled); the spiking mixers' updates
    times ``config.mixer_lr_scale``; with ``config.ema_decay`` > 0
    it also keeps an EMA of the parameters (:mod:`train.averaging`)."""
    if config.optimizer == "sgd":
        optimizer = optax.chain(
            optax.add_decayed_weights(config.weight_decay, mask=decay_mask),
            optax.sgd(schedule, momentum=config.momentum),
        )
    elif config.optimizer == "adam":  # PyTorch's Adam: weight decay as an L2 gradient term
        optimizer = optax.chain(
            optax.add_decayed_weights(config.weight_decay, mask=decay_mask),
            optax.adam(schedule, b1=config.adam_b1, b2=config.adam_b2),
        )
    elif config.optimizer == "adamw":
        optimizer = optax.adamw(
            schedule,
            b1=config.adam_b1,
            b2=config.adam_b2,
            weight_decay=config.weight_decay,
            mask=decay_mask,
        )
    else:  # unreachable after schema.validate
        raise ConfigError(f"config.optimizer={config.optimizer!r}: not an optimiser")
    if config.grad_clip_norm > 0:
        optimizer = optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), optimizer)
    if config.mixer_lr_scale != 1.0:
        # The mixers' learning rate (and decoupled weight decay) times the scale.
        scale_mixers = optax.masked(optax.scale(config.mixer_lr_scale), mixer_mask)
        optimizer = optax.chain(optimizer, scale_mixers)
    if config.ema_decay > 0:
        optimizer = averaging.with_parameter_ema(optimizer, config.ema_decay)
    return optimizer
