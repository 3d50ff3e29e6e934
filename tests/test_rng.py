"""snnjax.rng: the unrolled Threefry lowering on the CPU draws the same bits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax import rng


@pytest.fixture
def rolled_afterwards():
    """The test may switch the lowering; the rest of the suite gets JAX's default back."""
    yield
    rng.unroll_threefry_on_cpu(False)


def _draws(key):
    """Bits, a dropout mask and a Bernoulli draw: a fresh function each call, so
    each is traced and lowered under the lowering registered at that moment."""
    keep = jax.random.bernoulli(key, 0.9, (64, 5, 7))
    return jax.random.bits(key, (1000,)), jnp.where(keep, 1.0, 0.0), jax.random.normal(key, (33,))


def _compiled(key):
    jitted = jax.jit(lambda k: (_draws(k), jax.vmap(_draws)(jax.random.split(k, 3))))
    return jitted, jitted.lower(key).as_text()


def test_unrolled_lowering_draws_the_same_bits_without_a_loop(rolled_afterwards):
    key = jax.random.key(3)
    rolled, rolled_text = _compiled(key)
    expected = jax.tree.leaves(jax.tree.map(np.asarray, rolled(key)))
    assert "while" in rolled_text  # JAX's CPU default: the rounds in a loop

    assert rng.unroll_threefry_on_cpu() is True
    unrolled, unrolled_text = _compiled(key)
    assert "while" not in unrolled_text
    got = jax.tree.leaves(jax.tree.map(np.asarray, unrolled(key)))
    assert len(got) == len(expected) == 6
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)

    assert rng.unroll_threefry_on_cpu(False) is True
    assert "while" in _compiled(key)[1]


def test_missing_jax_internals_warn_and_change_nothing(monkeypatch):
    monkeypatch.setattr(rng, "_lowering_rules", lambda: None)
    with pytest.warns(RuntimeWarning, match="default lowering"):
        assert rng.unroll_threefry_on_cpu() is False
