"""The in-memory training batch of a step: a pure JAX function of the data
on the devices and the step number (:class:`train.device_input.DeviceInput`
jits it into the train step). Each epoch a new order per shard, then the
random crop and flip, normalisation and mixup, all drawn from keys folded
from the seed and the step."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

# Keys folded into the seed's key: one stream for the order, one for augmentation.
_ORDER_STREAM, _AUGMENT_STREAM = 0, 1


def make_batch(
    images: jax.Array,
    labels: jax.Array,
    step: jax.Array,
    *,
    seed: int,
    steps_per_epoch: int,
    batch_size: int,
    crop_padding: int,
    mean,
    std,
    num_classes: int,
    mixup_alpha: float = 0.0,
    augment: bool = True,
) -> dict:
    """The training batch of ``step`` from shards ``images (S, M, H, W, 3)``
    uint8 and ``labels (S, M)``.

    Returns a dict like the grain pipeline's (``image`` float32 (B, H, W, 3),
    ``label`` int32 (B,), ``label_onehot`` float32 (B, K)) plus ``index``
    int32 (B,): each example's row in the loaded split (``shard * M + row``).
    Rows ``s * b : (s + 1) * b`` of the batch come from shard ``s``.
    ``augment=False`` skips crop and flip (tests).
    """
    num_shards, rows = labels.shape
    if batch_size % num_shards:
        raise ValueError(f"batch_size={batch_size} is not a multiple of {num_shards} shards")
    local = batch_size // num_shards
    if steps_per_epoch * local > rows:
        raise ValueError(
            f"steps_per_epoch={steps_per_epoch} x {local} rows exceeds the "
            f"{rows} rows of each shard"
        )
    step = jnp.asarray(step, jnp.int32)
    root = jax.random.key(seed)
    shards = jnp.arange(num_shards)
    epoch_key = jax.random.fold_in(jax.random.fold_in(root, _ORDER_STREAM), step // steps_per_epoch)
    offset = (step % steps_per_epoch) * local

    def shard_rows(key):
        order = jax.random.permutation(key, rows)
        return jax.lax.dynamic_slice_in_dim(order, offset, local)

    index = jax.vmap(shard_rows)(jax.vmap(jax.random.fold_in, (None, 0))(epoch_key, shards))
    image = jax.vmap(lambda x, i: x[i])(images, index)  # (S, b, H, W, 3) uint8
    label = jax.vmap(lambda y, i: y[i])(labels, index)  # (S, b)
    step_key = jax.random.fold_in(jax.random.fold_in(root, _AUGMENT_STREAM), step)
    keys = jax.vmap(jax.random.fold_in, (None, 0))(step_key, shards)
    crop_keys, flip_keys, mix_keys = (
        jax.vmap(lambda k, i=i: jax.random.fold_in(k, i))(keys) for i in range(3)
    )
    if augment:
        image = jax.vmap(functools.partial(_crop_flip, padding=crop_padding))(
            image, crop_keys, flip_keys
        )
    std = jnp.asarray(std, jnp.float32)
    image = image.astype(jnp.float32) * (1 / (255 * std)) - jnp.asarray(mean, jnp.float32) / std
    onehot = jax.nn.one_hot(label, num_classes, dtype=jnp.float32)
    if mixup_alpha > 0:
        image, onehot = jax.vmap(functools.partial(_mixup, alpha=mixup_alpha))(
            image, onehot, mix_keys
        )
    flat = lambda x: x.reshape((batch_size,) + x.shape[2:])  # noqa: E731
    return {
        "image": flat(image),
        "label": flat(label).astype(jnp.int32),
        "label_onehot": flat(onehot),
        "index": flat(index + shards[:, None] * rows).astype(jnp.int32),
    }


def _crop_flip(
    images: jax.Array, crop_key: jax.Array, flip_key: jax.Array, *, padding: int
) -> jax.Array:
    """Zero-pads each of ``images (b, H, W, C)`` by ``padding``, crops it back at
    an offset uniform in ``[0, 2 * padding]`` per axis, flips it with
    probability 1/2."""
    count, height, width, channels = images.shape
    offsets = jax.random.randint(crop_key, (count, 2), 0, 2 * padding + 1)
    flips = jax.random.bernoulli(flip_key, 0.5, (count,))
    padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    crop = jax.vmap(
        lambda x, o: jax.lax.dynamic_slice(x, (o[0], o[1], 0), (height, width, channels))
    )(padded, offsets)
    return jnp.where(flips[:, None, None, None], crop[:, :, ::-1], crop)


def _mixup(
    image: jax.Array, onehot: jax.Array, key: jax.Array, *, alpha: float
) -> tuple[jax.Array, jax.Array]:
    lam_key, perm_key = jax.random.split(key)
    lam = jax.random.beta(lam_key, alpha, alpha).astype(jnp.float32)
    perm = jax.random.permutation(perm_key, image.shape[0])
    return (lam * image + (1 - lam) * image[perm], lam * onehot + (1 - lam) * onehot[perm])
