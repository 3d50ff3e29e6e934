"""An exponential moving average (EMA) of the parameters, kept in the
optimiser state.

``with_parameter_ema(optimizer, decay)`` wraps any optax transformation: it
returns the inner updates unchanged (training is the same, bit for bit) and
keeps ``ema <- decay * ema + (1 - decay) * (params + updates)``, started at the
initial parameters. Living in the optimiser state, the average is
checkpointed, restored, replicated and protected from non-finite steps with it,
with no change to the training step. :func:`averaged_params` reads it back for
evaluation (None if the state has no average).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax


class ParameterEmaState(NamedTuple):
    """The inner optimiser's state and the running average of the parameters."""

    inner: optax.OptState
    ema: optax.Params


def with_parameter_ema(
    optimizer: optax.GradientTransformation, decay: float
) -> optax.GradientTransformation:
    """``optimizer`` that also keeps an EMA of the parameters it updates
    (``0 < decay < 1``; the average's horizon is about ``1 / (1 - decay)``
    steps). Its ``update`` needs ``params``."""
    if not 0.0 < decay < 1.0:
        raise ValueError(f"decay must be in (0, 1), got {decay!r}")

    def init(params):
        return ParameterEmaState(optimizer.init(params), jax.tree.map(jnp.array, params))

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("with_parameter_ema needs params in update()")
        updates, inner = optimizer.update(updates, state.inner, params)
        new_params = optax.apply_updates(params, updates)
        ema = jax.tree.map(
            lambda e, p: decay * e + (1.0 - decay) * p.astype(e.dtype), state.ema, new_params
        )
        return updates, ParameterEmaState(inner, ema)

    return optax.GradientTransformation(init, update)


def averaged_params(opt_state: optax.OptState) -> optax.Params | None:
    """The EMA of the parameters if ``opt_state`` is the state of a
    :func:`with_parameter_ema` optimiser, else None."""
    return opt_state.ema if isinstance(opt_state, ParameterEmaState) else None
