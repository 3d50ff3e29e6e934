"""Every field of a training config, once: its default, what it accepts, whether
it may change on resume, and the value that reproduces runs stored before it
existed. ``train/configs/*`` only override these defaults.

:func:`defaults` builds the base config (the paper's recipe, METHOD Sec. 7),
:func:`validate` checks a config before anything is compiled or created (one
line naming the first bad field), :func:`upgrade` fills a stored config with the
fields added since it was written. The model block (``config.model``) holds the
preset ``name`` and every :class:`snnjax.nn.config.SequencerConfig` field but
the derived ones; the library validates it (:func:`train.model_config.model_config`).
What each field means: ``docs/configs.md``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from typing import Any

import ml_collections

from snnjax import models, whitening
from snnjax.nn.config import SequencerConfig
from train.datasets.info import supported_datasets

# SequencerConfig fields that the training config does not set directly.
DERIVED_MODEL_FIELDS = ("mixer", "num_classes", "image_size")
INPUT_MODES = ("auto", "grain", "device")
DATA_PARALLEL_MODES = ("gspmd", "local")
OPTIMIZERS = ("sgd", "adam", "adamw")
LR_DECAYS = ("cosine", "linear", "step")
AUGMENTATIONS = ("crop_flip", "authors")
BALANCE_MODES = ("threshold", "scale")
NONFINITE_MODES = ("stop", "skip")
_SAME = object()


class ConfigError(ValueError):
    """A config value that cannot work (raised before anything is compiled or
    created); the message is one line naming the field."""


@dataclasses.dataclass(frozen=True)
class Field:
    """One config field: ``ok(value)`` says whether a value is accepted,
    ``expected`` what is; ``run_control`` fields change how a run is observed
    or stopped, not the parameters it reaches (they may differ on resume);
    ``before`` is the value that reproduces runs stored before the field was
    added (default: the default)."""

    default: Any
    ok: Callable[[Any], bool]
    expected: str
    run_control: bool = False
    before: Any = _SAME

    @property
    def stored_default(self) -> Any:
        return self.default if self.before is _SAME else self.before


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _integer(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def number(low: float = -math.inf, *, above: bool = False, below: float = math.inf):
    """A finite number >= low (> low with ``above``) and < below."""
    return lambda v: _number(v) and (v > low if above else v >= low) and v < below


def integer(low: int = -(2**63), high: int = 2**63):
    return lambda v: _integer(v) and low <= v < high


def one_of(values) -> Callable[[Any], bool]:
    return lambda v: v in values


def boolean(v) -> bool:
    return isinstance(v, bool)


def text(v) -> bool:
    return isinstance(v, str)


def _f(default, ok, expected, **kw) -> Field:
    return Field(default, ok, expected, **kw)


FIELDS: dict[str, Field] = {
    # Data.
    "dataset": _f(
        "cifar10", one_of(supported_datasets()), f"must be one of {list(supported_datasets())}"
    ),
    "data_dir": _f("", text, "must be a path or '' ($TFDS_DATA_DIR)", run_control=True),
    "download": _f(True, boolean, "must be true or false", run_control=True),
    "validation_examples": _f(
        5000, integer(0), "must be >= 0 (0: no validation hold-out)", before=0
    ),
    "worker_count": _f(0, integer(0), "must be >= 0", run_control=True),
    "input": _f("auto", one_of(INPUT_MODES), f"must be one of {list(INPUT_MODES)}", before="grain"),
    "input_memory_mb": _f(4096.0, number(0, above=True), "must be > 0 (MiB)"),
    "grain_in_memory": _f(True, boolean, "must be true or false", run_control=True),
    "data_parallel": _f(
        "gspmd", one_of(DATA_PARALLEL_MODES), f"must be one of {list(DATA_PARALLEL_MODES)}"
    ),
    "batch_size": _f(128, integer(1), "must be a positive integer"),
    "eval_batch_size": _f(512, integer(1), "must be a positive integer", run_control=True),
    "max_eval_batches": _f(
        -1,
        lambda v: _integer(v) and (v == -1 or v >= 1),
        "must be -1 (all) or >= 1",
        run_control=True,
    ),
    "eval_flip": _f(False, boolean, "must be true or false", run_control=True),
    "mixup_alpha": _f(0.1, number(0), "must be >= 0 (0: no mixup)"),
    "crop_padding": _f(
        -1, integer(-1), "must be >= 0, or -1 (the dataset's: 4 for CIFAR, 8 for Tiny-ImageNet)"
    ),
    "augment": _f("crop_flip", one_of(AUGMENTATIONS), f"must be one of {list(AUGMENTATIONS)}"),
    # Initialisation.
    "stem_whitening": _f(
        0, integer(0), "must be >= 0 (the number of training images; 0: no whitening)"
    ),
    "stem_whitening_eps": _f(
        whitening.DEFAULT_EPS, number(0, above=True), "must be > 0", before=5e-4
    ),
    # Conversion-initialised training (snnjax.conversion, docs/conversion.md).
    "init_from": _f("", text, "must be the workdir of a trained ANN run, or '' (none)"),
    "balance_percentile": _f(90.0, number(0, above=True, below=100.0001), "must be in (0, 100]"),
    "balance_images": _f(512, integer(1), "must be >= 1 (training images)"),
    "balance_nonpositive": _f(
        "error", one_of(("error", "keep")), "must be 'error' or 'keep' (snnjax.conversion.balance)"
    ),
    "balance_mode": _f("threshold", one_of(BALANCE_MODES), f"must be one of {list(BALANCE_MODES)}"),
    # Optimisation.
    "optimizer": _f("sgd", one_of(OPTIMIZERS), f"must be one of {list(OPTIMIZERS)}"),
    "lr": _f(0.05, number(0, above=True), "the learning rate must be > 0"),
    "warmup_lr": _f(1e-4, number(0), "must be >= 0"),
    "min_lr": _f(1e-6, number(0), "must be >= 0"),
    "warmup_epochs": _f(3.0, number(0), "must be >= 0"),
    "num_epochs": _f(300, integer(1), "must be >= 1"),
    "cooldown_epochs": _f(0, integer(0), "must be >= 0 (epochs at min_lr after the decay)"),
    "num_train_steps": _f(
        -1, lambda v: _integer(v) and v != 0, "must be >= 1, or -1 to train for num_epochs"
    ),
    "momentum": _f(0.9, number(0, below=1), "must be in [0, 1)"),
    "adam_b1": _f(0.9, number(0, below=1), "must be in [0, 1)"),
    "adam_b2": _f(0.999, number(0, below=1), "must be in [0, 1)"),
    "weight_decay": _f(2e-5, number(0), "must be >= 0"),
    "grad_clip_norm": _f(20.0, number(0), "must be >= 0"),
    "label_smoothing": _f(0.1, number(0, below=1), "must be in [0, 1)"),
    "ema_decay": _f(0.0, number(0, below=1), "must be in [0, 1) (0: no EMA)"),
    "lr_decay": _f("cosine", one_of(LR_DECAYS), f"must be one of {list(LR_DECAYS)}"),
    "lr_steps": _f(
        (0.6, 0.8, 0.9),
        lambda v: isinstance(v, (tuple, list)) and all(_number(x) and 0 < x < 1 for x in v),
        "must be fractions of training in (0, 1)",
    ),
    "lr_step_factor": _f(0.1, number(0, above=True, below=1), "must be in (0, 1)"),
    "mixer_lr_scale": _f(1.0, number(0, above=True), "must be > 0 (1: no scaling)"),
    "seed": _f(0, integer(0, 2**32), "must be an integer in [0, 2**32)"),
    # Run control.
    "log_every_steps": _f(50, integer(1), "must be >= 1", run_control=True),
    "eval_every_epochs": _f(
        1, integer(0), "must be >= 0 (0: only the final evaluation)", run_control=True
    ),
    "checkpoint_every_steps": _f(
        1000,
        integer(0),
        "must be >= 0 (0: save only at the end and when stopped)",
        run_control=True,
    ),
    "keep_checkpoints": _f(3, integer(1), "must be >= 1", run_control=True),
    "stop_after_steps": _f(
        -1,
        lambda v: _integer(v) and (v == -1 or v >= 1),
        "must be -1 (never) or >= 1",
        run_control=True,
    ),
    "time_limit_s": _f(0.0, number(0), "must be >= 0 (0: no limit)", run_control=True),
    "nonfinite": _f(
        "stop",
        one_of(NONFINITE_MODES),
        f"must be one of {list(NONFINITE_MODES)}",
        run_control=True,
    ),
}
RUN_CONTROL_FIELDS = frozenset(name for name, f in FIELDS.items() if f.run_control)


def model_block(name: str = "conv", **overrides) -> ml_collections.ConfigDict:
    """The ``config.model`` block: preset ``name`` and every
    :class:`SequencerConfig` field at its default, with ``overrides``."""
    fields = {
        f.name: f.default
        for f in dataclasses.fields(SequencerConfig)
        if f.name not in DERIVED_MODEL_FIELDS
    }
    fields.update(
        carry_membrane=ml_collections.FieldReference(None, field_type=bool),
        region_threshold=ml_collections.FieldReference(
            fields["region_threshold"], field_type=float
        ),
        surrogate_params={},
        dtype="float32",
    )
    unknown = set(overrides) - set(fields)
    if unknown:
        raise ValueError(f"unknown model field(s) {sorted(unknown)}; valid: {sorted(fields)}")
    config = ml_collections.ConfigDict({"name": name, **fields})
    for key, value in overrides.items():
        config[key] = value
    return config


def defaults() -> ml_collections.ConfigDict:
    """The base config: every field at its default, the conv model."""
    config = ml_collections.ConfigDict({name: f.default for name, f in FIELDS.items()})
    config.model = model_block("conv")
    return config


def validate(config: ml_collections.ConfigDict) -> None:
    """Checks every field without touching the disk, the data or the compiler.

    Raises:
      ConfigError: one line naming the first bad field and what it accepts.
    """
    from train.model_config import model_config  # the library's validation of the model

    unknown = sorted(set(config.keys()) - set(FIELDS) - {"model"})
    if unknown:
        raise ConfigError(f"config.{unknown[0]}: unknown field (fields: docs/configs.md)")
    for name, field in FIELDS.items():
        if name == "num_epochs" and "num_train_steps" in config and config.num_train_steps > 0:
            continue  # unused
        if name not in config:
            raise ConfigError(f"config.{name}: missing (a stored config: schema.upgrade)")
        value = config[name]
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"config.{name}={value!r}: must be a finite number")
        if not field.ok(value):
            raise ConfigError(f"config.{name}={value!r}: {field.expected}")
    name = config.model.name if "model" in config and "name" in config.model else None
    if name not in models.PRESETS:
        raise ConfigError(f"config.model.name={name!r}: must be one of {sorted(models.PRESETS)}")
    try:
        model_config(config)
    except (ValueError, TypeError, KeyError) as e:
        raise ConfigError(f"config.model: {str(e).splitlines()[0]}") from None
    model = config.model
    if config.init_from and config.balance_mode == "threshold":
        needs = ["learnable_threshold"] + (
            ["learnable_encoder_threshold"] if model.encoder == "deterministic" else []
        )
        for name in needs:
            if not model[name]:
                raise ConfigError(
                    f"config.model.{name}=False: threshold balancing (config.init_from with "
                    "balance_mode='threshold') sets per-layer thresholds; set it true"
                )


def upgrade(stored: dict) -> dict:
    """A stored config (plain data) with every field added since it was written
    at the value that reproduces the runs of before (:attr:`Field.before`)."""
    missing = {name: f.stored_default for name, f in FIELDS.items() if name not in stored}
    return {**stored, **missing}


def config_to_dict(config: ml_collections.ConfigDict) -> dict:
    """``config`` as plain JSON data (tuples become lists)."""
    return json.loads(config.to_json())


def config_differences(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """``"field: saved -> current"`` for every field that differs, ignoring
    the run-control fields (:data:`RUN_CONTROL_FIELDS`); a field
    added since ``saved`` was stored has the value of the runs of before there
    (:func:`upgrade`)."""
    if not prefix:
        saved = upgrade(saved)
    differences = []
    for key in sorted(set(saved) | set(current)):
        if not prefix and key in RUN_CONTROL_FIELDS:
            continue
        old, new = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if isinstance(old, dict) and isinstance(new, dict):
            differences += config_differences(old, new, f"{prefix}{key}.")
        elif old != new:
            differences.append(f"{prefix}{key}: {old!r} -> {new!r}")
    return differences
