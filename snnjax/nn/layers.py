"""Building blocks of the spiking Sequencer: the spike encoder, the per-layer LIF
parameters, the MLP and the patch merging (METHOD Sec. 6)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from snnjax.energy import SpikeCount  # noqa: F401  (re-exported)
from snnjax.nn.config import SequencerConfig
from snnjax.surrogate import spike


class SpikeEncoder(nnx.Module):
    """Real-valued block input -> spikes.

    deterministic: S = H(x - vth) with the surrogate gradient (every layer trains).
    bernoulli: S = 1{x > u}, u ~ U(0, 1), straight-through gradient (dS/dx = 1);
      draws from the module's ``encoder`` RNG stream.
    """

    def __init__(self, config: SequencerConfig, *, rngs: nnx.Rngs):
        self.kind = config.encoder
        self.vth = config.vth
        self.surrogate = config.surrogate
        self.surrogate_params = dict(config.surrogate_params)
        self.rngs = rngs["encoder"].fork() if self.kind == "bernoulli" else nnx.data(None)

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.kind == "deterministic":
            return spike(x, self.vth, self.surrogate, **self.surrogate_params)
        u = jax.random.uniform(self.rngs(), x.shape, x.dtype)
        s = (x > u).astype(x.dtype)
        return s + x - jax.lax.stop_gradient(x)


class LIFParams(nnx.Module):
    """Leak and threshold of one LIF layer: constants, or learnable scalars."""

    def __init__(self, config: SequencerConfig):
        self.alpha = nnx.Param(jnp.asarray(config.alpha)) if config.learnable_leak else config.alpha
        self.vth = nnx.Param(jnp.asarray(config.vth)) if config.learnable_threshold else config.vth

    def options(self) -> dict:
        """This layer's ``alpha`` and ``vth`` for :func:`snnjax.window_lif`."""
        value = lambda p: p[...] if isinstance(p, nnx.Param) else p
        return dict(alpha=value(self.alpha), vth=value(self.vth))


class MLP(nnx.Module):
    """Linear(C, rC) -> GELU -> dropout -> Linear(rC, C) -> dropout."""

    def __init__(self, width: int, ratio: int, dropout: float, *, dtype=None, rngs: nnx.Rngs):
        self.fc1 = nnx.Linear(width, ratio * width, dtype=dtype, rngs=rngs)
        self.fc2 = nnx.Linear(ratio * width, width, dtype=dtype, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)

    def __call__(self, x):
        return self.dropout(self.fc2(self.dropout(jax.nn.gelu(self.fc1(x)))))


def space_to_depth(x: jax.Array) -> jax.Array:
    """(B, H, W, C) -> (B, H/2, W/2, 4C): each 2x2 neighbourhood concatenated."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h // 2, w // 2, 4 * c)


class PatchMerging(nnx.Module):
    """2x2 neighbourhood concat, Linear(4C, 2C) without bias: halves the map."""

    def __init__(self, width: int, *, dtype=None, rngs: nnx.Rngs):
        self.reduction = nnx.Linear(4 * width, 2 * width, use_bias=False, dtype=dtype, rngs=rngs)

    def __call__(self, x):
        return self.reduction(space_to_depth(x))
