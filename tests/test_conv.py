"""WindowConv / same_conv: the im2col path equals XLA's convolution."""

import jax
import numpy as np
import pytest
from flax import nnx

from snnjax.nn.conv import WindowConv, same_conv


def xla_conv(x, k):
    return jax.lax.conv_general_dilated(
        x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


@pytest.mark.parametrize(
    "shape", [(3, 1, 1, 4), (3, 2, 2, 4), (2, 1, 3, 4), (2, 2, 5, 3), (2, 4, 4, 3), (1, 6, 6, 2)]
)
@pytest.mark.parametrize("ksize", [(3, 3), (1, 3), (5, 5)])
def test_matches_xla_conv_values_and_gradients(shape, ksize):
    kx, kk = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, shape)
    k = jax.random.normal(kk, (*ksize, shape[-1], 5))
    np.testing.assert_allclose(same_conv(x, k), xla_conv(x, k), rtol=1e-5, atol=1e-5)
    g = jax.grad(lambda x, k: (same_conv(x, k) ** 2).sum(), argnums=(0, 1))(x, k)
    g_ref = jax.grad(lambda x, k: (xla_conv(x, k) ** 2).sum(), argnums=(0, 1))(x, k)
    for a, b in zip(g, g_ref):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_module_and_bad_kernel():
    conv = WindowConv(3, 4, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, 2, 2, 3))
    np.testing.assert_allclose(
        conv(x), xla_conv(x, conv.kernel[...]) + conv.bias[...], rtol=1e-5, atol=1e-5
    )
    with pytest.raises(ValueError, match="odd"):
        WindowConv(3, 4, (2, 2), rngs=nnx.Rngs(0))
