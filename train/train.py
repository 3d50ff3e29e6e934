"""The training program's public API in one namespace (``from train import train``).

The code lives in modules of one job each, in the order of a run:

* :mod:`train.schema`: every config field (default, allowed values), validation;
* :mod:`train.optim`: run length, learning-rate schedule, optimiser;
* :mod:`train.mesh`: the ``"data"`` device mesh and global batches;
* :mod:`train.state`: model, train state, and the chain that builds them;
* :mod:`train.steps`: the pure train and eval steps, jitted over the mesh;
* :mod:`train.evaluation`: the evaluation loop and its summary;
* :mod:`train.run`: :func:`train_and_evaluate`, the story of a run.
"""

from train.evaluation import evaluate
from train.mesh import DATA_AXIS, check_batch_sizes, create_mesh, global_batch
from train.model_config import create_model, model_config
from train.optim import (
    create_learning_rate_schedule,
    create_optimizer,
    decay_mask,
    steps_per_epoch,
    total_steps,
)
from train.run import NonFiniteError, train_and_evaluate
from train.rundir import prepare as prepare_workdir
from train.schema import ConfigError
from train.schema import validate as validate_config
from train.state import (
    Model,
    Setup,
    TrainState,
    create_train_state,
    evaluation_params,
    setup,
)
from train.steps import (
    device_streams,
    eval_step,
    make_eval_step,
    make_train_step,
    soft_cross_entropy,
    train_step,
)

__all__ = [
    "DATA_AXIS",
    "ConfigError",
    "Model",
    "NonFiniteError",
    "Setup",
    "TrainState",
    "check_batch_sizes",
    "create_learning_rate_schedule",
    "create_mesh",
    "create_model",
    "create_optimizer",
    "create_train_state",
    "decay_mask",
    "device_streams",
    "eval_step",
    "evaluate",
    "evaluation_params",
    "global_batch",
    "make_eval_step",
    "make_train_step",
    "model_config",
    "prepare_workdir",
    "setup",
    "soft_cross_entropy",
    "steps_per_epoch",
    "total_steps",
    "train_and_evaluate",
    "train_step",
    "validate_config",
]
