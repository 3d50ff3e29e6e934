"""Patch-whitening stem initialisation (snnjax/whitening.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax.whitening import patch_whitening_filters, whitened_stem_kernel


def correlated_images(n=400, size=8, seed=0):
    """Images whose 2x2x3 patches are strongly correlated (smooth, mixed channels)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, size // 2, size // 2, 3))
    smooth = np.repeat(np.repeat(base, 2, axis=1), 2, axis=2)  # equal pixels in each patch
    noise = 0.1 * rng.normal(size=(n, size, size, 3))
    mix = np.array([[1.0, 0.8, 0.6], [0.0, 0.5, 0.4], [0.0, 0.0, 0.3]])
    return (smooth + noise) @ mix


def stem_outputs(images, kernel, p):
    """The stem as the model applies it: a p x p conv with stride p, no bias."""
    out = jax.lax.conv_general_dilated(
        jnp.asarray(images, jnp.float32),
        jnp.asarray(kernel),
        window_strides=(p, p),
        padding="VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision="highest",
    )
    return np.asarray(out, np.float64).reshape(-1, kernel.shape[-1])


def test_whitened_outputs_have_identity_covariance():
    images = correlated_images()
    eps = 1e-9
    filters = patch_whitening_filters(images, patch_size=2, eps=eps)
    assert filters.shape == (12, 2, 2, 3)
    kernel = np.moveaxis(filters, 0, -1)  # (2, 2, 3, 12): one output per direction
    y = stem_outputs(images, kernel, 2)
    covariance = y.T @ y / len(y)
    # Before: far from identity (the test would pass trivially otherwise).
    x = stem_outputs(images, np.eye(12, dtype=np.float32).reshape(2, 2, 3, 12), 2)
    assert np.abs(x.T @ x / len(x) - np.eye(12)).max() > 0.5
    np.testing.assert_allclose(covariance, np.eye(12), atol=2e-3)


def test_eps_shrinks_each_direction_by_lambda_over_lambda_plus_eps():
    images = correlated_images()
    eps = 0.05
    filters = patch_whitening_filters(images, patch_size=2, eps=eps)
    y = stem_outputs(images, np.moveaxis(filters, 0, -1), 2)
    variances = (y**2).mean(0)
    # Independent reference: the eigenvalues of the patch covariance, descending.
    patches = images.reshape(-1, 4, 2, 4, 2, 3).transpose(0, 1, 3, 2, 4, 5).reshape(-1, 12)
    lam = np.sort(np.linalg.eigvalsh(patches.T @ patches / len(patches)))[::-1]
    np.testing.assert_allclose(variances, lam / (lam + eps), rtol=1e-4)
    assert np.all(np.diff(variances) <= 1e-9)  # largest-variance direction first


def test_one_pixel_patch_by_hand():
    # d = 1: the filter is 1 / sqrt(E[x^2] + eps).
    images = np.array([1.0, -3.0, 2.0, 0.0]).reshape(1, 2, 2, 1)
    filters = patch_whitening_filters(images, patch_size=1, eps=0.5)
    np.testing.assert_allclose(filters.reshape(()), 1 / np.sqrt((1 + 9 + 4) / 4 + 0.5), rtol=1e-6)


def test_filters_have_a_canonical_sign():
    images = correlated_images()
    filters = patch_whitening_filters(images, 2).reshape(12, -1)
    largest = filters[np.arange(12), np.abs(filters).argmax(1)]
    assert np.all(largest > 0)
    # A sign flip of the data does not change the filters (same covariance).
    np.testing.assert_allclose(patch_whitening_filters(-images, 2).reshape(12, -1), filters)


def test_kernel_gets_pairs_and_keeps_extra_channels():
    filters = patch_whitening_filters(correlated_images(), 2)
    initial = np.random.default_rng(1).normal(size=(2, 2, 3, 30)).astype(np.float32)
    kernel = whitened_stem_kernel(filters, initial)
    for i in range(12):
        np.testing.assert_array_equal(kernel[..., 2 * i], filters[i])
        np.testing.assert_array_equal(kernel[..., 2 * i + 1], -filters[i])
    np.testing.assert_array_equal(kernel[..., 24:], initial[..., 24:])
    narrow = whitened_stem_kernel(filters, initial[..., :5])
    np.testing.assert_array_equal(narrow, kernel[..., :5])  # the largest directions first


@pytest.mark.parametrize(
    "images, patch_size, eps, match",
    [
        (np.zeros((2, 4, 4)), 2, 1e-3, "images must have shape"),
        (np.zeros((2, 5, 4, 3)), 2, 1e-3, "patch_size must be a positive divisor"),
        (np.zeros((2, 4, 4, 3)), 2, 0.0, "eps must be > 0"),
        (np.zeros((1, 2, 2, 3)), 2, 1e-3, "at least 12 patches"),
    ],
)
def test_bad_arguments(images, patch_size, eps, match):
    with pytest.raises(ValueError, match=match):
        patch_whitening_filters(images, patch_size, eps)


def test_kernel_shape_mismatch():
    filters = np.zeros((12, 2, 2, 3), np.float32)
    with pytest.raises(ValueError, match="kernel must have shape"):
        whitened_stem_kernel(filters, np.zeros((3, 3, 3, 24)))
