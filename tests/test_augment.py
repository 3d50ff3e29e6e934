"""Tests of train/augment.py and train/autoaugment.py: timm's training transform in numpy.

Each op is checked against hand-computed pixels; the crop parameters against a literal
re-implementation of torchvision's ``RandomResizedCrop.get_params`` and their properties; the
policy's probabilities against counts over many draws. Where Pillow is installed, each op, the
policy (with timm's level mapping written on PIL) and the whole transform are compared with PIL's
own functions, which they must match exactly; without Pillow those comparisons are skipped.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from train import augment as ag
from train import autoaugment as aa

try:
    from PIL import Image, ImageEnhance, ImageOps
except ImportError:  # Pillow is not a dependency of snnjax.
    Image = None

needs_pil = pytest.mark.skipif(Image is None, reason="Pillow is not installed (pip install pillow)")
FILL = np.array(aa.FILL, np.uint8)


def _grey(values) -> np.ndarray:
    """A uint8 HxWx3 image with the same values in all three channels."""
    return np.repeat(np.asarray(values, np.uint8)[..., None], 3, axis=-1)


def _random_images(seed: int, count: int):
    """Random uint8 images of random sizes; every third uses only a few grey levels."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        h, w = rng.integers(3, 40, size=2)
        image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        yield (image // 37 * 20 + 10).astype(np.uint8) if i % 3 == 1 else image


# --- Colour ops: hand-computed pixels --------------------------------------------------


def test_invert_posterize_solarize():
    image = _grey([[0, 127, 128, 183, 255]])
    np.testing.assert_array_equal(aa.invert(image), _grey([[255, 128, 127, 72, 0]]))
    np.testing.assert_array_equal(aa.posterize(image, 6), _grey([[0, 124, 128, 180, 252]]))
    np.testing.assert_array_equal(aa.posterize(image, 4), _grey([[0, 112, 128, 176, 240]]))
    np.testing.assert_array_equal(aa.posterize(image, 8), image)
    np.testing.assert_array_equal(aa.solarize(image, 128), _grey([[0, 127, 127, 72, 0]]))
    np.testing.assert_array_equal(aa.solarize(image, 256), image)
    with pytest.raises(ValueError, match="bits"):
        aa.posterize(image, 9)


def test_autocontrast_stretches_each_channel():
    image = np.zeros((1, 3, 3), np.uint8)
    image[0, :, 0] = [0, 10, 51]  # scale 255 / 51 = 5
    image[0, :, 1] = [5, 30, 56]  # scale 5, offset -25
    image[0, :, 2] = [77, 77, 77]  # constant: unchanged
    expected = np.array([[[0, 0, 77], [50, 125, 77], [255, 255, 77]]], np.uint8)
    np.testing.assert_array_equal(aa.autocontrast(image), expected)


def test_equalize_lut():
    # 1024 pixels: 256 at 0, 254 at 100, 514 at 200: step = (1024 - 514) // 255 = 2 (PIL divides
    # by 255, not 256) and lut[v] = (step // 2 + count(< v)) // step: 0 -> 0, 100 -> 257 // 2,
    # 200 -> 511 // 2.
    values = np.array([0] * 256 + [100] * 254 + [200] * 514).reshape(32, 32)
    np.testing.assert_array_equal(
        aa.equalize(_grey(values)), _grey(np.select([values == 0, values == 100], [0, 128], 255))
    )
    few = _grey([[10, 20], [30, 40]])  # step = 3 // 255 = 0: unchanged
    np.testing.assert_array_equal(aa.equalize(few), few)
    np.testing.assert_array_equal(aa.equalize(_grey(np.full((4, 4), 9))), _grey(np.full((4, 4), 9)))


# --- Enhance ops: blends with hand-computed degenerate images ---------------------------


def test_color_blends_from_luminance():
    image = np.array([[[100, 50, 200]]], np.uint8)
    # L = (100 * 19595 + 50 * 38470 + 200 * 7471 + 32768) >> 16 = 82
    np.testing.assert_array_equal(aa.color(image, 0.0), [[[82, 82, 82]]])
    np.testing.assert_array_equal(aa.color(image, 0.5), [[[91, 66, 141]]])
    np.testing.assert_array_equal(aa.color(image, 1.0), image)
    np.testing.assert_array_equal(aa.color(image, 2.0), [[[118, 18, 255]]])


def test_contrast_blends_from_mean_luminance():
    image = _grey([[10, 20], [30, 41]])  # grey: L = value; mean 25.25 -> 25
    np.testing.assert_array_equal(aa.contrast(image, 0.0), _grey(np.full((2, 2), 25)))
    np.testing.assert_array_equal(aa.contrast(image, 2.0), _grey([[0, 15], [35, 57]]))
    np.testing.assert_array_equal(aa.contrast(image, 1.0), image)


def test_sharpness_blends_from_smooth_with_border_untouched():
    values = np.zeros((3, 3), np.uint8)
    values[1, 1] = 130  # SMOOTH at the centre: 5 * 130 / 13 = 50; the border is copied
    blurred = values.copy()
    blurred[1, 1] = 50
    np.testing.assert_array_equal(aa.sharpness(_grey(values), 0.0), _grey(blurred))
    blurred[1, 1] = 210  # 50 + 2 * (130 - 50)
    np.testing.assert_array_equal(aa.sharpness(_grey(values), 2.0), _grey(blurred))
    image = next(_random_images(0, 1))
    out = aa.sharpness(image, 0.1)
    for edge in (np.s_[0], np.s_[-1], np.s_[:, 0], np.s_[:, -1]):
        np.testing.assert_array_equal(out[edge], image[edge])


# --- Affine ops: shifts by whole pixels, bilinear fractions, fill -----------------------


def test_shear_x_whole_and_fractional_pixels():
    values = np.arange(16).reshape(4, 4) * 10
    image = _grey(values)
    # factor 2: the input x = x + 2 y + 1 exactly (half-pixel centres): rows shift by 1 and 3.
    out = aa.shear_x(image, 2.0)
    np.testing.assert_array_equal(out[0, :3], image[0, 1:])
    np.testing.assert_array_equal(out[1, 0], image[1, 3])
    assert (out[0, 3] == FILL).all() and (out[1, 1:] == FILL).all() and (out[2:] == FILL).all()
    out = aa.shear_x(image, -2.0, fill=(1, 2, 3))  # x - 2 y - 1: row 0 shifts right by 1
    np.testing.assert_array_equal(out[0, 1:], image[0, :3])
    np.testing.assert_array_equal(out[0, 0], [1, 2, 3])
    # factor 0.5, row 0: x + 0.25: v[x] + (v[x + 1] - v[x]) / 4, the last pixel repeated.
    row = _grey([[0, 100, 200, 40]])
    np.testing.assert_array_equal(aa.shear_x(row, 0.5), _grey([[25, 125, 160, 40]]))


def test_rotate_quarter_turns_and_fill():
    image = _grey(np.arange(16).reshape(4, 4) * 10)
    np.testing.assert_array_equal(aa.rotate(image, 90), np.rot90(image))  # anticlockwise
    np.testing.assert_array_equal(aa.rotate(image, -90), np.rot90(image, -1))
    np.testing.assert_array_equal(aa.rotate(image, 180), image[::-1, ::-1])
    np.testing.assert_array_equal(aa.rotate(image, 0), image)
    out = aa.rotate(image, 45)
    for corner in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        np.testing.assert_array_equal(out[corner], FILL)


def test_ops_reject_bad_images():
    for bad in (np.zeros((4, 4, 3), np.float32), np.zeros((4, 4), np.uint8), [[1, 2]]):
        with pytest.raises(ValueError, match="image must be a uint8 HxWx3"):
            aa.equalize(bad)
    with pytest.raises(ValueError, match="3 channels"):
        ag.authors_train_transform(np.zeros((4, 4, 4), np.uint8), np.random.default_rng(0), 4)


# --- Levels (timm LEVEL_TO_ARG) and the random sign ------------------------------------


def test_levels_follow_timm():
    image = next(_random_images(1, 1))
    rng = np.random.default_rng(0)
    cases = {  # (op, magnitude): the op it must equal (timm's argument for that magnitude)
        ("PosterizeOriginal", 8): aa.posterize(image, 7),
        ("PosterizeOriginal", 7): aa.posterize(image, 6),
        ("PosterizeOriginal", 5): aa.posterize(image, 6),
        ("Solarize", 5): aa.solarize(image, 128),
        ("Solarize", 7): aa.solarize(image, 179),
        ("Color", 0): aa.color(image, 0.1),
        ("Contrast", 8): aa.contrast(image, 1.54),
        ("Sharpness", 7): aa.sharpness(image, 1.36),
        ("Equalize", 3): aa.equalize(image),
        ("AutoContrast", 5): aa.autocontrast(image),
        ("Invert", 4): aa.invert(image),
    }
    for (name, magnitude), expected in cases.items():
        np.testing.assert_array_equal(aa.OPS[name](image, magnitude, rng, aa.FILL), expected, name)


def test_rotate_and_shear_signs_are_fair_coins(monkeypatch):
    seen = []
    monkeypatch.setattr(aa, "rotate", lambda image, degrees, fill: seen.append(degrees))
    monkeypatch.setattr(aa, "shear_x", lambda image, factor, fill: seen.append(factor))
    rng, draws = np.random.default_rng(0), 10_000
    for _ in range(draws):
        aa.OPS["Rotate"](None, 9, rng, aa.FILL)
        aa.OPS["ShearX"](None, 5, rng, aa.FILL)
    assert set(seen[0::2]) == {27.0, -27.0} and set(seen[1::2]) == {0.15, -0.15}
    for values in (seen[0::2], seen[1::2]):
        negatives = sum(v < 0 for v in values)
        assert abs(negatives - draws / 2) < 5 * math.sqrt(draws / 4)


# --- The policy's probabilities, counted ------------------------------------------------


class _RecordingPolicy(tuple):
    """The policy, recording which sub-policy ``auto_augment`` indexes."""

    chosen: list

    def __getitem__(self, index):
        self.chosen.append(index)
        return tuple.__getitem__(self, index)


def test_policy_probabilities_match_counts(monkeypatch):
    assert len(aa.POLICY_ORIGINAL) == 25 and all(len(s) == 2 for s in aa.POLICY_ORIGINAL)
    applied = []
    tagged = []
    for i, sub_policy in enumerate(aa.POLICY_ORIGINAL):
        ops = []
        for j, (name, probability, magnitude) in enumerate(sub_policy):
            tag = f"{name}/{i}/{j}"
            ops.append((tag, probability, magnitude))

            def record(image, level, rng, fill, tag=tag, magnitude=magnitude):
                assert level == magnitude and tuple(fill) == aa.FILL
                applied.append(tag)
                return image

            monkeypatch.setitem(aa.OPS, tag, record)
        tagged.append(tuple(ops))
    policy = _RecordingPolicy(tagged)
    policy.chosen = []
    monkeypatch.setattr(aa, "POLICY_ORIGINAL", policy)

    rng, draws, image = np.random.default_rng(0), 25_000, np.zeros((2, 2, 3), np.uint8)
    for _ in range(draws):
        before = len(applied)
        aa.auto_augment(image, rng)
        tags = applied[before:]
        assert [int(t.split("/")[1]) for t in tags] == [policy.chosen[-1]] * len(tags)
        assert [int(t.split("/")[2]) for t in tags] == sorted(int(t.split("/")[2]) for t in tags)

    chosen, counts = Counter(policy.chosen), Counter(applied)
    assert len(policy.chosen) == draws and set(chosen) == set(range(25))
    for i, sub_policy in enumerate(tagged):
        assert abs(chosen[i] - draws / 25) < 5 * math.sqrt(draws / 25 * 24 / 25)
        for tag, probability, _ in sub_policy:
            n = chosen[i]
            sigma = math.sqrt(n * probability * (1 - probability))
            assert abs(counts[tag] - n * probability) <= 5 * sigma, tag
            if probability in (0.0, 1.0):
                assert counts[tag] == n * probability, tag


# --- Crop parameters ---------------------------------------------------------------------


def _torchvision_get_params(height, width, rng, scale, ratio):
    """torchvision RandomResizedCrop.get_params, line for line (its torch draws -> rng)."""
    area = height * width
    log_ratio = [math.log(ratio[0]), math.log(ratio[1])]
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect_ratio = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            i = int(rng.integers(0, height - h + 1))
            j = int(rng.integers(0, width - w + 1))
            return i, j, h, w
    in_ratio = float(width) / float(height)
    if in_ratio < min(ratio):
        w = width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = height
        w = int(round(h * max(ratio)))
    else:
        w = width
        h = height
    i = (height - h) // 2
    j = (width - w) // 2
    return i, j, h, w


def test_crop_params_match_torchvision_algorithm():
    for seed in range(300):
        height, width = np.random.default_rng(seed + 1000).integers(8, 80, size=2)
        for scale, ratio in (((0.08, 1.0), (3 / 4, 4 / 3)), ((0.5, 1.0), (0.2, 5.0))):
            ours = ag.random_resized_crop_params(
                int(height), int(width), np.random.default_rng(seed), scale, ratio
            )
            literal = _torchvision_get_params(
                int(height), int(width), np.random.default_rng(seed), scale, ratio
            )
            assert ours == literal


def test_crop_params_properties_and_fallback():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        top, left, h, w = ag.random_resized_crop_params(32, 32, rng)
        assert 0 <= top and top + h <= 32 and 0 <= left and left + w <= 32
        # Sides are rounded: allow half a pixel on each.
        assert 0.08 * 1024 <= (h + 0.5) * (w + 0.5) and (h - 0.5) * (w - 0.5) <= 1024
        assert 3 / 4 <= (w + 0.5) / (h - 0.5) and (w - 0.5) / (h + 0.5) <= 4 / 3
    # A full-area crop with ratio 2-3 never fits a square: the central crop at ratio 2.
    assert ag.random_resized_crop_params(32, 32, rng, (1.0, 1.0), (2.0, 3.0)) == (8, 0, 16, 32)
    # Too tall (ratio 1/4 < 1/2): full width, height 10 / (1/2); too wide (4 > 2): w = 10 * 2.
    assert ag.random_resized_crop_params(40, 10, rng, (1.0, 1.0), (0.5, 0.6)) == (10, 0, 20, 10)
    assert ag.random_resized_crop_params(10, 40, rng, (1.0, 1.0), (0.5, 2.0)) == (0, 10, 10, 20)
    with pytest.raises(ValueError, match="scale"):
        ag.random_resized_crop_params(32, 32, rng, (0.5, 0.1))
    with pytest.raises(ValueError, match="ratio"):
        ag.random_resized_crop_params(32, 32, rng, ratio=(0.0, 1.0))


def test_resize_bilinear_hand_computed():
    row = _grey([[0, 100]])  # upscaling x2: samples at -0.25, 0.25, 0.75, 1.25 (clamped)
    np.testing.assert_array_equal(ag.resize_bilinear(row, 1, 4), _grey([[0, 25, 75, 100]]))
    # Downscaling x2 widens the triangle to 2 pixels: weights (3, 3, 1) / 7 and (1, 3, 3) / 7.
    row = _grey([[0, 70, 140, 210]])
    np.testing.assert_array_equal(ag.resize_bilinear(row, 1, 2), _grey([[50, 160]]))
    np.testing.assert_array_equal(
        ag.resize_bilinear(row.transpose(1, 0, 2), 2, 1), _grey([[50], [160]])
    )


# --- The whole transform -------------------------------------------------------------------


def test_authors_train_transform_shape_dtype_determinism():
    images = np.random.default_rng(0).integers(0, 256, size=(8, 64, 64, 3), dtype=np.uint8)
    for source, size in ((images[:, :32, :32], 32), (images, 64), (images, 32)):
        first = [
            ag.authors_train_transform(x, np.random.default_rng(42 + i), size)
            for i, x in enumerate(source)
        ]
        again = [
            ag.authors_train_transform(x, np.random.default_rng(42 + i), size)
            for i, x in enumerate(source)
        ]
        for a, b in zip(first, again):
            assert a.dtype == np.uint8 and a.shape == (size, size, 3) and a.flags.c_contiguous
            np.testing.assert_array_equal(a, b)
        other = ag.authors_train_transform(source[0], np.random.default_rng(7), size)
        assert not np.array_equal(first[0], other)


# --- Comparisons with Pillow ---------------------------------------------------------------


@needs_pil
def test_ops_equal_pil():
    for i, image in enumerate(_random_images(2, 150)):
        pil = Image.fromarray(image)
        f = 0.1 + (i % 19) / 10  # enhance factors 0.1-1.9, as the policy's levels
        cases = {
            "invert": (aa.invert(image), ImageOps.invert(pil)),
            "posterize": (aa.posterize(image, 4 + i % 5), ImageOps.posterize(pil, 4 + i % 5)),
            "solarize": (aa.solarize(image, 3 * i % 257), ImageOps.solarize(pil, 3 * i % 257)),
            "autocontrast": (aa.autocontrast(image), ImageOps.autocontrast(pil)),
            "equalize": (aa.equalize(image), ImageOps.equalize(pil)),
            "color": (aa.color(image, f), ImageEnhance.Color(pil).enhance(f)),
            "contrast": (aa.contrast(image, f), ImageEnhance.Contrast(pil).enhance(f)),
            "sharpness": (aa.sharpness(image, f), ImageEnhance.Sharpness(pil).enhance(f)),
            "shear_x": (
                aa.shear_x(image, 0.3 - i / 250),
                pil.transform(
                    pil.size,
                    Image.AFFINE,
                    (1, 0.3 - i / 250, 0, 0, 1, 0),
                    resample=Image.BILINEAR,
                    fillcolor=aa.FILL,
                ),
            ),
            "rotate": (
                aa.rotate(image, 60 - 0.8 * i),
                pil.rotate(60 - 0.8 * i, resample=Image.BILINEAR, fillcolor=aa.FILL),
            ),
        }
        for name, (ours, theirs) in cases.items():
            np.testing.assert_array_equal(ours, np.asarray(theirs), err_msg=f"{name} #{i}")


@needs_pil
def test_resize_equals_pil():
    rng = np.random.default_rng(3)
    for _ in range(200):
        (h, w), (oh, ow) = rng.integers(1, 70, size=(2, 2))
        image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        theirs = np.asarray(Image.fromarray(image).resize((int(ow), int(oh)), Image.BILINEAR))
        ours = ag.resize_bilinear(image, int(oh), int(ow))
        if oh >= h or np.array_equal(ours, theirs):  # upscaling height: always exact
            np.testing.assert_array_equal(ours, theirs)
            continue
        # Pillow >= 13 (PR #9549) passes vertically first when it shrinks the height enough;
        # Pillow <= 12 (timm's era: 8.4) always horizontally first, as ``resize_bilinear``.
        vertical_first = ag._resample(
            ag._resample(image, ag._bilinear_weights(h, int(oh)), 0),
            ag._bilinear_weights(w, int(ow)),
            1,
        )
        np.testing.assert_array_equal(vertical_first, theirs)
        assert np.abs(ours.astype(int) - theirs).max() <= 1


def _pil_timm_auto_augment(pil, rng, fill):
    """timm's AutoAugment('original') written on PIL as timm does, drawing from ``rng``."""

    def negate(v):
        return -v if rng.random() > 0.5 else v

    ops = {
        "AutoContrast": lambda m: ImageOps.autocontrast(pil),
        "Equalize": lambda m: ImageOps.equalize(pil),
        "Invert": lambda m: ImageOps.invert(pil),
        "Rotate": lambda m: pil.rotate(
            negate(m / 10.0 * 30.0), resample=Image.BILINEAR, fillcolor=fill
        ),
        "PosterizeOriginal": lambda m: (
            ImageOps.posterize(pil, int(m / 10.0 * 4) + 4) if int(m / 10.0 * 4) + 4 < 8 else pil
        ),
        "Solarize": lambda m: ImageOps.solarize(pil, int(m / 10.0 * 256)),
        "Color": lambda m: ImageEnhance.Color(pil).enhance(m / 10.0 * 1.8 + 0.1),
        "Contrast": lambda m: ImageEnhance.Contrast(pil).enhance(m / 10.0 * 1.8 + 0.1),
        "Sharpness": lambda m: ImageEnhance.Sharpness(pil).enhance(m / 10.0 * 1.8 + 0.1),
        "ShearX": lambda m: pil.transform(
            pil.size,
            Image.AFFINE,
            (1, negate(m / 10.0 * 0.3), 0, 0, 1, 0),
            resample=Image.BILINEAR,
            fillcolor=fill,
        ),
    }
    for name, probability, magnitude in aa.POLICY_ORIGINAL[int(rng.integers(25))]:
        if probability < 1.0 and rng.random() > probability:
            continue
        pil = ops[name](magnitude)
    return pil


@needs_pil
def test_whole_transform_equals_pil_pipeline():
    fill = (125, 123, 114)
    for seed, image in enumerate(_random_images(4, 300)):
        image = np.ascontiguousarray(image[:32, :32])
        size = 32
        ours = ag.authors_train_transform(image, np.random.default_rng(seed), size, fill)
        rng = np.random.default_rng(seed)
        top, left, h, w = _torchvision_get_params(
            *image.shape[:2], rng, (0.08, 1.0), (3 / 4, 4 / 3)
        )
        pil = Image.fromarray(image).crop((left, top, left + w, top + h))
        pil = pil.resize((size, size), Image.BILINEAR)
        if rng.random() < 0.5:
            pil = pil.transpose(Image.FLIP_LEFT_RIGHT)
        theirs = np.asarray(_pil_timm_auto_augment(pil, rng, fill))
        np.testing.assert_array_equal(ours, theirs, err_msg=f"seed {seed}")
