"""Classic T-step spiking layers (Flax NNX) on the functional core, for NIR graphs.

Each layer here takes a whole sequence, time-major and channels-last ``(T, B, ...)``,
and an explicit state (None: start from rest, all zeros), and returns
``(outputs, new_state, membranes)`` (membranes None for layers without one). The
neurons run :func:`snnjax.lif_scan`. Linear, Affine and Conv2d are ``nnx.Linear``
and ``nnx.Conv`` (NHWC), which act on ``(T, B, ...)`` as they are;
:class:`snnjax.nn.plain_graph.Graph` wires any of these over T steps.

Neuron parameters are discrete (per step). With step ``dt``, NIR's continuous
``tau dv/dt = (v_leak - v) + r I`` integrated by forward Euler is::

    v_n = alpha * v_{n-1} + gain * I_n + bias
    alpha = 1 - dt / tau,   gain = r * dt / tau,   bias = v_leak * dt / tau

then a spike ``S_n = H(v_n - vth)`` and a reset: "hard" (NIR's: the membrane is
set to ``v_reset`` after the spike) or "soft" (snnTorch's default ``Leaky``:
``vth * S_{n-1}`` is subtracted at the next step; ``v_reset`` is unused).
Membranes are reported before the reset, as :func:`snnjax.lif_scan` does.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from snnjax import _checks
from snnjax.neuron import LIFState, lif_scan
from snnjax.surrogate import spike

Array = jax.Array
PLAIN_RESETS = ("hard", "soft")


class Constant(nnx.Variable):
    """A neuron parameter: part of the model's state, not trained by ``nnx.Param`` filters."""


def _const(x, name):
    value = jnp.asarray(x, jnp.float32)
    if not bool(jnp.all(jnp.isfinite(value))):
        raise ValueError(f"{name} must be finite, got {np.asarray(value)}")
    return Constant(value)


class SequenceLayer(nnx.Module):
    """Base of the layers that take ``(x, state)`` and return ``(y, state, membranes)``."""

    carries_state = False  # True: its output depends on earlier steps (neurons, delays)

    def __call__(self, x: Array, state=None):
        raise NotImplementedError


def _leaky(x, v0, alpha):
    """``v_n = alpha v_{n-1} + x_n`` over the leading axis: (trace, final v)."""
    init = None if v0 is None else LIFState(v0, jnp.zeros_like(v0))
    final, (_, v) = lif_scan(x, init=init, alpha=alpha, vth=1.0, reset="none")
    return v, final.v


class LIF(SequenceLayer):
    """Leaky integrate-and-fire: ``v_n = alpha v_{n-1} + gain I_n + bias``, spike, reset.

    Parameters broadcast against the per-sample (channels-last) shape; the state is
    a :class:`snnjax.LIFState` of membranes (in volts, as reported) and last spikes.
    """

    carries_state = True

    def __init__(
        self,
        alpha=0.9,
        vth=1.0,
        *,
        v_reset=0.0,
        gain=1.0,
        bias=0.0,
        reset: str = "hard",
        surrogate="rectangular",
    ):
        _checks.one_of(reset, PLAIN_RESETS, "reset")
        self.alpha, self.vth = _const(alpha, "alpha"), _const(vth, "vth")
        self.v_reset, self.gain, self.bias = (
            _const(v_reset, "v_reset"),
            _const(gain, "gain"),
            _const(bias, "bias"),
        )
        effective = self.vth[...] - (self.v_reset[...] if reset == "hard" else 0.0)
        if not bool(jnp.all(effective > 0)):
            what = "vth - v_reset" if reset == "hard" else "vth"
            raise ValueError(f"{what} must be positive (the neuron would fire at rest)")
        self.reset = reset
        self.surrogate = surrogate

    def _fire(self, currents, state):
        """The spiking part on ``currents`` (T, B, ...): a shifted ``lif_scan``."""
        shift = self.v_reset[...] if self.reset == "hard" else jnp.zeros(())
        alpha = self.alpha[...]
        # Hard reset to v_reset is a reset to 0 of w = v - v_reset (dv = dw).
        currents = currents - (1 - alpha) * shift
        currents = jnp.broadcast_to(currents, jnp.broadcast_shapes(currents.shape, shift.shape))
        if state is None:
            state = LIFState.zeros(currents.shape[1:], currents.dtype)
        init = LIFState((state.v - shift).astype(currents.dtype), state.s)
        final, (s, w) = lif_scan(
            currents,
            init=init,
            alpha=alpha,
            vth=self.vth[...] - shift,
            reset=self.reset,
            surrogate=self.surrogate,
        )
        return s, LIFState(final.v + shift, final.s), w + shift

    def __call__(self, x, state: LIFState | None = None):
        return self._fire(self.gain[...] * x + self.bias[...], state)


class IF(LIF):
    """Integrate-and-fire: :class:`LIF` without leak (``alpha = 1``), ``gain = r``."""

    def __init__(self, vth=1.0, *, r=1.0, v_reset=0.0, reset="hard", surrogate="rectangular"):
        super().__init__(1.0, vth, v_reset=v_reset, gain=r, reset=reset, surrogate=surrogate)


class CubaState(NamedTuple):
    """Synaptic current ``i`` and the membrane's state (LIFState, or ``v`` for CubaLI)."""

    i: Array
    mem: LIFState | Array


class CubaLIF(LIF):
    """Current-based LIF: ``i_n = alpha_syn i_{n-1} + syn_gain x_n`` drives a :class:`LIF`.

    ``alpha_syn = 1 - dt/tau_syn`` and ``syn_gain = w_in dt/tau_syn``; the membrane
    takes the new current ``i_n`` (snnTorch's ``Synaptic``, Norse's CubaLIF).
    """

    def __init__(self, alpha_syn=0.8, alpha=0.9, vth=1.0, *, syn_gain=1.0, **lif_kwargs):
        super().__init__(alpha, vth, **lif_kwargs)
        self.alpha_syn = _const(alpha_syn, "alpha_syn")
        self.syn_gain = _const(syn_gain, "syn_gain")

    def __call__(self, x, state: CubaState | None = None):
        i, i_final = _leaky(
            self.syn_gain[...] * x, None if state is None else state.i, self.alpha_syn[...]
        )
        s, mem, v = self._fire(
            self.gain[...] * i + self.bias[...], None if state is None else state.mem
        )
        return s, CubaState(i_final, mem), v


class LI(SequenceLayer):
    """Leaky integrator: ``v_n = alpha v_{n-1} + gain I_n + bias``; outputs the membrane."""

    carries_state = True

    def __init__(self, alpha=0.9, *, gain=1.0, bias=0.0):
        self.alpha, self.gain, self.bias = (
            _const(alpha, "alpha"),
            _const(gain, "gain"),
            _const(bias, "bias"),
        )

    def __call__(self, x, state: Array | None = None):
        v, final = _leaky(self.gain[...] * x + self.bias[...], state, self.alpha[...])
        return v, final, v


class I(LI):  # noqa: E742 (NIR's name)
    """Integrator: ``v_n = v_{n-1} + r I_n`` (no leak)."""

    def __init__(self, r=1.0):
        super().__init__(1.0, gain=r)


class CubaLI(LI):
    """Current-based leaky integrator: the synapse of :class:`CubaLIF` into an :class:`LI`."""

    def __init__(self, alpha_syn=0.8, alpha=0.9, *, syn_gain=1.0, gain=1.0, bias=0.0):
        super().__init__(alpha, gain=gain, bias=bias)
        self.alpha_syn = _const(alpha_syn, "alpha_syn")
        self.syn_gain = _const(syn_gain, "syn_gain")

    def __call__(self, x, state: CubaState | None = None):
        i, i_final = _leaky(
            self.syn_gain[...] * x, None if state is None else state.i, self.alpha_syn[...]
        )
        v, v_final, _ = super().__call__(i, None if state is None else state.mem)
        return v, CubaState(i_final, v_final), v


class Threshold(SequenceLayer):
    """``H(x - vth)`` with a surrogate gradient; stateless."""

    def __init__(self, vth=1.0, *, surrogate="rectangular"):
        _checks.positive(vth, "vth")
        self.vth = _const(vth, "vth")
        self.surrogate = surrogate

    def __call__(self, x, state=()):
        return spike(x, self.vth[...], self.surrogate), (), None


class Scale(SequenceLayer):
    """Elementwise ``x * scale`` (NIR's Scale)."""

    def __init__(self, scale):
        self.scale = nnx.Param(jnp.asarray(scale, jnp.float32))

    def __call__(self, x, state=()):
        return x * self.scale[...], (), None


class Delay(SequenceLayer):
    """``y_n = x_{n - d}`` with a whole number of steps ``d`` per element (broadcast).

    The state is the last ``max(d)`` inputs (zeros at rest), so a run continues.
    """

    carries_state = True

    def __init__(self, steps):
        steps = np.asarray(steps)
        if steps.size == 0 or np.any(steps < 0) or np.any(steps != np.round(steps)):
            raise ValueError(f"steps must be whole numbers >= 0, got {steps}")
        self.steps = Constant(jnp.asarray(steps, jnp.int32))
        self.depth = int(steps.max())

    def __call__(self, x, state: Array | None = None):
        depth = self.depth
        if depth == 0:
            return x, (), None
        if state is None:
            state = jnp.zeros((depth, *x.shape[1:]), x.dtype)
        full = jnp.concatenate([state, x])
        steps = jnp.broadcast_to(self.steps[...], x.shape[1:])
        index = depth + jnp.arange(x.shape[0]).reshape((-1,) + (1,) * (x.ndim - 1)) - steps
        return jnp.take_along_axis(full, index, axis=0), full[-depth:], None


def _channels_first(x, rank):
    """Per-sample channels-last -> channels-first (over the trailing ``rank`` axes)."""
    return jnp.moveaxis(x, -1, x.ndim - rank) if rank >= 2 else x


class Flatten(SequenceLayer):
    """NIR's Flatten: ``start_dim..end_dim`` of the per-sample channels-first shape.

    The data is channels-last, so the order of flattened elements is that of
    channels-first (C, H, W), the order NIR and PyTorch weights assume.
    """

    def __init__(self, start_dim: int = 0, end_dim: int = -1):
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def __call__(self, x, state=()):
        lead, rank = x.shape[:2], x.ndim - 2
        start, end = self.start_dim % rank, self.end_dim % rank
        if start > end:
            raise ValueError(f"start_dim {self.start_dim} is after end_dim {self.end_dim}")
        y = _channels_first(x, rank)
        shape = y.shape[2:]
        flat = (*shape[:start], math.prod(shape[start : end + 1]), *shape[end + 1 :])
        y = y.reshape(*lead, *flat)
        return (jnp.moveaxis(y, 2, -1) if len(flat) >= 2 else y), (), None


def _pair(v, name):
    v = tuple(int(a) for a in np.broadcast_to(np.asarray(v), (2,)))
    if any(a < 0 for a in v):
        raise ValueError(f"{name} must be non-negative, got {v}")
    return v


class SumPool2d(SequenceLayer):
    """Sum over ``kernel_size`` windows of (H, W), channels-last, zero padding."""

    average = False

    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(self.kernel_size if stride is None else stride, "stride")
        self.padding = _pair(padding, "padding")

    def __call__(self, x, state=()):
        _checks.rank(x, {5}, "x (T, B, H, W, C)")
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        y = jax.lax.reduce_window(
            x,
            jnp.zeros((), x.dtype),
            jax.lax.add,
            (1, 1, kh, kw, 1),
            (1, 1, sh, sw, 1),
            ((0, 0), (0, 0), (ph, ph), (pw, pw), (0, 0)),
        )
        # PyTorch's AvgPool2d default (count_include_pad): padding counts as zeros.
        return (y / (kh * kw) if self.average else y), (), None


class AvgPool2d(SumPool2d):
    """Mean over ``kernel_size`` windows (padding counted, as in PyTorch's default)."""

    average = True
