"""Building blocks of the spiking Sequencer: the spike encoder, the per-layer LIF
parameters, the MLP and the patch merging (METHOD Sec. 6)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from snnjax.counts import SpikeCount  # noqa: F401  (re-exported)
from snnjax.nn.config import SequencerConfig
from snnjax.surrogate import spike


def activation(neuron: str, x: jax.Array, vth) -> jax.Array:
    """The ANN counterpart of a spike ``H(x - vth)`` (``SequencerConfig.neuron``):
    "relu" max(x, 0); "clip" clip(x / vth, 0, 1), the spike's range [0, 1]."""
    if neuron == "relu":
        return jax.nn.relu(x)
    if neuron == "clip":
        return jnp.clip(x / vth, 0.0, 1.0)
    raise ValueError(f"neuron must be 'relu' or 'clip' for an activation, got {neuron!r}")


def _value(p):
    """A Param's array, or the constant itself."""
    return p[...] if isinstance(p, nnx.Param) else p


class SpikeEncoder(nnx.Module):
    """Real-valued block input -> spikes.

    deterministic: S = H(x - vth) with the surrogate gradient (every layer trains);
      vth is a per-block Param with ``learnable_encoder_threshold``.
    bernoulli: S = 1{x > u}, u ~ U(0, 1), straight-through gradient (dS/dx = 1);
      draws from the module's ``encoder`` RNG stream.
    ANN counterpart (``neuron`` "relu" / "clip"): :func:`activation` of x, with
      vth = 1 for the Bernoulli encoder (clip(x, 0, 1) = E[S]).
    """

    def __init__(self, config: SequencerConfig, *, rngs: nnx.Rngs):
        self.kind, self.neuron = config.encoder, config.neuron
        learnable = config.learnable_encoder_threshold
        self.vth = nnx.Param(jnp.asarray(config.vth)) if learnable else config.vth
        self.surrogate = config.surrogate
        self.surrogate_params = dict(config.surrogate_params)
        self.rngs = rngs["encoder"].fork() if self.kind == "bernoulli" else nnx.data(None)

    def threshold(self):
        """The threshold x is compared with (1 for the Bernoulli encoder's ANN)."""
        return _value(self.vth) if self.kind == "deterministic" else 1.0

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.neuron != "lif":
            return activation(self.neuron, x, self.threshold())
        if self.kind == "deterministic":
            return spike(x, self.threshold(), self.surrogate, **self.surrogate_params)
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
        return dict(alpha=_value(self.alpha), vth=_value(self.vth))


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
