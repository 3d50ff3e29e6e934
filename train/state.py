"""The state of a run: the model's static parts, the train state, and the chain
that builds them from a config (mesh -> schedule -> optimiser -> model and its
initial state, replicated over the mesh).

Model state is Flax NNX: ``nnx.split`` gives the static graph definition (one
for training, dropout on, one for evaluation, dropout off), the parameters and
the remaining state (the RNG streams of dropout and of the Bernoulli encoder),
so that a step is a pure function of (:class:`TrainState`, batch).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from snnjax import whitening
from snnjax.nn.config import SequencerConfig
from train import averaging, input_pipeline
from train.compilation import compile_once
from train.mesh import create_mesh
from train.model_config import create_model, model_config
from train.optim import create_learning_rate_schedule, create_optimizer, steps_per_epoch


@flax.struct.dataclass
class TrainState:
    """Everything a training step reads and writes.

    Attributes:
      step: number of steps taken.
      params: the model's ``nnx.Param`` state.
      rest: the model's other state (RNG stream keys and counters).
      opt_state: the optax optimiser state.
    """

    step: jax.Array
    params: nnx.State
    rest: nnx.State
    opt_state: optax.OptState


@dataclasses.dataclass(frozen=True)
class Model:
    """The static parts of a model: its config and its graph definitions."""

    config: SequencerConfig
    train_graphdef: nnx.GraphDef
    eval_graphdef: nnx.GraphDef


def stem_whitening_filters(config: ml_collections.ConfigDict) -> np.ndarray | None:
    """The patch-whitening filters of ``config.stem_whitening`` training
    images (:mod:`snnjax.whitening`), or None when it is 0."""
    count = config.stem_whitening
    if not count:
        return None
    images = input_pipeline.load_train_images(
        config.dataset,
        count,
        data_dir=config.data_dir or None,
        download=config.download,
        validation_examples=config.validation_examples,
    )
    _, cfg = model_config(config)
    return whitening.patch_whitening_filters(images, cfg.patch_size, config.stem_whitening_eps)


def create_train_state(
    config: ml_collections.ConfigDict,
    mesh: Mesh,
    optimizer: optax.GradientTransformation,
    stem_filters: np.ndarray | None = None,
) -> tuple[Model, TrainState]:
    """The model's static parts and its initial state, replicated over ``mesh``.

    Initialisation runs under ``jit`` with replicated outputs, so every
    process gets the same state (from ``config.seed``) without host copies.
    ``stem_filters`` (:func:`stem_whitening_filters`) replace the stem's
    initial kernel by their +/- pairs.
    """
    _, cfg = model_config(config)

    def init_model():
        model = create_model(config, nnx.Rngs(config.seed))
        if stem_filters is not None:
            kernel = model.stem.kernel
            kernel[...] = whitening.whitened_stem_kernel(stem_filters, kernel[...])
        return model

    abstract = nnx.eval_shape(init_model)
    abstract.train()
    train_graphdef = nnx.graphdef(abstract)
    abstract.eval()
    eval_graphdef = nnx.graphdef(abstract)

    def init() -> TrainState:
        _, params, rest = nnx.split(init_model(), nnx.Param, ...)
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            rest=rest,
            opt_state=optimizer.init(params),
        )

    init = jax.jit(init, out_shardings=NamedSharding(mesh, P())).lower()
    state = compile_once(init)()
    return Model(cfg, train_graphdef, eval_graphdef), state


@dataclasses.dataclass(frozen=True)
class Setup:
    """The training state chain of a config: mesh -> schedule -> optimiser ->
    model and initial state (:func:`setup`); :meth:`train_step` jits the step."""

    mesh: Mesh
    schedule: optax.Schedule
    optimizer: optax.GradientTransformation
    model: Model
    state: TrainState

    def train_step(self, config: ml_collections.ConfigDict, feed=None) -> Callable:
        """:func:`train.steps.make_train_step` over this setup's mesh, optimiser
        and schedule."""
        from train.steps import make_train_step  # the steps build on this module

        return make_train_step(self.model, self.mesh, self.optimizer, self.schedule, config, feed)


def setup(
    config: ml_collections.ConfigDict,
    *,
    mesh: Mesh | None = None,
    devices: list | None = None,
    per_epoch: int | None = None,
    schedule: optax.Schedule | None = None,
    data_init: bool = True,
) -> Setup:
    """Builds the chain every entry point needs, in one place: the mesh (over
    ``devices``, default all), the learning-rate schedule (``config``'s, with
    ``per_epoch`` steps per epoch, default :func:`steps_per_epoch`; or
    ``schedule``), the optimiser, and the model with its initial state
    replicated over the mesh (its data-dependent initialisation,
    :func:`stem_whitening_filters`, only with ``data_init``: a state that is
    restored from a checkpoint next does not need it)."""
    mesh = mesh if mesh is not None else create_mesh(devices)
    if schedule is None:
        per_epoch = steps_per_epoch(config) if per_epoch is None else per_epoch
        schedule = create_learning_rate_schedule(config, per_epoch)
    optimizer = create_optimizer(config, schedule)
    filters = stem_whitening_filters(config) if data_init else None
    model, state = create_train_state(config, mesh, optimizer, filters)
    return Setup(mesh, schedule, optimizer, model, state)


def evaluation_params(state: TrainState, averaged: bool = True) -> nnx.State:
    """The parameters an evaluation uses: the state's EMA of the parameters
    if it keeps one (``config.ema_decay``) and ``averaged``, else the
    current ones."""
    ema = averaging.averaged_params(state.opt_state) if averaged else None
    return state.params if ema is None else ema
