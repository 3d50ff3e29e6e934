"""Host-side augmentation of the authors' recipe: timm's training transform, in numpy.

:func:`authors_train_transform` is timm's ``transforms_imagenet_train`` with
``RandomResizedCrop(size, scale=(0.08, 1), ratio=(3/4, 4/3), bilinear)``, a horizontal flip
(p = 0.5) and ``auto_augment="original"`` (:mod:`train.autoaugment`), in timm's order: the
primary transforms (crop, flip), then the secondary one (AutoAugment). It takes and returns one
uint8 HxWx3 image and draws from a ``numpy.random.Generator``, to be called per example in the
grain pipeline; conversion to float and normalisation are left to the caller.

Interpolation: PIL bilinear for the crop and AutoAugment's affine ops. The Sequencer/timm training
script's default ``--train-interpolation random`` would instead pick bilinear or bicubic at random
for each (timm ``RandomResizedCropAndInterpolation``, ``_RANDOM_INTERPOLATION``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from train.autoaugment import FILL, auto_augment, check_image

_PRECISION_BITS = 22  # PIL's Resample.c fixed-point precision for 8-bit images (32 - 8 - 2).


def random_resized_crop_params(
    height: int,
    width: int,
    rng: np.random.Generator,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """torchvision's ``RandomResizedCrop.get_params`` (as timm's
    ``RandomResizedCropAndInterpolation``): returns (top, left, crop height, crop width).

    Up to 10 attempts of an area U(scale) x H W and an aspect ratio w / h log-uniform in
    ``ratio``, sides rounded (Python ``round``), accepted if 0 < w <= W and 0 < h <= H, at a
    uniform position; else the central crop, the whole image clamped to the ``ratio`` range.
    """
    if not (0 < scale[0] <= scale[1]):
        raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale}")
    if not (0 < ratio[0] <= ratio[1]):
        raise ValueError(f"ratio must be (low, high) with 0 < low <= high, got {ratio}")
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect_ratio = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def _bilinear_weights(in_size: int, out_size: int) -> np.ndarray:
    """PIL's ``precompute_coeffs`` for BILINEAR: an (out_size, in_size) fixed-point matrix."""
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = filter_scale  # the triangle filter's support 1, widened when downscaling
    weights = np.zeros((out_size, in_size))
    for out in range(out_size):
        centre = (out + 0.5) * scale
        low = max(int(centre - support + 0.5), 0)
        high = min(int(centre + support + 0.5), in_size)
        taps = np.abs((np.arange(low, high) - centre + 0.5) * (1.0 / filter_scale))
        row = np.where(taps < 1.0, 1.0 - taps, 0.0)
        total = np.cumsum(row)[-1]  # summed in order, as PIL does
        weights[out, low:high] = row / total if total != 0.0 else row
    return np.trunc(weights * (1 << _PRECISION_BITS) + 0.5).astype(np.int64)


def _resample(image: np.ndarray, weights: np.ndarray, axis: int) -> np.ndarray:
    """One PIL resampling pass along ``axis``: fixed-point sum, rounded, clipped to uint8."""
    moved = np.moveaxis(image.astype(np.int64), axis, -1)
    total = moved @ weights.T + (1 << (_PRECISION_BITS - 1))
    return np.moveaxis(np.clip(total >> _PRECISION_BITS, 0, 255).astype(np.uint8), -1, axis)


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``PIL.Image.resize((width, height), BILINEAR)``, as torchvision resizes a PIL image.

    PIL's algorithm, not a plain bilinear interpolation: a horizontal then a vertical pass, each
    rounded to uint8, of a triangle filter on half-pixel centres (align_corners=False) whose
    support is widened by the scale when downscaling (antialiasing), with the weights that fall
    outside the image dropped and the rest renormalised (the same as repeating edge pixels when
    upscaling), in PIL's 22-bit fixed point. Upscaling equals a bilinear interpolation with
    align_corners=False and clamped edges, up to those two roundings. Pillow >= 13 passes
    vertically first when it shrinks the height enough (its PR #9549), which rounds differently
    (by at most 1); Pillow <= 12 (timm's era) and this function always go horizontally first.
    """
    check_image(image)
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    rows = _resample(image, _bilinear_weights(image.shape[1], width), axis=1)
    return _resample(rows, _bilinear_weights(image.shape[0], height), axis=0)


def random_resized_crop(
    image: np.ndarray,
    rng: np.random.Generator,
    size: int,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
) -> np.ndarray:
    """torchvision/timm ``RandomResizedCrop(size, scale, ratio, bilinear)`` of a uint8 HxWx3
    image: :func:`random_resized_crop_params`, then :func:`resize_bilinear` to size x size."""
    check_image(image)
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    top, left, h, w = random_resized_crop_params(image.shape[0], image.shape[1], rng, scale, ratio)
    return resize_bilinear(image[top : top + h, left : left + w], size, size)


def authors_train_transform(
    image: np.ndarray, rng: np.random.Generator, size: int, fill: Sequence[int] = FILL
) -> np.ndarray:
    """The authors' training augmentation of one uint8 HxWx3 image -> uint8 size x size x 3.

    timm ``transforms_imagenet_train(size, auto_augment="original", interpolation="bilinear")``
    without its final ToTensor/Normalize: :func:`random_resized_crop` (scale 0.08-1, ratio
    3/4-4/3), a horizontal flip with probability 1/2 (torchvision ``RandomHorizontalFlip``), then
    :func:`train.autoaugment.auto_augment` with ``fill`` for its rotations and shears.
    """
    image = random_resized_crop(image, rng, size)
    if rng.random() < 0.5:
        image = image[:, ::-1]
    return np.ascontiguousarray(auto_augment(image, rng, fill))
