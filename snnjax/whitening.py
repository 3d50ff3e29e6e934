"""Patch-whitening initialisation of the patch stem (a data-dependent init).

The stem is a ``p x p`` convolution with stride ``p`` (METHOD Sec. 6): each
output pixel sees one non-overlapping patch of ``d = p * p * 3`` numbers. The
patches of natural images are strongly correlated (neighbouring pixels and
channels), so a random stem hands the first block features of very unequal
scale. Initialised instead with the eigenvectors of the patch covariance
``C = E[x x^T]``, each scaled by ``1 / sqrt(lambda + eps)``, the stem's
outputs are decorrelated with unit variance: ``W C W^T ~ I``. The filters are
used in +/- pairs, so that both signs of every direction can drive the
spiking encoder that follows (a spike is one-sided). This is the whitening
initialisation of fast CIFAR-10 trainers (e.g. Keller Jordan's airbench),
applied to the paper's patch stem; the paper itself does not specify the
stem's initialisation.

    filters = patch_whitening_filters(images, patch_size=2)      # (12, 2, 2, 3)
    kernel = whitened_stem_kernel(filters, kernel)               # (2, 2, 3, 24)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

DEFAULT_EPS = 5e-4  # added to each eigenvalue; the config's stem_whitening_eps


def patch_whitening_filters(images, patch_size: int, eps: float = DEFAULT_EPS) -> np.ndarray:
    """The ``d = patch_size**2 * C`` whitening filters of the non-overlapping
    ``patch_size x patch_size`` patches of ``images`` (``(N, H, W, C)``, already
    normalised as the model sees them), shape ``(d, patch_size, patch_size, C)``,
    ordered by decreasing variance of their direction. Filter ``i`` is
    ``v_i / sqrt(lambda_i + eps)`` for the eigenpair ``(lambda_i, v_i)`` of the
    uncentred patch covariance, with its sign fixed so that its largest-magnitude
    entry is positive (the same filters on every host)."""
    x = np.asarray(images, np.float64)
    if x.ndim != 4:
        raise ValueError(f"images must have shape (N, H, W, C), got {x.shape}")
    n, h, w, c = x.shape
    if not isinstance(patch_size, int) or patch_size < 1 or h % patch_size or w % patch_size:
        raise ValueError(
            f"patch_size must be a positive divisor of H={h} and W={w}, got {patch_size}"
        )
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    p = patch_size
    d = p * p * c
    patches = x.reshape(n, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5).reshape(-1, d)
    if len(patches) < d:
        raise ValueError(f"images must give at least {d} patches, got {len(patches)}")
    covariance = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)  # ascending
    order = np.argsort(eigenvalues)[::-1]
    vectors = eigenvectors[:, order].T  # (d, d): row i = direction i
    largest = np.argmax(np.abs(vectors), axis=1)
    vectors *= np.sign(vectors[np.arange(d), largest])[:, None]
    filters = vectors / np.sqrt(eigenvalues[order] + eps)[:, None]
    return filters.reshape(d, p, p, c).astype(np.float32)


def whitened_stem_kernel(filters, kernel) -> jax.Array:
    """``kernel`` (``(p, p, C, out)``, the stem's initial kernel) with its first
    ``min(out, 2 d)`` output channels replaced by the +/- pairs of ``filters``
    (``f_0, -f_0, f_1, -f_1, ...``: with fewer than ``2 d`` channels the
    directions of largest variance are kept); any further channels keep their
    initial values. Traceable (the model's initialisation runs under ``jit``)."""
    kernel = jnp.asarray(kernel)
    filters = jnp.asarray(filters, kernel.dtype)
    if kernel.ndim != 4 or filters.shape[1:] != kernel.shape[:3]:
        raise ValueError(
            f"kernel must have shape (p, p, C, out) matching filters {filters.shape[1:]} + (out,), "
            f"got {kernel.shape}"
        )
    pairs = jnp.stack([filters, -filters], axis=1).reshape(-1, *filters.shape[1:])
    used = min(kernel.shape[-1], len(pairs))
    return kernel.at[..., :used].set(jnp.moveaxis(pairs[:used], 0, -1))
