"""Compiling a program that runs once quickly: XLA's quick options on CPU."""

from __future__ import annotations

import jax

# XLA's quick compilation on CPU, for a program that runs once (the training
# program's initialisation) and for the test suite (tests/conftest.py sets
# them, as --flags, in XLA_FLAGS). Compiling dominates a program that runs once
# on a CPU: without LLVM's optimisation (backend level 0, no expensive passes)
# XLA compiles the tiny model's train step about 3x faster, the initialisation
# ~10x, and runs them as fast; XLA's older loop emitters
# (use_fusion_emitters=false) another 0.6-0.75x the time (same results, bit for
# bit). Options this XLA does not know are left out (jax 0.11 has no
# xla_cpu_use_fusion_emitters).
FAST_COMPILE = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
    "xla_cpu_use_fusion_emitters": False,
}


def compile_once(lowered: jax.stages.Lowered) -> jax.stages.Compiled:
    """``lowered`` compiled for a single run: quickly on CPU (:data:`FAST_COMPILE`)."""
    if jax.default_backend() != "cpu":
        return lowered.compile()
    options = dict(FAST_COMPILE)
    while True:
        try:
            return lowered.compile(compiler_options=options)
        except jax.errors.JaxRuntimeError as e:
            unknown = [k for k in options if f"No such compile option: '{k}'" in str(e)]
            if not unknown:
                raise
            del options[unknown[0]]


def xla_flags(options: dict = FAST_COMPILE) -> tuple[str, ...]:
    """``options`` as XLA_FLAGS command-line flags (``--name=value``)."""
    return tuple(f"--{k}={str(v).lower()}" for k, v in options.items())
