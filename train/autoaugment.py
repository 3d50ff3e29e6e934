"""AutoAugment policy "original" (Cubuk et al. 2019, ImageNet), in numpy, as timm applies it.

Follows timm's ``timm/data/auto_augment.py`` (``auto_augment_policy_original``, ``AugmentOp``,
``LEVEL_TO_ARG``, ``_randomly_negate``) as ``transforms_imagenet_train`` configures it, with each
operation re-implemented on uint8 HxWx3 arrays to give PIL's result (``ImageOps``,
``ImageEnhance``, ``Image.transform``) pixel for pixel. Only the ten operations this policy
uses are here (no TranslateX/Y, ShearY, SolarizeAdd or Brightness: "original" never draws them).

Two choices of timm's that depend on its training-script arguments:

* Fill colour of the affine ops (Rotate, ShearX): ``transforms_imagenet_train`` passes
  ``img_mean = round(255 * mean)`` of the normalisation mean, not ``auto_augment._FILL``
  (128, 128, 128); :data:`FILL` is that of timm's default (ImageNet) mean, the one a timm script
  uses unless ``--mean`` is given. Pass ``fill`` to use another.
* Resampling of the affine ops: timm uses the training interpolation (PIL bilinear here, as for the
  crop); with ``--train-interpolation random`` (timm's default) it would pick bilinear or bicubic
  at random per op.

Randomness comes from a ``numpy.random.Generator`` drawn in timm's order: the sub-policy, then per
operation its probability test (skipped for probability 1) and, for Rotate/ShearX, the sign.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

# round(255 * IMAGENET_DEFAULT_MEAN): timm's img_mean, the affine ops' fill colour.
FILL = (124, 116, 104)

# timm's auto_augment_policy_original: 25 sub-policies of (op, probability, magnitude 0-10).
POLICY_ORIGINAL = (
    (("PosterizeOriginal", 0.4, 8), ("Rotate", 0.6, 9)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)),
    (("Equalize", 0.8, 8), ("Equalize", 0.6, 3)),
    (("PosterizeOriginal", 0.6, 7), ("PosterizeOriginal", 0.6, 6)),
    (("Equalize", 0.4, 7), ("Solarize", 0.2, 4)),
    (("Equalize", 0.4, 4), ("Rotate", 0.8, 8)),
    (("Solarize", 0.6, 3), ("Equalize", 0.6, 7)),
    (("PosterizeOriginal", 0.8, 5), ("Equalize", 1.0, 2)),
    (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
    (("Equalize", 0.6, 8), ("PosterizeOriginal", 0.4, 6)),
    (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
    (("Rotate", 0.4, 9), ("Equalize", 0.6, 2)),
    (("Equalize", 0.0, 7), ("Equalize", 0.8, 8)),
    (("Invert", 0.6, 4), ("Equalize", 1.0, 8)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
    (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
    (("Sharpness", 0.4, 7), ("Invert", 0.6, 8)),
    (("ShearX", 0.6, 5), ("Equalize", 1.0, 9)),
    (("Color", 0.4, 0), ("Equalize", 0.6, 3)),
    (("Equalize", 0.4, 7), ("Solarize", 0.2, 4)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)),
    (("Invert", 0.6, 4), ("Equalize", 1.0, 8)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Equalize", 0.8, 8), ("Equalize", 0.6, 3)),
)


def check_image(image: np.ndarray, argument: str = "image") -> None:
    """Raises ValueError unless ``image`` is a uint8 HxWx3 numpy array."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError(
            f"{argument} must be a uint8 HxWx3 numpy array, got "
            f"{getattr(image, 'dtype', type(image))} of shape {getattr(image, 'shape', None)}"
        )
    if image.shape[2] != 3:
        raise ValueError(f"{argument} must have 3 channels (HxWx3), got shape {image.shape}")


# --- Colour ops (PIL ImageOps) -------------------------------------------------------------


def invert(image: np.ndarray) -> np.ndarray:
    """``PIL.ImageOps.invert``: 255 - v."""
    check_image(image)
    return 255 - image


def posterize(image: np.ndarray, bits: int) -> np.ndarray:
    """``PIL.ImageOps.posterize``: keeps the ``bits`` most significant bits (timm: 8 = unchanged)."""
    check_image(image)
    if not 0 <= bits <= 8:
        raise ValueError(f"bits must be in [0, 8], got {bits}")
    return image & np.uint8((0xFF << (8 - bits)) & 0xFF)


def solarize(image: np.ndarray, threshold: int) -> np.ndarray:
    """``PIL.ImageOps.solarize``: v if v < threshold else 255 - v."""
    check_image(image)
    return np.where(image < threshold, image, 255 - image)


def _per_channel_lut(image: np.ndarray, luts: Sequence[np.ndarray]) -> np.ndarray:
    return np.stack([lut[image[..., c]] for c, lut in enumerate(luts)], axis=-1).astype(np.uint8)


def autocontrast(image: np.ndarray) -> np.ndarray:
    """``PIL.ImageOps.autocontrast`` (cutoff 0), per channel: stretches [min, max] to [0, 255]
    by ``int(v * scale + offset)``; a constant channel is unchanged."""
    check_image(image)
    luts = []
    for lo, hi in zip(image.min(axis=(0, 1)).tolist(), image.max(axis=(0, 1)).tolist()):
        if hi <= lo:
            luts.append(np.arange(256))
            continue
        scale = 255.0 / (hi - lo)
        luts.append(np.clip(np.trunc(np.arange(256) * scale + -lo * scale), 0, 255))
    return _per_channel_lut(image, luts)


def equalize(image: np.ndarray) -> np.ndarray:
    """``PIL.ImageOps.equalize``, per channel: lut[i] = (step // 2 + count(< i)) // step with
    step = (pixels - count of the top value present) // 255; identity if step is 0."""
    check_image(image)
    luts = []
    for c in range(3):
        histogram = np.bincount(image[..., c].ravel(), minlength=256)
        present = histogram[histogram > 0]
        step = (int(histogram.sum()) - int(present[-1])) // 255
        if len(present) <= 1 or step == 0:
            luts.append(np.arange(256))
            continue
        below = np.concatenate([[0], np.cumsum(histogram)[:-1]])
        luts.append(np.minimum((step // 2 + below) // step, 255))
    return _per_channel_lut(image, luts)


# --- Enhance ops (PIL ImageEnhance: Image.blend(degenerate, image, factor)) ----------------


def _blend(degenerate: np.ndarray, image: np.ndarray, factor: float) -> np.ndarray:
    """``PIL.Image.blend``: in float32, truncated and clipped to uint8."""
    low = degenerate.astype(np.float32)
    out = low + np.float32(factor) * (image.astype(np.float32) - low)
    return np.clip(out, 0, 255).astype(np.uint8)


def _luminance(image: np.ndarray) -> np.ndarray:
    """PIL's RGB -> L conversion: (19595 R + 38470 G + 7471 B + 2**15) >> 16."""
    rgb = image.astype(np.int64)
    return (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16


def color(image: np.ndarray, factor: float) -> np.ndarray:
    """``PIL.ImageEnhance.Color``: blends from the greyscale (L) image; 1 = unchanged."""
    check_image(image)
    grey = np.repeat(_luminance(image)[..., None], 3, axis=-1)
    return _blend(grey, image, factor)


def contrast(image: np.ndarray, factor: float) -> np.ndarray:
    """``PIL.ImageEnhance.Contrast``: blends from the constant int(mean(L) + 0.5)."""
    check_image(image)
    mean = int(_luminance(image).mean() + 0.5)
    return _blend(np.full_like(image, mean), image, factor)


def sharpness(image: np.ndarray, factor: float) -> np.ndarray:
    """``PIL.ImageEnhance.Sharpness``: blends from ``ImageFilter.SMOOTH`` (3x3 kernel
    [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 in float32, rounded; the 1-pixel border, and an
    image under 3x3, unchanged)."""
    check_image(image)
    if min(image.shape[:2]) < 3:
        return image.copy()
    pixels = image.astype(np.float32)
    side, centre = np.float32(1 / 13), np.float32(5 / 13)
    total = np.full(pixels[1:-1, 1:-1].shape, 0.5, np.float32)
    for dy in (1, 0, -1):  # PIL's row order: below, centre, above
        row = pixels[1 + dy : pixels.shape[0] - 1 + dy]
        middle = centre if dy == 0 else side
        total += row[:, :-2] * side + row[:, 1:-1] * middle + row[:, 2:] * side
    smooth = image.copy()
    smooth[1:-1, 1:-1] = np.clip(total, 0, 255).astype(np.uint8)
    return _blend(smooth, image, factor)


# --- Affine ops (PIL Image.transform AFFINE, bilinear, with a fill colour) -----------------


def affine(image: np.ndarray, matrix: Sequence[float], fill: Sequence[int] = FILL) -> np.ndarray:
    """``PIL.Image.transform(size, AFFINE, matrix, BILINEAR, fillcolor=fill)``.

    The output pixel (x, y) samples the input at (a x' + b y' + c, d x' + e y' + f) with
    x' = x + 0.5, y' = y + 0.5; a sample outside [0, W) x [0, H) is ``fill``, one inside is
    bilinear between pixel centres with edge pixels repeated, truncated to uint8.
    """
    check_image(image)
    a, b, c, d, e, f = (float(v) for v in matrix)
    height, width = image.shape[:2]
    y, x = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    u = a * x + b * y + c
    v = d * x + e * y + f
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    u, v = u - 0.5, v - 0.5
    u0, v0 = np.floor(u), np.floor(v)
    du, dv = (u - u0)[..., None], (v - v0)[..., None]
    xa, xb = (np.clip(u0 + k, 0, width - 1).astype(np.intp) for k in (0, 1))
    ya, yb = (np.clip(v0 + k, 0, height - 1).astype(np.intp) for k in (0, 1))
    pixels = image.astype(np.float64)
    top = pixels[ya, xa] + (pixels[ya, xb] - pixels[ya, xa]) * du
    bottom = pixels[yb, xa] + (pixels[yb, xb] - pixels[yb, xa]) * du
    sampled = np.clip(top + (bottom - top) * dv, 0, 255).astype(np.uint8)
    return np.where(inside[..., None], sampled, np.asarray(fill, np.uint8))


def shear_x(image: np.ndarray, factor: float, fill: Sequence[int] = FILL) -> np.ndarray:
    """timm ``shear_x``: the affine (1, factor, 0, 0, 1, 0), i.e. x_in = x + factor * y."""
    return affine(image, (1, factor, 0, 0, 1, 0), fill)


def rotate(image: np.ndarray, degrees: float, fill: Sequence[int] = FILL) -> np.ndarray:
    """``PIL.Image.rotate(degrees, BILINEAR, fillcolor=fill)``: anticlockwise about the image
    centre (W / 2, H / 2), same size, with PIL's matrix (cos/sin rounded to 15 digits)."""
    check_image(image)
    height, width = image.shape[:2]
    angle = -math.radians(degrees % 360.0)
    cos, sin = round(math.cos(angle), 15), round(math.sin(angle), 15)
    cx, cy = width / 2, height / 2
    matrix = (cos, sin, cos * -cx + sin * -cy + cx, -sin, cos, -sin * -cx + cos * -cy + cy)
    return affine(image, matrix, fill)


# --- The policy (timm AugmentOp, LEVEL_TO_ARG, AutoAugment) --------------------------------


def _randomly_negate(value: float, rng: np.random.Generator) -> float:
    """timm ``_randomly_negate``: -value with probability 1/2."""
    return -value if rng.random() > 0.5 else value


def _enhance_level(magnitude: float) -> float:
    return magnitude / 10 * 1.8 + 0.1  # timm _enhance_level_to_arg: [0.1, 1.9]


# name -> op(image, magnitude, rng, fill), each with timm's magnitude -> argument mapping.
OPS: dict[str, Callable[..., np.ndarray]] = {
    "AutoContrast": lambda image, magnitude, rng, fill: autocontrast(image),
    "Equalize": lambda image, magnitude, rng, fill: equalize(image),
    "Invert": lambda image, magnitude, rng, fill: invert(image),
    "Rotate": lambda image, magnitude, rng, fill: rotate(
        image, _randomly_negate(magnitude / 10 * 30.0, rng), fill
    ),
    "PosterizeOriginal": lambda image, magnitude, rng, fill: posterize(
        image, int(magnitude / 10 * 4) + 4
    ),
    "Solarize": lambda image, magnitude, rng, fill: solarize(image, int(magnitude / 10 * 256)),
    "Color": lambda image, magnitude, rng, fill: color(image, _enhance_level(magnitude)),
    "Contrast": lambda image, magnitude, rng, fill: contrast(image, _enhance_level(magnitude)),
    "Sharpness": lambda image, magnitude, rng, fill: sharpness(image, _enhance_level(magnitude)),
    "ShearX": lambda image, magnitude, rng, fill: shear_x(
        image, _randomly_negate(magnitude / 10 * 0.3, rng), fill
    ),
}


def auto_augment(
    image: np.ndarray, rng: np.random.Generator, fill: Sequence[int] = FILL
) -> np.ndarray:
    """timm ``AutoAugment(auto_augment_policy_original)``: one sub-policy chosen uniformly, each
    of its ops applied in turn with its probability (timm: skipped when U(0, 1) > p)."""
    check_image(image)
    sub_policy = POLICY_ORIGINAL[int(rng.integers(len(POLICY_ORIGINAL)))]
    for name, probability, magnitude in sub_policy:
        if probability < 1.0 and rng.random() > probability:
            continue
        image = OPS[name](image, magnitude, rng, fill)
    return image
