"""train.averaging: the parameter EMA kept in the optimiser state."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from train_utils import copy_run, tiny_config

from train import averaging, evaluate, metrics, train


def _params():
    keys = jax.random.split(jax.random.key(0), 2)
    return {"kernel": jax.random.normal(keys[0], (3, 4)), "bias": jax.random.normal(keys[1], (4,))}


def _grads(step):
    return jax.tree.map(lambda p: jnp.sin(p * (step + 1.0)), _params())


def test_updates_are_the_inner_optimizers_and_the_average_is_the_recursion():
    """Training is unchanged bit for bit; the EMA equals the slow loop
    ema = d * ema + (1 - d) * params after each step, from the initial params."""
    decay = 0.9
    inner = optax.adamw(1e-2, weight_decay=0.1)
    wrapped = averaging.with_parameter_ema(inner, decay)
    params_a = params_b = _params()
    state_a, state_b = inner.init(params_a), wrapped.init(params_b)
    expected = {k: np.asarray(v, np.float64) for k, v in params_b.items()}
    for step in range(5):
        updates_a, state_a = inner.update(_grads(step), state_a, params_a)
        updates_b, state_b = wrapped.update(_grads(step), state_b, params_b)
        for k in updates_a:
            np.testing.assert_array_equal(updates_a[k], updates_b[k])
        params_a = optax.apply_updates(params_a, updates_a)
        params_b = optax.apply_updates(params_b, updates_b)
        expected = {
            k: decay * expected[k] + (1 - decay) * np.asarray(params_b[k]) for k in expected
        }
    ema = averaging.averaged_params(state_b)
    for k in expected:
        np.testing.assert_allclose(ema[k], expected[k], rtol=1e-6)
        assert not np.allclose(ema[k], params_b[k])  # an average, not the last iterate
    assert averaging.averaged_params(state_a) is None


def test_bad_decay_and_missing_params_are_refused():
    for decay in (0.0, 1.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="decay must be in"):
            averaging.with_parameter_ema(optax.sgd(0.1), decay)
    wrapped = averaging.with_parameter_ema(optax.sgd(0.1), 0.9)
    with pytest.raises(ValueError, match="needs params"):
        wrapped.update(_grads(0), wrapped.init(_params()))


def test_config_ema_decay_is_checked():
    with pytest.raises(train.ConfigError, match="config.ema_decay=1.0"):
        train.validate_config(tiny_config(ema_decay=1.0))
    optimizer = train.create_optimizer(tiny_config(ema_decay=0.99), optax.constant_schedule(0.1))
    assert averaging.averaged_params(optimizer.init(_params())) is not None
    plain = train.create_optimizer(tiny_config(), optax.constant_schedule(0.1))
    assert averaging.averaged_params(plain.init(_params())) is None


def test_format_summary_names_the_average_and_the_final_iterate():
    summary = dict(
        accuracy=0.75,
        accuracy_flip=0.76,
        final_iterate_accuracy=0.74,
        final_iterate_accuracy_flip=0.755,
        ema_decay=0.999,
        loss=0.8,
        num_images=10000,
        mean_spike_rate=0.2,
        spikes_per_image=1e4,
        dense_macs_per_image=2.6e7,
        num_params=2.5e6,
    )
    text = metrics.format_summary(summary).splitlines()
    assert "test accuracy      75.00 %" in text[1]
    assert "with flip TTA      76.00 %" in text[2]
    assert text[3] == (
        "  averaging          EMA (decay 0.999); final iterate 74.00 % (flip TTA 75.50 %)"
    )


def test_evaluations_use_the_average_and_the_summary_both(tiny_run, tmp_path):
    """The shared tiny run keeps an EMA (decay 0.5): evaluate() reads the
    average from the restored optimiser state (the run's headline accuracy),
    ``averaged=False`` the final iterate (the summary's
    final_iterate_accuracy), and the two parameter sets differ."""
    workdir, summary = tiny_run
    config, model, state = evaluate.load_checkpoint(copy_run(workdir, tmp_path))
    mesh = train.create_mesh()
    ema = averaging.averaged_params(state.opt_state)
    assert ema is not None
    averaged = train.evaluate(model, state, config, mesh)
    current = train.evaluate(model, state, config, mesh, averaged=False)
    by_hand = train.evaluate(model, state.replace(params=ema), config, mesh, averaged=False)
    assert averaged["accuracy"] == summary["accuracy"]
    assert current["accuracy"] == summary["final_iterate_accuracy"]
    assert averaged["loss"] == by_hand["loss"] != current["loss"]
