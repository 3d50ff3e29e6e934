"""Threefry random bits on the CPU without XLA's rolled loop: the same bits, faster.

JAX lowers its Threefry-2x32 hash (the default PRNG: dropout masks, Bernoulli
encoders, on-device augmentation) to a ``fori_loop`` of five round groups on
the CPU, to keep compile times short; on accelerators it unrolls the rounds.
Each loop iteration writes both words of every random draw back to memory, so
on the CPU a dropout mask costs about five times what the unrolled hash costs
(docs/benchmarks.md, sixth round: 19-24 ms against 4-5 ms for 1.6 M draws).
:func:`unroll_threefry_on_cpu` registers JAX's own unrolled lowering for the
CPU as well. The hash and its bits are unchanged (tests/test_rng.py compares
them); only programs compiled after the call use it.

This reaches into JAX internals (``jax._src.random.threefry2x32``); if they
move, the call warns and changes nothing.
"""

from __future__ import annotations

import warnings


def _lowering_rules():
    """JAX's Threefry primitive and its (unrolled, rolled) lowering rules, or None."""
    try:
        from jax._src.random import threefry2x32 as threefry

        return (
            threefry.threefry2x32_p,
            threefry._threefry2x32_lowering_rule,
            threefry._threefry2x32_cpu_lowering_rule,
        )
    except (ImportError, AttributeError):
        return None


def unroll_threefry_on_cpu(unrolled: bool = True) -> bool:
    """Lower Threefry on the CPU with its rounds unrolled (``unrolled=False``:
    JAX's rolled default again), for programs compiled from now on in this
    process. Returns whether the requested lowering is in place (False, with a
    warning, when this JAX version does not expose the rules)."""
    rules = _lowering_rules()
    if rules is None:
        warnings.warn(
            "snnjax.rng.unroll_threefry_on_cpu: this JAX version does not expose "
            "jax._src.random.threefry2x32's lowering rules; Threefry keeps its default lowering",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    from jax._src.interpreters import mlir

    primitive, unrolled_rule, rolled_rule = rules
    mlir.register_lowering(primitive, unrolled_rule if unrolled else rolled_rule, platform="cpu")
    return True
