"""Stride-1 'SAME' convolution for windows of any size.

XLA's CPU convolution is pathologically slow on tiny maps (2x2 and 1x1 windows
in the last stages: 10-30x slower than the same FLOPs as a matmul, measured in
benchmarks/). There the conv runs as im2col + one matmul, keeping only the taps
that can reach a pixel inside the window (on a 1x1 window only the centre tap:
the others multiply the zero padding at the window border). Both paths compute
the same function.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

IM2COL_MAX_SIDE = 2  # windows with a side <= this use im2col


def same_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """x (N, h, w, C_in), kernel (kh, kw, C_in, C_out), odd kh and kw."""
    n, h, w, _ = x.shape
    kh, kw = kernel.shape[:2]
    if min(h, w) > IM2COL_MAX_SIDE:
        return jax.lax.conv_general_dilated(
            x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
    ph, pw = kh // 2, kw // 2
    taps = [(i, j) for i in range(kh) for j in range(kw) if abs(i - ph) < h and abs(j - pw) < w]
    xp = jnp.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    cols = jnp.concatenate([xp[:, i : i + h, j : j + w] for i, j in taps], axis=-1)
    weights = jnp.concatenate([kernel[i, j] for i, j in taps], axis=0)
    return (cols.reshape(n * h * w, -1) @ weights).reshape(n, h, w, -1)


_LECUN_NORMAL = nnx.initializers.lecun_normal()


class WindowConv(nnx.Module):
    """A kh x kw 'SAME' conv with bias (parameters named like ``nnx.Conv``)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size=(3, 3),
        *,
        kernel_init=_LECUN_NORMAL,
        dtype=None,
        rngs: nnx.Rngs,
    ):
        if any(k % 2 == 0 for k in kernel_size):
            raise ValueError(f"kernel_size must be odd for 'SAME', got {kernel_size}")
        self.kernel = nnx.Param(
            kernel_init(rngs.params(), (*kernel_size, in_features, out_features))
        )
        self.bias = nnx.Param(jnp.zeros((out_features,)))
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        dtype = self.dtype or x.dtype
        return same_conv(x.astype(dtype), self.kernel[...].astype(dtype)) + self.bias[...].astype(
            dtype
        )
